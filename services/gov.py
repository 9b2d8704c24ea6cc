"""Governance: the genesis council changes agencies, their roles and keys by threshold vote.

A council member proposes a change (add an agency, remove one, set its roles, rotate its
key); council members approve it; the approval that reaches the genesis threshold applies
the change in that same tx (the proposer's own proposal counts as its first approval). The
change is checked against state when proposed and again when applied, since other changes
may have applied in between; a change that no longer fits refuses the approving tx and
nothing changes (docs/services/gov.md).

Governance is the one service that writes outside its own prefix: agencies and roles live
under `agency/` (services/agencies.py), because every role check in the router is one read
of `agency/key/<signer>`. The router allows "gov" to write `agency/` and nothing else
(router._assert_writes_owned); the records written here are agencies.AgencyRecord, the
same type the registry writes at genesis.

Key rotation without downtime: until the rotation tx executes, the old key is the agency's
key and signs as before (while the new one has no role); in the block where it executes,
`agency/key/<old>` is deleted and `agency/key/<new>` written, so every later tx from the old
key is UNAUTHORIZED and the new key carries the agency's roles. Records issued under the
old key keep it as their issuer; the notary and credentials let the agency's new key revoke
them (same agency name).

Rules (role None: the service checks council membership itself):
    gov.propose  signer on the council                        else GOV_NOT_COUNCIL
                 proposal id unused                           else GOV_DUPLICATE_PROPOSAL
                 change fits current state (below)
    gov.approve  signer on the council                        else GOV_NOT_COUNCIL
                 proposal exists                              else GOV_UNKNOWN_PROPOSAL
                 not applied yet                              else GOV_ALREADY_APPLIED
                 not approved by this member yet              else GOV_ALREADY_APPROVED
                 on reaching the threshold: change fits (below)
    change fits: roles distinct                               else GOV_BAD_ROLES
                 add: name free                               else GOV_AGENCY_EXISTS
                      key free                                else GOV_KEY_IN_USE
                      fewer than limits.agencies_max agencies else GOV_TOO_MANY_AGENCIES
                 remove / set_roles / rotate_key: name known  else GOV_UNKNOWN_AGENCY
                 remove: not the last agency                  else GOV_LAST_AGENCY
                 rotate_key: new key free                     else GOV_KEY_IN_USE

State:
    gov/proposal/<u8 len><ASCII id>  -> msgpack ProposalRecord
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from protocol.crypto import PUBLIC_KEY_BYTES
from protocol.results import TxResult
from services import agencies, limits, params
from services.codes import Code
from services.genesis import ServicesGenesis
from services.interface import QueryError, QueryResult, StateView
from services.overlay import Overlay
from services.service import Delivery, KindSpec, TxContext

log = logging.getLogger(__name__)

PROPOSAL_PREFIX = b"gov/proposal/"
COUNCIL_MAX = 32

ProposalId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+\Z")
]
AgencyName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]*\Z")
]
Role = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+\Z")]
Roles = Annotated[list[Role], msgspec.Meta(max_length=limits.agency_roles_max)]
PublicKey = Annotated[bytes, msgspec.Meta(min_length=PUBLIC_KEY_BYTES, max_length=PUBLIC_KEY_BYTES)]


class AddAgency(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="add_agency", tag_field="action"
):
    name: AgencyName
    public_key: PublicKey
    roles: Roles


class RemoveAgency(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="remove_agency", tag_field="action"
):
    name: AgencyName


class SetRoles(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="set_roles", tag_field="action"
):
    name: AgencyName
    roles: Roles


class RotateKey(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="rotate_key", tag_field="action"
):
    name: AgencyName
    new_public_key: PublicKey


Change = AddAgency | RemoveAgency | SetRoles | RotateKey


class ProposeBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `gov.propose` (msgpack map); `change` is a map tagged by its `action`."""

    proposal_id: ProposalId
    change: Change


class ApproveBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `gov.approve` (msgpack map)."""

    proposal_id: ProposalId


class ProposalRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    proposal_id: str
    proposer: bytes
    change: Change
    approvals: list[bytes]  # council keys, in approval order; the proposer first
    height: int
    tx_hash: bytes
    applied_height: int | None = None
    applied_tx_hash: bytes | None = None


_PROPOSAL_DECODER = msgspec.msgpack.Decoder(ProposalRecord)
_ENCODER = msgspec.msgpack.Encoder()


def council_invalid(genesis: ServicesGenesis) -> str | None:
    """Why the genesis council cannot govern, or None. An empty council with threshold 0
    is valid: governance is then off and every gov tx is GOV_NOT_COUNCIL."""
    council, threshold = genesis.council, genesis.council_threshold
    if not council:
        return None if threshold == 0 else "council_threshold without a council"
    if len(council) > COUNCIL_MAX:
        return f"at most {COUNCIL_MAX} council members"
    if any(len(key) != PUBLIC_KEY_BYTES for key in council):
        return f"council keys must be {PUBLIC_KEY_BYTES} bytes"
    if len(set(council)) != len(council):
        return "council keys must be unique"
    if not 1 <= threshold <= len(council):
        return f"council_threshold must be 1..{len(council)}"
    return None


def proposal_key(proposal_id: str) -> bytes:
    raw = proposal_id.encode("ascii")
    assert 1 <= len(raw) <= 64, proposal_id
    return PROPOSAL_PREFIX + bytes([len(raw)]) + raw


def encode_propose(proposal_id: str, change: Change) -> bytes:
    """Client helper: the body bytes of a `gov.propose` tx."""
    return _ENCODER.encode(ProposeBody(proposal_id=proposal_id, change=change))


def encode_approve(proposal_id: str) -> bytes:
    return _ENCODER.encode(ApproveBody(proposal_id=proposal_id))


def load_proposal(state: StateView, proposal_id: str) -> ProposalRecord | None:
    raw = state.get(proposal_key(proposal_id))
    return None if raw is None else _PROPOSAL_DECODER.decode(raw)


class GovService:
    name = "gov"
    kinds: Mapping[str, KindSpec] = {
        "gov.propose": KindSpec(body_type=ProposeBody, role=None),
        "gov.approve": KindSpec(body_type=ApproveBody, role=None),
    }
    query_paths: tuple[str, ...] = ("gov/council", "gov/proposal", "gov/proposals")

    def __init__(self, genesis: ServicesGenesis) -> None:
        reason = council_invalid(genesis)
        if reason is not None:
            raise ValueError(f"invalid services genesis: {reason}")
        self._council = tuple(genesis.council)
        self._threshold = genesis.council_threshold

    def genesis_writes(self) -> Mapping[bytes, bytes | None]:
        return {}

    def deliver(self, ctx: TxContext, body: Any, state: Overlay) -> Delivery:
        if ctx.signer not in self._council:
            return _refuse(Code.GOV_NOT_COUNCIL, "signer is not on the council")
        if isinstance(body, ProposeBody):
            return self._propose(ctx, body, state)
        assert isinstance(body, ApproveBody), type(body)
        return self._approve(ctx, body, state)

    def _propose(self, ctx: TxContext, body: ProposeBody, state: Overlay) -> Delivery:
        if state.get(proposal_key(body.proposal_id)) is not None:
            return _refuse(Code.GOV_DUPLICATE_PROPOSAL, "proposal id already used")
        refusal = change_refusal(state, body.change)
        if refusal is not None:
            return refusal
        record = ProposalRecord(
            proposal_id=body.proposal_id,
            proposer=ctx.signer,
            change=body.change,
            approvals=[ctx.signer],
            height=ctx.height,
            tx_hash=ctx.tx_hash,
        )
        return self._record_or_apply(ctx, record, state, log_text="proposed")

    def _approve(self, ctx: TxContext, body: ApproveBody, state: Overlay) -> Delivery:
        record = load_proposal(state, body.proposal_id)
        if record is None:
            return _refuse(Code.GOV_UNKNOWN_PROPOSAL, "no such proposal")
        if record.applied_height is not None:
            return _refuse(Code.GOV_ALREADY_APPLIED, "proposal already applied")
        if ctx.signer in record.approvals:
            return _refuse(Code.GOV_ALREADY_APPROVED, "member already approved")
        approved = msgspec.structs.replace(record, approvals=[*record.approvals, ctx.signer])
        return self._record_or_apply(ctx, approved, state, log_text="approved")

    def _record_or_apply(
        self, ctx: TxContext, record: ProposalRecord, state: Overlay, *, log_text: str
    ) -> Delivery:
        """Store the proposal; if its approvals reach the threshold, apply its change now."""
        assert len(record.approvals) <= self._threshold, "a proposal outlived its threshold"
        applied = len(record.approvals) == self._threshold
        if applied:
            refusal = change_refusal(state, record.change)
            if refusal is not None:
                return refusal
            apply_change(state, record.change)
            record = msgspec.structs.replace(
                record, applied_height=ctx.height, applied_tx_hash=ctx.tx_hash
            )
        state.put(proposal_key(record.proposal_id), _ENCODER.encode(record))
        change = record.change
        return Delivery(
            result=TxResult(code=Code.OK, log="applied" if applied else log_text),
            attributes=(
                ("gov.proposal", record.proposal_id),
                ("gov.action", action_name(change)),
                ("gov.agency", change.name),
                ("gov.applied", "true" if applied else "false"),
            ),
        )

    def query(self, path: str, query: Mapping[str, str], state: StateView) -> QueryResult:
        if path == "gov/council":
            params.expect_params(query, required=())
            value = {"members": [key.hex() for key in self._council], "threshold": self._threshold}
            return QueryResult(found=True, value=value)
        if path == "gov/proposal":
            params.expect_params(query, required=("id",))
            record = load_proposal(state, _id_param(query, "id"))
            if record is None:
                return QueryResult(found=False)
            return QueryResult(found=True, value=self._proposal_json(record))
        if path == "gov/proposals":
            return self._query_proposals(query, state)
        raise QueryError(f"unknown path {path!r}")

    def _proposal_json(self, record: ProposalRecord) -> dict[str, Any]:
        return {
            "proposal_id": record.proposal_id,
            "proposer": record.proposer.hex(),
            "change": change_json(record.change),
            "approvals": [key.hex() for key in record.approvals],
            "threshold": self._threshold,
            "height": record.height,
            "tx_hash": record.tx_hash.hex(),
            "status": "pending" if record.applied_height is None else "applied",
            "applied_height": record.applied_height,
            "applied_tx_hash": None
            if record.applied_tx_hash is None
            else record.applied_tx_hash.hex(),
        }

    def _query_proposals(self, query: Mapping[str, str], state: StateView) -> QueryResult:
        """Proposals in id order (length, then bytes); `next` is the id to pass as `after`."""
        params.expect_params(query, required=(), optional=("after", "limit"))
        limit = params.limit_param(query)
        start_after = proposal_key(_id_param(query, "after")) if query.get("after") else None
        rows = list(state.scan(PROPOSAL_PREFIX, start_after=start_after, limit=limit + 1))
        records = [_PROPOSAL_DECODER.decode(raw) for _, raw in rows[:limit]]
        next_id = records[-1].proposal_id if len(rows) > limit else None
        value = {"proposals": [self._proposal_json(r) for r in records], "next": next_id}
        return QueryResult(found=True, value=value)


def _refuse(code: Code, text: str) -> Delivery:
    return Delivery(result=TxResult(code=code, log=text))


def _id_param(query: Mapping[str, str], name: str) -> str:
    text = query[name]
    if not 1 <= len(text) <= 64 or not text.isascii():
        raise QueryError(f"param {name!r} must be 1..64 ASCII characters")
    if not all(char.isalnum() or char in "._:-" for char in text):
        raise QueryError(f"param {name!r} may hold only A-Z a-z 0-9 . _ : -")
    return text


def _agency_count_at_least(state: StateView, count: int) -> bool:
    return len(list(state.scan(agencies.NAME_PREFIX, limit=count))) >= count


def change_refusal(state: StateView, change: Change) -> Delivery | None:
    """Why `change` cannot apply to `state` now, or None."""
    roles = getattr(change, "roles", [])
    if len(set(roles)) != len(roles):
        return _refuse(Code.GOV_BAD_ROLES, "roles repeat a role")
    existing = agencies.agency_by_name(state, change.name)
    if isinstance(change, AddAgency):
        if existing is not None:
            return _refuse(Code.GOV_AGENCY_EXISTS, "agency name already registered")
        if agencies.agency_by_key(state, change.public_key) is not None:
            return _refuse(Code.GOV_KEY_IN_USE, "public key belongs to an agency")
        if _agency_count_at_least(state, limits.agencies_max):
            return _refuse(Code.GOV_TOO_MANY_AGENCIES, "agency registry is full")
        return None
    if existing is None:
        return _refuse(Code.GOV_UNKNOWN_AGENCY, "no agency of that name")
    if isinstance(change, RemoveAgency) and not _agency_count_at_least(state, 2):
        return _refuse(Code.GOV_LAST_AGENCY, "cannot remove the last agency")
    if isinstance(change, RotateKey) and agencies.agency_by_key(state, change.new_public_key):
        return _refuse(Code.GOV_KEY_IN_USE, "public key belongs to an agency")
    return None


def _put_agency(state: Overlay, name: str, public_key: bytes, roles: list[str]) -> None:
    record = agencies.AgencyRecord(name=name, public_key=public_key, roles=sorted(roles))
    state.put(agencies.KEY_PREFIX + public_key, _ENCODER.encode(record))
    state.put(agencies.NAME_PREFIX + name.encode("utf-8"), public_key)


def apply_change(state: Overlay, change: Change) -> None:
    """Write the change to the agency registry; change_refusal(state, change) was None."""
    if isinstance(change, AddAgency):
        _put_agency(state, change.name, change.public_key, change.roles)
        return
    existing = agencies.agency_by_name(state, change.name)
    assert existing is not None, "change_refusal admitted an unknown agency"
    if isinstance(change, RemoveAgency):
        state.delete(agencies.KEY_PREFIX + existing.public_key)
        state.delete(agencies.NAME_PREFIX + change.name.encode("utf-8"))
    elif isinstance(change, SetRoles):
        _put_agency(state, change.name, existing.public_key, change.roles)
    else:
        assert isinstance(change, RotateKey), type(change)
        state.delete(agencies.KEY_PREFIX + existing.public_key)
        _put_agency(state, change.name, change.new_public_key, existing.roles)


def action_name(change: Change) -> str:
    tag = type(change).__struct_config__.tag
    assert isinstance(tag, str), tag
    return tag


def change_json(change: Change) -> dict[str, Any]:
    value: dict[str, Any] = {"action": action_name(change), "name": change.name}
    if isinstance(change, AddAgency):
        value["public_key"] = change.public_key.hex()
    if isinstance(change, AddAgency | SetRoles):
        value["roles"] = sorted(change.roles)
    if isinstance(change, RotateKey):
        value["new_public_key"] = change.new_public_key.hex()
    return value
