"""`seoulchain fund ...`: campaigns and budgets, donations, expenditures, subcontract escrow
(docs/services/fund.md). The lead wires `add_commands` into node/cli.py.

A contract's milestones are given as repeated `--milestone AMOUNT:SUBCONTRACTOR:INSPECTOR:TEXT`
(keys as 64 hex or key files; TEXT may contain ':')."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from node import cli_ledger_common as common
from node.cli_common import CliError
from services.fund_bodies import (
    MilestoneBody,
    encode_approve,
    encode_cancel,
    encode_contract,
    encode_create,
    encode_donate,
    encode_spend,
    milestones_per_contract_max,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # argparse's class is generic only in typeshed
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def add_commands(subparsers: Subparsers) -> None:
    fund = subparsers.add_parser("fund", help="donations, budgets and subcontract escrow")
    sub = fund.add_subparsers(dest="fund_command", parser_class=type(fund), required=True)
    create = sub.add_parser("create", help="open a campaign or budget (role fund_manager)")
    create.add_argument("--id", required=True, dest="campaign_id")
    create.add_argument("--category", choices=("campaign", "budget"), default="campaign")
    create.add_argument("--title", required=True)
    create.add_argument("--purpose", default="")
    common.add_tx_options(create, key_help="manager agency key file")
    create.set_defaults(handler=common.tx_handler(build_create))
    donate = sub.add_parser("donate", help="record a donation you made (anyone)")
    donate.add_argument("--campaign", required=True)
    donate.add_argument("--amount", type=int, required=True, help="integer, smallest unit")
    donate.add_argument("--reference", default="", help="bank transfer or receipt number")
    donate.add_argument("--memo", default="")
    common.add_tx_options(donate, key_help="donor key file")
    donate.set_defaults(handler=common.tx_handler(build_donate))
    spend = sub.add_parser("spend", help="record an expenditure (the campaign's manager)")
    spend.add_argument("--campaign", required=True)
    spend.add_argument("--amount", type=int, required=True)
    spend.add_argument("--purpose", required=True)
    spend.add_argument("--payee", default="")
    spend.add_argument("--reference", default="")
    common.add_tx_options(spend, key_help="manager agency key file")
    spend.set_defaults(handler=common.tx_handler(build_spend))
    _add_escrow_commands(sub)
    _add_queries(sub)


def _add_escrow_commands(sub: Subparsers) -> None:
    contract = sub.add_parser("contract", help="lock funds in a subcontract's milestones")
    contract.add_argument("--campaign", required=True)
    contract.add_argument("--id", required=True, dest="contract_id")
    contract.add_argument("--title", required=True)
    contract.add_argument(
        "--milestone",
        action="append",
        default=[],
        metavar="AMOUNT:SUBCONTRACTOR:INSPECTOR:TEXT",
        help=f"repeat 1..{milestones_per_contract_max} times",
    )
    common.add_tx_options(contract, key_help="manager agency key file")
    contract.set_defaults(handler=common.tx_handler(build_contract))
    approve = sub.add_parser("approve", help="approve a milestone: pays it (its inspector)")
    approve.add_argument("--contract", required=True)
    approve.add_argument("--milestone", type=int, required=True, help="index, from 0")
    approve.add_argument("--note", default="")
    common.add_tx_options(approve, key_help="the milestone inspector's key file")
    approve.set_defaults(handler=common.tx_handler(build_approve))
    cancel = sub.add_parser("cancel", help="cancel a contract; unpaid escrow returns")
    cancel.add_argument("--contract", required=True)
    cancel.add_argument("--reason", required=True)
    common.add_tx_options(cancel, key_help="manager agency key file")
    cancel.set_defaults(handler=common.tx_handler(build_cancel))


def _add_queries(sub: Subparsers) -> None:
    show = sub.add_parser("show", help="a campaign's balances")
    show.add_argument("--campaign", required=True)
    common.add_rpc_options(show)
    show.set_defaults(handler=common.query_handler("fund/campaign", lambda a: {"id": a.campaign}))
    contract = sub.add_parser("show-contract", help="a contract and its milestones")
    contract.add_argument("--contract", required=True)
    common.add_rpc_options(contract)
    contract.set_defaults(
        handler=common.query_handler("fund/contract", lambda a: {"id": a.contract})
    )
    flows = sub.add_parser("flows", help="every money movement of a campaign, in order")
    flows.add_argument("--campaign", required=True)
    common.page_options(flows)
    common.add_rpc_options(flows)
    flows.set_defaults(
        handler=common.query_handler(
            "fund/flows", lambda a: {"campaign": a.campaign, "limit": a.limit, "after": a.after}
        )
    )


def build_create(args: argparse.Namespace) -> tuple[str, bytes]:
    body = common.validated_body(
        lambda: encode_create(args.campaign_id, args.category, args.title, args.purpose)
    )
    return "fund.create", body


def build_donate(args: argparse.Namespace) -> tuple[str, bytes]:
    body = common.validated_body(
        lambda: encode_donate(args.campaign, args.amount, reference=args.reference, memo=args.memo)
    )
    return "fund.donate", body


def build_spend(args: argparse.Namespace) -> tuple[str, bytes]:
    body = common.validated_body(
        lambda: encode_spend(
            args.campaign, args.amount, args.purpose, payee=args.payee, reference=args.reference
        )
    )
    return "fund.spend", body


def build_contract(args: argparse.Namespace) -> tuple[str, bytes]:
    if not 1 <= len(args.milestone) <= milestones_per_contract_max:
        raise CliError(f"give 1..{milestones_per_contract_max} --milestone options", exit_code=2)
    milestones = [parse_milestone(text) for text in args.milestone]
    body = common.validated_body(
        lambda: encode_contract(args.campaign, args.contract_id, args.title, milestones)
    )
    return "fund.contract", body


def parse_milestone(text: str) -> MilestoneBody:
    amount, subcontractor, inspector, description = [*text.split(":", 3), "", "", ""][:4]
    if not amount.isdigit() or not subcontractor or not inspector:
        raise CliError(
            f"--milestone {text!r}: expected AMOUNT:SUBCONTRACTOR:INSPECTOR:TEXT", exit_code=2
        )
    return MilestoneBody(
        amount=int(amount),
        description=description,
        subcontractor=common.public_key_argument(subcontractor, option="--milestone"),
        inspector=common.public_key_argument(inspector, option="--milestone"),
    )


def build_approve(args: argparse.Namespace) -> tuple[str, bytes]:
    body = common.validated_body(lambda: encode_approve(args.contract, args.milestone, args.note))
    return "fund.approve", body


def build_cancel(args: argparse.Namespace) -> tuple[str, bytes]:
    body = common.validated_body(lambda: encode_cancel(args.contract, args.reason))
    return "fund.cancel", body
