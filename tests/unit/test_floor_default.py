"""The default threshold floor follows the collection's size (unless a policy pins one)."""

from __future__ import annotations

import json
from pathlib import Path

from faceledger.config import Settings
from faceledger.domain.policy import CollectionPolicy
from faceledger.inference.scale import ScaleTable

RESULT = Path(__file__).resolve().parents[2] / "bench" / "results" / "one_to_n_open_set.json"


def test_default_floor_follows_the_collection_size() -> None:
    assert Settings().default_threshold_floor is None
    policy = CollectionPolicy()
    assert not policy.floor_pinned and policy.floor(88.5) == 88.5
    assert policy.effective_threshold(80.0, 88.5) == 88.5
    pinned = CollectionPolicy(threshold_floor=96.0)
    assert pinned.floor_pinned and pinned.effective_threshold(80.0, 88.5) == 96.0


def test_the_open_set_bench_ran_at_the_shipped_floor() -> None:
    """bench/one_to_n_open_set.py measured the floor the shipped table gives for its size."""
    measured = json.loads(RESULT.read_text())
    table = ScaleTable.builtin("yunet-sface")
    assert table is not None
    assert table.floor(measured["faces_enrolled"])[0] == measured["default_floor"]
    [at_default] = measured["at_default"]
    assert at_default["threshold"] == measured["default_floor"]
    assert at_default["hit_rate"] >= 0.9
