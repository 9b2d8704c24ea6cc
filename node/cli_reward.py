"""`seoulchain reward ...`: award, transfer and redeem eco-mileage points; balances and the
supply at any height (docs/services/reward.md). The lead wires `add_commands` into
node/cli.py."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from node import cli_ledger_common as common
from services.reward import encode_award, encode_redeem, encode_transfer

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # argparse's class is generic only in typeshed
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def add_commands(subparsers: Subparsers) -> None:
    reward = subparsers.add_parser("reward", help="eco-mileage points: award, transfer, redeem")
    sub = reward.add_subparsers(dest="reward_command", parser_class=type(reward), required=True)
    award = sub.add_parser("award", help="award points for one activity record (issuer)")
    award.add_argument("--record", required=True, help="activity record id, counted once")
    award.add_argument("--holder", required=True, help="public key (hex) or key file")
    award.add_argument("--points", type=int, required=True)
    award.add_argument("--activity", required=True, help="e.g. electricity-saving")
    award.add_argument("--memo", default="")
    common.add_tx_options(award, key_help="issuer agency key file")
    award.set_defaults(handler=common.tx_handler(build_award))
    transfer = sub.add_parser("transfer", help="send your points to another key")
    transfer.add_argument("--to", required=True, help="public key (hex) or key file")
    transfer.add_argument("--points", type=int, required=True)
    transfer.add_argument("--memo", default="")
    common.add_tx_options(transfer, key_help="your (the holder's) key file")
    transfer.set_defaults(handler=common.tx_handler(build_transfer))
    redeem = sub.add_parser("redeem", help="spend your points at a participating agency")
    redeem.add_argument("--merchant", required=True, help="merchant agency key (hex) or file")
    redeem.add_argument("--points", type=int, required=True)
    redeem.add_argument("--memo", default="", help="e.g. the receipt number")
    common.add_tx_options(redeem, key_help="your (the holder's) key file")
    redeem.set_defaults(handler=common.tx_handler(build_redeem))
    _add_queries(sub)


def _add_queries(sub: Subparsers) -> None:
    balance = sub.add_parser("balance", help="a key's points")
    balance.add_argument("--holder", required=True, help="public key (hex) or key file")
    common.add_rpc_options(balance)
    balance.set_defaults(
        handler=common.query_handler(
            "reward/balance",
            lambda a: {"holder": common.public_key_argument(a.holder, option="--holder").hex()},
        )
    )
    record = sub.add_parser("record", help="who was awarded for an activity record")
    record.add_argument("--record", required=True)
    common.add_rpc_options(record)
    record.set_defaults(handler=common.query_handler("reward/record", lambda a: {"id": a.record}))
    supply = sub.add_parser("supply", help="awarded, redeemed and circulating points")
    supply.add_argument("--height", default="", help="as it stood after this block")
    common.add_rpc_options(supply)
    supply.set_defaults(
        handler=common.query_handler("reward/supply", lambda a: {"height": a.height})
    )


def build_award(args: argparse.Namespace) -> tuple[str, bytes]:
    holder = common.public_key_argument(args.holder, option="--holder")
    body = common.validated_body(
        lambda: encode_award(args.record, holder, args.points, args.activity, args.memo)
    )
    return "reward.award", body


def build_transfer(args: argparse.Namespace) -> tuple[str, bytes]:
    to = common.public_key_argument(args.to, option="--to")
    body = common.validated_body(lambda: encode_transfer(to, args.points, args.memo))
    return "reward.transfer", body


def build_redeem(args: argparse.Namespace) -> tuple[str, bytes]:
    merchant = common.public_key_argument(args.merchant, option="--merchant")
    body = common.validated_body(lambda: encode_redeem(merchant, args.points, args.memo))
    return "reward.redeem", body
