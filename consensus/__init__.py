"""Consensus engines as pure state machines (docs/ARCHITECTURE.md, consensus/types.py).

Never imports asyncio, sockets, time, the global random module, plyvel or prometheus;
tests/test_architecture.py enforces it.
"""
