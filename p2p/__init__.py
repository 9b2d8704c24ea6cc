"""asyncio TCP transport: framing, authenticated encrypted sessions, peers, gossip.
Moves bytes; knows no consensus (docs/ARCHITECTURE.md, docs/P2P.md)."""

from p2p.config import P2PConfig, P2PLimits, PeerAddress
from p2p.gossip import GossipLimits, TxGossip
from p2p.manager import P2PNode
from p2p.peer import PeerInfo
from p2p.stats import P2PStats

__all__ = [
    "GossipLimits",
    "P2PConfig",
    "P2PLimits",
    "P2PNode",
    "P2PStats",
    "PeerAddress",
    "PeerInfo",
    "TxGossip",
]
