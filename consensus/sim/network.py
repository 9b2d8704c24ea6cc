"""A seeded, lossy, reordering network for the simulator (STYLE §3.8, RELIABILITY N2-N6).

Every message is a `Delivery` between two nodes, scheduled `delay` ticks after it was sent.
Delays are drawn per message from one seeded `random.Random`, so reordering falls out of the
delays; drops, duplicates, partitions, clogged links and full links are all decided by the
same generator, so one seed gives one schedule, every run.

Faults:
    drop / duplicate   per message, with a probability.
    partition          groups of nodes; a message between groups is lost when sent and when
                       it arrives (a partition also loses what is already on the wire).
    clog               one directed link holds its messages until it is unclogged, then
                       releases them with fresh delays (FoundationDB's "swizzle-clog").
    isolate            a crashed node: everything in flight to or from it is discarded.
    in_flight_max      per directed link; a full link drops the newest message, like a
                       bounded socket buffer. The whole network is bounded by
                       in_flight_max * n * (n - 1) plus the clogged backlog, which is bounded
                       by the same per-link cap.
"""

from __future__ import annotations

import heapq
import logging
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkFaults:
    """Per-message fault knobs. Probabilities are floats, which is fine: they only steer the
    simulator's own generator and never reach consensus state."""

    delay_ticks: tuple[int, int] = (1, 3)
    drop_probability: float = 0.0
    duplicate_probability: float = 0.0
    in_flight_max: int = 1_000  # per directed link

    def __post_init__(self) -> None:
        low, high = self.delay_ticks
        assert 1 <= low <= high, "a message takes at least one tick"
        assert 0.0 <= self.drop_probability < 1.0
        assert 0.0 <= self.duplicate_probability < 1.0
        assert self.in_flight_max >= 1


QUIET = NetworkFaults()


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One message on one link. `payload` is opaque to the network."""

    source: int
    target: int
    payload: object
    sent_at: int


@dataclass(slots=True)
class NetworkCounters:
    sent: int = 0
    delivered: int = 0
    dropped_random: int = 0
    dropped_partition: int = 0
    dropped_full: int = 0
    dropped_crash: int = 0
    duplicated: int = 0
    clogged: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class _Link:
    in_flight: int = 0
    held: list[Delivery] = field(default_factory=list)  # while clogged


class SimNetwork:
    """Delivers payloads after a seeded delay. Same seed, same schedule, every run."""

    def __init__(self, rng: random.Random, *, node_count: int, faults: NetworkFaults) -> None:
        assert node_count >= 1
        self._rng = rng
        self._node_count = node_count
        self.faults = faults
        self._heap: list[tuple[int, int, Delivery]] = []  # (deliver_at, serial, delivery)
        self._serial = 0  # tie-breaker: never compare deliveries
        self._links: dict[tuple[int, int], _Link] = {}
        self._group_of: dict[int, int] = {}  # node -> partition group; empty: fully connected
        self._clogged: set[tuple[int, int]] = set()
        self._isolated: set[int] = set()
        self.counters = NetworkCounters()

    # --- fault control -------------------------------------------------------------------

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Split the nodes into groups that cannot talk to each other. A node named in no
        group is alone in its own group."""
        group_of: dict[int, int] = {}
        for index, group in enumerate(groups):
            for node in group:
                assert node not in group_of, f"node {node} is in two groups"
                group_of[node] = index
        next_group = len(group_of) + 1_000
        for node in range(self._node_count):
            if node not in group_of:
                group_of[node] = next_group
                next_group += 1
        self._group_of = group_of
        log.debug("partition %s", sorted(group_of.items()))

    def heal_partitions(self) -> None:
        self._group_of = {}

    def heal(self, *, now: int) -> None:
        """Remove every partition and clog (crashed nodes stay isolated)."""
        self._group_of = {}
        for link in sorted(self._clogged):
            self.unclog(link[0], link[1], now=now)

    def clog(self, source: int, target: int) -> None:
        self._clogged.add((source, target))

    def unclog(self, source: int, target: int, *, now: int) -> None:
        self._clogged.discard((source, target))
        link = self._links.get((source, target))
        if link is None:
            return
        held, link.held = link.held, []
        for delivery in held:
            self._schedule(now, delivery)

    def isolate(self, node: int) -> None:
        """A crashed node: drop everything in flight to or from it, and all later sends."""
        self._isolated.add(node)
        kept = [item for item in self._heap if node not in (item[2].source, item[2].target)]
        self.counters.dropped_crash += len(self._heap) - len(kept)
        for _, _, delivery in self._heap:
            if node in (delivery.source, delivery.target):
                self._link(delivery.source, delivery.target).in_flight -= 1
        heapq.heapify(kept)
        self._heap = kept
        for (source, target), link in self._links.items():
            if node in (source, target) and link.held:
                self.counters.dropped_crash += len(link.held)
                link.in_flight -= len(link.held)
                link.held = []

    def rejoin(self, node: int) -> None:
        self._isolated.discard(node)

    def connected(self, source: int, target: int) -> bool:
        if source in self._isolated or target in self._isolated:
            return False
        if not self._group_of:
            return True
        return self._group_of[source] == self._group_of[target]

    @property
    def partitioned(self) -> bool:
        return bool(self._group_of) or bool(self._clogged)

    # --- traffic -------------------------------------------------------------------------

    def send(self, now: int, *, source: int, target: int, payload: object) -> None:
        assert source != target, "a node does not message itself over the network"
        self.counters.sent += 1
        if not self.connected(source, target):
            self.counters.dropped_partition += 1
            return
        if self._rng.random() < self.faults.drop_probability:
            self.counters.dropped_random += 1
            return
        delivery = Delivery(source=source, target=target, payload=payload, sent_at=now)
        self._admit(now, delivery)
        if self._rng.random() < self.faults.duplicate_probability:
            self.counters.duplicated += 1
            self._admit(now, delivery)

    def due(self, now: int) -> Iterator[Delivery]:
        """Pop every delivery due at or before `now`, in (time, send order)."""
        while self._heap and self._heap[0][0] <= now:
            _, _, delivery = heapq.heappop(self._heap)
            self._link(delivery.source, delivery.target).in_flight -= 1
            if not self.connected(delivery.source, delivery.target):
                self.counters.dropped_partition += 1
                continue
            self.counters.delivered += 1
            yield delivery

    def in_flight_count(self) -> int:
        return len(self._heap) + sum(len(link.held) for link in self._links.values())

    def _admit(self, now: int, delivery: Delivery) -> None:
        link = self._link(delivery.source, delivery.target)
        if link.in_flight >= self.faults.in_flight_max:
            self.counters.dropped_full += 1
            return
        link.in_flight += 1
        if (delivery.source, delivery.target) in self._clogged:
            self.counters.clogged += 1
            link.held.append(delivery)
            return
        self._schedule(now, delivery)

    def _schedule(self, now: int, delivery: Delivery) -> None:
        low, high = self.faults.delay_ticks
        self._serial += 1
        deliver_at = now + self._rng.randint(low, high)
        heapq.heappush(self._heap, (deliver_at, self._serial, delivery))

    def _link(self, source: int, target: int) -> _Link:
        link = self._links.get((source, target))
        if link is None:
            link = self._links[(source, target)] = _Link()
        return link
