"""A mixed workload (`--mix notary=50,asset=20,...`): txs of every service kind that SUCCEED
when executed, whatever order the chain puts them in.

Pure: keys, counts and a run tag in; unsigned drafts out (txgen.py signs them). The hard
part is ordering. Txs go round-robin to different nodes, and each node's mempool, the
primary's proposal and pipelining may reorder them across blocks, so no tx of the measured
run may depend on another tx of the run. Every dependency is met in a setup phase that is
committed before the run starts (bench/setup.py), and every run tx only needs setup state:

- asset: half the run's txs register new assets; the other half are inspections, one per
  asset registered in setup, with a reading above the registration's (one inspection per
  asset, so two readings of one asset can never be reordered into ODOMETER_BACKWARDS);
- fund: each agency creates one campaign and donates a large balance to it in setup; the run
  sends citizens' donations and small expenditures whose sum can never reach that balance;
- reward: setup awards every citizen a large balance; the run sends awards of fresh record
  ids, and citizens' small transfers and redeems that can never reach it;
- credential: issues with unique serials (no precondition);
- vote: elections created in setup list the bench's citizens as voters; the run casts one
  ballot per (election, citizen). Elections are signed late, at setup time, because their
  window must start above the height at which they commit (bench/setup.py);
- notary: anchors of unique document hashes, padded to --tx-bytes like the pure load.

Citizens are keys derived from the run tag (fresh every run, so nothing they sign can
collide with an earlier run); agencies are the testnet's, which hold every role.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench import txgen
from services import asset, credential, fund_bodies, reward, vote

log = logging.getLogger(__name__)

FAMILIES = ("notary", "asset", "fund", "reward", "credential", "vote")
WEIGHT_MAX = 1_000_000
CITIZENS_MIN = 64  # reward/fund/vote signers even when few ballots are planned
CITIZENS_MAX = vote.VOTERS_MAX  # one election's whole voter list
SEED_BALANCE = 10**12  # setup donation / award; run spends stay far below it
SPEND_MAX = 1_000  # one run expenditure, transfer or redeem (points/KRW)
REGISTRATION_KM = 10_000
VALID_UNTIL_MS = 4_102_444_800_000  # 2100-01-01: bench credentials never expire mid-run
ELECTION_OPTIONS = ["park", "library", "bike-lanes"]
CREDENTIAL_TYPES = ("electrician-licence", "driving-licence", "nursing-licence")


class MixError(ValueError):
    """A --mix text the bench cannot use; the message names the problem."""


def parse_mix(text: str) -> dict[str, int]:
    """`notary=50,asset=20` -> {"notary": 50, "asset": 20}: integer weights, in the order
    given, each family at most once, at least one weight above zero."""
    weights: dict[str, int] = {}
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in FAMILIES:
            raise MixError(f"{part!r}: want KIND=WEIGHT with KIND one of {', '.join(FAMILIES)}")
        if name in weights:
            raise MixError(f"{name} given twice")
        try:
            weight = int(value)
        except ValueError:
            raise MixError(f"{part!r}: the weight is not an integer") from None
        if not 0 <= weight <= WEIGHT_MAX:
            raise MixError(f"{part!r}: the weight must be 0..{WEIGHT_MAX}")
        weights[name] = weight
    if sum(weights.values()) <= 0:
        raise MixError("give at least one weight above zero, e.g. notary=50,asset=20")
    return {name: weight for name, weight in weights.items() if weight > 0}


def interleave(weights: dict[str, int], count: int) -> list[str]:
    """`count` family names in smooth weighted round-robin order: every prefix of the list
    is as close to the weights as integers allow, so the mix is even over the whole run."""
    total = sum(weights.values())
    assert total > 0
    current = dict.fromkeys(weights, 0)
    order: list[str] = []
    for _ in range(count):
        for name, weight in weights.items():
            current[name] += weight
        chosen = max(current, key=lambda name: current[name])  # first on ties: stable
        current[chosen] -= total
        order.append(chosen)
    return order


@dataclass(frozen=True, slots=True)
class Draft:
    """One unsigned tx: who signs it (a slot of the roster), its kind and its body."""

    signer: int
    kind: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Roster:
    """Public keys by signer slot: agencies first (slots 0..K-1), then citizens."""

    agencies: tuple[bytes, ...]
    citizens: tuple[bytes, ...]

    def citizen_slot(self, number: int) -> int:
        return len(self.agencies) + number % len(self.citizens)

    def agency_slot(self, number: int) -> int:
        return number % len(self.agencies)


def citizen_seeds(run_tag: str, count: int) -> list[bytes]:
    """Deterministic per run: the same tag gives the same citizens (tests rely on it)."""
    return [hashlib.sha256(f"{run_tag}/citizen/{i}".encode()).digest() for i in range(count)]


def citizens_needed(weights: dict[str, int], count: int) -> int:
    ballots = interleave(weights, count).count("vote") if "vote" in weights else 0
    return max(CITIZENS_MIN, min(CITIZENS_MAX, ballots))


def id_tag(run_tag: str) -> str:
    """A short id-safe tag (ids allow only A-Z a-z 0-9 . _ : -, at most 64 characters)."""
    return "b" + hashlib.sha256(run_tag.encode()).hexdigest()[:16]


@dataclass(slots=True)
class MixPlan:
    """setup[s]: stage s of the setup, committed before stage s+1 and before the run;
    run: the measured txs in send order; elections: the late-signed vote.create bodies."""

    roster: Roster
    setup: list[list[Draft]] = field(default_factory=lambda: [[], []])
    run: list[Draft] = field(default_factory=list)
    election_ids: list[str] = field(default_factory=list)

    def election_drafts(self, start_height: int, end_height: int) -> list[Draft]:
        """vote.create of every election, its window starting at `start_height` (which must
        be above the height it commits at: bench/setup.py picks it just before sending)."""
        voters = sorted(self.roster.citizens)
        return [
            Draft(
                self.roster.agency_slot(number),
                "vote.create",
                vote.encode_create(
                    election_id=election_id,
                    title=f"Participatory budget {number}",
                    options=list(ELECTION_OPTIONS),
                    voters=voters,
                    start_height=start_height,
                    end_height=end_height,
                ),
            )
            for number, election_id in enumerate(self.election_ids)
        ]


class _Family:
    """One service's share of the mix: its setup drafts and its j-th run draft."""

    def __init__(self, plan: MixPlan, tag: str, count: int) -> None:
        self.plan, self.roster, self.tag, self.count = plan, plan.roster, tag, count

    def draft(self, j: int) -> Draft:
        raise NotImplementedError


