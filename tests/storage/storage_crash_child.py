"""Child process for the kill -9 test: commits fake blocks in a loop until killed.

After each `commit_block` returns it prints `block <height>`, and after each
`consensus_write` returns `consensus <height>`, so the parent knows what was acknowledged.
Bounded: it stops by itself after `--blocks-max` blocks.

Usage: python tests/storage/storage_crash_child.py STORE_DIR BLOCKS_MAX TX_COUNT
"""

from __future__ import annotations

import sys

from storage import keys
from storage.leveldb import LevelDbChainStore
from tests.storage.storage_helpers import GENESIS_APP_HASH, GENESIS_HASH, fake_commit


def main(path: str, blocks_max: int, tx_count: int) -> None:
    store = LevelDbChainStore(path)
    if store.genesis_hash() is None:
        store.set_genesis(genesis_hash=GENESIS_HASH, app_hash=GENESIS_APP_HASH)
    first = store.committed_height() + 1
    print("ready", first - 1, flush=True)
    for height in range(first, first + blocks_max):
        store.commit_block(fake_commit(height, tx_count=tx_count))
        print("block", height, flush=True)
        store.consensus_write([(b"last", keys.encode_height(height))])
        print("consensus", height, flush=True)
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
