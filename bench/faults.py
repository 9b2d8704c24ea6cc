"""Fault scenarios during a run: `--fault kill-primary@SECONDS`.

At SECONDS into the run the bench asks a live node's `status` who the primary (PBFT) or
leader (Raft) is, and SIGKILLs that node's process (only a PID the cluster recorded for
that home). The load stops sending to it. Afterwards, from the blocks seen on the event
streams (subscribed on every node in a fault run, so losing one stream loses no commits):

- no_commit_gap_s: the longest time between two consecutive commits from the last commit
  before the kill to the end of sending: how long the chain was stalled;
- recovery_s: from the kill to the first commit that ends that longest gap (the view change
  or election plus the first new block).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.cluster import Cluster, ClusterError, NodeHandle, kill_node
from bench.ledger import BlockSeen
from node.client import RpcClient, RpcError, RpcTransportError

log = logging.getLogger(__name__)

_SPEC = re.compile(r"^(kill-primary)@(\d+(?:\.\d+)?)$")
STATUS_TIMEOUT_S = 3.0


class FaultError(ValueError):
    """A --fault that cannot be parsed or carried out."""


@dataclass(frozen=True, slots=True)
class FaultSpec:
    kind: str  # "kill-primary"
    at_s: float


def parse_fault(text: str) -> FaultSpec:
    match = _SPEC.match(text.strip())
    if match is None:
        raise FaultError(f"--fault {text!r}: expected kill-primary@SECONDS, e.g. kill-primary@10")
    return FaultSpec(kind=match.group(1), at_s=float(match.group(2)))


@dataclass(slots=True)
class FaultRecord:
    spec: FaultSpec
    killed_node: str | None = None
    killed_pid: int | None = None
    killed_at_s: float | None = None
    leader_index: int | None = None
    error: str | None = None


async def find_leader(cluster: Cluster, clients: dict[str, RpcClient]) -> NodeHandle:
    """The node that a live node's status names as primary/leader (validator index)."""
    for node in cluster.alive():
        try:
            status = await clients[node.name].call("status", timeout_s=STATUS_TIMEOUT_S)
        except (RpcError, RpcTransportError) as error:
            log.info("%s: status failed while looking for the leader: %s", node.name, error)
            continue
        leader = status.get("consensus", {}).get("leader") if isinstance(status, dict) else None
        if isinstance(leader, int) and 0 <= leader < len(cluster.nodes):
            return cluster.nodes[leader]
    raise FaultError("no live node names a leader; cannot kill it")


async def inject(
    spec: FaultSpec,
    cluster: Cluster,
    clients: dict[str, RpcClient],
    now_s: Any,
    record: FaultRecord,
) -> None:
    """Wait until spec.at_s on the run clock (`now_s()`), then carry the fault out."""
    delay = spec.at_s - now_s()
    if delay > 0:
        await asyncio.sleep(delay)
    try:
        leader = await find_leader(cluster, clients)
        record.leader_index = cluster.nodes.index(leader)
        record.killed_pid = kill_node(leader)
        record.killed_node = leader.name
        record.killed_at_s = now_s()
        log.info("fault: killed leader %s at %.2f s", leader.name, record.killed_at_s)
    except (FaultError, ClusterError) as error:
        record.error = str(error)
        log.error("fault %s failed: %s", spec.kind, error)


def analyse(
    record: FaultRecord, blocks: Sequence[BlockSeen], *, send_end_s: float
) -> dict[str, Any]:
    """The stall and recovery figures of a kill (see the module docstring)."""
    result: dict[str, Any] = {
        "kind": record.spec.kind,
        "at_s": record.spec.at_s,
        "killed_node": record.killed_node,
        "killed_pid": record.killed_pid,
        "killed_at_s": record.killed_at_s,
        "error": record.error,
        "no_commit_gap_s": None,
        "recovery_s": None,
        "recovered": False,
    }
    kill_s = record.killed_at_s
    if kill_s is None:
        return result
    times = sorted(block.at_s for block in blocks if block.at_s <= send_end_s)
    before = [t for t in times if t <= kill_s]
    after = [t for t in times if t > kill_s]
    if not after:
        result["no_commit_gap_s"] = send_end_s - (before[-1] if before else 0.0)
        return result
    window = ([before[-1]] if before else [kill_s]) + after
    gaps = [(later - earlier, later) for earlier, later in itertools.pairwise(window)]
    longest, ends_at = max(gaps)
    result["no_commit_gap_s"] = longest
    result["recovery_s"] = max(0.0, ends_at - kill_s)
    result["recovered"] = True
    return result
