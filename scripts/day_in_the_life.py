"""A day in the life of the city: the issue-7 scenario on a real 4-node PBFT cluster.

    .venv/bin/python scripts/day_in_the_life.py [--dir DIR] [--keep]

Creates a fresh testnet (4 PBFT validators, 3 agencies that hold every role and form the
governance council, threshold 2), starts it as real processes with node/cluster.py, and
drives every service through the public JSON-RPC only (node/client.py), sending each tx to
the next node in turn so that gossip and consensus carry it. It prints what a citizen would
see: each tx with its height and hash, refusals with their code and log, balances and
histories read back from a *different* node than the one that took the tx, a credential
checked offline, a notary document verified, an election tallied, a council decision.

It ends with an audit: every node must report the same height and app hash, and one tx
proof is verified offline with nothing but genesis.json. Every tx states the result it
expects; any other result stops the scenario (ScenarioError), so a run that finishes is
itself a check. `main()` returns a DaySummary that tests assert on. The cluster is torn
down at the end (only the PIDs this run started) unless --keep.

Bounds: every RPC call has a timeout, every wait a deadline, the one filler loop a count;
a run takes about 10 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.cli_common import CliError
from node.cli_init import make_testnet
from node.client import RpcClient
from node.cluster import cluster_down, cluster_up
from node.genesis import Genesis, load_genesis
from node.keys import load_key_file
from protocol.crypto import SigningKey, sha256
from protocol.proof import TxProof, verify_tx_proof
from protocol.proof_json import proof_from_json
from protocol.tx import sign_tx
from services import asset, credential, fund_bodies, gov, notary, reward, vote
from services.codes import Code
from services.credential_offline import (
    Presentation,
    PresentationError,
    sign_presentation,
    verify_presentation,
)

log = logging.getLogger(__name__)

NODES = 4
AGENCIES = 3  # every role each; the council, threshold 2
SERVICES = ("notary", "asset", "fund", "credential", "reward", "vote", "gov")
EXPIRY_HEIGHTS = 1_000  # a tx expires this many heights after the latest one we saw
WAIT_S = 15.0  # deadline of any single wait for a node to reach a height or agree
POLL_S = 0.05
FILLER_TXS_MAX = 40  # bound on txs sent only to move the chain past the election's end
ELECTION_OPENS_AFTER = 5  # heights from the latest block to the opening of the polls
ELECTION_LENGTH = 20  # heights the polls stay open
BALLOT_OPTIONS = ("New playground", "Library extension", "Riverside bike path")
DAY_MS = 86_400_000
APP_CODESPACES = ("", "app")  # a block result has none; an admission refusal says "app"

Out = Callable[[str], None]


class ScenarioError(Exception):
    """The chain answered something the scenario did not expect."""


@dataclass(frozen=True, slots=True)
class Party:
    """Someone who signs: an agency (with its genesis key) or a citizen (a fresh key)."""

    name: str
    key: SigningKey

    @property
    def public(self) -> bytes:
        return self.key.public_key


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str
    code: int
    log: str
    codespace: str  # "" or "app" for the services' codes; "mempool" for the node's own
    height: int  # 0 when refused at admission
    tx_hash: str
    node: int


@dataclass(frozen=True, slots=True)
class Step:
    """One tx of the story and the result the story expects of it."""

    who: Party
    kind: str
    body: bytes
    what: str  # the narrative, after the signer's name
    expect: Code = Code.OK
    quiet: bool = False  # routine: counted, but narrated by the caller in one line


def code_name(code: int, codespace: str = "") -> str:
    if codespace not in APP_CODESPACES:
        return codespace  # e.g. "mempool": the node's own numbering, not services/codes.py
    try:
        return Code(code).name
    except ValueError:
        return "?"


@dataclass(slots=True)
class DaySummary:
    """What the day produced; tests assert on it."""

    committed: Counter[str] = field(default_factory=Counter)  # per service
    refused: Counter[str] = field(default_factory=Counter)  # per service
    refusal_codes: dict[str, list[int]] = field(default_factory=dict)  # per service
    nodes_used: set[int] = field(default_factory=set)
    final_height: int = 0
    heights: list[int] = field(default_factory=list)  # per node, at the audit
    app_hashes: list[str] = field(default_factory=list)  # per node, at the audit
    app_hash_agreement: bool = False
    proof_verified: bool = False
    credential_offline_valid: bool = False
    credential_online_verdict: str = ""  # after the revocation
    notary_status: str = ""
    tally: dict[str, int] = field(default_factory=dict)
    fund_campaign: dict[str, Any] = field(default_factory=dict)
    reward_supply: dict[str, Any] = field(default_factory=dict)
    car_history: list[str] = field(default_factory=list)
    agencies_after: list[str] = field(default_factory=list)


# --- the cluster ----------------------------------------------------------------------------


def free_base_port(nodes: int, attempts: int = 200) -> int:
    """A base port P whose testnet ports (P+10i+{0,1,2}) are all free on 127.0.0.1 now."""
    start = 40_000 + (os.getpid() * 37) % 15_000
    for attempt in range(attempts):
        base = 40_000 + (start - 40_000 + attempt * 50) % 20_000
        ports = [base + 10 * i + k for i in range(nodes) for k in range(3)]
        if all(_port_free(port) for port in ports):
            return base
    raise ScenarioError(f"no free port range for {nodes} nodes")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- talking to the chain -------------------------------------------------------------------


class City:
    """Signs, sends round-robin, reads back from another node, narrates, counts."""

    def __init__(self, clients: list[RpcClient], genesis: Genesis, out: Out) -> None:
        self.clients = clients
        self.genesis = genesis
        self.out = out
        self.summary = DaySummary()
        self.height = 0  # the highest height any answer showed us
        self._turn = itertools.count()
        self._nonces = itertools.count(1)  # fresh testnet: (signer, nonce) is never reused

    def say(self, text: str) -> None:
        self.out(text)

    def section(self, clock: str, title: str) -> None:
        self.out("")
        self.out(f"{clock}  {title}")
        self.out("-" * (len(clock) + 2 + len(title)))

    async def send(
        self, who: Party, kind: str, body: bytes, what: str, *, expect: Code = Code.OK
    ) -> Outcome:
        """One tx through the next node, waited for until committed (or refused)."""
        return (await self.submit([Step(who, kind, body, what, expect)]))[0]

    async def steps(self, *steps: Step) -> list[Outcome]:
        """Txs one after another: each is committed before the next is signed, so later
        steps see earlier ones (a double payment after a payment) and heights grow."""
        return [(await self.submit([step]))[0] for step in steps]

    async def submit(self, steps: Sequence[Step]) -> list[Outcome]:
        """Txs sent at once, each to the next node in turn: they meet in the mempools by
        gossip and often share a block. Narrated in the order given; ScenarioError if any
        result is not the step's `expect`."""
        nodes = [next(self._turn) % len(self.clients) for _ in steps]
        txs = [
            sign_tx(
                step.who.key,
                chain_id=self.genesis.chain_id,
                nonce=next(self._nonces),
                expiry_height=self.height + EXPIRY_HEIGHTS,
                kind=step.kind,
                body=step.body,
            )
            for step in steps
        ]
        answers = await asyncio.gather(
            *(self.clients[node].broadcast_tx_commit(tx) for node, tx in zip(nodes, txs))
        )
        outcomes = []
        for step, node, answer in zip(steps, nodes, answers):
            # A mempool refusal has no tx_result: its code is the admission check's.
            result = answer.get("tx_result") or answer.get("check_tx") or {}
            outcome = Outcome(
                kind=step.kind,
                code=int(result.get("code", -1)),
                log=str(result.get("log", "")),
                codespace=str(result.get("codespace", "")),
                height=int(answer.get("height") or 0),
                tx_hash=str(answer.get("hash", "")),
                node=node,
            )
            self._record(step, outcome)
            outcomes.append(outcome)
        return outcomes

    def _record(self, step: Step, outcome: Outcome) -> None:
        service = outcome.kind.split(".", 1)[0]
        self.height = max(self.height, outcome.height)
        self.summary.nodes_used.add(outcome.node)
        where = f"tx {outcome.tx_hash[:10]}…, node{outcome.node}"
        if outcome.code == Code.OK:
            self.summary.committed[service] += 1
            if not step.quiet:
                self.say(f"  {step.who.name} {step.what}  [height {outcome.height}, {where}]")
        else:
            self.summary.refused[service] += 1
            self.summary.refusal_codes.setdefault(service, []).append(outcome.code)
            stage = f"height {outcome.height}" if outcome.height else "refused at admission"
            self.say(f"  {step.who.name} {step.what}")
            name = code_name(outcome.code, outcome.codespace)
            self.say(f"    ✗ REFUSED {outcome.code} {name}: {outcome.log!r}  [{stage}, {where}]")
        if outcome.code != step.expect:
            raise ScenarioError(
                f"{outcome.kind} ({step.what}): expected {step.expect.name}, "
                f"got {outcome.code} {outcome.log!r}"
            )

    async def latest_height(self) -> int:
        """The highest committed height any node reports now."""
        statuses = await asyncio.gather(*(client.status() for client in self.clients))
        return max(int(status["sync_info"]["latest_block_height"]) for status in statuses)

    async def advance_to(self, height: int, who: Party) -> None:
        """Heights move only with blocks. If the day has not yet carried the chain to
        `height`, anchor hourly traffic reports until it has (at most FILLER_TXS_MAX)."""
        for filler in itertools.count():
            self.height = max(self.height, await self.latest_height())
            if self.height >= height:
                break
            if filler >= FILLER_TXS_MAX:
                raise ScenarioError(f"chain not at height {height} after {FILLER_TXS_MAX} txs")
            digest = sha256(f"traffic report {height}/{filler}".encode())
            body = notary.encode_anchor(digest, "traffic-report")
            await self.submit([Step(who, "notary.anchor", body, "", quiet=True)])
        if filler:
            self.say(
                f"  {who.name} anchors {filler} hourly traffic reports"
                f"  [the chain reaches height {self.height}]"
            )

    async def read(self, path: str, params: dict[str, str] | None = None) -> Any:
        """A query's value, from the next node once it has executed every height we saw."""
        node = next(self._turn) % len(self.clients)
        await self.wait_height(node, self.height)
        answer = await self.clients[node].query(path, params or {})
        return answer.get("value") if answer.get("found") else None

    async def wait_height(self, node: int, height: int) -> dict[str, Any]:
        """That node's sync_info once its committed (and executed) height reaches `height`."""
        deadline = time.monotonic() + WAIT_S
        while True:
            sync: dict[str, Any] = (await self.clients[node].status())["sync_info"]
            if int(sync["latest_block_height"]) >= height:
                return sync
            if time.monotonic() > deadline:
                raise ScenarioError(f"node{node} did not reach height {height} in {WAIT_S:g} s")
            await asyncio.sleep(POLL_S)

    async def block_time_ms(self) -> int:
        sync = await self.wait_height(0, self.height)
        return int(sync["latest_block_time_ms"])


