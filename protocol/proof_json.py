"""JSON form of TxProof and ResultProof, as the RPC `tx_proof` method returns them and as
`seoulchain verify` reads them from a file.

Binary objects travel as standard base64 (with padding) of their canonical bytes, the
same rule as txs everywhere in the RPC API; hashes in the Merkle path travel as lowercase
hex. Integers are JSON numbers. Example (docs/PROTOCOL.md §JSON form):

    {"type": "tx_proof", "version": 1, "height": 7, "index": 2, "tx": "<base64>",
     "merkle_proof": {"index": 2, "total": 3, "path": ["<64 hex>", ...]},
     "header": "<base64>", "seal": "<base64>"}

A result proof is {"type": "result_proof", "version": 1, "tx_proof": {<the tx proof
above>}, "result": "<base64>", "merkle_proof": {...}, "header": ..., "seal": ...}. The parser is as
strict as the binary decoder (it ends by running it): unknown or missing keys, non-canonical
base64, upper-case or short hex, booleans for numbers and out-of-range integers are all
DecodeErrors naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from protocol import limits
from protocol.crypto import HASH_BYTES
from protocol.encoding import U64_MAX, DecodeError
from protocol.merkle import MerkleProof
from protocol.proof import (
    PROOF_BYTES_MAX,
    PROOF_VERSION,
    ResultProof,
    TxProof,
    decode_any_proof,
)

TYPE_TX = "tx_proof"
TYPE_RESULT = "result_proof"
_U32_MAX = (1 << 32) - 1
_HEX_DIGITS = frozenset("0123456789abcdef")
# base64 grows bytes by 4/3; the rest of the JSON is small and bounded.
JSON_BYTES_MAX = PROOF_BYTES_MAX * 2 + 4096
_TX_KEYS = frozenset({"type", "version", "height", "index", "tx", "merkle_proof", "header", "seal"})
_RESULT_KEYS = frozenset(
    {"type", "version", "tx_proof", "result", "merkle_proof", "header", "seal"}
)
_MERKLE_KEYS = frozenset({"index", "total", "path"})


def proof_to_json(proof: TxProof | ResultProof) -> dict[str, Any]:
    """A JSON-ready dict (json.dumps it as is)."""
    if isinstance(proof, TxProof):
        return {
            "type": TYPE_TX,
            "version": PROOF_VERSION,
            "height": proof.height,
            "index": proof.index,
            "tx": _b64(proof.tx),
            **_sealed_path_json(proof.merkle_proof, proof.header, proof.seal),
        }
    return {
        "type": TYPE_RESULT,
        "version": PROOF_VERSION,
        "tx_proof": proof_to_json(proof.tx_proof),
        "result": _b64(proof.result),
        **_sealed_path_json(proof.merkle_proof, proof.header, proof.seal),
    }


def _sealed_path_json(merkle_proof: MerkleProof, header: bytes, seal: bytes) -> dict[str, Any]:
    return {
        "merkle_proof": {
            "index": merkle_proof.index,
            "total": merkle_proof.total,
            "path": [sibling.hex() for sibling in merkle_proof.path],
        },
        "header": _b64(header),
        "seal": _b64(seal),
    }


def proof_from_json(value: Mapping[str, Any] | str | bytes) -> TxProof | ResultProof:
    """Parse a proof from a decoded JSON object or from JSON text; DecodeError on anything
    that is not exactly the form proof_to_json produces."""
    obj = _loaded(value) if isinstance(value, str | bytes) else value
    kind = _type_of(obj, "proof")
    proof: TxProof | ResultProof
    if kind == TYPE_TX:
        proof = _tx_proof(obj, "proof")
    else:
        _check_keys(obj, _RESULT_KEYS, "proof")
        proof = ResultProof(
            tx_proof=_tx_proof(obj["tx_proof"], "proof.tx_proof"),
            result=_unb64(obj["result"], "proof.result"),
            merkle_proof=_merkle(obj["merkle_proof"], "proof.merkle_proof"),
            header=_unb64(obj["header"], "proof.header"),
            seal=_unb64(obj["seal"], "proof.seal"),
        )
    # One strict path for both forms: the binary decoder checks every inner object.
    decoded = decode_any_proof(proof.encode())
    assert decoded == proof
    return decoded


def _type_of(obj: Any, where: str) -> str:
    if not isinstance(obj, Mapping):
        raise DecodeError(f"{where} must be a JSON object")
    kind = obj.get("type")
    if kind not in (TYPE_TX, TYPE_RESULT):
        raise DecodeError(f"{where}.type must be {TYPE_TX!r} or {TYPE_RESULT!r}, got {kind!r}")
    if "version" not in obj or _int(obj, "version", _U32_MAX, where) != PROOF_VERSION:
        raise DecodeError(f"{where}.version must be {PROOF_VERSION}")
    assert isinstance(kind, str)
    return kind


def _tx_proof(obj: Any, where: str) -> TxProof:
    if _type_of(obj, where) != TYPE_TX:
        raise DecodeError(f"{where}.type must be {TYPE_TX!r}")
    _check_keys(obj, _TX_KEYS, where)
    return TxProof(
        tx=_unb64(obj["tx"], f"{where}.tx"),
        height=_int(obj, "height", U64_MAX, where),
        index=_int(obj, "index", _U32_MAX, where),
        merkle_proof=_merkle(obj["merkle_proof"], f"{where}.merkle_proof"),
        header=_unb64(obj["header"], f"{where}.header"),
        seal=_unb64(obj["seal"], f"{where}.seal"),
    )


def _loaded(text: str | bytes) -> Any:
    if len(text) > JSON_BYTES_MAX:
        raise DecodeError(f"proof JSON is {len(text)} bytes, max {JSON_BYTES_MAX}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and bad UTF-8
        raise DecodeError(f"proof is not JSON: {error}") from None


def _check_keys(obj: Mapping[str, Any], expected: frozenset[str], where: str) -> None:
    keys = set(obj)
    if missing := sorted(expected - keys):
        raise DecodeError(f"{where} is missing {', '.join(missing)}")
    if extra := sorted(str(key) for key in keys - expected):
        raise DecodeError(f"{where} has unknown keys {', '.join(extra)}")


def _int(obj: Mapping[str, Any], key: str, maximum: int, where: str) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"{where}.{key} must be an integer")
    if not 0 <= value <= maximum:
        raise DecodeError(f"{where}.{key} must be in 0..{maximum}")
    return value


def _merkle(value: Any, where: str) -> MerkleProof:
    if not isinstance(value, Mapping):
        raise DecodeError(f"{where} must be an object")
    _check_keys(value, _MERKLE_KEYS, where)
    path = value["path"]
    if not isinstance(path, list) or len(path) > limits.merkle_proof_depth_max:
        raise DecodeError(f"{where}.path must be a list of at most {limits.merkle_proof_depth_max}")
    return MerkleProof(
        index=_int(value, "index", _U32_MAX, where),
        total=_int(value, "total", _U32_MAX, where),
        path=tuple(_hash_hex(item, f"{where}.path[{i}]") for i, item in enumerate(path)),
    )


def _hash_hex(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * HASH_BYTES or not set(value) <= _HEX_DIGITS:
        raise DecodeError(f"{where} must be {2 * HASH_BYTES} lowercase hex characters")
    return bytes.fromhex(value)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or len(value) > JSON_BYTES_MAX:
        raise DecodeError(f"{where} must be a base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"{where} is not valid base64") from None
    if _b64(data) != value:
        raise DecodeError(f"{where} is not canonical base64 (padding or spare bits)")
    return data
