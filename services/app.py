"""SeoulApplication: the replicated application the node executes committed blocks with.

It owns no state of its own between calls: every method is a function of its arguments and
the genesis it was built with, so any node, replaying the same blocks over the same genesis,
computes the same results, writes and app hash (docs/SERVICES.md §Determinism).

Execution of one block:
    block overlay over committed state
    for each tx, in block order: router.execute (envelope, replay key, kind, role, body,
        service) against a tx overlay that is merged into the block overlay only on success
    results_root = RFC 6962 root over the results; app hash chained from prev_app_hash
    (services/apphash.py); writes = the block overlay's writes, replay keys included.

Issue 7's services plug in by being added to `default_services`: a Service (services/
service.py) with its kinds, body types, roles and query paths; the router does the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from protocol import limits as protocol_limits
from protocol.results import TxResult, results_root
from protocol.tx import Tx, chain_id_invalid
from services import agencies, apphash
from services.asset import AssetService
from services.credential import CredentialService
from services.fund import FundService
from services.genesis import ServicesGenesis
from services.gov import GovService
from services.interface import (
    BlockInfo,
    BlockOutcome,
    QueryError,
    QueryResult,
    StateView,
    TxEvent,
)
from services.notary import NotaryService
from services.overlay import Overlay
from services.reward import RewardService
from services.router import Router
from services.service import Service
from services.vote import VoteService

log = logging.getLogger(__name__)

CHAIN_ID_KEY = b"app/chain_id"


def default_services(genesis: ServicesGenesis) -> tuple[Service, ...]:
    """Every service this chain runs, in a fixed order. Issue 7 appends its services here."""
    return (
        agencies.AgencyRegistry(genesis),
        NotaryService(),
        AssetService(),
        FundService(),
        RewardService(),
        CredentialService(),
        VoteService(),
        GovService(genesis),
    )


class SeoulApplication:
    """Implements services.interface.Application."""

    def __init__(
        self, genesis: ServicesGenesis, *, services: Sequence[Service] | None = None
    ) -> None:
        reason = chain_id_invalid(genesis.chain_id) or agencies.genesis_invalid(genesis)
        if reason is not None:
            raise ValueError(f"invalid services genesis: {reason}")
        self._genesis = genesis
        self._services = tuple(services) if services is not None else default_services(genesis)
        self._router = Router(chain_id=genesis.chain_id, services=self._services)
        self._genesis_writes = self._collect_genesis_writes()
        self._genesis_app_hash = apphash.genesis_app_hash(self._genesis_writes)

    @property
    def kinds(self) -> tuple[str, ...]:
        return self._router.kinds

    @property
    def query_paths(self) -> tuple[str, ...]:
        return self._router.query_paths

    def _collect_genesis_writes(self) -> dict[bytes, bytes | None]:
        writes: dict[bytes, bytes | None] = {CHAIN_ID_KEY: self._genesis.chain_id.encode("ascii")}
        for service in self._services:
            for key, value in service.genesis_writes().items():
                assert key not in writes, f"genesis key {key!r} written twice"
                assert key.startswith(service.name.encode("ascii") + b"/"), key
                writes[key] = value
        return writes

    def genesis_writes(self) -> Mapping[bytes, bytes | None]:
        return dict(self._genesis_writes)

    def genesis_app_hash(self) -> bytes:
        return self._genesis_app_hash

    def check_tx(self, tx: Tx, state: StateView, *, next_height: int) -> TxResult:
        return self._router.check(tx, state, next_height=next_height)

    def execute_block(
        self,
        info: BlockInfo,
        txs: Sequence[Tx],
        state: StateView,
        *,
        prev_app_hash: bytes,
    ) -> BlockOutcome:
        assert info.chain_id == self._genesis.chain_id, "block of another chain reached the app"
        assert info.height >= 1, info.height
        assert len(txs) <= protocol_limits.block_txs_max, len(txs)
        block = Overlay(state)
        results: list[TxResult] = []
        events: list[TxEvent] = []
        for tx_index, tx in enumerate(txs):
            result, event = self._router.execute(tx, block, info=info, tx_index=tx_index)
            results.append(result)
            if event is not None:
                events.append(event)
        root = results_root(results)
        writes = dict(block.writes)
        app_hash = apphash.app_hash(
            prev_app_hash=prev_app_hash, height=info.height, results_root=root, writes=writes
        )
        if log.isEnabledFor(logging.DEBUG):  # counting the ok results costs a pass
            log.debug(
                "executed height=%d txs=%d ok=%d writes=%d",
                info.height,
                len(txs),
                sum(1 for result in results if result.ok),
                len(writes),
            )
        return BlockOutcome(
            results=tuple(results),
            writes=writes,
            app_hash=app_hash,
            results_root=root,
            events=tuple(events),
        )

    def query(self, path: str, params: Mapping[str, str], state: StateView) -> QueryResult:
        service = self._router.service_for_path(path)
        if service is None:
            raise QueryError(f"unknown query path {path!r}; known: {list(self.query_paths)}")
        return service.query(path, params, state)
