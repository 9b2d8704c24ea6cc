"""Field types, key encodings and query helpers shared by the asset, fund and reward
services (issue 7, part A).

Why a shared module: the three services name things by short ASCII ids (a VIN, a campaign
id, an activity record id), count integer amounts in u64, and page through time-ordered
records in the same way. Keeping those conventions in one place keeps their documented
bounds identical (docs/services/*.md).

Ids are ASCII so that their byte length is their character count (<= 64) and fits the one
length byte that prefixes them in state keys: `<u8 length><id>` keeps "car-1" and "car-10"
apart in prefix scans, which a bare id (or a separator a user may type) would not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

import msgspec

from protocol.crypto import PUBLIC_KEY_BYTES
from protocol.results import TxResult
from services import params
from services.codes import Code
from services.interface import QueryError, StateView
from services.service import Delivery, TxContext

U64_MAX = 2**64 - 1
POSITION_BYTES = 12  # u64 height | u32 tx index: a record's place in chain order
ID_CHARS_MAX = 64

# Text fields: no C0 control characters or DEL (they break logs and terminals). \Z, not $,
# because $ also matches before a trailing newline.
PRINTABLE = r"^[^\x00-\x1f\x7f]*\Z"
ID_PATTERN = r"^[A-Za-z0-9._:-]+\Z"

RecordId = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_CHARS_MAX, pattern=ID_PATTERN)]
PublicKey = Annotated[bytes, msgspec.Meta(min_length=PUBLIC_KEY_BYTES, max_length=PUBLIC_KEY_BYTES)]
# msgspec cannot state le=2**64-1 (bounds must fit an int64), and needs not: a msgpack
# integer is at most u64, so decoding enforces the upper bound and `ge` the lower one.
Amount = Annotated[int, msgspec.Meta(ge=1)]
Counter = Annotated[int, msgspec.Meta(ge=0)]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=PRINTABLE)]
Note = Annotated[str, msgspec.Meta(max_length=256, pattern=PRINTABLE)]


class Revocation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Why, when and by which tx a record (a notary document, a credential) was revoked.
    Shared so both services store it with the same bytes and render it the same way."""

    reason: str
    height: int
    time_ms: int
    tx_hash: bytes


def revocation_for(ctx: TxContext, reason: str) -> Revocation:
    """The revocation a tx records: its reason, and the tx's height, block time and hash."""
    return Revocation(reason=reason, height=ctx.height, time_ms=ctx.time_ms, tx_hash=ctx.tx_hash)


ENCODER = msgspec.msgpack.Encoder()


def id_key(record_id: str) -> bytes:
    """`<u8 length><ASCII id>`: the id's place in a state key."""
    raw = record_id.encode("ascii")
    assert 1 <= len(raw) <= ID_CHARS_MAX, record_id
    return bytes([len(raw)]) + raw


def position(height: int, tx_index: int) -> bytes:
    return height.to_bytes(8, "big") + tx_index.to_bytes(4, "big")


def refuse(code: Code, text: str) -> Delivery:
    """A rule breach: the code and a fixed log text (hashed into the results root)."""
    return Delivery(result=TxResult(code=code, log=text))


def accept(text: str, attributes: tuple[tuple[str, str], ...], data: bytes = b"") -> Delivery:
    return Delivery(result=TxResult(code=Code.OK, log=text, data=data), attributes=attributes)


def id_param(query: Mapping[str, str], name: str) -> str:
    """A record id from query params, held to the same rule as in tx bodies."""
    text = query[name]
    if not 1 <= len(text) <= ID_CHARS_MAX or not text.isascii():
        raise QueryError(f"param {name!r} must be 1..{ID_CHARS_MAX} ASCII characters")
    if not all(char.isalnum() or char in "._:-" for char in text):
        raise QueryError(f"param {name!r} may hold only A-Z a-z 0-9 . _ : -")
    return text


def key_param(query: Mapping[str, str], name: str) -> bytes:
    return params.hex_param(query, name, size=PUBLIC_KEY_BYTES)


def u64_param(query: Mapping[str, str], name: str) -> int:
    text = query[name]
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        raise QueryError(f"param {name!r} must be a decimal integer")
    value = int(text)
    if value > U64_MAX:
        raise QueryError(f"param {name!r} must be at most {U64_MAX}")
    return value


def check_page_params(query: Mapping[str, str], *, cursor_bytes: int) -> None:
    """Refuse a bad `limit` or `after` before any lookup, so a bad page request is an error
    whether or not the record it names exists."""
    params.limit_param(query)
    if query.get("after"):
        params.hex_param(query, "after", size=cursor_bytes)


def page(
    state: StateView,
    prefix: bytes,
    query: Mapping[str, str],
    *,
    cursor_bytes: int,
    render: Callable[[bytes, bytes], Any],
) -> tuple[list[Any], str | None]:
    """One page of rows under `prefix` in key order: (rendered rows, next cursor or None).
    The cursor is the hex key suffix after `prefix` of the page's last row; cursors name a
    position, not an offset, so pages never skip or repeat rows as new ones are added."""
    limit = params.limit_param(query)
    start_after = None
    if query.get("after"):
        start_after = prefix + params.hex_param(query, "after", size=cursor_bytes)
    rows = list(state.scan(prefix, start_after=start_after, limit=limit + 1))
    rendered = [render(key[len(prefix) :], value) for key, value in rows[:limit]]
    next_cursor = rows[limit - 1][0][len(prefix) :].hex() if len(rows) > limit else None
    return rendered, next_cursor
