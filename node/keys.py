"""Ed25519 key files: a node's identity and an agency's signing key.

Format (JSON): {"type": "ed25519", "public_key": "<64 hex>", "private_key": "<64 hex seed>"}.

A key file is created with mode 0600 in one step (os.open with O_CREAT|O_EXCL), so there is
no moment when another user could read it and an existing key is never overwritten: losing
a validator or agency key loses an identity the chain knows. Loading refuses a file that
group or others can read (the key must be treated as leaked) and a file whose public key
does not match its seed (a hand-edited or corrupted file). The seed never reaches a log:
protocol.crypto.SigningKey's repr shows only a prefix of the public key.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import string
from pathlib import Path

from protocol.crypto import PUBLIC_KEY_BYTES, SEED_BYTES, SigningKey

log = logging.getLogger(__name__)

KEY_TYPE = "ed25519"
KEY_FILE_MODE = 0o600
KEY_FILE_BYTES_MAX = 4096
_HEX = frozenset(string.hexdigits)


class KeyFileError(ValueError):
    """A key file that cannot be written or used; the message names the file and the fix."""


def write_key_file(path: Path, key: SigningKey) -> None:
    """Create `path` with mode 0600 holding `key`; refuse to overwrite an existing file."""
    document = {
        "type": KEY_TYPE,
        "public_key": key.public_key.hex(),
        "private_key": key.seed.hex(),
    }
    data = (json.dumps(document, indent=2) + "\n").encode("ascii")
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key") from None
    except OSError as error:
        raise KeyFileError(f"{path}: cannot create key file: {error.strerror}") from None
    try:
        os.fchmod(descriptor, KEY_FILE_MODE)  # exact mode whatever the umask
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    log.info("wrote key file %s (public key %s)", path, key.public_key.hex())


def new_key_file(path: Path) -> SigningKey:
    key = SigningKey.generate()
    write_key_file(path, key)
    return key


def load_key_file(path: Path) -> SigningKey:
    """The signing key in `path`; KeyFileError if unreadable, exposed, malformed or inconsistent."""
    _check_permissions(path)
    document = _read_document(path)
    seed = _hex_field(path, document, "private_key", SEED_BYTES)
    public_key = _hex_field(path, document, "public_key", PUBLIC_KEY_BYTES)
    key = SigningKey(seed)
    if key.public_key != public_key:
        raise KeyFileError(f"{path}: public_key does not match private_key")
    return key


def load_public_key(path: Path) -> bytes:
    """Only the public key (for `keys show` and genesis building); the same checks apply."""
    return load_key_file(path).public_key


def _check_permissions(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise KeyFileError(f"{path}: cannot read key file: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise KeyFileError(f"{path}: not a regular file")
    exposed = stat.S_IMODE(mode) & 0o077
    if exposed:
        raise KeyFileError(
            f"{path}: readable or writable by group/others (mode {stat.S_IMODE(mode):04o}); "
            f"treat the key as exposed, or run: chmod 600 {path}"
        )


def _read_document(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            raw = handle.read(KEY_FILE_BYTES_MAX + 1)
    except OSError as error:
        raise KeyFileError(f"{path}: cannot read key file: {error.strerror}") from None
    if len(raw) > KEY_FILE_BYTES_MAX:
        raise KeyFileError(f"{path}: larger than {KEY_FILE_BYTES_MAX} bytes; not a key file")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KeyFileError(f"{path}: not a JSON key file") from None
    if not isinstance(document, dict):
        raise KeyFileError(f"{path}: not a JSON object")
    if document.get("type") != KEY_TYPE:
        raise KeyFileError(f"{path}: type must be {KEY_TYPE!r}")
    unknown = sorted(set(document) - {"type", "public_key", "private_key"})
    if unknown:
        raise KeyFileError(f"{path}: unknown key {unknown[0]!r}")
    return document


def _hex_field(path: Path, document: dict[str, object], name: str, size: int) -> bytes:
    value = document.get(name)
    if not isinstance(value, str) or len(value) != 2 * size or not set(value) <= _HEX:
        raise KeyFileError(f"{path}: {name}: not {2 * size} hex characters")
    return bytes.fromhex(value)
