"""`seoulchain credential ...`: issue, revoke and look up credentials; build and check
offline presentations (docs/services/credential.md).

    credential issue    --key AGENCY --holder HEX --type T --serial S --until-ms MS
                        [--from-ms MS] [--claim K=V ...] [--wait]
    credential revoke   --key AGENCY --id HEX --reason TEXT [--wait]
    credential show     --id HEX [--at-ms MS]
    credential present  --holder-key FILE --proof FILE --challenge HEX [--out FILE]
    credential check    --genesis FILE --presentation FILE --challenge HEX --at-ms MS
                        [--type T]                                  (offline, no node)

The lead wires it in with `cli_credential.add_commands(commands)` (top-level subparsers).
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
from node.genesis import load_genesis
from node.keys import load_key_file
from protocol.crypto import HASH_BYTES, PUBLIC_KEY_BYTES, parse_hex
from protocol.encoding import DecodeError
from protocol.proof import ResultProof
from protocol.tx import decode_tx
from services.credential import (
    IssueBody,
    RevokeBody,
    credential_id,
    encode_issue,
    encode_revoke,
)
from services.credential_offline import (
    Presentation,
    PresentationError,
    presentation_from_json,
    presentation_to_json,
    sign_presentation,
    verify_presentation,
)

log = logging.getLogger(__name__)


def add_commands(commands: Any) -> None:
    credential = commands.add_parser("credential", help="issue, revoke and check credentials")
    sub = credential.add_subparsers(dest="credential_command", required=True)
    issue = sub.add_parser("issue", help="issue a credential to a holder's public key")
    issue.add_argument("--key", type=Path, required=True, help="issuing agency's key file")
    issue.add_argument("--holder", required=True, help="holder public key, 64 hex")
    issue.add_argument("--type", required=True, dest="cred_type")
    issue.add_argument("--serial", required=True)
    issue.add_argument("--from-ms", type=int, default=0)
    issue.add_argument("--until-ms", type=int, required=True)
    issue.add_argument("--claim", action="append", default=[], metavar="KEY=VALUE")
    _tx_options(issue, _issue)
    revoke = sub.add_parser("revoke", help="revoke a credential your agency issued")
    revoke.add_argument("--key", type=Path, required=True)
    revoke.add_argument("--id", required=True, help="credential id, 64 hex")
    revoke.add_argument("--reason", required=True)
    _tx_options(revoke, _revoke)
    show = sub.add_parser("show", help="a credential and its status")
    show.add_argument("--id", required=True)
    show.add_argument("--at-ms", type=int, help="judge the validity window at this time")
    _rpc_options(show)
    show.set_defaults(handler=_show)
    present = sub.add_parser("present", help="sign a verifier's challenge (holder side)")
    present.add_argument("--holder-key", type=Path, required=True)
    present.add_argument("--proof", type=Path, required=True, help="proof of the issue tx")
    present.add_argument("--challenge", required=True, help="the verifier's challenge, hex")
    present.add_argument("--out", type=Path, help="write the presentation here")
    present.set_defaults(handler=_present)
    check = sub.add_parser("check", help="check a presentation offline against a genesis")
    check.add_argument("--genesis", type=Path, required=True)
    check.add_argument("--presentation", type=Path, required=True)
    check.add_argument("--challenge", required=True)
    check.add_argument("--at-ms", type=int, required=True)
    check.add_argument("--type", dest="cred_type")
    check.set_defaults(handler=_check)


def _rpc_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpc", help="node RPC URL (default: from --home, else :26657)")
    parser.add_argument("--home", type=Path, help="take the RPC URL from this home's config")


def _tx_options(parser: argparse.ArgumentParser, handler: Any) -> None:
    parser.add_argument("--wait", action="store_true", help="wait until committed")
    _rpc_options(parser)
    parser.set_defaults(handler=handler)


def _hex(text: str, *, size: int, option: str) -> bytes:
    try:
        return parse_hex(text.removeprefix("0x"), size=size, field=option)
    except ValueError as error:
        raise CliError(str(error), exit_code=2) from None


def _body(encode: Any, body_type: type[msgspec.Struct]) -> bytes:
    """Encode, then decode with the chain's own body type: its bounds checked here."""
    try:
        body: bytes = encode()
        msgspec.msgpack.decode(body, type=body_type)
    except (ValueError, TypeError, msgspec.ValidationError) as error:
        raise CliError(f"invalid tx body: {error}", exit_code=2) from None
    return body


