"""The default threshold floor is the one the 1:N benchmark measured, not a number typed in."""

from __future__ import annotations

import json
from pathlib import Path

from faceledger.config import Settings

RESULT = Path(__file__).resolve().parents[1] / "bench" / "results" / "one_to_n.json"


def test_default_floor_matches_the_measured_one() -> None:
    measured = json.loads(RESULT.read_text())["threshold_floor"]
    assert Settings().default_threshold_floor == measured["floor"]
    # the rule it was chosen by: at most one falsely matched non-mated probe at the floor
    assert measured["non_mated_falsely_matched_at_floor"] <= 1
    below = [r for r in measured["sweep"] if r["threshold"] < measured["floor"]]
    assert all(r["non_mated_falsely_matched"] > 1 for r in below[-5:])
