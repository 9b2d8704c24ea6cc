"""What the CLI's command modules share: the user-error type and where defaults come from."""

from __future__ import annotations

import logging
from pathlib import Path

from node.config import load_config
from services.app import default_services
from services.genesis import ServicesGenesis

log = logging.getLogger(__name__)

DEFAULT_RPC_URL = "http://127.0.0.1:26657"


class CliError(Exception):
    """A user error: printed as one line on stderr, exit code `exit_code`, no traceback."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def rpc_url(*, rpc: str | None, home: Path | None) -> str:
    """--rpc wins; else the home's config.toml; else the default loopback URL."""
    if rpc:
        return rpc if "://" in rpc else f"http://{rpc}"
    if home is not None:
        return load_config(home).rpc_url()
    return DEFAULT_RPC_URL


def known_roles() -> tuple[str, ...]:
    """Every role some tx kind of this build's services requires, sorted."""
    probe = ServicesGenesis(chain_id="probe", agencies=())
    services = default_services(probe)
    roles = {spec.role for service in services for spec in service.kinds.values() if spec.role}
    for service in services:
        roles.update(getattr(service, "extra_roles", ()))
    return tuple(sorted(roles))
