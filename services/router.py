"""The router: checks common to every tx, then hands the tx to the service for its kind.

Order of checks (the first that fails gives the tx's code; docs/SERVICES.md §Generic rules):

    1. chain id       tx.chain_id == genesis chain id              else WRONG_CHAIN
    2. expiry         tx.expiry_height >= height                   else EXPIRED
    3. replay         "tx/replay/" + signer + u64 nonce is unset   else REPLAYED
       -- from here on, in a block, the (signer, nonce) pair is consumed --
    4. kind           some service handles tx.kind                 else UNKNOWN_KIND
    5. role           the signer's agency holds the kind's role    else UNAUTHORIZED
    6. body           msgpack that decodes as the kind's body,     else BODY_MALFORMED / INVALID
                      with no map repeating a key (services/bodies.py)
    7. the service's own rules (`deliver`)

Replay rule: every tx that passes 1-3 in a block writes its replay key, whatever happens
next, exactly like an account nonce. A refused tx therefore can never be replayed later to
succeed in changed circumstances (say, after its signer gains a role). A tx refused at 1-3
writes nothing: its pair is either foreign, dead forever (expired), or already consumed.

In a block the replay key lands in the block overlay, so a second tx with the same pair in
the same block is REPLAYED. A failed tx's other writes are discarded with its tx overlay.

Result logs written during execution are fixed strings chosen here (they are hashed into the
results root, so they must not depend on a library's error wording); check_tx answers are
not hashed and carry the decoder's detailed message instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from protocol.results import TxResult
from protocol.tx import Tx, kind_invalid
from services import agencies, bodies, limits
from services.codes import Code
from services.interface import BlockInfo, StateView, TxEvent
from services.overlay import Overlay
from services.service import KindSpec, Service, TxContext

log = logging.getLogger(__name__)

REPLAY_PREFIX = b"tx/replay/"
_SERVICE_CODE_MIN = 100  # the router's own codes are 1..99; services use 100 and up
_ADMITTED = TxResult(code=Code.OK, log="admitted")  # immutable, shared by every admission


@dataclass(frozen=True, slots=True)
class _Route:
    service: Service
    spec: KindSpec
    decoder: msgspec.msgpack.Decoder[Any]
    write_prefixes: tuple[bytes, ...]  # where this kind's service may write (asserted)


class Router:
    def __init__(self, *, chain_id: str, services: Sequence[Service]) -> None:
        self._chain_id = chain_id
        self._routes: dict[str, _Route] = {}
        self._paths: dict[str, Service] = {}
        names = [service.name for service in services]
        assert len(set(names)) == len(names), f"duplicate service names {names}"
        for service in services:
            self._add(service)

    def _add(self, service: Service) -> None:
        for kind, spec in service.kinds.items():
            assert kind_invalid(kind) is None, kind
            assert kind.startswith(service.name + "."), f"{kind} outside {service.name}"
            assert kind not in self._routes, f"kind {kind} registered twice"
            decoder = msgspec.msgpack.Decoder(spec.body_type)
            self._routes[kind] = _Route(
                service=service,
                spec=spec,
                decoder=decoder,
                write_prefixes=_write_prefixes(service.name),
            )
        for path in service.query_paths:
            assert path not in self._paths, f"query path {path} registered twice"
            self._paths[path] = service

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self._routes))

    def service_for_path(self, path: str) -> Service | None:
        return self._paths.get(path)

    @property
    def query_paths(self) -> tuple[str, ...]:
        return tuple(sorted(self._paths))

    def check(self, tx: Tx, state: StateView, *, next_height: int) -> TxResult:
        """Mempool admission: steps 1-6 against committed state; never runs a service."""
        refused = self._envelope(tx, state, REPLAY_PREFIX + tx.replay_key, height=next_height)
        if refused is not None:
            return refused
        routed = self._route(tx, state, detailed=True)
        if isinstance(routed, TxResult):
            return routed
        return _ADMITTED

    def execute(
        self, tx: Tx, block: Overlay, *, info: BlockInfo, tx_index: int
    ) -> tuple[TxResult, TxEvent | None]:
        """Run one tx of a block against the block overlay; see the module docstring."""
        replay_key = REPLAY_PREFIX + tx.replay_key
        refused = self._envelope(tx, block, replay_key, height=info.height)
        if refused is not None:
            return refused, None
        block.put(replay_key, info.height.to_bytes(8, "big"))
        routed = self._route(tx, block, detailed=False)
        if isinstance(routed, TxResult):
            return routed, None
        route, body = routed
        ctx = TxContext(
            chain_id=info.chain_id,
            height=info.height,
            time_ms=info.time_ms,
            tx_index=tx_index,
            tx_hash=tx.hash(),
            signer=tx.signer,
            nonce=tx.nonce,
            kind=tx.kind,
        )
        tx_state = Overlay(block)
        delivery = route.service.deliver(ctx, body, tx_state)
        writes = tx_state.writes
        _assert_writes_owned(route, writes)
        # Compared, not `in range(1, 100)`: a Code is an IntEnum, which range membership
        # tests by iterating the range (~1.3 us per tx).
        code = delivery.result.code
        assert not 0 < code < _SERVICE_CODE_MIN, "services may not use generic codes"
        if not delivery.result.ok:
            return delivery.result, None  # tx_state is dropped: its writes never land
        block.apply(writes)
        event = TxEvent(tx_index=tx_index, kind=tx.kind, attributes=delivery.attributes)
        return delivery.result, event

    def _envelope(
        self, tx: Tx, state: StateView, replay_key: bytes, *, height: int
    ) -> TxResult | None:
        if tx.chain_id != self._chain_id:
            return TxResult(code=Code.WRONG_CHAIN, log="tx is for another chain")
        if tx.expiry_height < height:
            return TxResult(code=Code.EXPIRED, log="tx expired before this height")
        if state.get(replay_key) is not None:
            return TxResult(code=Code.REPLAYED, log="signer and nonce already executed")
        return None

    def _route(
        self, tx: Tx, state: StateView, *, detailed: bool
    ) -> TxResult | tuple[_Route, msgspec.Struct]:
        route = self._routes.get(tx.kind)
        if route is None:
            return TxResult(code=Code.UNKNOWN_KIND, log="no service handles this kind")
        role = route.spec.role
        if role is not None and not agencies.has_role(state, tx.signer, role):
            return TxResult(code=Code.UNAUTHORIZED, log=f"signer lacks role {role}")
        body = bodies.decode_body(route.decoder, tx.body, detailed=detailed)
        if isinstance(body, TxResult):
            return body
        return route, body


# Reviewed exception: governance (services/gov.py) changes agencies, roles and keys, which
# live under agency/ so that every role check stays one state read (services/agencies.py).
# It writes there only when a council threshold approved the change. No other exception.
_EXTRA_WRITE_PREFIXES: dict[str, tuple[bytes, ...]] = {"gov": (b"agency/",)}


def _write_prefixes(service_name: str) -> tuple[bytes, ...]:
    return (service_name.encode("ascii") + b"/", *_EXTRA_WRITE_PREFIXES.get(service_name, ()))


def _assert_writes_owned(route: _Route, writes: Mapping[bytes, bytes | None]) -> None:
    """A service writing outside its prefix, or writing without bound, is our bug."""
    name = route.service.name
    assert len(writes) <= limits.tx_writes_max, f"{name} wrote {len(writes)} keys"
    prefixes = route.write_prefixes
    for key in writes:
        assert key.startswith(prefixes), f"{name} wrote outside its prefix: {key!r}"
