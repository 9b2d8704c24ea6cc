"""What the services need from genesis: the agencies allowed to sign records, their keys
and roles, and (for governance) the council."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Agency:
    name: str
    public_key: bytes
    roles: tuple[str, ...]  # e.g. ("notary",); see docs/SERVICES.md for each role's kinds


@dataclass(frozen=True, slots=True, kw_only=True)
class ServicesGenesis:
    chain_id: str
    agencies: tuple[Agency, ...]
    council: tuple[bytes, ...] = ()  # public keys of the governance council
    council_threshold: int = 0