# --- the day --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cast:
    city_hall: Party  # agency0
    foundation: Party  # agency1
    district: Party  # agency2
    kim: Party
    lee: Party
    park: Party
    choi: Party
    jung: Party
    builder: Party  # a subcontractor
    inspector: Party  # a building inspector
    stranger: Party  # not on any list
    mapo: Party  # an agency the council will add


@dataclass(frozen=True, slots=True)
class Election:
    election_id: str
    voters: list[Party]
    start: int  # first height at which a ballot counts
    end: int  # last height at which a ballot counts


def make_cast(agency_keys: list[SigningKey]) -> Cast:
    def citizen(name: str) -> Party:
        return Party(name, SigningKey.generate())

    return Cast(
        city_hall=Party("Seoul City Hall (agency0)", agency_keys[0]),
        foundation=Party("Seoul Welfare Foundation (agency1)", agency_keys[1]),
        district=Party("Jongno District Office (agency2)", agency_keys[2]),
        kim=citizen("Kim Min-ji"),
        lee=citizen("Lee Jun-ho"),
        park=citizen("Park Seo-yeon"),
        choi=citizen("Choi Woo-jin"),
        jung=citizen("Jung Ha-eun"),
        builder=citizen("Hanbit Construction"),
        inspector=citizen("Inspector Yoon"),
        stranger=citizen("a visitor from Busan"),
        mapo=Party("Mapo District Office", SigningKey.generate()),
    )


