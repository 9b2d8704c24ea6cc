"""`seoulchain notary verify FILE`: is this document anchored, and does it still stand?

The file is hashed locally (SHA-256, read in bounded chunks; it never leaves the machine),
then the node is asked for `notary/document` with `at_ms` = the latest block time from
`status` (or `--at-ms`), so "expired" is judged at chain time, not at this machine's clock.
One line on stdout says valid / revoked / expired / unknown, with issuer and height; the
exit code is 0 only for valid, so scripts can branch on it (docs/services/notary.md).

The lead wires it in: `cli_notary_verify.add_commands(notary_subparsers)` from node/cli.py's
`_add_notary`. User errors raise CliError / RpcCallError, which node/cli.py prints as one line.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from node import cli_tx
from node.cli_common import CliError, rpc_url
from node.cli_rpc import call_sync

log = logging.getLogger(__name__)

VERDICTS = ("valid", "revoked", "expired", "unknown")
_AT_MS_MAX = 2**63 - 1


def add_commands(subparsers: Any) -> None:
    """Register `verify` under the `notary` command's subparsers."""
    verify = subparsers.add_parser(
        "verify", help="hash a file locally and check it on chain (exit 0 only if valid)"
    )
    verify.add_argument("file", type=Path, help="the document (hashed here, never sent)")
    verify.add_argument("--rpc", help="node RPC URL (default: from --home, else :26657)")
    verify.add_argument("--home", type=Path, help="take the RPC URL from this home's config")
    verify.add_argument(
        "--at-ms", type=int, help="judge expiry at this time (default: latest block time)"
    )
    verify.set_defaults(handler=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    verdict, line = verify_document(
        rpc_url(rpc=args.rpc, home=args.home), args.file, at_ms=args.at_ms
    )
    print(line)
    return 0 if verdict == "valid" else 1


def verify_document(url: str, path: Path, *, at_ms: int | None = None) -> tuple[str, str]:
    """(verdict, one human line) for the file at `path`, asking the node at `url`."""
    document_hash = cli_tx.document_hash(path)
    if at_ms is None:
        at_ms = latest_block_time_ms(url)
    if not 0 <= at_ms <= _AT_MS_MAX:
        raise CliError(f"--at-ms must be 0..{_AT_MS_MAX}", exit_code=2)
    params = {"hash": document_hash.hex(), "at_ms": str(at_ms)}
    answer = call_sync(url, "query", {"path": "notary/document", "params": params})
    return verdict_of(answer, document_hash)


def latest_block_time_ms(url: str) -> int:
    status = call_sync(url, "status")
    sync_info = status.get("sync_info") if isinstance(status, dict) else None
    time_ms = sync_info.get("latest_block_time_ms") if isinstance(sync_info, dict) else None
    if not isinstance(time_ms, int) or isinstance(time_ms, bool) or time_ms < 0:
        raise CliError(f"{url}: status answer has no sync_info.latest_block_time_ms")
    return time_ms


def verdict_of(answer: Any, document_hash: bytes) -> tuple[str, str]:
    """Read a `notary/document` query answer; anything malformed is a CliError."""
    short = document_hash.hex()
    if not isinstance(answer, dict):
        raise CliError("query notary/document: unexpected answer")
    if not answer.get("found"):
        return "unknown", f"unknown: {short} was never anchored"
    record = answer.get("value")
    if not isinstance(record, dict) or record.get("status") not in VERDICTS:
        raise CliError("query notary/document: answer has no valid record")
    status = str(record["status"])
    line = (
        f"{status}: {short} anchored by {record.get('agency')} ({record.get('issuer')}) "
        f"at height {record.get('height')}"
    )
    revocation = record.get("revocation")
    if status == "revoked" and isinstance(revocation, dict):
        line += f"; revoked at height {revocation.get('height')}: {revocation.get('reason')}"
    if status == "expired":
        line += f"; expired at {record.get('expires_at_ms')}"
    return status, line
