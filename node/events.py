"""The event bus: the node publishes NewBlock / Tx events; RPC WebSocket clients subscribe.

Why it looks like this: the publisher is the block-commit path, which must never wait for a
subscriber (CometBFT issue 6023: one unbuffered subscription stalled dispatch for everyone).
So `publish` is synchronous and only ever does `put_nowait` into a bounded per-subscription
queue. A subscriber that falls behind overflows its queue, and its overflow policy decides:

- `Overflow.CLOSE` (the RPC default): the subscription is closed with a reason ("slow
  consumer") and removed; the consumer sees `SubscriptionClosed` once it drains. The RPC layer
  then drops the WebSocket client with that reason.
- `Overflow.DROP_NEWEST`: the event is dropped for that subscriber and counted.

Memory is bounded: at most `subscriptions_max` subscriptions, each holding at most its
`queue_events_max` events.

Queries are a small strict language shared with `tx_search`:
    condition ( "AND" condition )*
    condition := key op value,  op in = < <= > >=,  value := 'text' | integer
e.g. "tm.event='Tx' AND notary.issuer='seoul-city'". Subscription queries use only `=` and
must name exactly one tm.event ('NewBlock' or 'Tx').
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from node.api import NodeEvent

log = logging.getLogger(__name__)

QUERY_CHARS_MAX = 512
QUERY_CONDITIONS_MAX = 8
EVENT_KINDS = ("NewBlock", "Tx")
OPERATORS = ("=", "<", "<=", ">", ">=")
# Keys whose value is the event height rather than an attribute.
HEIGHT_KEYS = ("tx.height", "block.height")

_CONDITION = re.compile(
    r"\s*(?P<key>[A-Za-z0-9_.\-]{1,64})\s*(?P<op><=|>=|=|<|>)\s*"
    r"(?:'(?P<text>[^']{0,256})'|(?P<number>-?[0-9]{1,19}))\s*"
)
_AND = re.compile(r"\s+AND\s+")


class QueryParseError(ValueError):
    """A query the parser refuses; the message says where and why (shown to the client)."""


@dataclass(frozen=True, slots=True)
class Condition:
    key: str
    op: str
    value: str | int

    def matches(self, actual: str | int | None) -> bool:
        if actual is None:
            return False
        if isinstance(self.value, int):
            if isinstance(actual, str):
                try:
                    actual = int(actual)
                except ValueError:
                    return False
            return _compare(actual, self.op, self.value)
        return self.op == "=" and str(actual) == self.value


def _compare(actual: int, op: str, expected: int) -> bool:
    if op == "=":
        return actual == expected
    if op == "<":
        return actual < expected
    if op == "<=":
        return actual <= expected
    if op == ">":
        return actual > expected
    assert op == ">=", op
    return actual >= expected


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A parsed query; `text` is the canonical form clients use to unsubscribe."""

    text: str
    conditions: tuple[Condition, ...]

    @property
    def event_kind(self) -> str | None:
        for condition in self.conditions:
            if condition.key == "tm.event":
                return str(condition.value)
        return None

    def matches(self, event: NodeEvent) -> bool:
        for condition in self.conditions:
            if condition.key == "tm.event":
                actual: str | int | None = event.kind
            elif condition.key in HEIGHT_KEYS:
                actual = event.height
            else:
                actual = event.attributes.get(condition.key)
            if not condition.matches(actual):
                return False
        return True


def parse_query(text: str) -> EventQuery:
    """Parse the general query language (used by tx_search); QueryParseError if malformed."""
    if not isinstance(text, str):
        raise QueryParseError("query must be a string")
    if len(text) > QUERY_CHARS_MAX:
        raise QueryParseError(f"query is {len(text)} characters, max {QUERY_CHARS_MAX}")
    parts = _AND.split(text.strip())
    if len(parts) > QUERY_CONDITIONS_MAX:
        raise QueryParseError(f"query has {len(parts)} conditions, max {QUERY_CONDITIONS_MAX}")
    conditions = []
    for position, part in enumerate(parts, start=1):
        match = _CONDITION.fullmatch(part)
        if match is None:
            raise QueryParseError(
                f"condition {position} ({part.strip()[:40]!r}) is not key op value, "
                "with value 'quoted text' or an integer"
            )
        number = match.group("number")
        value: str | int = int(number) if number is not None else match.group("text")
        conditions.append(Condition(match.group("key"), match.group("op"), value))
    canonical = " AND ".join(_format(condition) for condition in conditions)
    return EventQuery(text=canonical, conditions=tuple(conditions))


def _format(condition: Condition) -> str:
    value = condition.value
    shown = str(value) if isinstance(value, int) else f"'{value}'"
    return f"{condition.key}{condition.op}{shown}"


def parse_subscription_query(text: str) -> EventQuery:
    """Stricter form for subscribe: only '=', exactly one tm.event of a known kind."""
    query = parse_query(text)
    kinds = [c for c in query.conditions if c.key == "tm.event"]
    if len(kinds) != 1:
        raise QueryParseError("query must contain exactly one tm.event='NewBlock' or 'Tx'")
    if kinds[0].value not in EVENT_KINDS:
        raise QueryParseError(f"unknown tm.event {kinds[0].value!r}; known: NewBlock, Tx")
    for condition in query.conditions:
        if condition.op != "=":
            raise QueryParseError(f"subscriptions support only '=' (got {condition.op!r})")
    return query


