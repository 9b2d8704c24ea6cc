"""EventBus and the query language: pure, no sockets."""

from __future__ import annotations

import asyncio

import pytest

from node.api import NodeEvent
from node.events import (
    EventBus,
    Overflow,
    QueryParseError,
    Subscription,
    SubscriptionClosed,
    SubscriptionLimitError,
    parse_query,
    parse_subscription_query,
)


def _tx_event(height: int, **attributes: str) -> NodeEvent:
    return NodeEvent(kind="Tx", height=height, attributes=attributes)


def test_query_parse_canonicalises_whitespace() -> None:
    query = parse_query("  tm.event = 'Tx'   AND  tx.height>=5 ")
    assert query.text == "tm.event='Tx' AND tx.height>=5"
    assert query.event_kind == "Tx"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tm.event",
        "tm.event='Tx' AND",
        "a='b' OR c='d'",
        "a=b",
        "a='it''s'",
        "a=='b'",
        "x" * 600,
    ],
)
def test_query_parse_rejects(text: str) -> None:
    with pytest.raises(QueryParseError):
        parse_query(text)


def test_subscription_query_rules() -> None:
    assert parse_subscription_query("tm.event='NewBlock'").event_kind == "NewBlock"
    for text in ("tm.event='Vote'", "a='b'", "tm.event='Tx' AND tx.height>3"):
        with pytest.raises(QueryParseError):
            parse_subscription_query(text)


def test_matching_by_kind_attribute_and_height() -> None:
    query = parse_query("tm.event='Tx' AND notary.issuer='seoul' AND tx.height>2")
    assert query.matches(_tx_event(3, **{"notary.issuer": "seoul"}))
    assert not query.matches(_tx_event(2, **{"notary.issuer": "seoul"}))
    assert not query.matches(_tx_event(3, **{"notary.issuer": "busan"}))
    assert not query.matches(_tx_event(3))
    assert not query.matches(NodeEvent(kind="NewBlock", height=3))


async def test_publish_delivers_to_matching_subscribers_only() -> None:
    bus = EventBus()
    blocks = bus.subscribe(parse_subscription_query("tm.event='NewBlock'"))
    txs = bus.subscribe(parse_subscription_query("tm.event='Tx'"))
    bus.publish(NodeEvent(kind="NewBlock", height=1))
    bus.publish(_tx_event(1))
    assert (await blocks.next()).kind == "NewBlock"
    assert (await txs.next()).kind == "Tx"
    assert blocks.pending() == 0
    assert txs.pending() == 0


async def test_overflow_close_drops_the_subscriber_not_the_publisher() -> None:
    dropped: list[Subscription] = []
    bus = EventBus(queue_events_max=3, on_drop=dropped.append)
    slow = bus.subscribe(parse_subscription_query("tm.event='NewBlock'"))
    fast = bus.subscribe(parse_subscription_query("tm.event='NewBlock'"), queue_events_max=100)
    for height in range(10):
        bus.publish(NodeEvent(kind="NewBlock", height=height))
    assert slow.closed
    assert "slow consumer" in (slow.close_reason or "")
    assert dropped == [slow]
    assert bus.slow_subscriptions_closed_total == 1
    assert len(bus) == 1
    with pytest.raises(SubscriptionClosed):
        await slow.next()
    with pytest.raises(SubscriptionClosed):
        await slow.next()  # stays closed
    assert [(await fast.next()).height for _ in range(10)] == list(range(10))


async def test_overflow_drop_newest_keeps_the_subscriber() -> None:
    bus = EventBus()
    sub = bus.subscribe(
        parse_subscription_query("tm.event='NewBlock'"),
        queue_events_max=2,
        overflow=Overflow.DROP_NEWEST,
    )
    for height in range(5):
        bus.publish(NodeEvent(kind="NewBlock", height=height))
    assert not sub.closed
    assert sub.dropped_events == 3
    assert bus.dropped_events_total == 3
    assert [(await sub.next()).height for _ in range(2)] == [0, 1]


async def test_close_wakes_a_waiting_consumer() -> None:
    bus = EventBus()
    sub = bus.subscribe(parse_subscription_query("tm.event='Tx'"))
    waiter = asyncio.ensure_future(sub.next())
    await asyncio.sleep(0)
    bus.close()
    with pytest.raises(SubscriptionClosed, match="event bus closed"):
        await waiter
    assert len(bus) == 0


def test_subscription_cap() -> None:
    bus = EventBus(subscriptions_max=2)
    query = parse_subscription_query("tm.event='Tx'")
    first = bus.subscribe(query)
    bus.subscribe(query)
    with pytest.raises(SubscriptionLimitError):
        bus.subscribe(query)
    first.close()
    bus.subscribe(query)


async def test_async_iteration_ends_on_close() -> None:
    bus = EventBus()
    sub = bus.subscribe(parse_subscription_query("tm.event='Tx'"))
    bus.publish(_tx_event(1))
    bus.publish(_tx_event(2))
    sub.close()
    assert [event.height async for event in sub] == []  # close discards what was pending