class _Notary(_Family):
    def __init__(self, plan: MixPlan, tag: str, count: int, anchor: AnchorMaker) -> None:
        super().__init__(plan, tag, count)
        self.anchor = anchor

    def draft(self, j: int) -> Draft:
        return Draft(self.roster.agency_slot(j), txgen.ANCHOR_KIND, self.anchor(j))


class _Asset(_Family):
    """Even j: register a new asset; odd j: inspect setup asset j // 2 (once each)."""

    def __init__(self, plan: MixPlan, tag: str, count: int) -> None:
        super().__init__(plan, tag, count)
        for number in range(count // 2):
            plan.setup[0].append(self._register(f"{tag}.car.{number}", number))

    def _register(self, asset_id: str, number: int) -> Draft:
        owner = self.roster.citizens[number % len(self.roster.citizens)]
        body = asset.encode_register(
            asset_id, owner, description="sedan 2024", odometer_km=REGISTRATION_KM
        )
        return Draft(self.roster.agency_slot(number), "asset.register", body)

    def draft(self, j: int) -> Draft:
        if j % 2 == 0:
            return self._register(f"{self.tag}.new.{j // 2}", j)
        body = asset.encode_record(
            f"{self.tag}.car.{j // 2}",
            "inspection",
            description="passed",
            odometer_km=REGISTRATION_KM + 1 + j,
        )
        return Draft(self.roster.agency_slot(j), "asset.record", body)


class _Fund(_Family):
    """One campaign per agency, funded in setup; the run donates (2 of 3) and spends."""

    def __init__(self, plan: MixPlan, tag: str, count: int) -> None:
        super().__init__(plan, tag, count)
        for agency in range(len(self.roster.agencies)):
            campaign = self._campaign(agency)
            body = fund_bodies.encode_create(campaign, "campaign", f"Winter relief {agency}")
            plan.setup[0].append(Draft(agency, "fund.create", body))
            seed = fund_bodies.encode_donate(campaign, SEED_BALANCE, reference="budget")
            plan.setup[1].append(Draft(agency, "fund.donate", seed))

    def _campaign(self, agency: int) -> str:
        return f"{self.tag}.fund.{agency}"

    def draft(self, j: int) -> Draft:
        agency = (j // 3) % len(self.roster.agencies)
        amount = 1 + j % SPEND_MAX
        if j % 3 == 2:  # only the campaign's manager (its creator) may spend
            body = fund_bodies.encode_spend(
                self._campaign(agency), amount, "heating oil", payee="supplier", reference=f"{j}"
            )
            return Draft(agency, "fund.spend", body)
        body = fund_bodies.encode_donate(self._campaign(agency), amount, reference=f"tr-{j}")
        return Draft(self.roster.citizen_slot(j), "fund.donate", body)


class _Reward(_Family):
    """Setup awards every citizen a balance; the run awards, transfers and redeems."""

    def __init__(self, plan: MixPlan, tag: str, count: int) -> None:
        super().__init__(plan, tag, count)
        for number, holder in enumerate(self.roster.citizens):
            body = reward.encode_award(f"{tag}.seed.{number}", holder, SEED_BALANCE, "seed")
            plan.setup[0].append(Draft(self.roster.agency_slot(number), "reward.award", body))

    def draft(self, j: int) -> Draft:
        citizens = self.roster.citizens
        points = 1 + j % SPEND_MAX
        if j % 3 == 0:
            holder = citizens[j % len(citizens)]
            body = reward.encode_award(f"{self.tag}.rw.{j}", holder, points, "electricity-saving")
            return Draft(self.roster.agency_slot(j), "reward.award", body)
        if j % 3 == 1:
            to = citizens[(j + 1) % len(citizens)]
            return Draft(
                self.roster.citizen_slot(j), "reward.transfer", reward.encode_transfer(to, points)
            )
        merchant = self.roster.agencies[j % len(self.roster.agencies)]
        body = reward.encode_redeem(merchant, points, memo=f"receipt {j}")
        return Draft(self.roster.citizen_slot(j), "reward.redeem", body)


class _Credential(_Family):
    def draft(self, j: int) -> Draft:
        body = credential.encode_issue(
            cred_type=CREDENTIAL_TYPES[j % len(CREDENTIAL_TYPES)],
            holder=self.roster.citizens[j % len(self.roster.citizens)],
            serial=f"{self.tag}-{j}",
            valid_from_ms=0,
            valid_until_ms=VALID_UNTIL_MS,
        )
        return Draft(self.roster.agency_slot(j), "credential.issue", body)


class _Vote(_Family):
    """Ballot j: election j // citizens, voter j % citizens — one ballot per pair."""

    def __init__(self, plan: MixPlan, tag: str, count: int) -> None:
        super().__init__(plan, tag, count)
        voters = len(self.roster.citizens)
        plan.election_ids.extend(f"{tag}.el.{e}" for e in range(-(-count // voters)))

    def draft(self, j: int) -> Draft:
        election = self.plan.election_ids[j // len(self.roster.citizens)]
        body = vote.encode_cast(election, j % len(ELECTION_OPTIONS))
        return Draft(self.roster.citizen_slot(j), "vote.cast", body)


AnchorMaker = Callable[[int], bytes]  # anchor j's body


def build_plan(
    weights: dict[str, int],
    count: int,
    *,
    roster: Roster,
    run_tag: str,
    anchor: AnchorMaker,
) -> MixPlan:
    """The setup stages and `count` run drafts of the mix (see the module docstring)."""
    assert roster.agencies
    assert len(roster.citizens) >= 2
    order = interleave(weights, count)
    plan = MixPlan(roster)
    tag = id_tag(run_tag)
    counts = {name: order.count(name) for name in weights}
    families: dict[str, _Family] = {}
    for name in FAMILIES:
        if counts.get(name, 0) <= 0:
            continue
        if name == "notary":
            families[name] = _Notary(plan, tag, counts[name], anchor)
        else:
            families[name] = _FAMILY_TYPES[name](plan, tag, counts[name])
    taken = dict.fromkeys(families, 0)
    for name in order:
        plan.run.append(families[name].draft(taken[name]))
        taken[name] += 1
    log.info("mix plan: %s run txs, setup stages of %s", counts, [len(s) for s in plan.setup])
    return plan


_FAMILY_TYPES: dict[str, type[_Family]] = {
    "asset": _Asset,
    "fund": _Fund,
    "reward": _Reward,
    "credential": _Credential,
    "vote": _Vote,
}


def family_of(kind: str) -> str:
    """`asset.record` -> `asset`: the --mix name a tx kind belongs to."""
    return kind.partition(".")[0]


def kinds_in(drafts: Sequence[Draft]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for draft in drafts:
        counted[draft.kind] = counted.get(draft.kind, 0) + 1
    return counted
