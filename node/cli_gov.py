"""`seoulchain gov ...`: council proposals and approvals (docs/services/gov.md).

    gov propose  --key COUNCIL --id ID add-agency --name N --public-key HEX [--role R ...]
    gov propose  --key COUNCIL --id ID remove-agency --name N
    gov propose  --key COUNCIL --id ID set-roles --name N [--role R ...]
    gov propose  --key COUNCIL --id ID rotate-key --name N --new-public-key HEX
    gov approve  --key COUNCIL --id ID
    gov show     --id ID
    gov council

Each tx command takes [--wait] [--rpc URL | --home DIR]. The lead wires it in with
`cli_gov.add_commands(commands)` (top-level subparsers).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import msgspec

from node import cli_tx
from node.cli_common import CliError, rpc_url
from node.cli_rpc import call_sync
from node.keys import load_key_file
from protocol.crypto import PUBLIC_KEY_BYTES, parse_hex
from services.gov import (
    AddAgency,
    ApproveBody,
    Change,
    ProposeBody,
    RemoveAgency,
    RotateKey,
    SetRoles,
    encode_approve,
    encode_propose,
)

log = logging.getLogger(__name__)

_BODY_TYPES: dict[str, type[msgspec.Struct]] = {
    "gov.propose": ProposeBody,
    "gov.approve": ApproveBody,
}


def add_commands(commands: Any) -> None:
    gov = commands.add_parser("gov", help="governance: council proposals and approvals")
    sub = gov.add_subparsers(dest="gov_command", required=True)
    propose = sub.add_parser("propose", help="propose a change to the agency registry")
    _tx_options(propose)
    propose.add_argument("--id", required=True, help="proposal id")
    actions = propose.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add-agency")
    add.add_argument("--name", required=True)
    add.add_argument("--public-key", required=True)
    add.add_argument("--role", action="append", default=[])
    remove = actions.add_parser("remove-agency")
    remove.add_argument("--name", required=True)
    roles = actions.add_parser("set-roles")
    roles.add_argument("--name", required=True)
    roles.add_argument("--role", action="append", default=[])
    rotate = actions.add_parser("rotate-key")
    rotate.add_argument("--name", required=True)
    rotate.add_argument("--new-public-key", required=True)
    propose.set_defaults(handler=_propose)
    approve = sub.add_parser("approve", help="approve a pending proposal")
    _tx_options(approve)
    approve.add_argument("--id", required=True)
    approve.set_defaults(handler=_approve)
    show = sub.add_parser("show", help="a proposal, its approvals and status")
    show.add_argument("--id", required=True)
    _rpc_options(show)
    show.set_defaults(handler=_show)
    council = sub.add_parser("council", help="the council's keys and threshold")
    _rpc_options(council)
    council.set_defaults(handler=_council)


def _rpc_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpc", help="node RPC URL (default: from --home, else :26657)")
    parser.add_argument("--home", type=Path, help="take the RPC URL from this home's config")


def _tx_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", type=Path, required=True, help="council member's key file")
    parser.add_argument("--wait", action="store_true", help="wait until committed")
    _rpc_options(parser)


def _key(text: str, option: str) -> bytes:
    try:
        return parse_hex(text.removeprefix("0x"), size=PUBLIC_KEY_BYTES, field=option)
    except ValueError as error:
        raise CliError(str(error), exit_code=2) from None


def change_of(args: argparse.Namespace) -> Change:
    """The change a `gov propose` command line describes (bodies validate on encode)."""
    if args.action == "add-agency":
        key = _key(args.public_key, "--public-key")
        return AddAgency(name=args.name, public_key=key, roles=args.role)
    if args.action == "remove-agency":
        return RemoveAgency(name=args.name)
    if args.action == "set-roles":
        return SetRoles(name=args.name, roles=args.role)
    assert args.action == "rotate-key", args.action
    return RotateKey(name=args.name, new_public_key=_key(args.new_public_key, "--new-public-key"))


def _submit(args: argparse.Namespace, kind: str, encode: Any) -> int:
    try:
        body: bytes = encode()
        msgspec.msgpack.decode(body, type=_BODY_TYPES[kind])  # the chain's own bounds
    except (ValueError, TypeError, msgspec.ValidationError) as error:
        raise CliError(f"invalid tx body: {error}", exit_code=2) from None
    key = load_key_file(args.key)
    url = rpc_url(rpc=args.rpc, home=args.home)
    lines, ok = cli_tx.outcome_lines(cli_tx.submit(url, key, kind=kind, body=body, wait=args.wait))
    print("\n".join(lines))
    return 0 if ok else 1


def _propose(args: argparse.Namespace) -> int:
    change = change_of(args)
    return _submit(args, "gov.propose", lambda: encode_propose(args.id, change))


def _approve(args: argparse.Namespace) -> int:
    return _submit(args, "gov.approve", lambda: encode_approve(args.id))


def _query(args: argparse.Namespace, path: str, params: dict[str, str]) -> int:
    url = rpc_url(rpc=args.rpc, home=args.home)
    answer = call_sync(url, "query", {"path": path, "params": params})
    if not isinstance(answer, dict) or not answer.get("found"):
        print(f"{path}: not found")
        return 1
    print(json.dumps(answer.get("value"), indent=2, sort_keys=True, ensure_ascii=False))
    return 0


def _show(args: argparse.Namespace) -> int:
    return _query(args, "gov/proposal", {"id": args.id})


def _council(args: argparse.Namespace) -> int:
    return _query(args, "gov/council", {})
