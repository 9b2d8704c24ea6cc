"""Issue 7: the "day in the life of the city" scenario on a real 4-node PBFT cluster.

Runs scripts/day_in_the_life.py's main() against a fresh testnet in tmp_path and checks what
the day produced, read back from the chain: every service committed txs and refused the
ones it must (with the right codes), the sums a citizen or auditor reads add up, the tally
is right, every node ended on the same height and app hash, the proofs checked offline,
and the cluster's processes are gone afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from node.cluster import is_our_node, node_homes, read_pid
from services.codes import Code
from tests.scripts_loader import load_script

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


EXPECTED_REFUSALS = {
    "notary": {Code.NOTARY_DUPLICATE_ANCHOR, Code.NOTARY_NOT_ISSUER, Code.UNAUTHORIZED},
    "asset": {Code.ASSET_ODOMETER_BACKWARDS, Code.ASSET_NOT_OWNER},
    "fund": {Code.FUND_INSUFFICIENT_BALANCE, Code.FUND_MILESTONE_PAID, Code.FUND_NOT_INSPECTOR},
    "credential": {Code.CREDENTIAL_ALREADY_REVOKED},
    "reward": {Code.REWARD_DUPLICATE_RECORD, Code.REWARD_INSUFFICIENT_POINTS},
    "vote": {
        Code.VOTE_ALREADY_VOTED,
        Code.VOTE_NOT_ELIGIBLE,
        Code.VOTE_NOT_ENDED,
        Code.VOTE_ALREADY_CLOSED,
    },
    "gov": {Code.GOV_NOT_COUNCIL, Code.GOV_ALREADY_APPLIED},
}
# Committed txs per service; the notary's count also includes the filler anchors that move
# the chain past the election's end, which vary with block timing, so it is a minimum.
EXPECTED_COMMITTED = {"asset": 5, "fund": 8, "credential": 2, "reward": 4, "vote": 7, "gov": 2}


def test_day_in_the_life_on_four_pbft_nodes(tmp_path: Path) -> None:
    script = load_script("day_in_the_life.py")
    lines: list[str] = []
    directory = tmp_path / "city"

    summary = script.main(["--dir", str(directory)], out=lines.append)

    for service, codes in EXPECTED_REFUSALS.items():
        assert set(summary.refusal_codes[service]) == {int(code) for code in codes}, service
        assert summary.refused[service] == len(codes), service
    for service, count in EXPECTED_COMMITTED.items():
        assert summary.committed[service] == count, service
    assert summary.committed["notary"] >= 2
    assert summary.nodes_used == {0, 1, 2, 3}

    assert len(summary.heights) == 4
    assert set(summary.heights) == {summary.final_height}
    assert len(set(summary.app_hashes)) == 1
    assert len(summary.app_hashes[0]) == 64
    assert summary.app_hash_agreement
    assert summary.final_height >= sum(summary.committed.values()) // 5  # blocks were cut
    assert summary.proof_verified

    assert summary.notary_status == "valid"
    assert summary.credential_offline_valid
    assert summary.credential_online_verdict == "revoked"
    assert summary.tally == {"New playground": 1, "Library extension": 1, "Riverside bike path": 3}
    campaign = summary.fund_campaign
    assert (campaign["total_in"], campaign["balance"], campaign["escrowed"]) == (200_000, 40_000, 0)
    assert (campaign["spent"], campaign["paid"]) == (80_000, 80_000)
    assert (summary.reward_supply["awarded"], summary.reward_supply["redeemed"]) == (2_000, 900)
    assert summary.reward_supply["supply"] == 1_100
    assert summary.car_history == ["registration", "inspection", "accident", "repair", "transfer"]
    assert "mapo-district" in summary.agencies_after

    text = "\n".join(lines)
    assert "all nodes agree" in text
    assert "REFUSED 254 FUND_INSUFFICIENT_BALANCE" in text
    assert "REFUSED 7 UNAUTHORIZED" in text  # refused at admission, named like the others
    homes = node_homes(directory)
    assert len(homes) == 4
    for home in homes:  # torn down: no node of this run is left running
        pid = read_pid(home)
        assert pid is None or not is_our_node(pid, home), home.name
