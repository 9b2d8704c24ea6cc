"""A single-validator node in-process: real LevelDB store, real services, real RPC server.

What this pins: a tx submitted through the NodeApi commits in a sealed block whose seal
verifies against genesis; the notary record is queryable; the same signed tx is refused
as a replay after a restart from the same store; height and app hash survive the restart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from node.config import Config
from node.genesis import ConsensusParams, Genesis, GenesisAgency, GenesisValidator
from node.node import Node
from protocol.crypto import SigningKey
from protocol.proof import verify_result_proof
from protocol.tx import Tx, sign_tx
from services.notary import encode_anchor
from storage.leveldb import LevelDbChainStore

CHAIN = "seoul-test"


def _setup(tmp_path: Path) -> tuple[Config, Genesis, SigningKey, SigningKey]:
    validator = SigningKey.from_secret(b"validator-0")
    agency = SigningKey.from_secret(b"agency-0")
    genesis = Genesis(
        chain_id=CHAIN,
        genesis_time_ms=1_700_000_000_000,
        consensus=ConsensusParams(kind="solo"),
        validators=(
            GenesisValidator(
                name="node0",
                public_key=validator.public_key,
                p2p_address="127.0.0.1:1",
                rpc_address="127.0.0.1:2",
            ),
        ),
        agencies=(
            GenesisAgency(name="seoul-city", public_key=agency.public_key, roles=("notary",)),
        ),
    )
    config = Config(home=tmp_path)
    config.rpc.listen_address = "127.0.0.1:0"
    config.metrics.listen_address = "127.0.0.1:0"
    config.consensus.tick_ms = 5
    config.consensus.block_interval_ms = 5
    return config, genesis, validator, agency


def _anchor(
    agency: SigningKey, *, nonce: int, document: bytes, metadata: dict[str, str] | None = None
) -> Tx:
    """A signed notary anchor of `document` as a certificate."""
    return sign_tx(
        agency,
        chain_id=CHAIN,
        nonce=nonce,
        expiry_height=1000,
        kind="notary.anchor",
        body=encode_anchor(document, "certificate", metadata or {}),
    )


async def _start(config: Config, genesis: Genesis, key: SigningKey, path: Path) -> Node:
    node = Node(config=config, genesis=genesis, key=key, store=LevelDbChainStore(path))
    await node.start()
    return node


async def test_anchor_commits_survives_restart_and_replay_is_refused(tmp_path: Path) -> None:
    config, genesis, validator, agency = _setup(tmp_path)
    db = tmp_path / "chain.db"
    node = await _start(config, genesis, validator, db)
    tx = _anchor(agency, nonce=7, document=b"\x11" * 32, metadata={"holder": "kim"})
    submitted = await node.submit_tx(tx.encode())
    assert submitted.code == 0, submitted
    committed = await node.wait_for_commit(tx.hash(), timeout_s=10)
    assert committed is not None
    assert committed.result.code == 0, committed.result
    sealed = node.sealed_block(committed.height)
    assert sealed is not None
    assert sealed.invalid_for(genesis.validator_set()) is None
    record = node.query("notary/document", {"hash": "11" * 32})
    assert record.found
    # Let the proof blocks land: then the result itself is provable offline.
    await asyncio.sleep(0.2)
    result_proof = node.result_proof(tx.hash())
    assert result_proof is not None, "proof blocks should have attested the result"
    verified = verify_result_proof(
        result_proof,
        genesis.validator_set(),
        CHAIN,
        pipeline_depth=genesis.consensus.pipeline_depth,
    )
    assert verified.result.code == 0
    height = node.latest_height()
    app_hash = node.app_hash(height)
    await node.stop()

    node = await _start(config, genesis, validator, db)
    try:
        assert node.latest_height() == height
        assert node.app_hash(height) == app_hash
        assert node.query("notary/document", {"hash": "11" * 32}).found
        replay = await node.submit_tx(tx.encode())
        assert replay.code != 0, "a committed tx must be refused as a replay"
    finally:
        await node.stop()


async def test_a_commit_records_the_proposal_to_commit_time(tmp_path: Path) -> None:
    """seoulchain_consensus_commit_seconds is observed for every block this node proposed
    (it once read the proposal time after the bookkeeping had forgotten it)."""
    config, genesis, validator, agency = _setup(tmp_path)
    node = await _start(config, genesis, validator, tmp_path / "chain.db")
    try:
        histogram = node.metrics.consensus_commit_seconds
        before = _histogram_count(node)
        tx = _anchor(agency, nonce=1, document=b"\x22" * 32)
        assert (await node.submit_tx(tx.encode())).code == 0
        assert await node.wait_for_commit(tx.hash(), timeout_s=10) is not None
        assert _histogram_count(node) > before, histogram
    finally:
        await node.stop()


async def test_each_committed_tx_costs_one_signature_check(tmp_path: Path) -> None:
    """seoulchain_mempool_signature_checks_total counts the checks the node ran: a tx is
    checked on admission, its block finds it in the verified cache, and a re-sent copy is
    answered from the pool without a check."""
    config, genesis, validator, agency = _setup(tmp_path)
    node = await _start(config, genesis, validator, tmp_path / "chain.db")
    try:
        txs = [_anchor(agency, nonce=nonce, document=bytes([nonce]) * 32) for nonce in (1, 2, 3)]
        for tx in txs:
            assert (await node.submit_tx(tx.encode())).code == 0
        again = await node.submit_tx(txs[0].encode())
        assert again.log == "already in the mempool", again
        for tx in txs:
            assert await node.wait_for_commit(tx.hash(), timeout_s=10) is not None
        checks = await _settled_sample(node, "seoulchain_mempool_signature_checks_total")
        assert checks == 3.0
    finally:
        await node.stop()


async def _settled_sample(node: Node, name: str) -> float | None:
    """The sample once it stops changing (the metrics follow the commit bookkeeping)."""
    value = node.metrics.registry.get_sample_value(name)
    for _ in range(40):
        await asyncio.sleep(0.05)
        again = node.metrics.registry.get_sample_value(name)
        if again == value and value:
            return value
        value = again
    return value


def _histogram_count(node: Node) -> float:
    text = node.metrics.exposition().decode()
    for line in text.splitlines():
        if line.startswith("seoulchain_consensus_commit_seconds_count"):
            return float(line.split()[-1])
    raise AssertionError("no commit_seconds histogram in the exposition")
