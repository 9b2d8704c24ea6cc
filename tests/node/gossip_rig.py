"""A real Node that is not started, whose tx gossip goes to a recording transport: gossip
batches enter through TxGossip's receive path and the batches it sends are counted per
peer. Shared by the standby (PBFT) and the Raft forwarding tests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec

from consensus.types import EngineStatus, NodeId
from node.node import Node
from protocol.crypto import SigningKey
from protocol.tx import Tx, sign_tx
from services.notary import encode_anchor
from storage.leveldb import LevelDbChainStore
from tests.node.cluster_helpers import CHAIN, local_net
from tests.p2p.p2p_helpers import RecordingTransport

ME = 1
OBSERVER = SigningKey.from_secret(b"observer").public_key


@dataclasses.dataclass
class Rig:
    node: Node
    stub: RecordingTransport
    keys: list[SigningKey]
    agency: SigningKey
    kind: str

    def receive(self, sender: bytes, txs: list[Tx]) -> None:
        assert self.node.network is not None
        payload = msgspec.msgpack.encode([tx.encode() for tx in txs])
        self.node.network.gossip._on_message(sender, payload)

    def relayed(self) -> int:
        return sum(self.sent_to().values())

    def sent_to(self) -> dict[bytes, int]:
        """Txs sent so far, by peer key (pending batches flushed first)."""
        assert self.node.network is not None
        self.node.network.gossip.flush()
        sent: dict[bytes, int] = {}
        for peer, txs in self.stub.sent:
            sent[peer] = sent.get(peer, 0) + len(txs)
        return sent

    def lead(self, leading: bool) -> None:
        self.set_leader(ME if leading else 0)

    def set_leader(self, leader: int | None) -> None:
        """The node's engine reports `leader` (None: an election) after a step."""
        leading = leader == ME
        status = EngineStatus(
            kind=self.kind,
            node_id=NodeId(ME),
            committed_height=0,
            round=leader or 0,
            leader=None if leader is None else NodeId(leader),
            role=("primary" if leading else "backup")
            if self.kind == "pbft"
            else ("leader" if leading else "follower"),
            proposal_slot=None,
        )
        self.node._track_leadership(status)

    def connect(self, peer: int) -> None:
        """Peer `peer` (re)connects: p2p tells its listeners."""
        key = self.keys[peer].public_key
        if key not in self.stub.peers:
            self.stub.peers.append(key)
        assert self.node.network is not None
        for listener in self.node.network.p2p._listeners:
            listener(key, True)


_nonces = iter(range(1, 1_000_000))


def anchors(agency: SigningKey, count: int) -> list[Tx]:
    txs = []
    for _ in range(count):
        nonce = next(_nonces)
        body = encode_anchor(nonce.to_bytes(32, "big"), "certificate")
        txs.append(
            sign_tx(
                agency,
                chain_id=CHAIN,
                nonce=nonce,
                expiry_height=10_000,
                kind="notary.anchor",
                body=body,
            )
        )
    return txs


@contextlib.asynccontextmanager
async def gossip_rig(root: Path, *, consensus: str, validators: int) -> AsyncIterator[Rig]:
    """Validator ME of a `validators`-node genesis, real LevelDB store and check_tx."""
    net = local_net(root, validators=validators, consensus=consensus)
    node = Node(
        config=net.configs[ME],
        genesis=net.genesis,
        key=net.keys[ME],
        store=LevelDbChainStore(net.store_path(ME)),
    )
    assert node.network is not None
    stub = RecordingTransport([key.public_key for i, key in enumerate(net.keys) if i != ME])
    node.network.gossip._transport = stub
    node.network.p2p.connected_keys = stub.connected_keys  # type: ignore[method-assign]
    try:
        yield Rig(node=node, stub=stub, keys=net.keys, agency=net.agency, kind=consensus)
    finally:
        if node.standby_keeper.promotion is not None:
            await node.standby_keeper.promotion
        await node.standby_verifier.stop()
        await settle()
        for worker in node.network._workers.values():
            worker.cancel()
        await asyncio.gather(*node.network._workers.values(), return_exceptions=True)
        node.mempool.close()
        node.store.close()


async def settle() -> None:
    """Let the admission tasks the gossip handler spawned (and their verify threads) finish;
    the per-peer ingress workers and the standby verifier run forever and are left alone
    (`StandbyVerifier.idle` waits for the latter)."""
    for _ in range(50):
        pending = [
            task
            for task in asyncio.all_tasks() - {asyncio.current_task()}
            if not task.get_coro().__qualname__.endswith("_ingress_worker")  # type: ignore[union-attr]
            and task.get_name() != "standby-verify"
        ]
        if not pending:
            return
        await asyncio.gather(*pending)
