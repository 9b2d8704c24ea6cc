"""The pure NEW-VIEW function (§4.4): O from a set of VIEW-CHANGEs, table tests.

Signatures are not the function's business (the codec checked them), so messages here
carry placeholder signatures.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.pbft import messages as m
from consensus.pbft.view_change import plan_new_view
from protocol.block import Block, make_block
from protocol.crypto import ZERO_HASH

SIG = bytes(64)
KEY = bytes(32)


def chain(length: int, *, salt: int = 0, start: int = 1, prev: bytes = ZERO_HASH) -> list[Block]:
    blocks: list[Block] = []
    for height in range(start, start + length):
        block = make_block(
            chain_id="plan",
            height=height,
            prev_hash=prev,
            time_ms=salt,
            proposer=KEY,
            txs=(),
            validators_hash=ZERO_HASH,
            exec_height=0,
            exec_app_hash=ZERO_HASH,
            exec_results_root=ZERO_HASH,
        )
        blocks.append(block)
        prev = block.hash()
    return blocks


def certificate(block: Block, *, view: int) -> m.PreparedCertificate:
    pre_prepare = m.PrePrepare(
        view=view, seq=block.height, block=block, replica=view % 4, signature=SIG
    )
    return m.PreparedCertificate(pre_prepare=pre_prepare, prepares=())


def view_change(
    replica: int,
    certificates: list[m.PreparedCertificate],
    *,
    new_view: int = 5,
    checkpoint: tuple[int, bytes] = (0, ZERO_HASH),
) -> m.ViewChange:
    return m.ViewChange(
        new_view=new_view,
        checkpoint_seq=checkpoint[0],
        checkpoint_block_hash=checkpoint[1],
        checkpoint_app_hash=ZERO_HASH,
        checkpoint_proof=(),
        prepared=tuple(certificates),
        replica=replica,
        signature=SIG,
    )


def test_no_certificates_gives_an_empty_o_from_the_highest_checkpoint() -> None:
    blocks = chain(4)
    plan = plan_new_view(
        [
            view_change(0, []),
            view_change(1, [], checkpoint=(4, blocks[3].hash())),
            view_change(2, []),
        ],
        view=5,
        quorum=3,
    )
    assert not isinstance(plan, str)
    assert plan.checkpoint_seq == 4
    assert plan.blocks == ()
    assert plan.last_hash == blocks[3].hash()


def test_highest_view_certificate_wins_per_seq() -> None:
    # §4.4: for each seq in (min-s, max-s], the digest prepared in the highest view.
    old = chain(3, salt=1)
    new = [*old[:1], *chain(2, salt=2, start=2, prev=old[0].hash())]
    plan = plan_new_view(
        [
            view_change(0, [certificate(b, view=1) for b in old]),
            view_change(
                1, [certificate(new[0], view=1), *(certificate(b, view=3) for b in new[1:])]
            ),
            view_change(2, [certificate(old[0], view=1)]),
        ],
        view=5,
        quorum=3,
    )
    assert not isinstance(plan, str)
    assert [b.hash() for b in plan.blocks] == [b.hash() for b in new]
    assert plan.max_seq == 3


def test_certificates_at_or_below_min_s_are_not_re_proposed() -> None:
    blocks = chain(6)
    plan = plan_new_view(
        [
            view_change(0, [certificate(b, view=0) for b in blocks]),
            view_change(
                1, [certificate(b, view=0) for b in blocks[4:]], checkpoint=(4, blocks[3].hash())
            ),
            view_change(2, []),
        ],
        view=5,
        quorum=3,
    )
    assert not isinstance(plan, str)
    assert plan.checkpoint_seq == 4
    assert [b.height for b in plan.blocks] == [5, 6]


def test_o_ends_at_the_first_seq_without_a_certificate() -> None:
    # A certificate above a gap was never committed (docs/PBFT.md): O is the linked prefix.
    blocks = chain(3)
    plan = plan_new_view(
        [
            view_change(0, [certificate(blocks[0], view=0), certificate(blocks[2], view=0)]),
            view_change(1, []),
            view_change(2, []),
        ],
        view=5,
        quorum=3,
    )
    assert not isinstance(plan, str)
    assert [b.height for b in plan.blocks] == [1]
    assert plan.max_seq == 1


def test_o_ends_where_the_chosen_certificates_stop_linking() -> None:
    first = chain(1, salt=1)
    unrelated = chain(3, salt=2)
    plan = plan_new_view(
        [
            view_change(
                0,
                [
                    certificate(first[0], view=2),
                    certificate(unrelated[1], view=1),
                    certificate(unrelated[2], view=1),
                ],
            ),
            view_change(1, []),
            view_change(2, []),
        ],
        view=5,
        quorum=3,
    )
    assert not isinstance(plan, str)
    assert [b.hash() for b in plan.blocks] == [first[0].hash()]


def test_o_starts_only_if_it_links_to_the_checkpoint() -> None:
    checkpointed = chain(2, salt=1)
    other = chain(3, salt=2)
    plan = plan_new_view(
        [
            view_change(0, [certificate(other[2], view=3)], checkpoint=(2, checkpointed[1].hash())),
            view_change(1, []),
            view_change(2, []),
        ],
        view=5,
        quorum=3,
    )
    assert not isinstance(plan, str)
    assert plan.blocks == ()
    assert plan.last_hash == checkpointed[1].hash()


def _reference_plan(view_changes: list[m.ViewChange]) -> list[bytes]:
    """A deliberately dumb O: for each seq, scan every certificate; stop when none links."""
    base = max(view_changes, key=lambda vc: (vc.checkpoint_seq, vc.replica))
    result: list[bytes] = []
    previous = base.checkpoint_block_hash
    seq = base.checkpoint_seq + 1
    while True:
        candidates = [c for vc in view_changes for c in vc.prepared if c.seq == seq]
        if not candidates:
            return result
        top = max(c.view for c in candidates)
        chosen = next(c for c in candidates if c.view == top)
        if chosen.pre_prepare.block.header.prev_hash != previous:
            return result
        result.append(chosen.digest)
        previous = chosen.digest
        seq += 1


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_plan_matches_a_dumb_reference(data: st.DataObject) -> None:
    # Random V over a few forks of a short chain, one digest per (view, seq) as in any run
    # with at most f faulty replicas; compare with the reference above.
    forks = [chain(5, salt=salt) for salt in range(3)]
    fork_of_view = {view: data.draw(st.integers(0, 2)) for view in range(4)}
    view_changes = []
    for replica in range(3):
        seqs = data.draw(st.lists(st.integers(1, 5), unique=True, max_size=5))
        certificates = []
        for seq in sorted(seqs):
            view = data.draw(st.integers(0, 3))
            certificates.append(certificate(forks[fork_of_view[view]][seq - 1], view=view))
        view_changes.append(view_change(replica, certificates))
    plan = plan_new_view(view_changes, view=5, quorum=3)
    assert not isinstance(plan, str)
    assert [digest for _, digest in plan.digests] == _reference_plan(view_changes)


def test_two_digests_prepared_in_one_view_are_refused() -> None:
    a, b = chain(1, salt=1)[0], chain(1, salt=2)[0]
    plan = plan_new_view(
        [
            view_change(0, [certificate(a, view=1)]),
            view_change(1, [certificate(b, view=1)]),
            view_change(2, []),
        ],
        view=5,
        quorum=3,
    )
    assert isinstance(plan, str)


def test_fewer_than_a_quorum_or_wrong_view_is_refused() -> None:
    assert isinstance(
        plan_new_view([view_change(0, []), view_change(1, [])], view=5, quorum=3), str
    )
    duplicate = [view_change(0, []), view_change(0, []), view_change(1, [])]
    assert isinstance(plan_new_view(duplicate, view=5, quorum=3), str)
    wrong = [view_change(0, []), view_change(1, []), view_change(2, [], new_view=4)]
    assert isinstance(plan_new_view(wrong, view=5, quorum=3), str)
