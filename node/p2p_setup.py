"""Builds the node's P2P transport from genesis and the [p2p] config section.

Why a module of its own: who may connect and whom to dial is a policy with its own rules
(genesis validators first, a config entry for the same key overriding its address, extra
config keys admitted as observers), separate from wiring the node's parts together.
"""

from __future__ import annotations

import logging
import random

import nacl.signing

from node.config import P2PSection
from node.genesis import Genesis
from p2p.config import P2PConfig, P2PLimits, PeerAddress
from p2p.manager import P2PNode
from protocol.crypto import SigningKey, parse_hex

log = logging.getLogger(__name__)


def split_address(address: str) -> tuple[str, int]:
    """ "host:port" -> (host, port); the host may itself hold colons (IPv6)."""
    host, _, port = address.rpartition(":")
    return host, int(port)


def build_p2p_node(
    genesis: Genesis, p2p_config: P2PSection, *, key: SigningKey, rng: random.Random
) -> P2PNode:
    """The transport: genesis validators and config observers allowed, every peer but
    ourselves dialled."""
    validators = genesis.validator_set()
    observers = {
        parse_hex(key_hex, size=32, field="p2p.allowed_peer_keys")
        for key_hex in p2p_config.allowed_peer_keys
    }
    # Genesis validators first; a config entry for the same key overrides its address
    # (one dial loop per peer, never two).
    peers: dict[bytes, PeerAddress] = {}
    for validator in genesis.validators:
        host, port = split_address(validator.p2p_address)
        peers[validator.public_key] = PeerAddress(validator.public_key, host, port)
    for entry in p2p_config.persistent_peers:
        key_hex, _, address = entry.partition("@")
        host, port = split_address(address)
        peer_key = parse_hex(key_hex, size=32, field="p2p.persistent_peers")
        if validators.index_of(peer_key) is None:
            observers.add(peer_key)
        peers[peer_key] = PeerAddress(peer_key, host, port)
    peers.pop(key.public_key, None)
    listen_host, listen_port = split_address(p2p_config.listen_address)
    return P2PNode(
        P2PConfig(
            chain_id=genesis.chain_id,
            signing_key=nacl.signing.SigningKey(key.seed),
            allowed_keys=frozenset(validators.public_keys) | frozenset(observers),
            listen_host=listen_host,
            listen_port=listen_port,
            persistent_peers=tuple(peers[peer] for peer in sorted(peers)),
            limits=P2PLimits(
                frame_bytes_max=p2p_config.frame_bytes_max,
                handshake_timeout_s=p2p_config.handshake_timeout_s,
                dial_timeout_s=p2p_config.dial_timeout_s,
                backoff_base_s=p2p_config.backoff_min_s,
                backoff_max_s=p2p_config.backoff_max_s,
                inbound_peers_max=p2p_config.max_peers,
            ),
            rng=rng,
        )
    )
