"""Mempool against a dumb model (hypothesis stateful): after any sequence of add, reap,
hold (a block another validator proposed carries the tx, pooled yet or not), return and
commit, the pool holds exactly what the model says and its indexes agree
(the CVE-2023-34451 class of bug: list and map out of sync)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from node.mempool import Mempool, MempoolLimits
from protocol.crypto import SigningKey
from protocol.tx import Tx, sign_tx

CHAIN = "seoul-test"
SIGNERS = [SigningKey.from_secret(b"model%d" % i) for i in range(3)]
_TX_CACHE: dict[tuple[int, int, int, int], Tx] = {}


def tx_for(signer: int, nonce: int, expiry: int, variant: int) -> Tx:
    key = (signer, nonce, expiry, variant)
    if key not in _TX_CACHE:
        _TX_CACHE[key] = sign_tx(
            SIGNERS[signer], chain_id=CHAIN, nonce=nonce, expiry_height=expiry,
            kind="notary.anchor", body=b"v%d" % variant,
        )  # fmt: skip
    return _TX_CACHE[key]


@dataclass
class ModelEntry:
    tx: Tx
    seq: int
    in_flight: bool = False


class MempoolModel(RuleBasedStateMachine):
    held_txs = Bundle("held_txs")

    def __init__(self) -> None:
        super().__init__()
        self.limits = MempoolLimits(max_txs=6, max_txs_per_signer=3)
        # Held for another validator's undecided block: the custody's record, which the pool
        # reads when a tx arrives (node/carried.py); the rules below keep it as it would.
        self.carried: set[bytes] = set()
        self.pool = Mempool(
            chain_id=CHAIN, next_height=1, pool_limits=self.limits, carried=self.carried
        )
        self.model: dict[bytes, ModelEntry] = {}
        self.next_height = 1
        self.seq = 0

    def expected_reason(self, tx: Tx) -> str:
        tx_hash = tx.hash()
        if tx.expiry_height < self.next_height:
            return "expired"
        if tx_hash in self.model:
            return "duplicate"
        if any(e.tx.replay_key == tx.replay_key for e in self.model.values()):
            return "duplicate_nonce"
        if len(self.model) >= self.limits.max_txs:
            return "full"
        if sum(e.tx.signer == tx.signer for e in self.model.values()) >= 3:
            return "signer_quota"
        return ""

    @rule(
        signer=st.integers(0, 2),
        nonce=st.integers(0, 4),
        expiry=st.integers(1, 8),
        variant=st.integers(0, 1),
    )
    def add(self, signer: int, nonce: int, expiry: int, variant: int) -> None:
        self.add_tx(tx_for(signer, nonce, expiry, variant))

    @rule(tx=held_txs)
    def add_late(self, tx: Tx) -> None:
        """The tx arrives after a block carrying it (gossip slower than consensus)."""
        self.add_tx(tx)

    def add_tx(self, tx: Tx) -> None:
        expected = self.expected_reason(tx)
        admission = self.pool.add(tx.encode())
        assert admission.reason == expected
        if not expected:
            self.seq += 1
            carried = tx.hash() in self.carried  # arrived after its carrier block
            self.model[tx.hash()] = ModelEntry(tx=tx, seq=self.seq, in_flight=carried)

    @rule(
        target=held_txs,
        signer=st.integers(0, 2),
        nonce=st.integers(0, 4),
        expiry=st.integers(1, 8),
        variant=st.integers(0, 1),
    )
    def hold(self, signer: int, nonce: int, expiry: int, variant: int) -> Tx:
        tx = tx_for(signer, nonce, expiry, variant)
        tx_hash = tx.hash()
        entry = self.model.get(tx_hash)
        taken = entry is not None and not entry.in_flight
        self.carried.add(tx_hash)
        assert self.pool.hold([tx_hash]) == int(taken)
        if entry is not None:
            entry.in_flight = True
        return tx

    @rule(max_txs=st.integers(0, 5))
    def reap(self, max_txs: int) -> None:
        chosen = self.pool.reap(max_txs=max_txs, max_bytes=10**6)
        pending = [e for e in self.model.values() if not e.in_flight]
        assert len(chosen) == min(max_txs, len(pending))
        for tx in chosen:
            entry = self.model[tx.hash()]
            assert not entry.in_flight
            older = [e for e in pending if e.tx.signer == tx.signer and e.seq < entry.seq]
            assert all(e.in_flight for e in older), "a signer's txs leave in arrival order"
            entry.in_flight = True

    @rule()
    def return_all(self) -> None:
        in_flight = [h for h, e in self.model.items() if e.in_flight]
        # A tx given back after its expiry height is evicted, not returned.
        expired = [h for h in in_flight if self.model[h].tx.expiry_height < self.next_height]
        absent = [h for h in self.carried if h not in self.model]  # its block lost too
        self.carried.clear()  # every carrier block lost its height
        assert self.pool.return_txs(in_flight + absent) == len(in_flight) - len(expired)
        for tx_hash in in_flight:
            self.model[tx_hash].in_flight = False
        for tx_hash in expired:
            del self.model[tx_hash]

    @rule(take=st.integers(0, 3))
    def commit(self, take: int) -> None:
        in_flight = sorted((e for e in self.model.values() if e.in_flight), key=lambda e: e.seq)
        committed = [e.tx for e in in_flight[:take]]
        height = self.next_height
        self.pool.remove_committed(committed, committed_height=height)
        self.next_height = height + 1
        self.carried.difference_update(tx.hash() for tx in committed)
        keys = {tx.replay_key for tx in committed}
        for tx_hash, entry in list(self.model.items()):
            expired = entry.tx.expiry_height < self.next_height and not entry.in_flight
            if entry.tx.replay_key in keys or expired:
                del self.model[tx_hash]

    @invariant()
    def agrees_with_model(self) -> None:
        self.pool.check_invariants()
        assert len(self.pool) == len(self.model)
        assert all(tx_hash in self.pool for tx_hash in self.model)
        assert self.pool.pending_count() == sum(not e.in_flight for e in self.model.values())


MempoolModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_mempool_matches_model = MempoolModel.TestCase
