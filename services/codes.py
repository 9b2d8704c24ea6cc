"""Result codes of every tx, in one place (docs/SERVICES.md §Result codes).

A code is part of the block results, hence of the results root and the app hash: once a code
is published its number never changes and is never reused. Each service owns a block of 100
codes so that services added later (issue 7) never collide:

    0          success
    1..99      generic envelope checks, done by the router before any service runs
    100..199   notary
    200..299   asset history       (reserved, issue 7)
    300..399   fund flows          (reserved, issue 7)
    400..499   credentials         (reserved, issue 7)
    500..599   activity rewards    (reserved, issue 7)
    600..699   voting              (reserved, issue 7)
    700..799   governance          (reserved, issue 7)
"""

from __future__ import annotations

from enum import IntEnum, unique


@unique
class Code(IntEnum):
    OK = 0

    # --- generic (router) ---
    WRONG_CHAIN = 1  # tx.chain_id is not this chain's id
    EXPIRED = 2  # tx.expiry_height is below the executing (or next) height
    REPLAYED = 3  # (signer, nonce) already executed
    UNKNOWN_KIND = 4  # no service handles tx.kind
    BODY_MALFORMED = 5  # body is not one complete msgpack value
    BODY_INVALID = 6  # body is msgpack but fields are missing, unknown, mistyped or out of bounds
    UNAUTHORIZED = 7  # signer holds no role that may send this kind

    # --- notary ---
    NOTARY_DUPLICATE_ANCHOR = 101  # the document hash is already anchored (valid or revoked)
    NOTARY_UNKNOWN_DOCUMENT = 102  # revoke of a hash that was never anchored
    NOTARY_NOT_ISSUER = 103  # revoke by an agency other than the one that anchored it
    NOTARY_ALREADY_REVOKED = 104  # revoke of a document that is already revoked


# Ranges reserved per service; a test checks every Code lies in its owner's range.
SERVICE_CODE_RANGES: dict[str, range] = {
    "generic": range(1, 100),
    "notary": range(100, 200),
    "asset": range(200, 300),
    "funds": range(300, 400),
    "credential": range(400, 500),
    "rewards": range(500, 600),
    "voting": range(600, 700),
    "governance": range(700, 800),
}