async def announce_election(city: City, cast: Cast) -> Election:
    city.section("12:00", "City Hall opens a participatory-budget vote for Jongno")
    voters = [cast.kim, cast.lee, cast.park, cast.choi, cast.jung]
    # The window is in heights, and a tx waited for lands 1 to 3 heights above the one
    # before (pipelined blocks). Opening 5 above the latest keeps the create tx below the
    # window; advance_to() holds the ballots until it opens; 20 heights hold the ballots and
    # the refusals after them, and the afternoon's txs carry the chain past the end.
    start = await city.latest_height() + ELECTION_OPENS_AFTER
    election = Election("jongno-budget-2026", voters, start, start + ELECTION_LENGTH)
    body = vote.encode_create(
        election_id=election.election_id,
        title="Jongno participatory budget 2026",
        options=list(BALLOT_OPTIONS),
        voters=[voter.public for voter in voters],
        start_height=election.start,
        end_height=election.end,
    )
    what = f"announces '{election.election_id}': polls open at heights {start}..{election.end}"
    await city.send(cast.city_hall, "vote.create", body, what)
    return election


async def morning_notary(city: City, cast: Cast) -> None:
    city.section("07:30", "Kim gets a residence certificate from Jongno District Office")
    document = "Residence certificate\nName: Kim Min-ji\nAddress: 12 Sejong-daero, Jongno-gu\n"
    digest = sha256(document.encode())
    anchor = notary.encode_anchor(digest, "residence-certificate", {"ward": "Jongno"})
    revoke = notary.encode_revoke(digest, "not ours to revoke")
    await city.steps(
        Step(cast.district, "notary.anchor", anchor, f"anchors certificate {digest.hex()[:12]}…"),
        Step(
            cast.district,
            "notary.anchor",
            anchor,
            "anchors the same certificate again",
            Code.NOTARY_DUPLICATE_ANCHOR,
        ),
        Step(
            cast.foundation,
            "notary.revoke",
            revoke,
            "tries to revoke a certificate it did not issue",
            Code.NOTARY_NOT_ISSUER,
        ),
    )
    at_ms = str(await city.block_time_ms())
    record = await city.read("notary/document", {"hash": digest.hex(), "at_ms": at_ms})
    assert record is not None, "anchored certificate not found"
    city.summary.notary_status = str(record["status"])
    city.say(
        f"  Kim's bank hashes the PDF she sent and asks a node: {record['status']}, "
        f"anchored by {record['agency']} at height {record['height']}"
    )
    forged = sha256(document.replace("Kim Min-ji", "Kim Min-su").encode())
    missing = await city.read("notary/document", {"hash": forged.hex()})
    city.say(f"  a copy with one name changed: {'unknown' if missing is None else 'FOUND?!'}")


