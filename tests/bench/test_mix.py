"""The mixed workload (bench/mix.py, bench/mixload.py): weights parsed and followed, every
tx decodes, setup comes before its users, and — executed by the real services application —
the setup and then the run in ANY order (shuffled across blocks) succeed with code 0."""

from __future__ import annotations

import base64
import copy
import random
from collections import Counter
from typing import Any

import pytest

from bench import mix, mixload, outcomes, report, txgen
from bench.kinds import kind_figures
from bench.ledger import Ledger
from node.cli_common import known_roles
from protocol.crypto import SigningKey
from protocol.tx import Tx, decode_tx
from services.app import SeoulApplication
from services.genesis import Agency, ServicesGenesis
from services.testing import AppHarness

CHAIN = "seoul-mix"
DEFAULT_MIX = "notary=50,asset=20,fund=10,reward=10,credential=5,vote=5"


def agency_keys(count: int) -> list[SigningKey]:
    return [SigningKey.from_secret(f"mix-agency{i}".encode()) for i in range(count)]


def load_spec(tag: str = "t") -> txgen.LoadSpec:
    return txgen.LoadSpec(chain_id=CHAIN, expiry_height=10_000, tx_bytes=250, run_tag=tag)


def prepare(text: str, counts: list[int], agencies: int = 3) -> mixload.MixLoad:
    return mixload.prepare(
        load_spec(), agency_keys(agencies), mix.parse_mix(text), counts, workers=0
    )


def harness(agencies: int = 3) -> AppHarness:
    genesis = ServicesGenesis(
        chain_id=CHAIN,
        agencies=tuple(
            Agency(name=f"agency{i}", public_key=key.public_key, roles=known_roles())
            for i, key in enumerate(agency_keys(agencies))
        ),
    )
    return AppHarness(SeoulApplication(genesis), chain_id=CHAIN)


def decoded(signed: list[txgen.SignedTx]) -> list[Tx]:
    return [decode_tx(base64.b64decode(tx.text)) for tx in signed]


# --- parsing and weights ------------------------------------------------------------------


def test_parse_mix_keeps_order_and_drops_zero_weights() -> None:
    assert mix.parse_mix("asset=2, notary=1,vote=0") == {"asset": 2, "notary": 1}


@pytest.mark.parametrize(
    "text",
    ["", "notary=0", "gov=1", "notary", "notary=x", "notary=1,notary=2", "asset=-1"],
)
def test_parse_mix_refuses_bad_texts_with_a_reason(text: str) -> None:
    with pytest.raises(mix.MixError):
        mix.parse_mix(text)


def test_interleave_follows_the_weights_in_every_prefix() -> None:
    weights = mix.parse_mix(DEFAULT_MIX)
    order = mix.interleave(weights, 2_000)
    total = sum(weights.values())
    for prefix in (100, 1_000, 2_000):
        counts = Counter(order[:prefix])
        for name, weight in weights.items():
            assert abs(counts[name] - prefix * weight / total) <= 1.0, (prefix, name)


def test_run_kinds_follow_the_weights_within_tolerance() -> None:
    load = prepare(DEFAULT_MIX, [1_000])
    families = Counter(mix.family_of(tx.kind) for tx in load.per_run[0])
    weights = mix.parse_mix(DEFAULT_MIX)
    for name, weight in weights.items():
        assert abs(families[name] - 1_000 * weight / 100) <= 1, name
    assert set(families) == set(weights)


def test_default_style_pure_notary_mix_needs_no_setup() -> None:
    load = prepare("notary=1", [20])
    assert all(not stage for stage in load.setup)
    assert {tx.kind for tx in load.per_run[0]} == {txgen.ANCHOR_KIND}
    assert {tx.size for tx in load.per_run[0]} == {250}  # padded like the pure load


# --- the txs themselves -------------------------------------------------------------------


def test_every_generated_tx_decodes_is_unique_and_signed_by_a_roster_key() -> None:
    load = prepare(DEFAULT_MIX, [300, 200])
    everything = [tx for stage in load.setup for tx in stage]
    everything += [tx for run in load.per_run for tx in run]
    everything += load.sign_elections(5)
    txs = decoded(everything)
    assert len({signed.hash_hex for signed in everything}) == len(everything)
    assert len({tx.replay_key for tx in txs}) == len(txs)
    roster = set(load.plan.roster.agencies) | set(load.plan.roster.citizens)
    for tx, signed in zip(txs, everything, strict=True):
        assert tx.kind == signed.kind
        assert tx.chain_id == CHAIN
        assert tx.signer in roster
        assert tx.verify_signature()


def test_dependent_setup_txs_precede_their_users() -> None:
    load = prepare(DEFAULT_MIX, [600])
    setup_kinds = [Counter(tx.kind for tx in stage) for stage in load.setup]
    assert setup_kinds[0]["fund.create"] == 3
    assert setup_kinds[1]["fund.donate"] == 3  # funds campaigns created in stage 0
    run = Counter(tx.kind for tx in load.per_run[0])
    assert setup_kinds[0]["asset.register"] >= run["asset.record"]  # one inspection each
    assert setup_kinds[0]["reward.award"] == len(load.plan.roster.citizens)
    assert len(load.plan.election_ids) == 1
    assert run["vote.cast"] <= len(load.plan.roster.citizens)


def _execute(chain: AppHarness, txs: list[Tx]) -> list[int]:
    return [result.code for result in chain.run_block(txs).results]


