"""Log compaction and snapshot install through block sync (§7, Figure 13), driven through
the in-test router. The router serves `FetchRequest`s from another node's committed chain,
as the node's block sync does."""

from __future__ import annotations

from consensus.raft import durable
from consensus.types import Fetched, NodeId
from tests.consensus.raft.raft_harness import Router


def _router() -> Router:
    return Router(3, log_retention_heights=4, compaction_step_heights=2, fetch_batch_max=3)


def _serve_fetches(router: Router, node: int, *, source: int) -> int:
    """Answer `node`'s fetch requests from `source`'s chain until it asks for nothing."""
    served = 0
    while router.fetches[node]:
        request = router.fetches[node].pop(0)
        blocks = tuple(router.chains[source][request.from_height - 1 : request.to_height])
        router.step(node, Fetched(NodeId(source), blocks))
        served += 1
        assert served < 100
    return served


def _grow_chain_without(router: Router, node: int, blocks: int) -> None:
    router.isolated.add(node)
    for _ in range(blocks):
        assert router.propose(0) is not None
        router.deliver()
    router.heartbeat(0)
    router.isolated.clear()


def test_leader_compacts_executed_entries_beyond_the_retention_section_7() -> None:
    router = _router()
    router.elect(0)
    for _ in range(12):
        router.propose(0)
        router.deliver()
    leader = router.engines[0]
    base = leader.log.base
    assert base.height >= 12 - 4 - 2
    assert base.height <= 12 - 4
    records = router.persisted[0]
    assert durable.base_record(base) in records.items()
    assert all(durable.entry_key(index) not in records for index in range(1, base.index + 1)), (
        "compacted entries are deleted from durable state too"
    )
    assert durable.entry_key(leader.log.last_index) in records


def test_far_behind_follower_installs_a_snapshot_and_fetches_the_chain_section_7() -> None:
    router = _router()
    router.elect(0)
    _grow_chain_without(router, 2, 14)
    assert router.heights() == [14, 14, 0]
    base = router.engines[0].log.base
    router.heartbeat(0)  # the leader backs up to its base and sends InstallSnapshot
    follower = router.engines[2]
    assert follower.counters["snapshots_installed"] == 1
    assert follower.snapshot_pending
    assert follower.log.base == base
    assert durable.base_record(base) in router.persisted[2].items()
    assert router.fetches[2][0].from_height == 1
    assert router.fetches[2][0].peer == NodeId(0)
    assert _serve_fetches(router, 2, source=0) >= 2, "fetched in batches of 3"
    assert follower.status().extra["snapshot_pending"] == 0
    for _ in range(3):
        router.heartbeat(0)
    assert router.heights() == [14, 14, 14]
    assert [s.block.hash() for s in router.chains[2]] == [s.block.hash() for s in router.chains[0]]
    # Back to normal replication: the next block reaches it through AppendEntries.
    router.propose(0)
    router.deliver()
    router.heartbeat(0)
    assert router.heights() == [15, 15, 15]


def test_fetched_block_with_a_bad_seal_is_rejected() -> None:
    router = _router()
    router.elect(0)
    _grow_chain_without(router, 2, 14)
    router.heartbeat(0)
    request = router.fetches[2].pop(0)
    good = router.chains[0][request.from_height - 1]
    forged_seal = type(good.seal)(
        kind=good.seal.kind,
        round=good.seal.round,
        height=good.seal.height,
        block_hash=good.seal.block_hash,
        signatures=((1, good.seal.signatures[0][1]),),  # claims another signer
    )
    forged = type(good)(block=good.block, seal=forged_seal)
    router.step(2, Fetched(NodeId(1), (forged,)))
    follower = router.engines[2]
    assert follower.committed_height == 0
    assert follower.counters["fetched_rejected"] == 1


def test_restart_in_the_middle_of_a_snapshot_resumes_the_fetch() -> None:
    router = _router()
    router.elect(0)
    _grow_chain_without(router, 2, 14)
    router.heartbeat(0)
    request = router.fetches[2].pop(0)
    router.step(2, Fetched(NodeId(0), tuple(router.chains[0][: request.to_height])))
    router.fetches[2].clear()
    assert router.heights()[2] == 3
    router.crash(2)
    restarted = router.start(2)
    assert restarted.snapshot_pending
    assert restarted.committed_height == 3
    router.tick(2)
    assert router.fetches[2][0].from_height == 4
    _serve_fetches(router, 2, source=0)
    # The restarted node knows no leader to acknowledge; the leader re-offers the snapshot
    # once per election timeout, and that answer resumes replication.
    for _ in range(8):
        router.heartbeat(0)
    assert router.heights() == [14, 14, 14]


def test_restarted_follower_catches_up_from_the_log_when_not_compacted() -> None:
    router = Router(3)  # the default retention keeps everything here
    router.elect(0)
    router.crash(2)
    for _ in range(5):
        router.propose(0)
        router.deliver()
    router.start(2)
    for _ in range(4):
        router.heartbeat(0)
    assert router.heights() == [5, 5, 5]
    assert router.engines[2].counters["snapshots_installed"] == 0
