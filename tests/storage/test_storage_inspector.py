"""The offline inspector finds damage anywhere in a store, not only at the newest height."""

from __future__ import annotations

from pathlib import Path

import plyvel
import pytest

from storage import keys
from storage.checksum import seal_value
from storage.inspector import main, verify_store
from tests.storage.storage_helpers import build_store


def test_sound_store_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_store(tmp_path, 4, tx_count=3)
    report = verify_store(tmp_path)
    assert report.ok, report.problems
    assert report.committed_height == 4
    assert report.records["block"] == 4
    assert report.records["tx_location"] == 12
    assert main(["verify", str(tmp_path)]) == 0
    assert capsys.readouterr().out.endswith("OK\n")


def test_old_damage_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_store(tmp_path, 4, tx_count=3)
    db = plyvel.DB(str(tmp_path))
    db.put(keys.height_key(keys.RESULTS, 2), b"bit rot")
    db.delete(keys.height_key(keys.SEAL, 1))
    stray = keys.TX_LOCATION + b"\x07" * 32
    db.put(stray, seal_value(stray, keys.encode_location(9, 0)))
    db.close()
    report = verify_store(tmp_path)
    joined = "\n".join(report.problems)
    assert "results@2" in joined
    assert "seal@1 is missing" in joined
    assert "points at height 9" in joined
    assert main(["verify", str(tmp_path)]) == 1
    assert "PROBLEM" in capsys.readouterr().out


def test_unopenable_store_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "junk").write_bytes(b"x")
    assert main(["verify", str(tmp_path)]) == 2
    assert "CURRENT" in capsys.readouterr().out


def test_dump_lists_readable_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_store(tmp_path, 2)
    assert main(["dump", str(tmp_path), "--limit", "500"]) == 0
    out = capsys.readouterr().out
    assert "block@1" in out
    assert "meta[height]  8 B  0000000000000002" in out
