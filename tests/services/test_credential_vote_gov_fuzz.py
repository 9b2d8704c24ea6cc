"""Hostile bodies for the issue-7 part B kinds (notary batch, credential, vote, gov), sent by
a signer that holds every role and sits on a one-member council, so each body reaches the
service's own rules. Every tx must end in a known result code; nothing may raise."""

from __future__ import annotations

import os

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.crypto import SigningKey
from services.app import SeoulApplication
from services.codes import Code
from services.genesis import Agency, ServicesGenesis
from services.testing import AppHarness
from tests.services.services_helpers import CHAIN_ID, sign

ROOT = SigningKey.from_secret(b"root-agency")
ROLES = ("notary", "credential_issuer", "vote_admin")
GENESIS = ServicesGenesis(
    chain_id=CHAIN_ID,
    agencies=(Agency(name="Root", public_key=ROOT.public_key, roles=ROLES),),
    council=(ROOT.public_key,),
    council_threshold=1,
)
APP = SeoulApplication(GENESIS)
KINDS = [kind for kind in APP.kinds if kind.split(".")[0] in ("credential", "vote", "gov")] + [
    "notary.anchor_batch",
    "notary.anchor",
]
_KNOWN = {int(code) for code in Code}
_EXAMPLES = int(os.environ.get("SERVICES_FUZZ_EXAMPLES", "200"))

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0, 1, 2, 3, 5, 2**63 - 1]),
    st.text(max_size=20),
    st.sampled_from(["add_agency", "remove_agency", "set_roles", "rotate_key", "Root", "e1"]),
    st.binary(min_size=32, max_size=32),
    st.just(ROOT.public_key),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
_names = st.sampled_from(
    [
        "cred_type", "holder", "serial", "valid_from_ms", "valid_until_ms", "claims",
        "credential_id", "reason", "election_id", "title", "options", "voters",
        "start_height", "end_height", "option", "proposal_id", "change", "action", "name",
        "public_key", "roles", "new_public_key", "documents", "document_hash", "doc_type",
        "expires_at_ms", "eligible_credential", "issuer_agency",
    ]
)  # fmt: skip
_bodies = st.dictionaries(_names, _values, max_size=7)


@settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(txs=st.lists(st.tuples(st.sampled_from(KINDS), _bodies), min_size=1, max_size=4))
def test_random_bodies_never_raise(txs: list[tuple[str, dict[str, object]]]) -> None:
    chain = AppHarness(APP, chain_id=CHAIN_ID)
    signed = [sign(ROOT, kind, msgspec.msgpack.encode(body)) for kind, body in txs]
    outcome = chain.run_block(signed)
    assert all(result.code in _KNOWN for result in outcome.results)