class Overflow(enum.Enum):
    CLOSE = "close"
    DROP_NEWEST = "drop_newest"


class SubscriptionClosed(Exception):
    """The subscription ended: unsubscribed, bus closed, or dropped as a slow consumer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


SLOW_CONSUMER = "slow consumer"


class Subscription:
    """One subscriber's bounded queue. Consume with `await next()` or `async for`."""

    def __init__(
        self,
        bus: EventBus,
        query: EventQuery,
        *,
        queue_events_max: int,
        overflow: Overflow,
    ) -> None:
        assert queue_events_max >= 1
        self.query = query
        self.overflow = overflow
        self.dropped_events = 0
        self.close_reason: str | None = None
        self._bus = bus
        # +1 slot so the close sentinel always fits after the queue is cleared.
        self._queue: asyncio.Queue[NodeEvent | None] = asyncio.Queue(queue_events_max + 1)
        self._queue_events_max = queue_events_max
        self._on_close: list[Callable[[Subscription], None]] = []

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    def add_close_callback(self, callback: Callable[[Subscription], None]) -> None:
        """Called once, synchronously, when the subscription closes (e.g. to drop a client
        whose sender is stuck and cannot notice the sentinel)."""
        self._on_close.append(callback)

    def pending(self) -> int:
        return self._queue.qsize()

    async def next(self) -> NodeEvent:
        item = await self._queue.get()
        if item is None:
            assert self.close_reason is not None
            self._queue.put_nowait(None)  # later calls raise too
            raise SubscriptionClosed(self.close_reason)
        return item

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> NodeEvent:
        try:
            return await self.next()
        except SubscriptionClosed:
            raise StopAsyncIteration from None

    def _offer(self, event: NodeEvent) -> bool:
        """Enqueue without blocking; False if the event was dropped."""
        if self._queue.qsize() < self._queue_events_max:
            self._queue.put_nowait(event)
            return True
        self.dropped_events += 1
        if self.overflow is Overflow.CLOSE:
            self._close(f"{SLOW_CONSUMER}: more than {self._queue_events_max} events pending")
        return False

    def _close(self, reason: str) -> None:
        if self.closed:
            return
        self.close_reason = reason
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)
        self._bus._forget(self)
        for callback in self._on_close:
            callback(self)

    def close(self, reason: str = "unsubscribed") -> None:
        self._close(reason)


class SubscriptionLimitError(Exception):
    """The bus already holds subscriptions_max subscriptions."""


class EventBus:
    """Fan-out of NodeEvents to bounded subscriptions. Not thread-safe: use on one loop."""

    def __init__(
        self,
        *,
        subscriptions_max: int = 1_000,
        queue_events_max: int = 100,
        on_drop: Callable[[Subscription], None] | None = None,
    ) -> None:
        assert subscriptions_max >= 1
        assert queue_events_max >= 1
        self._subscriptions: list[Subscription] = []
        self._subscriptions_max = subscriptions_max
        self._queue_events_max = queue_events_max
        self._on_drop = on_drop
        self.published_total = 0
        self.dropped_events_total = 0
        self.slow_subscriptions_closed_total = 0

    def __len__(self) -> int:
        return len(self._subscriptions)

    def subscribe(
        self,
        query: EventQuery,
        *,
        queue_events_max: int | None = None,
        overflow: Overflow = Overflow.CLOSE,
    ) -> Subscription:
        if len(self._subscriptions) >= self._subscriptions_max:
            raise SubscriptionLimitError(
                f"event bus holds {self._subscriptions_max} subscriptions already"
            )
        subscription = Subscription(
            self,
            query,
            queue_events_max=queue_events_max or self._queue_events_max,
            overflow=overflow,
        )
        self._subscriptions.append(subscription)
        return subscription

    def wants(self, kind: str) -> bool:
        """Whether any subscription could match an event of `kind`, so a publisher can skip
        building events (one per tx) that nobody listens to."""
        return any(
            subscription.query.event_kind in (None, kind) for subscription in self._subscriptions
        )

    def publish(self, event: NodeEvent) -> None:
        """Deliver to every matching subscription. Never blocks, never raises for a
        subscriber's sake."""
        self.published_total += 1
        for subscription in list(self._subscriptions):
            if not subscription.query.matches(event):
                continue
            if subscription._offer(event):
                continue
            self.dropped_events_total += 1
            if subscription.closed:
                self.slow_subscriptions_closed_total += 1
                log.warning(
                    "event subscription %r closed: %s",
                    subscription.query.text,
                    subscription.close_reason,
                )
            if self._on_drop is not None:
                self._on_drop(subscription)

    def close(self) -> None:
        for subscription in list(self._subscriptions):
            subscription.close("event bus closed")
        assert not self._subscriptions

    def _forget(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
