"""Properties every simulated run must keep (RELIABILITY §2), checked over honest nodes only.

    agreement        S1: no two honest nodes commit different block hashes at one height.
    chain links      every committed block is well formed, height 1 links to the zero hash
                     and block h + 1 links to the hash of block h.
    seals            S1: every committed block's seal verifies against the genesis validator
                     set (SealedBlock.invalid_for checks every signature).
    validity         S2: every committed tx was submitted by the client; re-executing each
                     chain independently gives the node's results, so each (signer, nonce)
                     ran at most once and later copies were replays.
    execution        S4: honest nodes report the same app hash and results root at every
                     height, and every header's exec fields match the executed state P
                     heights below it.
    liveness         S6: after healing, fresh txs commit on every live honest node and all of
                     them end at the same height, within a tick budget.

Each raises `SimulationFailure` with the seed, a reproduce line and the last deliveries of
every node. Engine-specific properties (Raft's election safety, log matching, leader
completeness) plug in two ways: `Cluster.extra_checkers`, callables run by `check_safety`
after these, and `Cluster.tick_observers`, callables run after every tick for properties
that must hold at every moment, not just at the end. `OneLeaderPerRound` is the first of
those: Raft's Election Safety (Fig. 3), read from `status()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consensus.sim.app import CODE_REPLAY
from protocol.crypto import ZERO_HASH

if TYPE_CHECKING:
    from consensus.sim.cluster import Cluster
    from consensus.sim.node import SimNode

LIVENESS_FRESH_TXS = 3
ROUNDS_REMEMBERED_MAX = 100_000  # OneLeaderPerRound memory bound


def check_safety(cluster: Cluster) -> None:
    check_chain_links(cluster)
    check_agreement(cluster)
    check_seals(cluster)
    check_validity(cluster)
    check_execution(cluster)


def check_agreement(cluster: Cluster) -> None:
    first_seen: dict[int, tuple[int, bytes]] = {}  # height -> (node, block hash)
    for node in cluster.honest():
        for sealed in node.chain:
            block_hash = sealed.block.hash()
            seen = first_seen.setdefault(sealed.height, (node.node_id, block_hash))
            if seen[1] != block_hash:
                raise cluster.fail(
                    "agreement",
                    f"height {sealed.height}: node {seen[0]} committed {seen[1].hex()[:16]}, "
                    f"node {node.node_id} committed {block_hash.hex()[:16]}",
                )


def check_chain_links(cluster: Cluster) -> None:
    for node in cluster.honest():
        prev_hash = ZERO_HASH
        for height, sealed in enumerate(node.chain, start=1):
            block = sealed.block
            if block.height != height:
                raise cluster.fail(
                    "chain links", f"node {node.node_id}: {block.height} at {height}"
                )
            if (reason := block.invalid()) is not None:
                raise cluster.fail("chain links", f"node {node.node_id} h={height}: {reason}")
            if block.header.prev_hash != prev_hash:
                raise cluster.fail(
                    "chain links",
                    f"node {node.node_id}: block {height} does not link to {height - 1}",
                )
            if block.header.chain_id != cluster.params.chain_id:
                raise cluster.fail("chain links", f"node {node.node_id} h={height}: chain id")
            prev_hash = block.hash()


def check_seals(cluster: Cluster) -> None:
    """Verifies each distinct (block, seal) once per cluster: honest nodes share blocks and
    usually seals, and a verify costs ~60 us per signature."""
    for node in cluster.honest():
        for sealed in node.chain:
            key = (sealed.block.hash(), sealed.seal.encode())
            if key in cluster.verified_seals:
                continue
            if (reason := sealed.invalid_for(cluster.validators)) is not None:
                raise cluster.fail(
                    "seal validity", f"node {node.node_id} h={sealed.height}: {reason}"
                )
            cluster.verified_seals.add(key)


def check_validity(cluster: Cluster) -> None:
    submitted = cluster.client.submitted
    for node in cluster.honest():
        ran: set[bytes] = set()
        for sealed in node.chain:
            executed = node.app.at(sealed.height)
            if executed is None:
                break  # committed, not executed yet (execution lag)
            for index, (tx, tx_hash) in enumerate(
                zip(sealed.block.txs, sealed.block.tx_hashes(), strict=True)
            ):
                where = f"node {node.node_id} h={sealed.height} tx {index}"
                if tx_hash not in submitted:
                    raise cluster.fail("validity", f"{where}: {tx_hash.hex()[:16]} never submitted")
                code = executed.results[index].code
                expected = CODE_REPLAY if tx.replay_key in ran else 0
                if code != expected:
                    raise cluster.fail("validity", f"{where}: code {code}, expected {expected}")
                ran.add(tx.replay_key)


def check_execution(cluster: Cluster) -> None:
    first_seen: dict[int, tuple[int, bytes, bytes]] = {}  # height -> (node, app, results)
    depth = cluster.params.pipeline_depth
    for node in cluster.honest():
        for executed in node.app.blocks:
            state = (node.node_id, executed.app_hash, executed.results_root)
            seen = first_seen.setdefault(executed.height, state)
            if seen[1:] != state[1:]:
                raise cluster.fail(
                    "execution",
                    f"height {executed.height}: nodes {seen[0]} and {node.node_id} "
                    "executed to different app hashes or results roots",
                )
        _check_exec_fields(cluster, node, depth)


def _check_exec_fields(cluster: Cluster, node: SimNode, depth: int) -> None:
    for sealed in node.chain:
        header = sealed.block.header
        expected_height = max(header.height - depth, 0)
        if header.exec_height != expected_height:
            raise cluster.fail(
                "execution",
                f"node {node.node_id} h={header.height}: exec height {header.exec_height}",
            )
        if expected_height == 0:
            attested = (ZERO_HASH, ZERO_HASH)
        else:
            executed = node.app.at(expected_height)
            if executed is None:
                break  # this node has not executed that far yet
            attested = (executed.app_hash, executed.results_root)
        if (header.exec_app_hash, header.exec_results_root) != attested:
            raise cluster.fail(
                "execution",
                f"node {node.node_id} h={header.height}: header attests another execution "
                f"of height {expected_height}",
            )


def check_liveness(cluster: Cluster, *, ticks_max: int, fresh_txs: int = LIVENESS_FRESH_TXS) -> int:
    """Call after healing and restarting: submit fresh txs to every live honest node and
    require every live honest node to execute them *and* commit the proof block P heights
    later that attests their results, all at one height. Returns the ticks it took."""
    first = len(cluster.client.submitted)
    cluster.submit(fresh_txs, to_all=True)
    fresh = [tx.hash() for tx in list(cluster.client.submitted.values())[first:]]
    depth = cluster.params.pipeline_depth
    started = cluster.now

    def attested(node: SimNode) -> bool:
        sealed_up_to = node.height - depth
        ran = {
            h for block in node.app.blocks[: max(sealed_up_to, 0)] for h in block.executed_tx_hashes
        }
        return all(tx_hash in ran for tx_hash in fresh)

    def settled(current: Cluster) -> bool:
        live = [node for node in current.honest() if node.alive]
        if not live or len({node.height for node in live}) != 1:
            return False
        return all(attested(node) for node in live)

    if not cluster.run(ticks_max, until=settled):
        live = {
            node.node_id: (node.height, attested(node)) for node in cluster.honest() if node.alive
        }
        raise cluster.fail(
            "liveness",
            f"after {ticks_max} ticks of healed network, (height, fresh txs attested) per "
            f"live honest node: {live}",
        )
    return cluster.now - started


class OneLeaderPerRound:
    """Election safety: at most one honest node ever reports itself leader in a given
    round (Raft term, PBFT view). Observe it every tick: `cluster.tick_observers.append(
    OneLeaderPerRound().observe)`. Rounds are remembered up to a bound."""

    def __init__(self, *, roles: tuple[str, ...] = ("leader", "primary")) -> None:
        self._roles = roles
        self._leader_of: dict[int, int] = {}  # round -> node

    def observe(self, cluster: Cluster) -> None:
        for node in cluster.honest():
            if node.engine is None:
                continue
            status = node.engine.status()
            if status.role not in self._roles:
                continue
            if len(self._leader_of) >= ROUNDS_REMEMBERED_MAX:
                self._leader_of.clear()
            leader = self._leader_of.setdefault(status.round, node.node_id)
            if leader != node.node_id:
                raise cluster.fail(
                    "election safety",
                    f"nodes {leader} and {node.node_id} both {status.role} in round {status.round}",
                )
