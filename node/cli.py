"""The `seoulchain` console script: argparse front end for every command (docs/CLI.md).

User errors (bad arguments, missing or invalid files, an unreachable node, a proof that
does not verify) print one line on stderr, prefixed "seoulchain: error:", and exit 1 (2 for
bad usage); never a traceback. A traceback means a bug in seoulchain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import msgspec

from node import cli_tx, cluster
from node.cli_common import CliError, rpc_url
from node.cli_init import DEFAULT_BASE_PORT, DEFAULT_CHAIN_ID, init_home, keys_new, make_testnet
from node.cli_rpc import RpcCallError, call_sync
from node.config import ConfigError, load_config
from node.genesis import CONSENSUS_KINDS, GenesisError
from node.keys import KeyFileError, load_key_file
from services.notary import AnchorBody, RevokeBody, encode_anchor, encode_revoke
from storage.interface import StorageError

log = logging.getLogger(__name__)

PROGRAM = "seoulchain"
USER_ERRORS = (CliError, ConfigError, GenesisError, KeyFileError, RpcCallError)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, exit 2 (argparse's default prints the whole usage block)."""
        self.exit(2, f"{PROGRAM}: error: {message} (try: {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:  # bench/ owns its parser; imported only for this command
        from bench.cli import main as bench_main

        return int(bench_main(arguments[1:]))
    parser = build_parser()
    args = parser.parse_args(arguments)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except USER_ERRORS as error:
        code = error.exit_code if isinstance(error, CliError) else 1
        first, _, rest = str(error).partition("\n")
        print(f"{PROGRAM}: error: {first}", file=sys.stderr)
        if rest and args.command == "cluster":
            print(rest, file=sys.stderr)  # a node's log tail, when start failed
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `seoulchain ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:  # a path the user gave: missing, not a directory, no permission
        where = f"{error.filename}: " if error.filename else ""
        print(f"{PROGRAM}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROGRAM, description="seoulchain: a permissioned chain node")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    _add_init(commands)
    _add_keys(commands)
    _add_testnet(commands)
    _add_start(commands)
    _add_cluster(commands)
    _add_status(commands)
    _add_notary(commands)
    _add_tx(commands)
    _add_verify(commands)
    for add_service_commands in _service_command_modules():
        add_service_commands(commands)
    _add_bench(commands)
    return parser


def _service_command_modules() -> list[Callable[[Any], None]]:
    """Each issue-7 service contributes its subcommands from node/cli_<service>.py."""
    from node import cli_asset, cli_credential, cli_fund, cli_gov, cli_reward, cli_vote

    return [
        cli_asset.add_commands,
        cli_fund.add_commands,
        cli_reward.add_commands,
        cli_credential.add_commands,
        cli_vote.add_commands,
        cli_gov.add_commands,
    ]


def _add_bench(commands: Commands) -> None:
    """`seoulchain bench ...` is bench/'s own parser, imported only when it runs."""
    bench = commands.add_parser(
        "bench", help="benchmark a local cluster (see docs/BENCHMARKS-HOWTO.md)", add_help=False
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from bench.cli import main as bench_main

    return int(bench_main(list(args.bench_args)))


if TYPE_CHECKING:  # argparse's class is generic only in typeshed
    Commands = argparse._SubParsersAction[_Parser]


def _add_rpc_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpc", help="node RPC URL (default: from --home, else :26657)")
    parser.add_argument("--home", type=Path, help="take the RPC URL from this home's config")


# --- init / keys / testnet ------------------------------------------------------------


def _add_init(commands: Commands) -> None:
    init = commands.add_parser("init", help="create a single-validator (solo) node home")
    init.add_argument("--home", type=Path, required=True)
    init.add_argument("--chain-id", default=DEFAULT_CHAIN_ID)
    init.add_argument("--force", action="store_true", help="rewrite config and genesis")
    init.set_defaults(handler=_init)


def _init(args: argparse.Namespace) -> int:
    genesis = init_home(args.home, chain_id=args.chain_id, force=args.force)
    print(f"initialised {args.home} for chain {genesis.chain_id!r}")
    print(f"validator key: {genesis.validators[0].public_key.hex()}")
    print(f"agency0 key:   {genesis.agencies[0].public_key.hex()} (roles: ", end="")
    print(", ".join(genesis.agencies[0].roles) + ")")
    print(f"genesis hash:  {genesis.genesis_hash().hex()}")
    return 0


def _add_keys(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="create or show Ed25519 key files")
    sub = keys.add_subparsers(dest="keys_command", parser_class=_Parser, required=True)
    new = sub.add_parser("new", help="write a new key file (mode 0600, never overwrites)")
    new.add_argument("--out", type=Path, required=True)
    new.set_defaults(handler=_keys_new)
    show = sub.add_parser("show", help="print a key file's public key")
    show.add_argument("file", type=Path)
    show.set_defaults(handler=_keys_show)


def _keys_new(args: argparse.Namespace) -> int:
    key = keys_new(args.out)
    print(key.public_key.hex())
    return 0


def _keys_show(args: argparse.Namespace) -> int:
    print(load_key_file(args.file).public_key.hex())
    return 0


def _add_testnet(commands: Commands) -> None:
    testnet = commands.add_parser("testnet", help="create N node homes sharing one genesis")
    testnet.add_argument("--nodes", type=int, required=True)
    testnet.add_argument("--consensus", choices=CONSENSUS_KINDS, default="pbft")
    testnet.add_argument("--out", type=Path, required=True)
    testnet.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    testnet.add_argument("--agencies", type=int, default=2)
    testnet.add_argument("--chain-id", default=DEFAULT_CHAIN_ID)
    testnet.set_defaults(handler=_testnet)


def _testnet(args: argparse.Namespace) -> int:
    genesis = make_testnet(
        args.out,
        nodes=args.nodes,
        consensus=args.consensus,
        base_port=args.base_port,
        agencies=args.agencies,
        chain_id=args.chain_id,
    )
    print(f"testnet of {args.nodes} {args.consensus} nodes in {args.out}")
    for index, validator in enumerate(genesis.validators):
        print(f"  node{index}: p2p {validator.p2p_address} rpc {validator.rpc_address}")
    print(f"genesis hash: {genesis.genesis_hash().hex()}")
    return 0


# --- start / cluster / status ---------------------------------------------------------


def _add_start(commands: Commands) -> None:
    start = commands.add_parser("start", help="run a node in the foreground")
    start.add_argument("--home", type=Path, required=True)
    start.set_defaults(handler=_start)


# Young-generation threshold of the node's collector. A tx allocates a few dozen objects on
# its way through admission, a block and execution, so CPython's default (700) runs a young
# collection every few txs, and each cascade into an old-generation pass walks every cached
# tx, body and state entry (the node keeps ~10^5 of them in bounded caches). Our objects
# rarely form cycles (reference counting frees them), so collecting less often costs little
# memory.
_GC_YOUNG_THRESHOLD = 50_000
_GC_OLDER_THRESHOLD = 20


def _tune_garbage_collector() -> None:
    """Freeze what start-up allocated (modules, config, genesis: never garbage, so never
    worth scanning again) and collect young objects less often (see the constants)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, _GC_OLDER_THRESHOLD, _GC_OLDER_THRESHOLD)


def _start(args: argparse.Namespace) -> int:
    if not __debug__:
        raise CliError("refusing to run under python -O: the node's invariants are asserts")
    config = load_config(args.home)  # fail fast, with a clear message, on a bad config
    try:
        config.db_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CliError(f"{config.db_path.parent}: cannot create: {error.strerror}") from None
    logging.basicConfig(
        level=config.log.level.upper(),
        format=_LOG_FORMATS[config.log.format],
        stream=sys.stderr,
    )
    try:  # the lead's modules, imported only to start a node
        from node.engines import EngineSetupError
        from node.node import run_node
    except ImportError as error:
        raise CliError(f"this build has no runnable node yet: {error}") from None
    import uvloop

    _tune_garbage_collector()

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        await run_node(args.home.resolve())

    try:
        uvloop.run(run())
    except asyncio.CancelledError:
        log.info("node stopped by signal")
    except (StorageError, EngineSetupError) as error:  # store locked or corrupt; bad setup
        raise CliError(str(error)) from None
    return 0


_LOG_FORMATS = {
    "text": "%(asctime)s %(levelname)s %(name)s: %(message)s",
    "json": '{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s",'
    '"message":"%(message)s"}',
}


def _add_cluster(commands: Commands) -> None:
    cluster_parser = commands.add_parser("cluster", help="run a local cluster of processes")
    sub = cluster_parser.add_subparsers(dest="cluster_command", parser_class=_Parser, required=True)
    up = sub.add_parser("up", help="create (if needed) and start a local cluster")
    up.add_argument("--dir", type=Path, required=True)
    up.add_argument("--nodes", type=int, default=4)
    up.add_argument("--consensus", choices=CONSENSUS_KINDS, default="pbft")
    up.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    up.add_argument("--timeout", type=float, default=cluster.UP_TIMEOUT_S_DEFAULT)
    up.set_defaults(handler=_cluster_up)
    status = sub.add_parser("status", help="one line per node")
    status.add_argument("--dir", type=Path, required=True)
    status.set_defaults(handler=_cluster_status)
    down = sub.add_parser("down", help="stop the cluster's recorded processes")
    down.add_argument("--dir", type=Path, required=True)
    down.add_argument("--grace", type=float, default=cluster.DOWN_GRACE_S_DEFAULT)
    down.set_defaults(handler=_cluster_down)


def _cluster_up(args: argparse.Namespace) -> int:
    states = cluster.cluster_up(
        args.dir,
        nodes=args.nodes,
        consensus=args.consensus,
        base_port=args.base_port,
        timeout_s=args.timeout,
    )
    for state in states:
        print(cluster.status_line(state))
    return 0


def _cluster_status(args: argparse.Namespace) -> int:
    states = cluster.cluster_status(args.dir)
    for state in states:
        print(cluster.status_line(state))
    return 0 if all(state.alive and not state.error for state in states) else 1


def _cluster_down(args: argparse.Namespace) -> int:
    for line in cluster.cluster_down(args.dir, grace_s=args.grace):
        print(line)
    return 0


def _add_status(commands: Commands) -> None:
    status = commands.add_parser("status", help="a node's status, as JSON")
    _add_rpc_options(status)
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    _print_json(call_sync(rpc_url(rpc=args.rpc, home=args.home), "status"))
    return 0


# --- notary / tx / verify -------------------------------------------------------------


def _add_notary(commands: Commands) -> None:
    notary = commands.add_parser("notary", help="anchor, revoke and look up document hashes")
    sub = notary.add_subparsers(dest="notary_command", parser_class=_Parser, required=True)
    anchor = sub.add_parser("anchor", help="anchor a document's SHA-256")
    anchor.add_argument("--key", type=Path, required=True, help="agency key file")
    source = anchor.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, help="document to hash (never sent)")
    source.add_argument("--hash", help="SHA-256 of the document, 64 hex")
    anchor.add_argument("--type", required=True, dest="doc_type", help="document type")
    anchor.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
    anchor.add_argument("--wait", action="store_true", help="wait until committed")
    _add_rpc_options(anchor)
    anchor.set_defaults(handler=_notary_anchor)
    revoke = sub.add_parser("revoke", help="revoke a hash your agency anchored")
    revoke.add_argument("--key", type=Path, required=True)
    revoke.add_argument("--hash", required=True)
    revoke.add_argument("--reason", required=True)
    revoke.add_argument("--wait", action="store_true")
    _add_rpc_options(revoke)
    revoke.set_defaults(handler=_notary_revoke)
    show = sub.add_parser("show", help="who anchored a hash, when, and its status")
    which = show.add_mutually_exclusive_group(required=True)
    which.add_argument("--hash")
    which.add_argument("--file", type=Path)
    _add_rpc_options(show)
    show.set_defaults(handler=_notary_show)
    from node import cli_notary_verify

    cli_notary_verify.add_commands(sub)


def _notary_anchor(args: argparse.Namespace) -> int:
    key = load_key_file(args.key)
    doc_hash = cli_tx.document_hash(args.file) if args.file else cli_tx.hash_argument(args.hash)
    meta = cli_tx.parse_meta(args.meta)
    body = _body(lambda: encode_anchor(doc_hash, args.doc_type, meta), AnchorBody)
    url = rpc_url(rpc=args.rpc, home=args.home)
    answer = cli_tx.submit(url, key, kind="notary.anchor", body=body, wait=args.wait)
    print(f"document hash: {doc_hash.hex()}")
    return _print_outcome(answer)


def _notary_revoke(args: argparse.Namespace) -> int:
    key = load_key_file(args.key)
    doc_hash = cli_tx.hash_argument(args.hash)
    body = _body(lambda: encode_revoke(doc_hash, args.reason), RevokeBody)
    url = rpc_url(rpc=args.rpc, home=args.home)
    answer = cli_tx.submit(url, key, kind="notary.revoke", body=body, wait=args.wait)
    return _print_outcome(answer)


def _body(encode: Callable[[], bytes], body_type: type[msgspec.Struct]) -> bytes:
    """The encoded body, checked here by decoding it as the node will (msgspec checks field
    bounds on decode, not on construction): a bad --type or --meta is a usage error naming
    the field, not a round trip to the node."""
    try:
        body = encode()
        msgspec.msgpack.decode(body, type=body_type)
    except (ValueError, TypeError) as error:  # msgspec.ValidationError is a ValueError
        raise CliError(f"invalid tx body: {error}", exit_code=2) from None
    return body


def _notary_show(args: argparse.Namespace) -> int:
    doc_hash = cli_tx.document_hash(args.file) if args.file else cli_tx.hash_argument(args.hash)
    lines, found = cli_tx.notary_show(rpc_url(rpc=args.rpc, home=args.home), doc_hash)
    print("\n".join(lines))
    return 0 if found else 1


def _print_outcome(answer: dict[str, Any]) -> int:
    lines, ok = cli_tx.outcome_lines(answer)
    print("\n".join(lines))
    return 0 if ok else 1


def _add_tx(commands: Commands) -> None:
    tx = commands.add_parser("tx", help="look up committed txs")
    sub = tx.add_subparsers(dest="tx_command", parser_class=_Parser, required=True)
    show = sub.add_parser("show", help="a committed tx, optionally with its proof")
    show.add_argument("hash")
    show.add_argument("--prove", action="store_true", help="include an offline-checkable proof")
    show.add_argument("--out", type=Path, help="with --prove: also write the proof here")
    _add_rpc_options(show)
    show.set_defaults(handler=_tx_show)


def _tx_show(args: argparse.Namespace) -> int:
    if args.out and not args.prove:
        raise CliError("--out needs --prove", exit_code=2)
    tx_hash = cli_tx.hash_argument(args.hash, option="HASH")
    answer = cli_tx.tx_show(rpc_url(rpc=args.rpc, home=args.home), tx_hash, prove=args.prove)
    if args.out:
        args.out.write_text(json.dumps(answer["proof"], indent=2) + "\n", encoding="utf-8")
    _print_json(answer)
    return 0


def _add_verify(commands: Commands) -> None:
    verify = commands.add_parser("verify", help="check a tx proof offline against a genesis")
    verify.add_argument("--genesis", type=Path, required=True)
    verify.add_argument("--proof", type=Path, required=True)
    verify.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    print("\n".join(cli_tx.verify_file(args.genesis, args.proof)))
    return 0


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
