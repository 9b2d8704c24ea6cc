"""SimNetwork on its own: delivery, determinism, and each fault knob."""

from __future__ import annotations

import random

from consensus.sim.network import Delivery, NetworkFaults, SimNetwork


def _network(seed: int = 0, **faults: object) -> SimNetwork:
    return SimNetwork(random.Random(seed), node_count=4, faults=NetworkFaults(**faults))  # type: ignore[arg-type]


def _drain(network: SimNetwork, *, until: int) -> list[tuple[int, Delivery]]:
    """Every delivery up to tick `until`, with the tick it arrived at."""
    arrived: list[tuple[int, Delivery]] = []
    for now in range(until + 1):
        arrived.extend((now, delivery) for delivery in network.due(now))
    return arrived


def _send_all_pairs(network: SimNetwork, *, now: int, count: int) -> None:
    for serial in range(count):
        for source in range(4):
            for target in range(4):
                if source != target:
                    network.send(now, source=source, target=target, payload=(serial, source))


def test_quiet_network_delivers_everything_within_the_delay_range() -> None:
    network = _network(delay_ticks=(2, 5))
    _send_all_pairs(network, now=0, count=10)
    arrived = _drain(network, until=10)
    assert len(arrived) == 10 * 12
    assert all(2 <= tick <= 5 for tick, _ in arrived)
    assert network.in_flight_count() == 0
    assert network.counters.delivered == 120


def test_random_delays_reorder_messages_on_one_link() -> None:
    network = _network(delay_ticks=(1, 20))
    for serial in range(50):
        network.send(0, source=0, target=1, payload=serial)
    order = [delivery.payload for _, delivery in _drain(network, until=30)]
    assert sorted(order) == list(range(50))  # type: ignore[type-var]
    assert order != list(range(50))


def test_same_seed_same_schedule_and_another_seed_differs() -> None:
    def schedule(seed: int) -> list[tuple[int, int, int, object]]:
        network = _network(seed, delay_ticks=(1, 9), drop_probability=0.2)
        _send_all_pairs(network, now=0, count=20)
        return [(t, d.source, d.target, d.payload) for t, d in _drain(network, until=12)]

    assert schedule(7) == schedule(7)
    assert schedule(7) != schedule(8)


def test_drops_and_duplicates_are_counted() -> None:
    network = _network(drop_probability=0.3, duplicate_probability=0.3)
    _send_all_pairs(network, now=0, count=50)
    arrived = _drain(network, until=10)
    counters = network.counters
    assert counters.dropped_random > 0
    assert counters.duplicated > 0
    assert len(arrived) == 600 - counters.dropped_random + counters.duplicated


def test_partition_blocks_across_groups_and_heal_restores() -> None:
    network = _network()
    network.partition([(0, 1), (2, 3)])
    assert not network.connected(0, 2)
    assert network.connected(0, 1)
    _send_all_pairs(network, now=0, count=1)
    arrived = _drain(network, until=5)
    assert {(d.source, d.target) for _, d in arrived} == {(0, 1), (1, 0), (2, 3), (3, 2)}
    network.heal(now=5)
    _send_all_pairs(network, now=5, count=1)
    assert len(_drain(network, until=10)) == 12


def test_partition_also_loses_messages_already_on_the_wire() -> None:
    network = _network(delay_ticks=(3, 3))
    network.send(0, source=0, target=1, payload="x")
    network.partition([(0,), (1, 2, 3)])
    assert _drain(network, until=5) == []
    assert network.counters.dropped_partition == 1


def test_node_named_in_no_group_is_alone() -> None:
    network = _network()
    network.partition([(0, 1, 2)])
    assert not network.connected(3, 0)
    assert network.connected(0, 2)


def test_clogged_link_holds_messages_until_unclogged() -> None:
    network = _network(delay_ticks=(1, 1))
    network.clog(0, 1)
    network.send(0, source=0, target=1, payload="held")
    network.send(0, source=1, target=0, payload="free")
    assert [d.payload for _, d in _drain(network, until=10)] == ["free"]
    network.unclog(0, 1, now=10)
    assert [d.payload for d in network.due(11)] == ["held"]


def test_full_link_drops_new_messages() -> None:
    network = _network(in_flight_max=3)
    for serial in range(5):
        network.send(0, source=0, target=1, payload=serial)
    assert network.counters.dropped_full == 2
    assert len(_drain(network, until=5)) == 3
    network.send(6, source=0, target=1, payload="after")  # the link drained: room again
    assert network.counters.dropped_full == 2


def test_isolated_node_loses_everything_in_flight_and_later() -> None:
    network = _network(delay_ticks=(2, 2))
    _send_all_pairs(network, now=0, count=1)
    network.isolate(2)
    network.send(0, source=2, target=0, payload="lost")
    arrived = _drain(network, until=5)
    assert all(2 not in (d.source, d.target) for _, d in arrived)
    assert len(arrived) == 6
    assert network.counters.dropped_crash == 6
    network.rejoin(2)
    network.send(5, source=2, target=0, payload="back")
    assert [d.payload for _, d in _drain(network, until=8)] == ["back"]
