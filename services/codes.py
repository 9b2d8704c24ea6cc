"""Result codes of every tx, in one place (docs/SERVICES.md §Result codes).

A code is part of the block results, hence of the results root and the app hash: once a code
is published its number never changes and is never reused. Each service owns a block of
codes so that services never collide (SERVICE_CODE_RANGES below is the source of truth):

    0          success
    1..99      generic envelope checks, done by the router before any service runs
    100..199   notary
    200..249   asset history
    250..299   fund flows
    300..349   activity rewards
    350..399   credentials
    400..449   voting
    450..499   governance
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

    # --- asset history (issue 7 part A; docs/services/asset.md) ---
    ASSET_ALREADY_REGISTERED = 201  # register of an asset id that already exists
    ASSET_UNKNOWN = 202  # record/transfer of an asset id never registered
    ASSET_ODOMETER_BACKWARDS = 203  # reading below the asset's last recorded reading
    ASSET_ODOMETER_REQUIRED = 204  # an inspection without an odometer reading
    ASSET_NOT_OWNER = 205  # transfer signed by neither the owner nor a registrar
    ASSET_SAME_OWNER = 206  # transfer to the current owner
    ASSET_HISTORY_FULL = 207  # the asset already holds the most events it may

    # --- fund flows (issue 7 part A; docs/services/fund.md) ---
    FUND_CAMPAIGN_EXISTS = 251  # create of a campaign id already used
    FUND_UNKNOWN_CAMPAIGN = 252  # a campaign id never created
    FUND_NOT_MANAGER = 253  # spend/contract/cancel by an agency not managing the campaign
    FUND_INSUFFICIENT_BALANCE = 254  # spend or escrow lock above the free balance
    FUND_AMOUNT_OVERFLOW = 255  # a total would exceed u64
    FUND_CONTRACT_EXISTS = 256  # contract id already used
    FUND_UNKNOWN_CONTRACT = 257  # approve/cancel of a contract id never created
    FUND_UNKNOWN_MILESTONE = 258  # milestone index beyond the contract's milestones
    FUND_NOT_INSPECTOR = 259  # approve signed by someone other than the milestone's inspector
    FUND_MILESTONE_PAID = 260  # approve of a milestone already paid
    FUND_CONTRACT_CANCELLED = 261  # approve/cancel on a cancelled contract
    FUND_CONTRACT_SETTLED = 262  # cancel of a contract with nothing left unpaid
    FUND_INSPECTOR_IS_PAYEE = 263  # a milestone whose inspector is its own subcontractor

    # --- activity rewards (issue 7 part A; docs/services/reward.md) ---
    REWARD_DUPLICATE_RECORD = 301  # award for an activity record id already counted
    REWARD_OVERFLOW = 302  # a balance or the supply would exceed u64
    REWARD_INSUFFICIENT_POINTS = 303  # transfer/redeem of more points than the holder has
    REWARD_SELF_TRANSFER = 304  # transfer to the signer's own key
    REWARD_NOT_MERCHANT = 305  # redeem at a key that is no agency with role reward_merchant

    # --- notary extensions (issue 7 part B; docs/services/notary.md) ---
    NOTARY_BATCH_DUPLICATE = 105  # notary.anchor_batch names the same hash twice
    NOTARY_EXPIRY_PASSED = 106  # expires_at_ms is not after the block time

    # --- shared credentials (issue 7 part B; docs/services/credential.md) ---
    CREDENTIAL_BAD_WINDOW = 350  # valid_from_ms is not before valid_until_ms
    CREDENTIAL_EXPIRY_PASSED = 351  # valid_until_ms is not after the block time
    CREDENTIAL_DUPLICATE = 352  # the credential id (issuer, holder, type, serial) exists
    CREDENTIAL_UNKNOWN = 353  # revoke of a credential id never issued
    CREDENTIAL_NOT_ISSUER = 354  # revoke by an agency other than the issuing one
    CREDENTIAL_ALREADY_REVOKED = 355  # revoke of a credential already revoked

    # --- e-voting (issue 7 part B; docs/services/vote.md) ---
    VOTE_BAD_OPTIONS = 400  # an election's options repeat a text
    VOTE_BAD_VOTERS = 401  # an election's voter list repeats a key
    VOTE_BAD_WINDOW = 402  # start_height not above the block height, or end below start
    VOTE_DUPLICATE_ELECTION = 403  # create of an election id already used
    VOTE_UNKNOWN_ELECTION = 404  # cast/close of an election id never created
    VOTE_NOT_STARTED = 405  # ballot below the election's start_height
    VOTE_ENDED = 406  # ballot above the election's end_height
    VOTE_NOT_ELIGIBLE = 407  # ballot from a key not on the voter list
    VOTE_ALREADY_VOTED = 408  # second ballot from the same voter (no re-voting)
    VOTE_BAD_OPTION = 409  # ballot for an option index the election does not have
    VOTE_NOT_ENDED = 410  # close at or below end_height
    VOTE_ALREADY_CLOSED = 411  # close of an election already closed
    VOTE_TALLY_NOT_READY = 412  # query only: vote/results of an election not closed yet
    VOTE_FULL = 413  # ballot beyond the election's ballots_max

    # --- governance (issue 7 part B; docs/services/gov.md) ---
    GOV_NOT_COUNCIL = 450  # propose/approve by a key not on the genesis council
    GOV_DUPLICATE_PROPOSAL = 451  # propose with a proposal id already used
    GOV_AGENCY_EXISTS = 452  # add of an agency name already registered
    GOV_KEY_IN_USE = 453  # add/rotate to a public key some agency already has
    GOV_BAD_ROLES = 454  # a role list repeating a role
    GOV_UNKNOWN_AGENCY = 455  # remove/set_roles/rotate of an agency name not registered
    GOV_TOO_MANY_AGENCIES = 456  # add beyond limits.agencies_max
    GOV_LAST_AGENCY = 457  # remove of the only agency left
    GOV_UNKNOWN_PROPOSAL = 458  # approve of a proposal id never proposed
    GOV_ALREADY_APPLIED = 459  # approve of a proposal already applied
    GOV_ALREADY_APPROVED = 460  # a council member approving the same proposal twice


# Ranges reserved per service; a test checks every Code lies in its owner's range.
SERVICE_CODE_RANGES: dict[str, range] = {
    "generic": range(1, 100),
    "notary": range(100, 200),
    "asset": range(200, 250),
    "fund": range(250, 300),
    "reward": range(300, 350),
    "credential": range(350, 400),
    "vote": range(400, 450),
    "gov": range(450, 500),
}
