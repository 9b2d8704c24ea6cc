"""Offline inspection of a LevelDB chain store: a full integrity check and a raw dump.

Opening a store checks only the newest height (cheap, on every start). This walks every
record: each checksum, every height 1..committed has all its records, the hash index agrees
both ways, every tx location points at a committed height. Run it on a stopped node:

    python -m storage.inspector verify  HOME/data/chain
    python -m storage.inspector dump    HOME/data/chain [--limit N]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage import keys
from storage.checksum import open_value
from storage.interface import CorruptionError, StorageError
from storage.leveldb import LevelDbChainStore

log = logging.getLogger(__name__)

problems_max = 100  # stop listing after this many; one is enough to refuse the store


@dataclass
class IntegrityReport:
    committed_height: int = 0
    records: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add_problem(self, text: str) -> None:
        if len(self.problems) < problems_max:
            self.problems.append(text)


def verify_store(path: Path) -> IntegrityReport:
    """Check every record of the store at `path`; the store must not be open elsewhere."""
    store = LevelDbChainStore(path)
    try:
        report = IntegrityReport(committed_height=store.committed_height())
        _walk(store._db, report)  # the inspector is the one reader allowed under the API
    finally:
        store.close()
    return report


def _walk(db: Any, report: IntegrityReport) -> None:
    heights: dict[bytes, set[int]] = {namespace: set() for namespace in keys.PER_HEIGHT_NAMESPACES}
    hash_at: dict[int, bytes] = {}
    height_of: dict[bytes, int] = {}
    with db.iterator(verify_checksums=True) as iterator:
        for key, stored in iterator:
            namespace = key[:1]
            report.records[keys.describe(key).split("@")[0].split("[")[0]] += 1
            try:
                payload = open_value(key, stored)
                if namespace in heights:
                    heights[namespace].add(keys.decode_height(key[1:]))
                if namespace == keys.BLOCK_HASH:
                    hash_at[keys.decode_height(key[1:])] = payload
                elif namespace == keys.HEIGHT_OF:
                    height_of[key[1:]] = keys.decode_height(payload)
                elif namespace == keys.TX_LOCATION:
                    tx_height, _ = keys.decode_location(payload)
                    if not 1 <= tx_height <= report.committed_height:
                        report.add_problem(f"{keys.describe(key)} points at height {tx_height}")
            except (CorruptionError, ValueError) as error:
                report.add_problem(str(error))
    _check_heights(report, heights, hash_at, height_of)


def _check_heights(
    report: IntegrityReport,
    heights: dict[bytes, set[int]],
    hash_at: dict[int, bytes],
    height_of: dict[bytes, int],
) -> None:
    expected = set(range(1, report.committed_height + 1))
    for namespace, present in heights.items():
        present = present - {0} if namespace == keys.APP_HASH else present
        for height in sorted(expected - present)[:problems_max]:
            report.add_problem(f"{keys.describe(keys.height_key(namespace, height))} is missing")
        for height in sorted(present - expected)[:problems_max]:
            report.add_problem(
                f"{keys.describe(keys.height_key(namespace, height))} is beyond the committed "
                f"height {report.committed_height}"
            )
    for height, block_hash in sorted(hash_at.items()):
        if height_of.get(block_hash) != height:
            report.add_problem(f"block hash at height {height} is not indexed back to it")
    if len(height_of) != len(hash_at):
        report.add_problem(f"{len(height_of)} hash index entries for {len(hash_at)} blocks")


def dump(path: Path, limit: int) -> list[str]:
    """One line per record: readable key, payload size, payload prefix in hex."""
    store = LevelDbChainStore(path)
    lines: list[str] = []
    try:
        with store._db.iterator() as iterator:
            for key, stored in iterator:
                if len(lines) >= limit:
                    break
                try:
                    payload = open_value(key, stored)
                    lines.append(f"{keys.describe(key)}  {len(payload)} B  {payload[:24].hex()}")
                except CorruptionError as error:
                    lines.append(f"{keys.describe(key)}  BAD: {error}")
    finally:
        store.close()
    return lines


def main(argv: list[str] | None = None) -> int:
    """CLI entry: exit 0 if the store is sound, 1 if not, 2 if it cannot be opened."""
    parser = argparse.ArgumentParser(prog="python -m storage.inspector")
    parser.add_argument("command", choices=["verify", "dump"])
    parser.add_argument("path", type=Path)
    parser.add_argument("--limit", type=int, default=1000)
    args = parser.parse_args(argv)
    try:
        if args.command == "dump":
            sys.stdout.write("".join(line + "\n" for line in dump(args.path, args.limit)))
            return 0
        report = verify_store(args.path)
    except StorageError as error:
        sys.stdout.write(f"cannot open store: {error}\n")
        return 2
    counts = ", ".join(f"{name} {count}" for name, count in sorted(report.records.items()))
    sys.stdout.write(f"committed height {report.committed_height}; records: {counts}\n")
    for problem in report.problems:
        sys.stdout.write(f"PROBLEM: {problem}\n")
    sys.stdout.write("OK\n" if report.ok else f"{len(report.problems)} problem(s)\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
