"""Typed stores over LevelDB (storage/leveldb.py) and an in-memory twin (storage/memory.py).
Bytes in, bytes out: this package knows no protocol objects (docs/ARCHITECTURE.md)."""