async def winter_coats(city: City, cast: Cast) -> None:
    city.section("09:00", "Seoul Welfare Foundation opens the 'Winter coats' campaign")
    campaign = "winter-coats-2026"
    create = fund_bodies.encode_create(campaign, "campaign", "Winter coats", "Coats for children")
    await city.send(cast.foundation, "fund.create", create, f"opens campaign '{campaign}'")
    gifts = [
        (cast.kim, 50_000, "KB-1104"),
        (cast.lee, 120_000, "SH-88121"),
        (cast.park, 30_000, ""),
    ]
    await city.submit(
        [
            Step(
                who,
                "fund.donate",
                fund_bodies.encode_donate(campaign, amount, reference=ref),
                f"donates ₩{amount:,}",
            )
            for who, amount, ref in gifts
        ]
    )
    coats = fund_bodies.encode_spend(campaign, 80_000, "120 children's coats", payee="Dongdaemun")
    van = fund_bodies.encode_spend(campaign, 500_000, "a new van", payee="Seoul Motors")
    await city.steps(
        Step(cast.foundation, "fund.spend", coats, "pays ₩80,000 for 120 coats"),
        Step(
            cast.foundation,
            "fund.spend",
            van,
            "tries to pay ₩500,000 for a van",
            Code.FUND_INSUFFICIENT_BALANCE,
        ),
    )
    await depot_repair(city, cast, campaign)
    record = await city.read("fund/campaign", {"id": campaign})
    assert record is not None, "campaign not found"
    city.summary.fund_campaign = dict(record)
    parts = ("total_in", "balance", "escrowed", "spent", "paid")
    city.say("  anyone reads the campaign: " + ", ".join(f"{p} ₩{record[p]:,}" for p in parts))
    flows = await city.read("fund/flows", {"campaign": campaign, "limit": "20"})
    assert flows is not None, "campaign flows not found"
    donors = {who.public.hex(): who.name for who, _, _ in gifts}
    for flow in flows["flows"]:
        said = flow["purpose"] or "from " + donors.get(flow["party"], flow["party"][:16])
        city.say(
            f"    h{flow['height']:<4} {flow['flow']:<17} ₩{flow['amount']:>7,}  {said:<26}"
            f" balance ₩{flow['balance_after']:,}"
        )


