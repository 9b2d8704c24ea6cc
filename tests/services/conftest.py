"""Fixtures for tests/services: a fresh application over the three-agency genesis."""

from __future__ import annotations

import pytest

from services.app import SeoulApplication
from services.testing import AppHarness
from tests.services.services_helpers import CHAIN_ID, make_genesis


@pytest.fixture
def app() -> SeoulApplication:
    return SeoulApplication(make_genesis())


@pytest.fixture
def chain(app: SeoulApplication) -> AppHarness:
    return AppHarness(app, chain_id=CHAIN_ID)
