"""Test helpers for tests/services: a genesis with three agencies, their keys, a tx signer.

Imported as tests.services.services_helpers, like the other packages' helpers."""

from __future__ import annotations

import itertools

import msgspec

from protocol.crypto import SigningKey, sha256
from protocol.tx import Tx, sign_tx
from services.genesis import Agency, ServicesGenesis

CHAIN_ID = "seoul-test"

CITY = SigningKey.from_secret(b"city")
DISTRICT = SigningKey.from_secret(b"district")
AUDITOR = SigningKey.from_secret(b"auditor")  # an agency without the notary role
STRANGER = SigningKey.from_secret(b"stranger")  # in no agency at all


def make_genesis() -> ServicesGenesis:
    return ServicesGenesis(
        chain_id=CHAIN_ID,
        agencies=(
            Agency(name="Seoul City", public_key=CITY.public_key, roles=("notary",)),
            Agency(name="Gangnam-gu", public_key=DISTRICT.public_key, roles=("notary",)),
            Agency(name="Audit Office", public_key=AUDITOR.public_key, roles=("auditor",)),
        ),
    )


_nonces = itertools.count(1)


def sign(
    key: SigningKey,
    kind: str,
    body: object,
    *,
    nonce: int | None = None,
    expiry_height: int = 1_000,
    chain_id: str = CHAIN_ID,
) -> Tx:
    """A signed tx; `body` may be raw bytes or anything msgpack can encode."""
    raw = body if isinstance(body, bytes) else msgspec.msgpack.encode(body)
    return sign_tx(
        key,
        chain_id=chain_id,
        nonce=next(_nonces) if nonce is None else nonce,
        expiry_height=expiry_height,
        kind=kind,
        body=raw,
    )


def doc(name: str) -> bytes:
    return sha256(name.encode())
