"""E-voting: elections with options, an eligible-voter list and a window in block heights.

An agency with role `vote_admin` creates an election; each eligible voter — on an explicit
list of keys, or holding a credential of a given type from a given issuing agency — casts
exactly one ballot while the window [start_height, end_height] is open; after end_height
anyone closes it, which counts every ballot exactly once and stores the tally; only then is
the tally readable (docs/services/vote.md).

Heights, not times, bound the window: the height is what every validator agrees on without
argument. No re-voting: a second ballot from the same key is refused, so "counted once"
needs no rule about which ballot wins. Ballots are public records (who voted for what), like
a show of hands among agencies or a recorded council vote; secret ballots would need
blinded or encrypted ballots, which this service does not attempt.

Rules (the router has already checked envelope, role and body):
    vote.create  options distinct                           else VOTE_BAD_OPTIONS
                 voters distinct, and exactly one of a
                 voter list or an eligible_credential       else VOTE_BAD_VOTERS
                 height < start_height <= end_height        else VOTE_BAD_WINDOW
                 election id unused                         else VOTE_DUPLICATE_ELECTION
    vote.cast    election exists                            else VOTE_UNKNOWN_ELECTION
                 height >= start_height                     else VOTE_NOT_STARTED
                 height <= end_height                       else VOTE_ENDED
                 signer on the voter list, or holding a
                 standing matching credential               else VOTE_NOT_ELIGIBLE
                 no ballot from the signer yet              else VOTE_ALREADY_VOTED
                 fewer ballots than ballots_max             else VOTE_FULL
                 option index < number of options           else VOTE_BAD_OPTION
    vote.close   election exists                            else VOTE_UNKNOWN_ELECTION
                 height > end_height                        else VOTE_NOT_ENDED
                 not closed yet                             else VOTE_ALREADY_CLOSED

State (<eid> = u8 length | ASCII election id, so ids never prefix one another):
    vote/election/<eid>              -> msgpack ElectionRecord (tally inside once closed)
    vote/voters/<eid>                -> msgpack sorted list of 32B voter keys
    vote/ballot/<eid><32B voter>     -> msgpack Ballot
    vote/count/<eid>                 -> u32 ballots cast so far
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from protocol.crypto import PUBLIC_KEY_BYTES
from protocol.results import TxResult
from services import agencies, credential, params
from services.codes import Code
from services.interface import QueryError, QueryResult, StateView
from services.overlay import Overlay
from services.service import Delivery, KindSpec, TxContext

log = logging.getLogger(__name__)

ROLE = "vote_admin"
ELECTION_PREFIX = b"vote/election/"
VOTERS_PREFIX = b"vote/voters/"
BALLOT_PREFIX = b"vote/ballot/"
COUNT_PREFIX = b"vote/count/"
VOTERS_MAX = 1000  # 34 B each in a body: well inside the 64 KiB body bound
# Credential elections have no list to bound the ballots, so they get this cap: `vote.close`
# scans every ballot in one tx.
CREDENTIAL_BALLOTS_MAX = VOTERS_MAX
# A voter's credentials examined for eligibility (their first ones in issuance order).
HOLDER_CREDENTIALS_SCANNED = 64
OPTIONS_MAX = 32
I63_MAX = 2**63 - 1  # msgspec integer bounds must fit an int64

_PRINTABLE = r"^[^\x00-\x1f\x7f]*\Z"
ElectionId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+\Z")
]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=_PRINTABLE)]
OptionText = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_PRINTABLE)]
PublicKey = Annotated[bytes, msgspec.Meta(min_length=PUBLIC_KEY_BYTES, max_length=PUBLIC_KEY_BYTES)]
Height = Annotated[int, msgspec.Meta(ge=1, le=I63_MAX)]
AgencyName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_PRINTABLE)]


class CredentialRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Eligible: holders of a standing credential of `cred_type` issued by `issuer_agency`
    (an agency name, so the rule survives the agency's key rotation)."""

    cred_type: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_PRINTABLE)]
    issuer_agency: AgencyName


class CreateBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `vote.create` (msgpack map)."""

    election_id: ElectionId
    title: Title
    options: Annotated[list[OptionText], msgspec.Meta(min_length=2, max_length=OPTIONS_MAX)]
    start_height: Height
    end_height: Height
    voters: Annotated[list[PublicKey], msgspec.Meta(max_length=VOTERS_MAX)] = msgspec.field(
        default_factory=list
    )
    eligible_credential: CredentialRule | None = None


class CastBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `vote.cast` (msgpack map): the option's index in the election's options."""

    election_id: ElectionId
    option: Annotated[int, msgspec.Meta(ge=0, le=OPTIONS_MAX - 1)]


class CloseBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of `vote.close` (msgpack map)."""

    election_id: ElectionId


class Tally(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    counts: list[int]  # per option, in option order
    ballots: int
    height: int  # of the closing tx
    tx_hash: bytes


class ElectionRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    election_id: str
    admin: bytes
    agency: str
    title: str
    options: list[str]
    start_height: int
    end_height: int
    voter_count: int  # listed voters; 0 for a credential election
    ballots_max: int
    height: int
    tx_hash: bytes
    eligible_credential: CredentialRule | None = None
    tally: Tally | None = None


class Ballot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    option: int
    height: int
    tx_hash: bytes


_ELECTION_DECODER = msgspec.msgpack.Decoder(ElectionRecord)
_VOTERS_DECODER = msgspec.msgpack.Decoder(list[bytes])
_BALLOT_DECODER = msgspec.msgpack.Decoder(Ballot)
_ENCODER = msgspec.msgpack.Encoder()


def election_key(election_id: str) -> bytes:
    raw = election_id.encode("ascii")
    assert 1 <= len(raw) <= 64, election_id
    return bytes([len(raw)]) + raw


def encode_create(
    *,
    election_id: str,
    title: str,
    options: list[str],
    voters: list[bytes],
    start_height: int,
    end_height: int,
    eligible_credential: CredentialRule | None = None,
) -> bytes:
    """Client helper: the body bytes of a `vote.create` tx."""
    body = CreateBody(
        election_id=election_id,
        title=title,
        options=options,
        voters=voters,
        start_height=start_height,
        end_height=end_height,
        eligible_credential=eligible_credential,
    )
    return _ENCODER.encode(body)


def encode_cast(election_id: str, option: int) -> bytes:
    return _ENCODER.encode(CastBody(election_id=election_id, option=option))


def encode_close(election_id: str) -> bytes:
    return _ENCODER.encode(CloseBody(election_id=election_id))


def load_election(state: StateView, election_id: str) -> ElectionRecord | None:
    raw = state.get(ELECTION_PREFIX + election_key(election_id))
    return None if raw is None else _ELECTION_DECODER.decode(raw)


class VoteService:
    name = "vote"
    kinds: Mapping[str, KindSpec] = {
        "vote.create": KindSpec(body_type=CreateBody, role=ROLE),
        "vote.cast": KindSpec(body_type=CastBody, role=None),
        "vote.close": KindSpec(body_type=CloseBody, role=None),
    }
    query_paths: tuple[str, ...] = ("vote/election", "vote/results", "vote/ballot")

    def genesis_writes(self) -> Mapping[bytes, bytes | None]:
        return {}

    def deliver(self, ctx: TxContext, body: Any, state: Overlay) -> Delivery:
        if isinstance(body, CreateBody):
            return _create(ctx, body, state)
        if isinstance(body, CastBody):
            return _cast(ctx, body, state)
        assert isinstance(body, CloseBody), type(body)
        return _close(ctx, body, state)

    def query(self, path: str, query: Mapping[str, str], state: StateView) -> QueryResult:
        if path == "vote/election":
            return _query_election(query, state)
        if path == "vote/results":
            return _query_tally(query, state)
        if path == "vote/ballot":
            return _query_ballot(query, state)
        raise QueryError(f"unknown path {path!r}")


def _refuse(code: Code, text: str) -> Delivery:
    return Delivery(result=TxResult(code=code, log=text))


def _create(ctx: TxContext, body: CreateBody, state: Overlay) -> Delivery:
    if len(set(body.options)) != len(body.options):
        return _refuse(Code.VOTE_BAD_OPTIONS, "options repeat a text")
    voters = sorted(body.voters)
    if any(left == right for left, right in itertools.pairwise(voters)):
        return _refuse(Code.VOTE_BAD_VOTERS, "voter list repeats a key")
    if (len(voters) > 0) == (body.eligible_credential is not None):
        return _refuse(Code.VOTE_BAD_VOTERS, "give either voters or eligible_credential")
    if not ctx.height < body.start_height <= body.end_height:
        return _refuse(Code.VOTE_BAD_WINDOW, "window must start above this height, end >= start")
    key = election_key(body.election_id)
    if state.get(ELECTION_PREFIX + key) is not None:
        return _refuse(Code.VOTE_DUPLICATE_ELECTION, "election id already used")
    agency = agencies.agency_by_key(state, ctx.signer)
    assert agency is not None, "router admitted a signer with no agency"
    record = ElectionRecord(
        election_id=body.election_id,
        admin=ctx.signer,
        agency=agency.name,
        title=body.title,
        options=list(body.options),
        start_height=body.start_height,
        end_height=body.end_height,
        voter_count=len(voters),
        ballots_max=len(voters) if voters else CREDENTIAL_BALLOTS_MAX,
        height=ctx.height,
        tx_hash=ctx.tx_hash,
        eligible_credential=body.eligible_credential,
    )
    state.put(ELECTION_PREFIX + key, _ENCODER.encode(record))
    if voters:
        state.put(VOTERS_PREFIX + key, _ENCODER.encode(voters))
    return Delivery(
        result=TxResult(code=Code.OK, log="election created"),
        attributes=(("vote.election", body.election_id), ("vote.admin", agency.name)),
    )


def _is_eligible(ctx: TxContext, state: StateView, key: bytes, election: ElectionRecord) -> bool:
    rule = election.eligible_credential
    if rule is not None:
        return _holds_credential(ctx, state, rule)
    voter = ctx.signer
    raw = state.get(VOTERS_PREFIX + key)
    assert raw is not None, "election without its voter list"
    voters = _VOTERS_DECODER.decode(raw)
    position = bisect.bisect_left(voters, voter)
    return position < len(voters) and voters[position] == voter


def _holds_credential(ctx: TxContext, state: StateView, rule: CredentialRule) -> bool:
    """The signer holds a matching credential that stands at this block's time (not
    revoked, inside its window); only their first HOLDER_CREDENTIALS_SCANNED are read."""
    prefix = credential.HOLDER_PREFIX + ctx.signer
    for _, ident in state.scan(prefix, limit=HOLDER_CREDENTIALS_SCANNED):
        record = credential.load_credential(state, ident)
        assert record is not None, "holder index points at a missing credential"
        if (
            record.cred_type == rule.cred_type
            and record.agency == rule.issuer_agency
            and credential.credential_status(record, ctx.time_ms) == "valid"
        ):
            return True
    return False


def _ballot_count(state: StateView, key: bytes) -> int:
    raw = state.get(COUNT_PREFIX + key)
    return 0 if raw is None else int.from_bytes(raw, "big")


def _cast(ctx: TxContext, body: CastBody, state: Overlay) -> Delivery:
    key = election_key(body.election_id)
    election = load_election(state, body.election_id)
    if election is None:
        return _refuse(Code.VOTE_UNKNOWN_ELECTION, "no such election")
    if ctx.height < election.start_height:
        return _refuse(Code.VOTE_NOT_STARTED, "election has not started")
    if ctx.height > election.end_height:
        return _refuse(Code.VOTE_ENDED, "election has ended")
    if not _is_eligible(ctx, state, key, election):
        return _refuse(Code.VOTE_NOT_ELIGIBLE, "signer is not an eligible voter")
    ballot_key = BALLOT_PREFIX + key + ctx.signer
    if state.get(ballot_key) is not None:
        return _refuse(Code.VOTE_ALREADY_VOTED, "signer has already voted")
    count = _ballot_count(state, key)
    if count >= election.ballots_max:
        return _refuse(Code.VOTE_FULL, "election holds the most ballots it may")
    if body.option >= len(election.options):
        return _refuse(Code.VOTE_BAD_OPTION, "no such option")
    ballot = Ballot(option=body.option, height=ctx.height, tx_hash=ctx.tx_hash)
    state.put(ballot_key, _ENCODER.encode(ballot))
    state.put(COUNT_PREFIX + key, (count + 1).to_bytes(4, "big"))
    return Delivery(
        result=TxResult(code=Code.OK, log="ballot cast"),
        attributes=(("vote.election", body.election_id), ("vote.voter", ctx.signer.hex())),
    )


def _close(ctx: TxContext, body: CloseBody, state: Overlay) -> Delivery:
    """Count every ballot once: a bounded scan (at most ballots_max rows) of the ballots."""
    key = election_key(body.election_id)
    election = load_election(state, body.election_id)
    if election is None:
        return _refuse(Code.VOTE_UNKNOWN_ELECTION, "no such election")
    if ctx.height <= election.end_height:
        return _refuse(Code.VOTE_NOT_ENDED, "election is still open")
    if election.tally is not None:
        return _refuse(Code.VOTE_ALREADY_CLOSED, "election is already closed")
    counts = [0] * len(election.options)
    rows = list(state.scan(BALLOT_PREFIX + key, limit=election.ballots_max + 1))
    assert len(rows) <= election.ballots_max, "more ballots than the election's bound"
    assert len(rows) == _ballot_count(state, key), "ballot counter out of step"
    for _, raw in rows:
        counts[_BALLOT_DECODER.decode(raw).option] += 1
    tally = Tally(counts=counts, ballots=len(rows), height=ctx.height, tx_hash=ctx.tx_hash)
    assert sum(counts) == tally.ballots
    closed = msgspec.structs.replace(election, tally=tally)
    state.put(ELECTION_PREFIX + key, _ENCODER.encode(closed))
    return Delivery(
        result=TxResult(code=Code.OK, log="election closed"),
        attributes=(("vote.election", body.election_id), ("vote.ballots", str(len(rows)))),
    )


def _election_param(query: Mapping[str, str]) -> str:
    text = query["id"]
    if not 1 <= len(text) <= 64 or not text.isascii():
        raise QueryError("param 'id' must be 1..64 ASCII characters")
    if not all(char.isalnum() or char in "._:-" for char in text):
        raise QueryError("param 'id' may hold only A-Z a-z 0-9 . _ : -")
    return text


def election_json(election: ElectionRecord) -> dict[str, Any]:
    return {
        "election_id": election.election_id,
        "admin": election.admin.hex(),
        "agency": election.agency,
        "title": election.title,
        "options": election.options,
        "start_height": election.start_height,
        "end_height": election.end_height,
        "voter_count": election.voter_count,
        "ballots_max": election.ballots_max,
        "eligible_credential": None
        if election.eligible_credential is None
        else {
            "cred_type": election.eligible_credential.cred_type,
            "issuer_agency": election.eligible_credential.issuer_agency,
        },
        "height": election.height,
        "tx_hash": election.tx_hash.hex(),
        "closed": election.tally is not None,
    }


def _query_election(query: Mapping[str, str], state: StateView) -> QueryResult:
    params.expect_params(query, required=("id",))
    election = load_election(state, _election_param(query))
    if election is None:
        return QueryResult(found=False)
    return QueryResult(found=True, value=election_json(election))


def _query_tally(query: Mapping[str, str], state: StateView) -> QueryResult:
    """The counts, only once the election is closed; before, found=false with the code."""
    params.expect_params(query, required=("id",))
    election = load_election(state, _election_param(query))
    if election is None:
        return QueryResult(found=False)
    tally = election.tally
    if tally is None:
        refusal = {"code": int(Code.VOTE_TALLY_NOT_READY), "log": "election is not closed yet"}
        return QueryResult(found=False, value=refusal)
    results = [
        {"index": index, "option": option, "votes": tally.counts[index]}
        for index, option in enumerate(election.options)
    ]
    value = {
        **election_json(election),
        "results": results,
        "ballots": tally.ballots,
        "closed_height": tally.height,
        "closed_tx_hash": tally.tx_hash.hex(),
    }
    return QueryResult(found=True, value=value)


def _query_ballot(query: Mapping[str, str], state: StateView) -> QueryResult:
    """One voter's ballot: lets a voter check theirs was recorded (ballots are public)."""
    params.expect_params(query, required=("id", "voter"))
    election_id = _election_param(query)
    voter = params.hex_param(query, "voter", size=PUBLIC_KEY_BYTES)
    raw = state.get(BALLOT_PREFIX + election_key(election_id) + voter)
    if raw is None:
        return QueryResult(found=False)
    ballot = _BALLOT_DECODER.decode(raw)
    value = {
        "election_id": election_id,
        "voter": voter.hex(),
        "option": ballot.option,
        "height": ballot.height,
        "tx_hash": ballot.tx_hash.hex(),
    }
    return QueryResult(found=True, value=value)
