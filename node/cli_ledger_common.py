"""What the asset, fund and reward CLI modules share (node/cli_asset.py, cli_fund.py,
cli_reward.py): argument types, body validation, and the submit / query round trips.

Each command is split in two: a pure `build` step from parsed arguments to (kind, body)
— validated exactly as the chain will decode it, so a bad field is a one-line usage error
(exit 2) before any network call — and the shared `send_tx` / `show_query` steps that talk
to the node through node/cli_tx.py's `submit` (random 64-bit nonce, expiry 1000 heights).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path

import msgspec

from node import cli_tx
from node.cli_common import CliError, rpc_url
from node.cli_rpc import call_sync
from node.keys import load_key_file
from protocol.crypto import PUBLIC_KEY_BYTES

log = logging.getLogger(__name__)

Build = Callable[[argparse.Namespace], tuple[str, bytes]]


def add_rpc_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpc", help="node RPC URL (default: from --home, else :26657)")
    parser.add_argument("--home", type=Path, help="take the RPC URL from this home's config")


def add_tx_options(parser: argparse.ArgumentParser, *, key_help: str) -> None:
    parser.add_argument("--key", type=Path, required=True, help=key_help)
    parser.add_argument("--wait", action="store_true", help="wait until committed")
    add_rpc_options(parser)


def public_key_argument(text: str, *, option: str) -> bytes:
    """A public key given as 64 hex characters, or as the path of a key file."""
    candidate = text.removeprefix("0x")
    if len(candidate) == 2 * PUBLIC_KEY_BYTES:
        try:
            return bytes.fromhex(candidate)
        except ValueError:
            pass
    path = Path(text)
    if not path.exists():
        raise CliError(f"{option} {text!r}: neither 64 hex characters nor a key file", exit_code=2)
    return load_key_file(path).public_key


def validated_body(encode: Callable[[], bytes]) -> bytes:
    """The body bytes, or a usage error naming the bad field."""
    try:
        return encode()
    except (ValueError, TypeError, OverflowError, msgspec.EncodeError) as error:
        raise CliError(f"invalid tx body: {error}", exit_code=2) from None


def tx_handler(build: Build) -> Callable[[argparse.Namespace], int]:
    """A handler that builds the body first (usage errors before any I/O), then signs,
    submits and prints the outcome; exit 0 only if the tx succeeded (or was admitted,
    without --wait)."""

    def handle(args: argparse.Namespace) -> int:
        kind, body = build(args)
        key = load_key_file(args.key)
        url = rpc_url(rpc=args.rpc, home=args.home)
        answer = cli_tx.submit(url, key, kind=kind, body=body, wait=args.wait)
        lines, ok = cli_tx.outcome_lines(answer)
        print("\n".join(lines))
        return 0 if ok else 1

    return handle


def query_handler(
    path: str, params_of: Callable[[argparse.Namespace], dict[str, str]]
) -> Callable[[argparse.Namespace], int]:
    """A handler that runs one `query` and prints its value as JSON; exit 1 if not found."""

    def handle(args: argparse.Namespace) -> int:
        query = {name: value for name, value in params_of(args).items() if value}
        url = rpc_url(rpc=args.rpc, home=args.home)
        answer = call_sync(url, "query", {"path": path, "params": query})
        if not isinstance(answer, dict):
            raise CliError(f"query {path}: unexpected answer")
        if not answer.get("found"):
            print(f"{path}: not found")
            return 1
        print(json.dumps(answer.get("value"), indent=2, ensure_ascii=False))
        return 0

    return handle


def page_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", default="", help="page size, 1..100 (default 20)")
    parser.add_argument("--after", default="", help="the `next` cursor of the previous page")
