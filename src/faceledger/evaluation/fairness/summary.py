"""The numbers of the fairness report: rates by threshold, by group and across groups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceledger.evaluation.fairness.bins import PUBLISHED_THRESHOLDS
from faceledger.evaluation.fairness.groups import UNASSIGNED
from faceledger.evaluation.fairness.pairs import PairHistograms, false_match_sources
from faceledger.evaluation.fairness.rates import (
    Rate,
    false_match,
    false_non_match,
    ratio,
    weighted_fnmr,
)


# -- the numbers of the report ----------------------------------------------------------------
def _key(threshold: float) -> str:
    return f"{threshold:g}"


def curve(
    impostor: NDArray[np.int64], genuine: NDArray[np.int64], step: float = 1.0
) -> list[dict[str, float | int | None]]:
    """FMR and FNMR (with counts) at every threshold 0, step, …, 100."""
    rows: list[dict[str, float | int | None]] = []
    for t in np.arange(0.0, 100.0 + step / 2, step):
        fm, fnm = false_match(impostor, float(t)), false_non_match(genuine, float(t))
        rows.append(
            {
                "similarity": float(t),
                "fmr": fm.rate,
                "false_matches": fm.errors,
                "fnmr": fnm.rate,
                "false_non_matches": fnm.errors,
            }
        )
    return rows


def _at(
    impostor: NDArray[np.int64],
    genuine: NDArray[np.int64],
    weighted: NDArray[np.float64],
    threshold: float,
    overall: dict[str, Any] | None,
) -> dict[str, Any]:
    fm, fnm = false_match(impostor, threshold), false_non_match(genuine, threshold)
    row: dict[str, Any] = {
        "fmr": fm.to_dict(),
        "fnmr": fnm.to_dict(),
        "fnmr_identity_weighted": weighted_fnmr(weighted, threshold),
    }
    if overall is not None:
        for name, rate in (("fmr", fm), ("fnmr", fnm)):
            base = overall[name]["rate"]
            row[f"{name}_ratio_to_overall"] = ratio(rate.rate, base)
            # With few errors the ratio itself means little; its upper bound still does.
            row[f"{name}_ratio_to_overall_upper_95"] = ratio(rate.upper_95, base)
            row[f"{name}_ratio_display"] = _ratio_display(rate, base)
    return row


def _ratio_display(rate: Rate, base: float | None) -> str:
    """``2.31×``, or ``≤ 0.85×`` (from the upper bound) when the rate rests on few errors."""
    point, upper = ratio(rate.rate, base), ratio(rate.upper_95, base)
    if point is None or upper is None:
        return "–"
    return f"{point:.2f}×" if rate.reliable else f"≤ {upper:.2f}×"


def _population(
    counts: Mapping[str, int],
    impostor: NDArray[np.int64],
    genuine: NDArray[np.int64],
    with_genuine: int,
    largest: int,
) -> dict[str, Any]:
    pairs = int(genuine.sum())
    return {
        **counts,
        "genuine_pairs": pairs,
        "impostor_pairs": int(impostor.sum()),
        "identities_with_genuine_pairs": with_genuine,
        "largest_identity_share_of_genuine_pairs": largest / pairs if pairs else None,
    }


def differentials(per_group: Sequence[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """FRVT-style max/min of the group rates at ``threshold``.

    Only groups whose rate rests on ≥ MIN_ERRORS_FOR_RATE errors take part (a ratio of two
    rates from a handful of errors means little), and never the ``unassigned`` group.
    """
    out: dict[str, Any] = {}
    for rate in ("fmr", "fnmr"):
        usable = [
            (g["at"][_key(threshold)][rate]["rate"], g["group"])
            for g in per_group
            if g["group"] != UNASSIGNED and g["at"][_key(threshold)][rate]["reliable"]
        ]
        if len(usable) < 2:
            out[rate] = {"max_over_min": None, "groups_compared": [g for _, g in usable]}
            continue
        (low, low_g), (high, high_g) = min(usable), max(usable)
        out[rate] = {
            "max_over_min": high / low,
            "max_group": high_g,
            "min_group": low_g,
            "groups_compared": sorted(g for _, g in usable),
        }
    return out


def summarise(
    hist: PairHistograms,
    counts: Sequence[Mapping[str, int]],
    thresholds: Sequence[float] = PUBLISHED_THRESHOLDS,
    identity_names: Sequence[str] = (),
) -> dict[str, Any]:
    """Every number of the report, JSON-ready: overall, per group, across groups, differentials.

    ``identity_names[k]`` names identity label k (for the false-match sources).
    """
    imp_all, gen_all = hist.overall_impostor(), hist.overall_genuine()
    weighted_all = np.asarray(hist.genuine_weighted.sum(axis=0), np.float64)
    total = {k: sum(c[k] for c in counts) for k in counts[0]} if counts else {}
    overall: dict[str, Any] = _population(
        total,
        imp_all,
        gen_all,
        int(hist.identities_with_genuine.sum()),
        int(hist.largest_identity_genuine.max(initial=0)),
    )
    overall["at"] = {_key(t): _at(imp_all, gen_all, weighted_all, t, None) for t in thresholds}
    for t in thresholds:
        overall["at"][_key(t)]["false_match_sources"] = false_match_sources(
            hist, t, None, identity_names
        )
    overall["curve"] = curve(imp_all, gen_all)
    per_group = []
    for g, name in enumerate(hist.groups):
        imp, gen, weighted = hist.within(g), hist.genuine[g], hist.genuine_weighted[g]
        row: dict[str, Any] = {"group": name}
        row.update(
            _population(
                counts[g],
                imp,
                gen,
                int(hist.identities_with_genuine[g]),
                int(hist.largest_identity_genuine[g]),
            )
        )
        row["at"] = {
            _key(t): _at(imp, gen, weighted, t, overall["at"][_key(t)]) for t in thresholds
        }
        for t in thresholds:
            row["at"][_key(t)]["false_match_sources"] = false_match_sources(
                hist, t, g, identity_names
            )
        row["curve"] = curve(imp, gen)
        per_group.append(row)
    return {
        "thresholds": [float(t) for t in thresholds],
        "overall": overall,
        "per_group": per_group,
        "cross_group": _cross_group(hist, thresholds),
        "differentials": {_key(t): differentials(per_group, t) for t in thresholds},
    }


def _cross_group(hist: PairHistograms, thresholds: Sequence[float]) -> list[dict[str, Any]]:
    """Impostor pairs between every two groups (a before b), with FMR at each threshold."""
    rows = []
    for a in range(len(hist.groups)):
        for b in range(a, len(hist.groups)):
            imp = hist.across(a, b)
            rows.append(
                {
                    "group_a": hist.groups[a],
                    "group_b": hist.groups[b],
                    "within": a == b,
                    "impostor_pairs": int(imp.sum()),
                    "at": {_key(t): false_match(imp, t).to_dict() for t in thresholds},
                }
            )
    return rows
