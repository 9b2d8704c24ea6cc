"""docs/SERVICES.md is the client contract: keep it in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

from protocol.crypto import sha256
from services.app import SeoulApplication
from services.codes import SERVICE_CODE_RANGES, Code
from services.notary import encode_anchor, encode_revoke
from tests.services.services_helpers import make_genesis

DOC = (Path(__file__).resolve().parents[2] / "docs" / "SERVICES.md").read_text()


def test_every_code_is_in_the_docs_table_with_its_number() -> None:
    for code in Code:
        assert re.search(rf"\|\s*{int(code)}\s*\|\s*`{code.name}`\s*\|", DOC), code.name


def test_every_code_lies_in_its_owners_range() -> None:
    for code in Code:
        if code is Code.OK:
            continue
        owner = code.name.split("_")[0].lower()
        expected = SERVICE_CODE_RANGES.get(owner, SERVICE_CODE_RANGES["generic"])
        assert int(code) in expected, code.name


def test_every_kind_and_query_path_is_documented() -> None:
    app = SeoulApplication(make_genesis())
    for name in (*app.kinds, *app.query_paths):
        assert f"`{name}`" in DOC, name


def test_body_test_vectors_match_the_encoders() -> None:
    document_hash = sha256(b"hello")
    anchor = encode_anchor(document_hash, "certificate", {"applicant": "Kim"}).hex()
    revoke = encode_revoke(document_hash, "issued in error").hex()
    assert f"`{anchor}`" in DOC
    assert f"`{revoke}`" in DOC