def test_setup_then_the_run_shuffled_across_blocks_all_succeed_in_the_real_services() -> None:
    load = prepare(DEFAULT_MIX, [900], agencies=3)
    chain = harness(3)
    assert set(_execute(chain, decoded(load.sign_elections(chain.height + 2)))) == {0}
    for stage in load.setup:
        assert set(_execute(chain, decoded(stage))) == {0}
    run = decoded(load.per_run[0])
    random.Random(7).shuffle(run)  # any reordering by mempools, gossip and proposers
    codes: list[int] = []
    for first in range(0, len(run), 37):
        codes += _execute(chain, run[first : first + 37])
    refused = Counter((tx.kind, code) for tx, code in zip(run, codes, strict=True) if code)
    assert not refused, refused
    assert chain.query("vote/election", {"id": load.plan.election_ids[0]}).found


def test_a_second_run_of_the_same_plan_is_refused_so_the_check_is_real() -> None:
    """Replaying the same bodies with fresh nonces must fail (duplicate ids), proving the
    success above comes from the plan's design, not from a lenient harness."""
    load = prepare("asset=1,credential=1", [20], agencies=2)
    chain = harness(2)
    assert not load.setup[1]  # no fund in this mix: nothing to fund
    assert set(_execute(chain, decoded(load.setup[0]))) == {0}
    assert set(_execute(chain, decoded(load.per_run[0]))) == {0}
    again = mixload.prepare(
        load_spec(), agency_keys(2), mix.parse_mix("asset=1,credential=1"), [20], workers=0
    )
    codes = _execute(chain, decoded(again.per_run[0]))
    assert 201 in codes  # ASSET_ALREADY_REGISTERED
    assert 352 in codes  # CREDENTIAL_DUPLICATE


def test_elections_signed_again_get_fresh_nonces() -> None:
    load = prepare("vote=1", [10])
    first, second = decoded(load.sign_elections(4)), decoded(load.sign_elections(9))
    assert first[0].nonce != second[0].nonce
    assert first[0].body != second[0].body  # the window moved


def test_nonces_count_up_per_signer_without_gaps() -> None:
    drafts = [mix.Draft(slot, "notary.anchor", b"") for slot in (0, 1, 0, 0, 1)]
    numbered = mixload.with_nonces(drafts, 2)
    zero = [nonce for slot, nonce, _, _ in numbered if slot == 0]
    one = [nonce for slot, nonce, _, _ in numbered if slot == 1]
    assert zero == [zero[0], zero[0] + 1, zero[0] + 2]
    assert one == [one[0], one[0] + 1]


# --- per-kind figures and execution outcomes ---------------------------------------------


def _ledger_with_two_kinds() -> tuple[Ledger, list[str]]:
    kinds = ["asset.register", "vote.cast", "asset.register", "vote.cast"]
    ledger = Ledger([f"{i:064x}" for i in range(4)])
    for index in range(4):
        ledger.sent_at(index, 0.5 * index)
    ledger.block_seen(2.0, {"height": 7, "tx_hashes": [f"{i:064x}" for i in (1, 0, 2)]}, node="n")
    return ledger, kinds


def test_ledger_remembers_where_each_commit_sits_in_its_block() -> None:
    ledger, _ = _ledger_with_two_kinds()
    assert ledger.positions == {7: [(0, 1), (1, 0), (2, 2)]}


def test_kind_figures_count_and_time_each_kind_and_attach_refusals() -> None:
    ledger, kinds = _ledger_with_two_kinds()
    found = outcomes.Outcomes()
    found.record("asset.register", {"code": 0}, 0)
    found.record("asset.register", {"code": 201, "log": "already registered"}, 2)
    found.record("vote.cast", {"code": 0}, 1)
    figures = kind_figures(ledger, kinds, warmup_s=0.4, outcomes=found)
    assert figures["asset.register"]["sent"] == 2
    assert figures["asset.register"]["committed"] == 2
    assert figures["asset.register"]["refused_at_execution"] == 1
    assert figures["asset.register"]["refused_by_code"] == {"201": 1}
    assert figures["asset.register"]["latency"]["count"] == 1  # tx 0 sent in the warm-up
    assert figures["asset.register"]["latency"]["p50_s"] == pytest.approx(1.0)
    assert figures["vote.cast"]["committed"] == 1
    assert figures["vote.cast"]["not_committed"] == 1
    assert figures["vote.cast"]["latency"]["p50_s"] == pytest.approx(1.5)
    assert found.refused_total == 1
    assert found.to_json()["samples"] == {"asset.register:201": "already registered"}


def test_report_shows_the_kind_table_and_refusals(canned_document: dict[str, Any]) -> None:
    document = copy.deepcopy(canned_document)
    ledger, kinds = _ledger_with_two_kinds()
    found = outcomes.Outcomes()
    found.record("asset.register", {"code": 201, "log": "already registered"}, 2)
    run = document["runs"][0]
    run["kinds"] = kind_figures(ledger, kinds, warmup_s=0.0, outcomes=found)
    run["execution"] = found.to_json()
    document["signing"]["mix"] = {"weights": {"asset": 1, "vote": 1}, "citizens": 64}
    document["setup"] = {"txs": 10, "elections": 1, "fillers": 0, "seconds": 0.5}
    text = report.render(document)
    assert "| asset.register | 2 | 2 | 1 (201: 1) |" in text
    assert "refused at execution: 1 of 1 committed txs checked" in text
    assert "mix asset=1,vote=1 (64 citizen keys)" in text
    assert "mix setup (committed before the runs): 10 txs, 1 elections" in text