async def depot_repair(city: City, cast: Cast, campaign: str) -> None:
    """Escrow paid by milestones: only the inspector's approval releases each payment."""
    contract = "coat-depot-repair"
    milestones = [
        fund_bodies.MilestoneBody(
            amount=amount,
            description=text,
            subcontractor=cast.builder.public,
            inspector=cast.inspector.public,
        )
        for amount, text in ((30_000, "Roof of the coat depot"), (50_000, "Heating of the depot"))
    ]
    lock = fund_bodies.encode_contract(campaign, contract, "Coat depot repair", milestones)
    roof = fund_bodies.encode_approve(contract, 0, "roof inspected")
    heating = fund_bodies.encode_approve(contract, 1, "heating inspected")
    await city.steps(
        Step(cast.foundation, "fund.contract", lock, "escrows ₩80,000 for the depot repair"),
        Step(cast.inspector, "fund.approve", roof, "approves the roof: Hanbit is paid ₩30,000"),
        Step(
            cast.inspector,
            "fund.approve",
            roof,
            "approves the roof again",
            Code.FUND_MILESTONE_PAID,
        ),
        Step(
            cast.builder,
            "fund.approve",
            heating,
            "approves its own heating work",
            Code.FUND_NOT_INSPECTOR,
        ),
        Step(cast.inspector, "fund.approve", heating, "approves the heating: paid ₩50,000"),
    )
    settled = await city.read("fund/contract", {"id": contract})
    assert settled is not None, "contract not found"
    city.say(f"  contract '{contract}' is {settled['status']}, unpaid ₩{settled['unpaid']:,}")


async def cast_ballots(city: City, cast: Cast, election: Election) -> None:
    city.section("12:30", "Residents vote in their lunch break")
    await city.advance_to(election.start - 1, cast.district)
    choices = [0, 2, 2, 1, 2]  # Kim, Lee, Park, Choi, Jung
    await city.submit(
        [
            Step(
                voter,
                "vote.cast",
                vote.encode_cast(election.election_id, choice),
                f"votes for {BALLOT_OPTIONS[choice]}",
            )
            for voter, choice in zip(election.voters, choices)
        ]
    )
    again = vote.encode_cast(election.election_id, 0)
    close = vote.encode_close(election.election_id)
    await city.steps(
        Step(cast.lee, "vote.cast", again, "tries to vote a second time", Code.VOTE_ALREADY_VOTED),
        Step(cast.stranger, "vote.cast", again, "tries to vote", Code.VOTE_NOT_ELIGIBLE),
        Step(
            cast.stranger,
            "vote.close",
            close,
            "tries to close the polls early",
            Code.VOTE_NOT_ENDED,
        ),
    )
    params = {"id": election.election_id, "voter": cast.kim.public.hex()}
    ballot = await city.read("vote/ballot", params)
    assert ballot is not None, "Kim's ballot not recorded"
    city.say(f"  Kim checks her receipt: option {ballot['option']} at height {ballot['height']}")


async def car_life(city: City, cast: Cast) -> Outcome:
    city.section("13:00", "A car's life: registration to resale")
    vin = "KMHD341CBPU000123"
    register = asset.encode_register(
        vin, cast.lee.public, description="Hyundai Ioniq 6, 2024, white", odometer_km=12
    )
    await city.send(cast.district, "asset.register", register, f"registers {vin} to Lee")
    for event, text, km in (
        ("inspection", "periodic inspection passed", 15_230),
        ("accident", "rear bumper, minor, no injuries", None),
        ("repair", "bumper replaced at Jongno Motors", 15_400),
    ):
        body = asset.encode_record(vin, event, description=text, odometer_km=km)
        reading = "" if km is None else f" at {km:,} km"
        await city.send(cast.district, "asset.record", body, f"records {event}{reading}")
    sale = asset.encode_transfer(
        vin, cast.choi.public, description="sale contract 2026-1125-07", odometer_km=42_100
    )
    rollback = asset.encode_record(vin, "inspection", description="clocked?", odometer_km=30_000)
    resale = asset.encode_transfer(vin, cast.kim.public, description="second sale")
    sold, _, _ = await city.steps(
        Step(cast.lee, "asset.transfer", sale, "signs the car over to Choi at 42,100 km"),
        Step(
            cast.district,
            "asset.record",
            rollback,
            "records an inspection at 30,000 km",
            Code.ASSET_ODOMETER_BACKWARDS,
        ),
        Step(
            cast.lee, "asset.transfer", resale, "tries to sell the car again", Code.ASSET_NOT_OWNER
        ),
    )
    names = {party.public.hex(): party.name for party in (cast.lee, cast.choi, cast.kim)}
    history = await city.read("asset/history", {"id": vin, "limit": "20"})
    assert history is not None, "car history not found"
    city.say(f"  Kim, thinking of buying it from Choi, reads the history of {vin}:")
    for event in history["events"]:
        shown = "" if event["odometer_km"] is None else f"{event['odometer_km']:,} km"
        owner = names.get(event["owner"], "?")
        line = f"{event['event']:<12} {shown:>10}  owner {owner:<13} {event['description']}"
        city.summary.car_history.append(event["event"])
        city.say(f"    h{event['height']:<4} {line}")
    return sold


