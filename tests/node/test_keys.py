"""Key files: created 0600 atomically, never overwritten, refused when exposed or inconsistent."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from node.keys import KeyFileError, load_key_file, load_public_key, new_key_file, write_key_file
from protocol.crypto import SigningKey


def test_written_key_is_0600_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        key = new_key_file(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key_file(path) == key
    assert load_public_key(path) == key.public_key
    document = json.loads(path.read_text())
    assert document["type"] == "ed25519"
    assert document["public_key"] == key.public_key.hex()


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    first = new_key_file(path)
    with pytest.raises(KeyFileError, match="already exists; refusing to overwrite"):
        new_key_file(path)
    assert load_key_file(path) == first


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_refuses_group_or_world_accessible_key(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "key.json"
    new_key_file(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=f"mode {mode:04o}.*chmod 600"):
        load_key_file(path)


def test_refuses_mismatched_public_key(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    key = SigningKey.from_secret(b"a")
    other = SigningKey.from_secret(b"b")
    document = {
        "type": "ed25519",
        "public_key": other.public_key.hex(),
        "private_key": key.seed.hex(),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, json.dumps(document).encode())
    os.close(fd)
    with pytest.raises(KeyFileError, match="public_key does not match private_key"):
        load_key_file(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "not a JSON key file"),
        (b"[]", "not a JSON object"),
        (b'{"type": "rsa"}', "type must be 'ed25519'"),
        (b'{"type": "ed25519", "private_key": "00"}', "private_key: not 64 hex characters"),
        (b'{"type": "ed25519", "x": 1}', "unknown key 'x'"),
    ],
)
def test_malformed_key_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "key.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(KeyFileError, match=message):
        load_key_file(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read key file"):
        load_key_file(tmp_path / "nope.json")


def test_seed_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = SigningKey.from_secret(b"secret")
    write_key_file(tmp_path / "key.json", key)
    loaded = load_key_file(tmp_path / "key.json")
    logging.getLogger("test").info("loaded %r", loaded)
    assert key.seed.hex() not in caplog.text
    assert key.public_key.hex() in caplog.text
