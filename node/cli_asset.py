"""`seoulchain asset ...`: register assets, record events, transfer ownership, read history
(docs/services/asset.md). The lead wires `add_commands` into node/cli.py."""

from __future__ import annotations

import argparse
import logging

from node import cli_ledger_common as common
from services.asset import encode_record, encode_register, encode_transfer

log = logging.getLogger(__name__)


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    asset = subparsers.add_parser("asset", help="used-car records: registration, events, owners")
    sub = asset.add_subparsers(dest="asset_command", parser_class=type(asset), required=True)
    register = sub.add_parser("register", help="register an asset (role asset_registrar)")
    register.add_argument("--id", required=True, dest="asset_id", help="e.g. the VIN")
    register.add_argument("--owner", required=True, help="owner public key (hex) or key file")
    register.add_argument("--odometer", type=int, default=0, help="reading in km")
    register.add_argument("--description", default="")
    common.add_tx_options(register, key_help="registrar agency key file")
    register.set_defaults(handler=common.tx_handler(build_register))
    record = sub.add_parser("record", help="append an inspection, accident or repair")
    record.add_argument("--id", required=True, dest="asset_id")
    record.add_argument("--event", required=True, choices=("inspection", "accident", "repair"))
    record.add_argument("--odometer", type=int, help="reading in km (inspections must give it)")
    record.add_argument("--description", default="")
    common.add_tx_options(record, key_help="registrar agency key file")
    record.set_defaults(handler=common.tx_handler(build_record))
    transfer = sub.add_parser("transfer", help="change the owner (owner's or registrar's key)")
    transfer.add_argument("--id", required=True, dest="asset_id")
    transfer.add_argument("--to", required=True, help="new owner public key (hex) or key file")
    transfer.add_argument("--odometer", type=int)
    transfer.add_argument("--description", default="")
    common.add_tx_options(transfer, key_help="current owner's or a registrar's key file")
    transfer.set_defaults(handler=common.tx_handler(build_transfer))
    _add_queries(sub)


def _add_queries(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    show = sub.add_parser("show", help="an asset's owner and last odometer reading")
    show.add_argument("--id", required=True, dest="asset_id")
    common.add_rpc_options(show)
    show.set_defaults(handler=common.query_handler("asset/get", lambda a: {"id": a.asset_id}))
    history = sub.add_parser("history", help="an asset's events, oldest first, with tx hashes")
    history.add_argument("--id", required=True, dest="asset_id")
    common.page_options(history)
    common.add_rpc_options(history)
    history.set_defaults(
        handler=common.query_handler(
            "asset/history", lambda a: {"id": a.asset_id, "limit": a.limit, "after": a.after}
        )
    )
    owned = sub.add_parser("owned", help="the asset ids a key owns")
    owned.add_argument("--owner", required=True, help="public key (hex) or key file")
    common.page_options(owned)
    common.add_rpc_options(owned)
    owned.set_defaults(
        handler=common.query_handler(
            "asset/owner",
            lambda a: {
                "owner": common.public_key_argument(a.owner, option="--owner").hex(),
                "limit": a.limit,
                "after": a.after,
            },
        )
    )


def build_register(args: argparse.Namespace) -> tuple[str, bytes]:
    owner = common.public_key_argument(args.owner, option="--owner")
    body = common.validated_body(
        lambda: encode_register(
            args.asset_id, owner, description=args.description, odometer_km=args.odometer
        )
    )
    return "asset.register", body


def build_record(args: argparse.Namespace) -> tuple[str, bytes]:
    body = common.validated_body(
        lambda: encode_record(
            args.asset_id, args.event, description=args.description, odometer_km=args.odometer
        )
    )
    return "asset.record", body


def build_transfer(args: argparse.Namespace) -> tuple[str, bytes]:
    new_owner = common.public_key_argument(args.to, option="--to")
    body = common.validated_body(
        lambda: encode_transfer(
            args.asset_id, new_owner, description=args.description, odometer_km=args.odometer
        )
    )
    return "asset.transfer", body
