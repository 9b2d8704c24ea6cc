"""Fixtures for the real-process cluster scenarios: a 4-validator PBFT testnet whose
processes are always stopped (by the PIDs we spawned) when the test ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster.cluster_harness import LocalCluster


@pytest.fixture
async def cluster4(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    """Four validators, all started and healthy."""
    cluster = LocalCluster.create(tmp_path / "net", nodes=4)
    try:
        for index in range(4):
            cluster.start(index)
        await cluster.wait_healthy(range(4))
        yield cluster
    finally:
        cluster.shutdown()
        await cluster.close_clients()