async def electrician_licence(city: City, cast: Cast) -> None:
    city.section("14:00", "Park's electrician licence: issued, shown offline, revoked")
    now_ms = await city.block_time_ms()
    cred_type, serial = "electrician-licence", "EL-2026-0042"
    issue = credential.encode_issue(
        cred_type=cred_type,
        holder=cast.park.public,
        serial=serial,
        valid_from_ms=now_ms - DAY_MS,
        valid_until_ms=now_ms + 365 * DAY_MS,
        claims={"grade": "2", "name": "Park Seo-yeon"},
    )
    what = f"issues {cred_type} {serial} to Park"
    issued = await city.send(cast.city_hall, "credential.issue", issue, what)
    ident = credential.credential_id(
        issuer=cast.city_hall.public, holder=cast.park.public, cred_type=cred_type, serial=serial
    )
    city.summary.credential_offline_valid = await present_offline(city, cast, issued, ident)
    revoke = credential.encode_revoke(ident, "licence suspended after a safety inspection")
    await city.steps(
        Step(cast.city_hall, "credential.revoke", revoke, "revokes it (safety inspection)"),
        Step(
            cast.city_hall,
            "credential.revoke",
            revoke,
            "revokes it again",
            Code.CREDENTIAL_ALREADY_REVOKED,
        ),
    )
    params = {"id": ident.hex(), "at_ms": str(await city.block_time_ms()), "cred_type": cred_type}
    verdict = await city.read("credential/verify", params)
    assert verdict is not None, "credential not found online"
    city.summary.credential_online_verdict = str(verdict["verdict"])
    city.say(f"  the next employer asks a node online: verdict {verdict['verdict']!r}")
    city.say("  (offline the old presentation would still pass: only a node sees revocations)")


async def present_offline(city: City, cast: Cast, issued: Outcome, ident: bytes) -> bool:
    """Park shows the licence to an employer who has genesis.json and no network: the
    issuance tx's proof plus Park's signature over the employer's fresh challenge."""
    node = (issued.node + 1) % len(city.clients)
    await city.wait_height(node, issued.height)
    answer = await city.clients[node].tx(issued.tx_hash, prove=True)
    proof = proof_from_json(answer["proof"])
    challenge = os.urandom(32)
    chain_id = city.genesis.chain_id
    signature = sign_presentation(
        cast.park.key, chain_id=chain_id, credential=ident, challenge=challenge
    )
    try:
        verified = verify_presentation(
            Presentation(proof=proof, holder_signature=signature),
            genesis=city.genesis.services_genesis(),
            validators=city.genesis.validator_set(),
            challenge=challenge,
            at_ms=await city.block_time_ms(),
            expected_type="electrician-licence",
            expected_holder=cast.park.public,
        )
    except PresentationError as error:
        city.say(f"  offline check FAILED: {error.reason}")
        return False
    city.say(
        f"  an employer checks it offline with genesis.json: VALID {verified.cred_type} "
        f"{verified.serial} from {verified.agency}, sealed at height {verified.height}"
    )
    return True


