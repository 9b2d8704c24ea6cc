"""Fixtures for the real-process cluster scenarios: a 4-validator PBFT testnet whose
processes are always stopped (by the PIDs we spawned) when the test ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster.cluster_harness import LocalCluster, running_cluster


@pytest.fixture
async def cluster4(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    """Four validators, all started and healthy."""
    async with running_cluster(tmp_path / "net", nodes=4) as cluster:
        yield cluster
