"""RaftLog against a dumb model (a plain list of (term, block-or-None) from index 1), under
random appends, truncations, compactions and resets (RELIABILITY F6)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.raft.log import EMPTY_BASE, LogBase, RaftLog
from consensus.raft.messages import Entry
from protocol.block import Block, make_block
from protocol.crypto import ZERO_HASH

VALIDATORS_HASH = b"\x01" * 32
PROPOSER = b"\x02" * 32


def _block(height: int, prev_hash: bytes, salt: int) -> Block:
    return make_block(
        chain_id="raft-log",
        height=height,
        prev_hash=prev_hash,
        time_ms=salt,
        proposer=PROPOSER,
        txs=(),
        validators_hash=VALIDATORS_HASH,
        exec_height=0,
        exec_app_hash=ZERO_HASH,
        exec_results_root=ZERO_HASH,
    )


OPERATIONS = st.lists(
    st.tuples(st.sampled_from(("block", "noop", "truncate", "compact")), st.integers(0, 50)),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(OPERATIONS)
def test_log_matches_a_list_model(operations: list[tuple[str, int]]) -> None:
    log = RaftLog()
    model: list[Entry] = []  # model[i - 1] is entry i, compacted ones included
    term = 1
    for kind, number in operations:
        if kind in ("block", "noop"):
            term += number % 2
            block = None
            if kind == "block":
                block = _block(log.last_height + 1, log.tip_hash, number)
            entry = Entry(term=term, signer=0, block=block, seal_signature=b"")
            log.append(entry)
            model.append(entry)
        elif kind == "truncate" and log.last_index > log.base.index:
            keep = log.base.index + number % (log.last_index - log.base.index + 1)
            removed = log.truncate_after(keep)
            assert removed == list(range(keep + 1, len(model) + 1))
            del model[keep:]
            term = max([e.term for e in model] + [log.base.term, 1])
        elif kind == "compact" and log.last_index > log.base.index:
            to = log.base.index + 1 + number % (log.last_index - log.base.index)
            old = log.base.index
            assert log.compact_to(to) == list(range(old + 1, to + 1))
        log.check_invariants(tail=1_000)
        _compare(log, model)


def _compare(log: RaftLog, model: list[Entry]) -> None:
    assert log.last_index == len(model)
    height, tip = 0, ZERO_HASH
    for index, entry in enumerate(model, start=1):
        if entry.block is not None:
            height, tip = entry.block.height, entry.block.hash()
        if index < log.base.index:
            assert log.term_at(index) is None
            continue
        assert log.term_at(index) == entry.term
        assert log.height_at(index) == height
        assert log.tip_hash_at(index) == tip
        if index > log.base.index:
            assert log.entry(index) == entry
        if entry.block is not None and index >= log.base.index:
            assert log.index_of_height(height) == index
    assert log.last_height == height
    assert log.tip_hash == tip


def test_up_to_date_is_section_5_4_1() -> None:
    log = RaftLog(EMPTY_BASE, [Entry(term=1, signer=0, block=None), Entry(term=3, signer=0,
                                                                          block=None)])  # fmt: skip
    assert log.up_to_date(last_index=2, last_term=3)
    assert log.up_to_date(last_index=1, last_term=4), "a later last term wins"
    assert not log.up_to_date(last_index=9, last_term=2), "an earlier last term loses"
    assert not log.up_to_date(last_index=1, last_term=3), "same term: the longer log wins"


def test_reset_to_a_snapshot_drops_everything() -> None:
    log = RaftLog(EMPTY_BASE, [Entry(term=1, signer=0, block=None)] * 3)
    base = LogBase(index=10, term=2, height=4, block_hash=b"\x05" * 32)
    assert log.reset(base) == [1, 2, 3]
    assert log.last_index == 10
    assert log.last_term == 2
    assert log.term_at(10) == 2
    assert log.term_at(3) is None
