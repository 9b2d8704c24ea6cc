"""E-voting (issue 7): elections, one ballot per voter, window in heights, close and tally;
plus a hypothesis state machine checking "one counted ballot per voter" against a model."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from protocol.crypto import SigningKey
from protocol.results import TxResult
from protocol.tx import Tx
from services import vote
from services.app import SeoulApplication
from services.codes import Code
from services.credential import credential_id, encode_issue
from services.credential import encode_revoke as encode_credential_revoke
from services.genesis import Agency, ServicesGenesis
from services.interface import QueryError
from services.testing import AppHarness
from services.vote import VOTERS_MAX, CredentialRule, encode_cast, encode_close, encode_create
from tests.services.services_helpers import CHAIN_ID, sign

ELECTIONS = SigningKey.from_secret(b"election-office")
CLERK = SigningKey.from_secret(b"clerk")  # an agency without vote_admin
VOTERS = [SigningKey.from_secret(f"voter-{i}".encode()) for i in range(5)]
OUTSIDER = SigningKey.from_secret(b"outsider")
OPTIONS = ["park", "library", "pool"]


def genesis() -> ServicesGenesis:
    return ServicesGenesis(
        chain_id=CHAIN_ID,
        agencies=(
            Agency(name="Elections", public_key=ELECTIONS.public_key, roles=("vote_admin",)),
            Agency(name="Clerk", public_key=CLERK.public_key, roles=("notary",)),
        ),
    )


@pytest.fixture
def chain() -> AppHarness:
    return AppHarness(SeoulApplication(genesis()), chain_id=CHAIN_ID)


def create(
    *,
    key: SigningKey = ELECTIONS,
    election_id: str = "budget-2026",
    options: list[str] | None = None,
    voters: list[bytes] | None = None,
    start: int = 2,
    end: int = 4,
) -> Tx:
    body = encode_create(
        election_id=election_id,
        title="Participatory budget",
        options=OPTIONS if options is None else options,
        voters=[voter.public_key for voter in VOTERS] if voters is None else voters,
        start_height=start,
        end_height=end,
    )
    return sign(key, "vote.create", body)


def cast(voter: SigningKey, option: int, election_id: str = "budget-2026") -> Tx:
    return sign(voter, "vote.cast", encode_cast(election_id, option))


def close(key: SigningKey = OUTSIDER, election_id: str = "budget-2026") -> Tx:
    return sign(key, "vote.close", encode_close(election_id))


def codes(results: tuple[TxResult, ...]) -> list[int]:
    return [result.code for result in results]


def run(chain: AppHarness, *txs: Tx) -> list[int]:
    return codes(chain.run_block(list(txs)).results)


def results(chain: AppHarness, election_id: str = "budget-2026") -> Any:
    return chain.query("vote/results", {"id": election_id})


def test_a_whole_election(chain: AppHarness) -> None:
    assert run(chain, create()) == [Code.OK]  # height 1
    assert run(chain, cast(VOTERS[0], 0), cast(VOTERS[1], 2)) == [Code.OK, Code.OK]  # 2
    assert run(chain, cast(VOTERS[2], 2)) == [Code.OK]  # 3
    assert run(chain) == []  # 4
    assert run(chain, close()) == [Code.OK]  # 5
    value = results(chain).value
    assert [row["votes"] for row in value["results"]] == [1, 0, 2]
    assert [row["option"] for row in value["results"]] == OPTIONS
    assert value["ballots"] == 3
    assert value["voter_count"] == 5
    assert value["closed_height"] == 5
    ballot = chain.query("vote/ballot", {"id": "budget-2026", "voter": VOTERS[1].public_key.hex()})
    assert ballot.value["option"] == 2
    assert ballot.value["height"] == 2


def test_create_rules(chain: AppHarness) -> None:
    voter = VOTERS[0].public_key
    outcome = run(
        chain,
        create(options=["a", "a"], election_id="e1"),
        create(voters=[voter, voter], election_id="e2"),
        create(start=1, end=3, election_id="e3"),  # start must be above this height (1)
        create(start=5, end=4, election_id="e4"),
        create(key=CLERK, election_id="e5"),
        create(election_id="e6"),
        create(election_id="e6"),
    )
    assert outcome == [
        Code.VOTE_BAD_OPTIONS,
        Code.VOTE_BAD_VOTERS,
        Code.VOTE_BAD_WINDOW,
        Code.VOTE_BAD_WINDOW,
        Code.UNAUTHORIZED,
        Code.OK,
        Code.VOTE_DUPLICATE_ELECTION,
    ]
    for election_id in ("e1", "e2", "e3", "e4", "e5"):
        assert not chain.query("vote/election", {"id": election_id}).found


def test_ballot_window_is_inclusive_in_heights(chain: AppHarness) -> None:
    run(chain, create(start=3, end=4))  # 1
    assert run(chain, cast(VOTERS[0], 0)) == [Code.VOTE_NOT_STARTED]  # 2
    assert run(chain, cast(VOTERS[0], 0)) == [Code.OK]  # 3: start
    assert run(chain, cast(VOTERS[1], 0)) == [Code.OK]  # 4: end
    assert run(chain, cast(VOTERS[2], 0)) == [Code.VOTE_ENDED]  # 5


def test_one_ballot_per_voter_no_revoting(chain: AppHarness) -> None:
    run(chain, create())
    assert run(chain, cast(VOTERS[0], 0), cast(VOTERS[0], 1)) == [
        Code.OK,
        Code.VOTE_ALREADY_VOTED,
    ]
    assert run(chain, cast(VOTERS[0], 2)) == [Code.VOTE_ALREADY_VOTED]
    run(chain)
    run(chain)
    run(chain, close())
    assert [row["votes"] for row in results(chain).value["results"]] == [1, 0, 0]


def test_cast_rules(chain: AppHarness) -> None:
    run(chain, create())
    outcome = run(
        chain,
        cast(VOTERS[0], 0, election_id="nope"),
        cast(OUTSIDER, 0),
        cast(VOTERS[0], 3),
        cast(VOTERS[0], 1),
    )
    assert outcome == [
        Code.VOTE_UNKNOWN_ELECTION,
        Code.VOTE_NOT_ELIGIBLE,
        Code.VOTE_BAD_OPTION,
        Code.OK,
    ]


def test_results_are_refused_until_closed_and_close_rules(chain: AppHarness) -> None:
    run(chain, create(start=2, end=3))  # 1
    run(chain, cast(VOTERS[0], 1))  # 2
    early = results(chain)
    assert not early.found
    assert early.value["code"] == Code.VOTE_TALLY_NOT_READY
    assert run(chain, close()) == [Code.VOTE_NOT_ENDED]  # 3: still open
    assert run(chain, close(election_id="nope"), close(), close()) == [
        Code.VOTE_UNKNOWN_ELECTION,
        Code.OK,
        Code.VOTE_ALREADY_CLOSED,
    ]  # 4
    assert results(chain).found
    assert chain.query("vote/election", {"id": "budget-2026"}).value["closed"] is True


def test_bodies_and_params_are_bounded(chain: AppHarness) -> None:
    too_many = [SigningKey.from_secret(f"v{i}".encode()).public_key for i in range(VOTERS_MAX + 1)]
    bad = [
        create(voters=too_many, election_id="big"),
        create(options=["only"], election_id="one"),
        sign(ELECTIONS, "vote.create", {"election_id": "bad id!", "title": "t"}),
        sign(VOTERS[0], "vote.cast", {"election_id": "e", "option": -1}),
        sign(VOTERS[0], "vote.cast", {"election_id": "e", "option": 1, "extra": 0}),
    ]
    assert run(chain, *bad) == [Code.BODY_INVALID] * len(bad)
    for query in ({"id": "bad id"}, {"id": ""}, {"id": "x" * 65}, {}):
        with pytest.raises(QueryError):
            chain.query("vote/election", query)
    with pytest.raises(QueryError):
        chain.query("vote/ballot", {"id": "e", "voter": "00"})


class ElectionMachine(RuleBasedStateMachine):
    """Random ballots (eligible or not, repeated or not, in or out of the window), then a
    close: the chain's tally must equal the model's — each eligible voter's first in-window
    ballot counted exactly once."""

    def __init__(self) -> None:
        super().__init__()
        self.chain = AppHarness(SeoulApplication(genesis()), chain_id=CHAIN_ID)
        eligible = [voter.public_key for voter in VOTERS[:4]]
        assert run(self.chain, create(voters=eligible, start=2, end=6)) == [Code.OK]
        self.first_choice: dict[bytes, int] = {}
        self.closed = False

    @rule(
        ballots=st.lists(
            st.tuples(st.integers(0, len(VOTERS) - 1), st.integers(0, len(OPTIONS) - 1)),
            max_size=4,
        )
    )
    def block_of_ballots(self, ballots: list[tuple[int, int]]) -> None:
        height = self.chain.height + 1
        outcome = run(self.chain, *(cast(VOTERS[who], option) for who, option in ballots))
        for (who, option), code in zip(ballots, outcome, strict=True):
            voter = VOTERS[who].public_key
            counted = 2 <= height <= 6 and who < 4 and voter not in self.first_choice
            assert (code == Code.OK) == counted, (height, who, code)
            if counted:
                self.first_choice[voter] = option

    @rule()
    def try_close(self) -> None:
        height = self.chain.height + 1
        outcome = run(self.chain, close())
        expected = (
            Code.VOTE_ALREADY_CLOSED
            if self.closed
            else Code.OK
            if height > 6
            else Code.VOTE_NOT_ENDED
        )
        assert outcome == [expected]
        self.closed = self.closed or expected == Code.OK

    @invariant()
    def tally_matches_the_model(self) -> None:
        answer = results(self.chain)
        assert answer.found == self.closed
        if not self.closed:
            return
        expected = [0] * len(OPTIONS)
        for option in self.first_choice.values():
            expected[option] += 1
        assert [row["votes"] for row in answer.value["results"]] == expected
        assert answer.value["ballots"] == len(self.first_choice)


ElectionMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=12, deadline=None)
test_election_model = ElectionMachine.TestCase


def credential_genesis() -> ServicesGenesis:
    return ServicesGenesis(
        chain_id=CHAIN_ID,
        agencies=(
            Agency(
                name="Elections",
                public_key=ELECTIONS.public_key,
                roles=("vote_admin", "credential_issuer"),
            ),
            Agency(name="Clerk", public_key=CLERK.public_key, roles=("credential_issuer",)),
        ),
    )


def resident(voter: SigningKey, *, issuer: SigningKey = ELECTIONS, until: int = 10**12) -> Tx:
    body = encode_issue(
        cred_type="resident", holder=voter.public_key, serial=voter.public_key.hex()[:16],
        valid_from_ms=0, valid_until_ms=until,
    )  # fmt: skip
    return sign(issuer, "credential.issue", body)


def by_credential(start: int = 3, end: int = 6) -> Tx:
    rule = CredentialRule(cred_type="resident", issuer_agency="Elections")
    body = encode_create(
        election_id="budget-2026", title="t", options=OPTIONS, voters=[], start_height=start,
        end_height=end, eligible_credential=rule,
    )  # fmt: skip
    return sign(ELECTIONS, "vote.create", body)


def test_credential_holders_vote() -> None:
    chain = AppHarness(SeoulApplication(credential_genesis()), chain_id=CHAIN_ID)
    wrong_issuer = resident(VOTERS[3], issuer=CLERK)
    short_lived = resident(VOTERS[4], until=2_500)  # block 2 is at 2000 ms, 3 at 3000
    txs = [by_credential(), resident(VOTERS[0]), resident(VOTERS[1]), wrong_issuer, short_lived]
    assert run(chain, *txs) == [Code.OK] * 5  # height 1
    revoked_id = credential_id(
        issuer=ELECTIONS.public_key,
        holder=VOTERS[1].public_key,
        cred_type="resident",
        serial=VOTERS[1].public_key.hex()[:16],
    )
    revoke = sign(ELECTIONS, "credential.revoke", encode_credential_revoke(revoked_id, "moved"))
    assert run(chain, revoke) == [Code.OK]  # 2
    casts = [cast(voter, 0) for voter in (VOTERS[0], VOTERS[1], VOTERS[2], VOTERS[3], VOTERS[4])]
    assert run(chain, *casts) == [  # 3
        Code.OK,
        Code.VOTE_NOT_ELIGIBLE,  # revoked
        Code.VOTE_NOT_ELIGIBLE,  # holds nothing
        Code.VOTE_NOT_ELIGIBLE,  # issued by another agency
        Code.VOTE_NOT_ELIGIBLE,  # expired at the block time
    ]
    election = chain.query("vote/election", {"id": "budget-2026"}).value
    assert election["eligible_credential"] == {
        "cred_type": "resident",
        "issuer_agency": "Elections",
    }
    assert election["ballots_max"] == 1000


def test_exactly_one_eligibility_rule(chain: AppHarness) -> None:
    rule = CredentialRule(cred_type="resident", issuer_agency="Elections")
    both = encode_create(
        election_id="both", title="t", options=OPTIONS, voters=[VOTERS[0].public_key],
        start_height=3, end_height=4, eligible_credential=rule,
    )  # fmt: skip
    neither = encode_create(
        election_id="neither", title="t", options=OPTIONS, voters=[], start_height=3, end_height=4
    )
    txs = [sign(ELECTIONS, "vote.create", both), sign(ELECTIONS, "vote.create", neither)]
    assert run(chain, *txs) == [Code.VOTE_BAD_VOTERS] * 2


def test_credential_elections_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vote, "CREDENTIAL_BALLOTS_MAX", 2)
    chain = AppHarness(SeoulApplication(credential_genesis()), chain_id=CHAIN_ID)
    run(chain, by_credential(start=2, end=3), *(resident(voter) for voter in VOTERS[:3]))
    casts = [cast(voter, 1) for voter in VOTERS[:3]]
    assert run(chain, *casts) == [Code.OK, Code.OK, Code.VOTE_FULL]
    run(chain)
    assert run(chain, close()) == [Code.OK]
    assert results(chain).value["ballots"] == 2
