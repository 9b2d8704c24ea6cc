"""asyncio TCP transport: framing, authenticated encrypted sessions, peers, gossip.
Moves bytes; knows no consensus (docs/ARCHITECTURE.md)."""
