"""Shared fixtures: a small network used by many protocol tests, and one real local Ray."""

from __future__ import annotations

import os

# Ray reads these when it is imported and started (only the cluster tests start it).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from collections.abc import Iterator

import pytest

from protocol import TOKEN, Params, Protocol


@pytest.fixture
def bittensor_network() -> Protocol:
    """One operator with own 800 and delegators 100/70/30, cut 18 %, active in round 1."""
    p = Protocol(Params(), {"op": 10**24, "a": 10**24, "b": 10**24, "c": 10**24})
    p.bond("op", "op", 800 * TOKEN)
    p.register_operator("op", reward_cut=180_000, fee_share=1_000_000)
    for name, amount in (("a", 100), ("b", 70), ("c", 30)):
        p.bond(name, "op", amount * TOKEN)
    p.initialize_round()
    return p


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """One real local Ray for every cluster test (started only when a test asks for it)."""
    from cluster_fixtures import RayTestCluster

    cluster = RayTestCluster.start()
    try:
        yield cluster
    finally:
        cluster.shutdown()
