"""The default threshold floor follows the collection's size (unless a policy pins one)."""

from __future__ import annotations

from faceledger.config import Settings
from faceledger.domain.policy import CollectionPolicy


def test_default_floor_follows_the_collection_size() -> None:
    assert Settings().default_threshold_floor is None
    policy = CollectionPolicy()
    assert not policy.floor_pinned and policy.floor(88.5) == 88.5
    assert policy.effective_threshold(80.0, 88.5) == 88.5
    pinned = CollectionPolicy(threshold_floor=96.0)
    assert pinned.floor_pinned and pinned.effective_threshold(80.0, 88.5) == 96.0
