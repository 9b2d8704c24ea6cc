"""2f votes are never enough (issue 3 mutation check, docs/MUTATION-CHECK.md).

The "accept 2f instead of 2f + 1" mutants were killed by tests written for other rules
(a restart test saw a COMMIT too early, a checkpoint test saw a short seal). These state the
rule itself, at n = 7 (f = 2, quorum 5), where 2f = 4 replicas can all still talk: with
exactly 2f votes no replica is prepared, sends COMMIT or commits; the (2f + 1)-th vote does it.
"""

from __future__ import annotations

from consensus.pbft import durable
from consensus.pbft import messages as m
from tests.consensus.pbft.pbft_harness import Router

NODES = 7
TWO_F = 4


def test_pre_prepare_and_prepares_from_2f_replicas_do_not_make_a_certificate() -> None:
    router = Router(NODES)
    assert router.configs[0].quorum == TWO_F + 1
    for index in range(TWO_F, NODES):
        router.crash(index)  # replicas 0..3 are left: the primary and three backups
    router.propose(0)
    router.deliver_all()
    for index in range(TWO_F):
        slot = router.engine(index).log.get(1)
        assert slot is not None
        assert not slot.prepared
        assert slot.certificate is None
        assert durable.certificate_key(1) not in router.states[index].durable
    assert not [msg for _, _, msg in router.delivered if isinstance(msg, m.Commit)]
    # The (2f + 1)-th replica comes back and votes: now it prepares and commits.
    router.restart(TWO_F)
    router.tick(12)  # stalled: retransmission brings the returning replica in
    assert all(router.states[index].height == 1 for index in range(TWO_F + 1))
    router.assert_agreement()


def test_commits_from_2f_replicas_do_not_commit() -> None:
    router = Router(NODES)
    silent = set(range(TWO_F, NODES))  # their COMMITs are lost; everything else arrives
    router.drop = lambda source, target, message: isinstance(message, m.Commit) and source in silent
    router.propose(0)
    router.deliver_all()
    # Everyone prepared and sent COMMIT; replicas 0..3 hold exactly the 2f COMMITs of
    # 0..3 (replicas 4..6 also hold their own, 2f + 1, and rightly commit).
    for index in range(NODES):
        slot = router.engine(index).log.get(1)
        assert slot is not None
        assert slot.prepared
    for index in range(TWO_F):
        slot = router.engine(index).log.get(1)
        assert slot is not None
        assert len(slot.matching_commits()) == TWO_F
        assert router.states[index].height == 0
    assert all(router.states[index].height == 1 for index in silent)
    router.drop = lambda source, target, message: False
    router.tick(12)  # stalled: COMMITs are retransmitted and now arrive
    assert all(state.height == 1 for state in router.states)
    for state in router.states:
        assert len(state.chain[0].seal.signatures) >= TWO_F + 1
    router.assert_agreement()
