"""The txs in blocks other validators proposed whose height is not decided yet.

Why one object: the custody (node/custody.py) records which txs each undecided block
carries, and the pool and the standby store must keep those txs out of this node's own
proposals — including a copy that arrives *after* its block (gossip slower than consensus,
a client retrying at another node, a re-offer after a restart). All three read this one
record, so what is held, what a late copy does and when a tx comes back cannot drift apart.

Per height a set of hashes (a height may carry competing blocks after a view change or a
new term), and per hash how many undecided heights carry it: a tx comes back only when no
undecided block carries it any more. Bounded per height; the custody bounds the heights.
"""

from __future__ import annotations

from collections.abc import Iterable


class CarriedTxs:
    """Not thread-safe: the node's event loop owns it."""

    def __init__(self, *, per_height_max: int) -> None:
        assert per_height_max >= 1
        self.per_height_max = per_height_max
        self._by_height: dict[int, set[bytes]] = {}
        self._heights_of: dict[bytes, int] = {}  # hash -> how many undecided heights carry it

    def __contains__(self, tx_hash: object) -> bool:
        """Whether an undecided block carries this tx."""
        return tx_hash in self._heights_of

    def __len__(self) -> int:
        return len(self._heights_of)

    def heights(self) -> list[int]:
        return sorted(self._by_height)

    def carry(self, height: int, tx_hashes: Iterable[bytes]) -> list[bytes]:
        """Record that a block at `height` carries these txs; returns those recorded now.
        Past `per_height_max` at one height the rest are not recorded (and so not held):
        only what is recorded is ever given back, so nothing stays held for good."""
        carried = self._by_height.setdefault(height, set())
        heights_of = self._heights_of
        recorded: list[bytes] = []
        for tx_hash in tx_hashes:
            if tx_hash in carried:
                continue
            if len(carried) >= self.per_height_max:
                break
            carried.add(tx_hash)
            heights_of[tx_hash] = heights_of.get(tx_hash, 0) + 1
            recorded.append(tx_hash)
        if not carried:
            del self._by_height[height]
        return recorded

    def decide(self, height: int) -> list[bytes]:
        """Every height up to `height` is decided: forget what they carried. Returns the
        hashes no undecided height carries any more (each once)."""
        heights_of = self._heights_of
        uncarried: list[bytes] = []
        for decided in [h for h in self._by_height if h <= height]:
            for tx_hash in self._by_height.pop(decided):
                count = heights_of[tx_hash] - 1
                if count:
                    heights_of[tx_hash] = count
                else:
                    del heights_of[tx_hash]
                    uncarried.append(tx_hash)
        return uncarried

    def check_invariants(self) -> None:
        counts: dict[bytes, int] = {}
        for carried in self._by_height.values():
            assert 0 < len(carried) <= self.per_height_max
            for tx_hash in carried:
                counts[tx_hash] = counts.get(tx_hash, 0) + 1
        assert counts == self._heights_of