def _submit(args: argparse.Namespace, kind: str, body: bytes) -> int:
    key = load_key_file(args.key)
    url = rpc_url(rpc=args.rpc, home=args.home)
    lines, ok = cli_tx.outcome_lines(cli_tx.submit(url, key, kind=kind, body=body, wait=args.wait))
    print("\n".join(lines))
    return 0 if ok else 1


def _issue(args: argparse.Namespace) -> int:
    holder = _hex(args.holder, size=PUBLIC_KEY_BYTES, option="--holder")
    claims = cli_tx.parse_meta(args.claim)
    body = _body(
        lambda: encode_issue(
            cred_type=args.cred_type,
            holder=holder,
            serial=args.serial,
            valid_from_ms=args.from_ms,
            valid_until_ms=args.until_ms,
            claims=claims,
        ),
        IssueBody,
    )
    issuer = load_key_file(args.key).public_key
    ident = credential_id(
        issuer=issuer, holder=holder, cred_type=args.cred_type, serial=args.serial
    )
    print(f"credential id: {ident.hex()}")
    return _submit(args, "credential.issue", body)


def _revoke(args: argparse.Namespace) -> int:
    ident = _hex(args.id, size=HASH_BYTES, option="--id")
    return _submit(
        args, "credential.revoke", _body(lambda: encode_revoke(ident, args.reason), RevokeBody)
    )


def _show(args: argparse.Namespace) -> int:
    ident = _hex(args.id, size=HASH_BYTES, option="--id")
    params = {"id": ident.hex()}
    if args.at_ms is not None:
        params["at_ms"] = str(args.at_ms)
    url = rpc_url(rpc=args.rpc, home=args.home)
    answer = call_sync(url, "query", {"path": "credential/get", "params": params})
    if not isinstance(answer, dict) or not answer.get("found"):
        print(f"credential {ident.hex()}: unknown")
        return 1
    print(json.dumps(answer.get("value"), indent=2, sort_keys=True, ensure_ascii=False))
    return 0


def _read_json(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            raw = handle.read(cli_tx.PROOF_FILE_BYTES_MAX + 1)
    except OSError as error:
        raise CliError(f"{path}: cannot read: {error.strerror}") from None
    if len(raw) > cli_tx.PROOF_FILE_BYTES_MAX:
        raise CliError(f"{path}: larger than {cli_tx.PROOF_FILE_BYTES_MAX} bytes")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CliError(f"{path}: not JSON") from None


def _present(args: argparse.Namespace) -> int:
    key = load_key_file(args.holder_key)
    challenge = _challenge(args.challenge)
    document = _read_json(args.proof)
    if isinstance(document, dict) and isinstance(document.get("proof"), dict):
        document = document["proof"]  # a saved `tx show --prove` answer
    try:
        if not isinstance(document, dict):
            raise DecodeError("a proof is a JSON object")
        proof = cli_tx.proof_from_any_json(document)
    except (DecodeError, ValueError) as error:
        raise CliError(f"{args.proof}: not a proof: {error}") from None
    tx_proof = proof.tx_proof if isinstance(proof, ResultProof) else proof
    tx = decode_tx(tx_proof.tx)  # the proof decoder already checked it decodes
    chain_id = tx.chain_id
    try:
        body = msgspec.msgpack.decode(tx.body, type=IssueBody)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise CliError(f"{args.proof}: not a credential.issue tx: {error}") from None
    ident = credential_id(
        issuer=tx.signer, holder=body.holder, cred_type=body.cred_type, serial=body.serial
    )
    signature = sign_presentation(key, chain_id=chain_id, credential=ident, challenge=challenge)
    text = json.dumps(presentation_to_json(Presentation(proof=proof, holder_signature=signature)))
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


def _challenge(text: str) -> bytes:
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise CliError("--challenge is not hex", exit_code=2) from None


def _check(args: argparse.Namespace) -> int:
    genesis = load_genesis(args.genesis)
    try:
        presentation = presentation_from_json(_read_json(args.presentation))
        verified = verify_presentation(
            presentation,
            genesis=genesis.services_genesis(),
            validators=genesis.validator_set(),
            challenge=_challenge(args.challenge),
            at_ms=args.at_ms,
            expected_type=args.cred_type,
            accept_leader_seal=genesis.consensus.kind == "raft",
        )
    except PresentationError as error:
        raise CliError(f"INVALID: {error.reason}") from None
    proven = "result proven" if verified.result_proven else "tx proven, result not proven"
    print(
        f"VALID: {verified.cred_type} {verified.serial} issued by {verified.agency} "
        f"to {verified.holder.hex()} at height {verified.height} ({proven}); "
        "revocation needs an online check"
    )
    return 0