async def eco_mileage(city: City, cast: Cast) -> None:
    city.section("15:00", "Eco-mileage: points for saving power and cycling, spent on transit")
    kim_award = reward.encode_award("meter-17:2026-11", cast.kim.public, 1_200, "power-saving")
    lee_award = reward.encode_award("bike:lee:2026-11", cast.lee.public, 800, "bike-commute")
    await city.submit(
        [
            Step(cast.district, "reward.award", kim_award, "awards Kim 1,200 points (power)"),
            Step(cast.district, "reward.award", lee_award, "awards Lee 800 points (cycling)"),
        ]
    )
    gift = reward.encode_transfer(cast.lee.public, 200, "for the coffee")
    top_up = reward.encode_redeem(cast.city_hall.public, 900, "T-money top-up #5531")
    greedy = reward.encode_redeem(cast.city_hall.public, 5_000, "a year of transit")
    await city.steps(
        Step(
            cast.district,
            "reward.award",
            kim_award,
            "counts Kim's meter record twice",
            Code.REWARD_DUPLICATE_RECORD,
        ),
        Step(cast.kim, "reward.transfer", gift, "gives Lee 200 points"),
        Step(cast.lee, "reward.redeem", top_up, "redeems 900 points for a transit top-up"),
        Step(
            cast.lee,
            "reward.redeem",
            greedy,
            "tries to redeem 5,000 points",
            Code.REWARD_INSUFFICIENT_POINTS,
        ),
    )
    for who in (cast.kim, cast.lee):
        balance = await city.read("reward/balance", {"holder": who.public.hex()})
        city.say(f"  {who.name} sees {balance['points']:,} points in the app")
    supply = await city.read("reward/supply")
    city.summary.reward_supply = dict(supply)
    city.say(
        f"  the auditor's supply check: awarded {supply['awarded']:,} - redeemed "
        f"{supply['redeemed']:,} = {supply['supply']:,} in circulation"
    )


async def council_meeting(city: City, cast: Cast) -> None:
    city.section("16:00", "The council admits Mapo District Office as a notary")
    permit = notary.encode_anchor(sha256(b"Mapo-gu building permit 2026-0931"), "building-permit")
    change = gov.AddAgency(name="mapo-district", public_key=cast.mapo.public, roles=["notary"])
    proposal = "add-mapo-district"
    propose = gov.encode_propose(proposal, change)
    approve = gov.encode_approve(proposal)
    await city.steps(
        Step(
            cast.mapo,
            "notary.anchor",
            permit,
            "tries to anchor a permit before joining",
            Code.UNAUTHORIZED,
        ),
        Step(cast.city_hall, "gov.propose", propose, "proposes adding Mapo (1 of 2 needed)"),
        Step(
            cast.stranger,
            "gov.propose",
            gov.encode_propose("let-me-in", change),
            "proposes something",
            Code.GOV_NOT_COUNCIL,
        ),
        Step(cast.foundation, "gov.approve", approve, "approves (2 of 2): the change applies"),
        Step(
            cast.district,
            "gov.approve",
            approve,
            "approves after it applied",
            Code.GOV_ALREADY_APPLIED,
        ),
    )
    record = await city.read("gov/proposal", {"id": proposal})
    city.say(f"  proposal '{proposal}': {record['status']} at height {record['applied_height']}")
    await city.send(cast.mapo, "notary.anchor", permit, "anchors its first building permit")
    agencies = await city.read("agency/list")
    city.summary.agencies_after = [agency["name"] for agency in agencies["agencies"]]
    city.say(f"  agencies now: {', '.join(city.summary.agencies_after)}")


async def polls_close(city: City, cast: Cast, election: Election) -> None:
    city.section("20:00", "Polls close; the tally")
    early = await city.clients[0].query("vote/results", {"id": election.election_id})
    city.say(f"  results asked for before closing: {early['value']['log']!r}")
    await city.advance_to(election.end, cast.district)
    close = vote.encode_close(election.election_id)
    await city.steps(
        Step(cast.stranger, "vote.close", close, "closes the polls (anyone may, once ended)"),
        Step(cast.kim, "vote.close", close, "closes them again", Code.VOTE_ALREADY_CLOSED),
    )
    results = await city.read("vote/results", {"id": election.election_id})
    assert results is not None, "tally missing after close"
    city.summary.tally = {row["option"]: int(row["votes"]) for row in results["results"]}
    for row in results["results"]:
        city.say(f"    {row['option']:<22} {row['votes']} {'#' * int(row['votes'])}")
    city.say(f"  {results['ballots']} ballots, counted at height {results['closed_height']}")


