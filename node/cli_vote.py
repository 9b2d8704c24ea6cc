"""`seoulchain vote ...`: create an election, cast a ballot, close it, read the results
(docs/services/vote.md).

    vote create   --key AGENCY --id ID --title T --option A --option B ...
                  (--voter HEX ... [--voters-file FILE] |
                   --credential-type T --credential-issuer AGENCY) --start H --end H [--wait]
    vote cast     --key VOTER --id ID --option INDEX [--wait]
    vote close    --key ANY --id ID [--wait]
    vote results  --id ID                 (exit 1 while the election is not closed)

The lead wires it in with `cli_vote.add_commands(commands)` (top-level subparsers).
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
from services.vote import (
    VOTERS_MAX,
    CastBody,
    CloseBody,
    CreateBody,
    CredentialRule,
    encode_cast,
    encode_close,
    encode_create,
)

log = logging.getLogger(__name__)

_BODY_TYPES: dict[str, type[msgspec.Struct]] = {
    "vote.create": CreateBody,
    "vote.cast": CastBody,
    "vote.close": CloseBody,
}

_VOTERS_FILE_BYTES_MAX = 256 * 1024


def add_commands(commands: Any) -> None:
    vote = commands.add_parser("vote", help="elections: create, cast, close, results")
    sub = vote.add_subparsers(dest="vote_command", required=True)
    create = sub.add_parser("create", help="create an election (role vote_admin)")
    create.add_argument("--id", required=True)
    create.add_argument("--title", required=True)
    create.add_argument("--option", action="append", required=True)
    create.add_argument("--voter", action="append", default=[], help="voter key, 64 hex")
    create.add_argument("--voters-file", type=Path, help="one voter key (64 hex) per line")
    create.add_argument("--credential-type", help="eligible: holders of this credential type")
    create.add_argument("--credential-issuer", help="... issued by this agency (name)")
    create.add_argument("--start", type=int, required=True, help="first height of the window")
    create.add_argument("--end", type=int, required=True, help="last height of the window")
    _tx_options(create, _create)
    cast = sub.add_parser("cast", help="cast your one ballot")
    cast.add_argument("--id", required=True)
    cast.add_argument("--option", type=int, required=True, help="option index, from 0")
    _tx_options(cast, _cast)
    close = sub.add_parser("close", help="close an election after its window; counts ballots")
    close.add_argument("--id", required=True)
    _tx_options(close, _close)
    results = sub.add_parser("results", help="the tally of a closed election")
    results.add_argument("--id", required=True)
    _rpc_options(results)
    results.set_defaults(handler=_results)


def _rpc_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpc", help="node RPC URL (default: from --home, else :26657)")
    parser.add_argument("--home", type=Path, help="take the RPC URL from this home's config")


def _tx_options(parser: argparse.ArgumentParser, handler: Any) -> None:
    parser.add_argument("--key", type=Path, required=True, help="signer's key file")
    parser.add_argument("--wait", action="store_true", help="wait until committed")
    _rpc_options(parser)
    parser.set_defaults(handler=handler)


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


def voter_keys(texts: list[str], path: Path | None) -> list[bytes]:
    """Voter keys from --voter and --voters-file (blank lines and # comments skipped)."""
    if path is not None:
        try:
            with path.open("rb") as handle:
                raw = handle.read(_VOTERS_FILE_BYTES_MAX + 1)
        except OSError as error:
            raise CliError(f"{path}: cannot read: {error.strerror}") from None
        if len(raw) > _VOTERS_FILE_BYTES_MAX:
            raise CliError(f"{path}: larger than {_VOTERS_FILE_BYTES_MAX} bytes")
        lines = raw.decode("utf-8", errors="replace").splitlines()
        texts = texts + [line.strip() for line in lines if line.strip()[:1] not in ("", "#")]
    if not 1 <= len(texts) <= VOTERS_MAX:
        raise CliError(f"give 1..{VOTERS_MAX} voters", exit_code=2)
    try:
        return [parse_hex(text, size=PUBLIC_KEY_BYTES, field="voter") for text in texts]
    except ValueError as error:
        raise CliError(str(error), exit_code=2) from None


def _create(args: argparse.Namespace) -> int:
    rule = None
    if args.credential_type or args.credential_issuer:
        if not (args.credential_type and args.credential_issuer):
            raise CliError("give both --credential-type and --credential-issuer", exit_code=2)
        rule = CredentialRule(cred_type=args.credential_type, issuer_agency=args.credential_issuer)
    listed = rule is None or args.voter or args.voters_file is not None
    voters = voter_keys(args.voter, args.voters_file) if listed else []
    return _submit(
        args,
        "vote.create",
        lambda: encode_create(
            election_id=args.id,
            title=args.title,
            options=args.option,
            voters=voters,
            start_height=args.start,
            end_height=args.end,
            eligible_credential=rule,
        ),
    )


def _cast(args: argparse.Namespace) -> int:
    return _submit(args, "vote.cast", lambda: encode_cast(args.id, args.option))


def _close(args: argparse.Namespace) -> int:
    return _submit(args, "vote.close", lambda: encode_close(args.id))


def _results(args: argparse.Namespace) -> int:
    url = rpc_url(rpc=args.rpc, home=args.home)
    answer = call_sync(url, "query", {"path": "vote/results", "params": {"id": args.id}})
    if not isinstance(answer, dict):
        raise CliError("vote/results: unexpected answer")
    if not answer.get("found"):
        value = answer.get("value")
        reason = value.get("log") if isinstance(value, dict) else "no such election"
        print(f"election {args.id}: {reason}")
        return 1
    print(json.dumps(answer.get("value"), indent=2, sort_keys=True, ensure_ascii=False))
    return 0
