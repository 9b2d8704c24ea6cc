"""The plug-in framework issue 7 builds on: a new Service with its own kinds, role rules and
query paths is routed by the app; the router enforces write ownership."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import pytest

from protocol.results import TxResult
from services.agencies import AgencyRegistry
from services.app import SeoulApplication
from services.codes import Code
from services.interface import Application, QueryResult, StateView
from services.notary import NotaryService
from services.overlay import Overlay
from services.service import Delivery, KindSpec, TxContext
from services.testing import AppHarness
from tests.services.services_helpers import CHAIN_ID, STRANGER, make_genesis, sign


class CounterBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    step: int


class CounterService:
    """A minimal open service (role None: any signer), standing in for e.g. voting."""

    name = "counter"
    kinds: Mapping[str, KindSpec] = {"counter.add": KindSpec(body_type=CounterBody, role=None)}
    query_paths: tuple[str, ...] = ("counter/value",)

    def __init__(self, *, write_prefix: bytes = b"counter/") -> None:
        self._key = write_prefix + b"value"

    def genesis_writes(self) -> Mapping[bytes, bytes | None]:
        return {b"counter/value": b"0"}

    def deliver(self, ctx: TxContext, body: Any, state: Overlay) -> Delivery:
        current = int(state.get(self._key) or b"0")
        if body.step <= 0:
            return Delivery(result=TxResult(code=201, log="step must be positive"))
        state.put(self._key, str(current + body.step).encode())
        return Delivery(result=TxResult(code=0), attributes=(("counter.step", str(body.step)),))

    def query(self, path: str, params: Mapping[str, str], state: StateView) -> QueryResult:
        return QueryResult(found=True, value=int(state.get(b"counter/value") or b"0"))


def _app(counter: CounterService) -> SeoulApplication:
    genesis = make_genesis()
    return SeoulApplication(genesis, services=(AgencyRegistry(genesis), NotaryService(), counter))


def test_seoul_application_satisfies_the_application_contract() -> None:
    app: Application = SeoulApplication(make_genesis())
    assert app.genesis_app_hash() == SeoulApplication(make_genesis()).genesis_app_hash()


def test_a_new_service_plugs_in_with_kinds_queries_and_genesis_writes() -> None:
    chain = AppHarness(_app(CounterService()), chain_id=CHAIN_ID)
    assert chain.query("counter/value", {}).value == 0
    txs = [
        sign(STRANGER, "counter.add", {"step": 2}),
        sign(STRANGER, "counter.add", {"step": -1}),
        sign(STRANGER, "counter.add", {"step": 3}),
    ]
    outcome = chain.run_block(txs)
    assert [result.code for result in outcome.results] == [0, 201, 0]
    assert chain.query("counter/value", {}).value == 5
    assert [event.attributes for event in outcome.events] == [
        (("counter.step", "2"),),
        (("counter.step", "3"),),
    ]
    assert chain.check(sign(STRANGER, "counter.add", {"step": "x"})).code == Code.BODY_INVALID


def test_a_service_writing_outside_its_prefix_stops_the_node() -> None:
    """Our bug, not bad input: an assertion, never a result code."""
    chain = AppHarness(_app(CounterService(write_prefix=b"notary/")), chain_id=CHAIN_ID)
    with pytest.raises(AssertionError, match="outside its prefix"):
        chain.run_block([sign(STRANGER, "counter.add", {"step": 1})])


def test_kinds_must_sit_under_the_service_name() -> None:
    class Misnamed(CounterService):
        kinds: Mapping[str, KindSpec] = {"notary.add": KindSpec(body_type=CounterBody, role=None)}

    with pytest.raises(AssertionError):
        _app(Misnamed())