async def audit(city: City, proven: Outcome, genesis_path: Path) -> None:
    city.section("21:00", "The auditor's evening: do all nodes agree, and does a proof hold?")
    deadline = time.monotonic() + WAIT_S
    while True:
        syncs = [(await client.status())["sync_info"] for client in city.clients]
        heights = [int(sync["latest_block_height"]) for sync in syncs]
        hashes = [str(sync["latest_app_hash"]) for sync in syncs]
        agree = len(set(heights)) == 1 and len(set(hashes)) == 1
        if agree or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    city.summary.heights, city.summary.app_hashes = heights, hashes
    city.summary.app_hash_agreement = agree
    city.summary.final_height = max(heights)
    for index, (height, app_hash) in enumerate(zip(heights, hashes)):
        city.say(f"  node{index}: height {height}, app hash {app_hash[:16]}…")
    city.say(f"  {'all nodes agree' if agree else 'NODES DISAGREE'}")
    genesis = load_genesis(genesis_path)  # nothing but the file: no node is asked to vouch
    answer = await city.clients[(proven.node + 2) % len(city.clients)].tx(
        proven.tx_hash, prove=True
    )
    proof = proof_from_json(answer["proof"])
    assert isinstance(proof, TxProof)
    verified = verify_tx_proof(proof, genesis.validator_set(), genesis.chain_id)
    city.summary.proof_verified = verified.tx_hash.hex() == proven.tx_hash
    city.say(
        f"  proof of the car sale (tx {proven.tx_hash[:10]}…) checked with only genesis.json: "
        f"height {verified.height}, {len(verified.signers)} of {len(genesis.validators)} "
        "validators sealed it"
    )


async def run_day(directory: Path, out: Out) -> DaySummary:
    genesis = load_genesis(directory / "genesis.json")
    keys = [load_key_file(directory / "agencies" / f"agency{k}.json") for k in range(AGENCIES)]
    urls = [f"http://{validator.rpc_address}" for validator in genesis.validators]
    clients = [RpcClient(url, timeout_s=10.0) for url in urls]
    try:
        city = City(clients, genesis, out)
        cast = make_cast(keys)
        city.section(
            "06:00", f"Chain '{genesis.chain_id}': {len(urls)} PBFT validators on 127.0.0.1"
        )
        council = await city.read("gov/council")
        city.say(f"  council of {len(council['members'])}, {council['threshold']} needed to decide")
        await morning_notary(city, cast)
        await winter_coats(city, cast)
        election = await announce_election(city, cast)
        await cast_ballots(city, cast, election)
        sale = await car_life(city, cast)
        await electrician_licence(city, cast)
        await eco_mileage(city, cast)
        await council_meeting(city, cast)
        await polls_close(city, cast, election)
        await audit(city, sale, directory / "genesis.json")
        return city.summary
    finally:
        for client in clients:
            await client.close()


def print_summary(summary: DaySummary, out: Out) -> None:
    out("")
    out("Summary")
    out("-------")
    for service in SERVICES:
        codes = ", ".join(str(code) for code in summary.refusal_codes.get(service, []))
        out(
            f"  {service:<11} {summary.committed[service]:>3} committed "
            f"{summary.refused[service]:>2} refused ({codes})"
        )
    agree = "yes" if summary.app_hash_agreement else "NO"
    out(
        f"  final height {summary.final_height}, app hashes agree: {agree}, "
        f"proof verified: {summary.proof_verified}"
    )


def main(argv: Sequence[str] | None = None, *, out: Out | None = None) -> DaySummary:
    """Run the day on a fresh cluster; the summary of what happened. Raises ScenarioError
    (after tearing the cluster down, unless --keep) when the chain answers unexpectedly."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--dir", type=Path, help="where to create the testnet (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the cluster running at the end")
    args = parser.parse_args(argv)
    write = out or _stdout
    directory = (args.dir or Path(tempfile.mkdtemp(prefix="seoul-day-"))).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    base_port = free_base_port(NODES)
    make_testnet(directory, nodes=NODES, consensus="pbft", base_port=base_port, agencies=AGENCIES)
    write(f"testnet in {directory} (base port {base_port}); starting {NODES} nodes")
    try:
        cluster_up(directory, nodes=NODES, consensus="pbft", base_port=base_port)
        summary = asyncio.run(run_day(directory, write))
        print_summary(summary, write)
        return summary
    finally:
        if args.keep:
            write(f"cluster left running; stop it with: seoulchain cluster down --dir {directory}")
        else:
            for line in cluster_down(directory):
                log.info("%s", line)
            if args.dir is None:
                shutil.rmtree(directory, ignore_errors=True)


def _stdout(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = main()
    except (ScenarioError, CliError) as error:
        sys.stderr.write(f"day_in_the_life: {type(error).__name__}: {error}\n")
        sys.exit(1)
    sys.exit(0 if result.app_hash_agreement and result.proof_verified else 1)
