"""Hostile bodies: random bytes and random msgpack values, for every tx kind, through
check_tx and execute_block. They must always end in a result code, never an exception."""

from __future__ import annotations

import os

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.results import CODE_OK
from services.app import SeoulApplication
from services.codes import Code
from services.testing import AppHarness
from tests.services.services_helpers import CHAIN_ID, CITY, make_genesis, sign

APP = SeoulApplication(make_genesis())
KINDS = st.sampled_from([*APP.kinds, "notary.unknown"])

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.text(max_size=80),
    st.binary(max_size=40),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=20), inner, max_size=5)
    ),
    max_leaves=20,
)
_field_names = st.sampled_from(["document_hash", "doc_type", "metadata", "reason", "x"])
_maps = st.dictionaries(_field_names, _values, max_size=5)

_KNOWN_CODES = {int(code) for code in Code}
# Raise locally for a longer hunt, e.g. SERVICES_FUZZ_EXAMPLES=20000.
_EXAMPLES = int(os.environ.get("SERVICES_FUZZ_EXAMPLES", "300"))


def _run_everywhere(kind: str, body: bytes) -> None:
    chain = AppHarness(APP, chain_id=CHAIN_ID)
    tx = sign(CITY, kind, body)
    checked = chain.check(tx)
    outcome = chain.run_block([tx])
    (result,) = outcome.results
    assert result.code in _KNOWN_CODES
    assert checked.code in _KNOWN_CODES
    # A body check_tx refuses is refused the same way in a block (state is the same).
    if checked.code != CODE_OK:
        assert result.code == checked.code


@settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=KINDS, body=st.binary(max_size=300))
def test_random_bytes_never_raise(kind: str, body: bytes) -> None:
    _run_everywhere(kind, body)


@settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=KINDS, body=st.one_of(_maps, _values))
def test_random_msgpack_values_never_raise(kind: str, body: object) -> None:
    _run_everywhere(kind, msgspec.msgpack.encode(body))
