"""Method, data and limits, in words, for the report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faceledger.evaluation.fairness import (
    BIN_WIDTH,
    CONFIDENCE,
    MIN_ERRORS_FOR_RATE,
    UNASSIGNED,
)


def notes(report: dict[str, Any], extra_data: Sequence[str] = ()) -> dict[str, Any]:
    """Method, data and limits, in words, for the HTML report (and kept in the JSON);
    ``extra_data``: the request's own notes on the data."""
    meta = report["meta"]
    return {
        "method": _method(meta),
        "data": _data(report, extra_data),
        "limits": _limits(meta),
    }


def _method(meta: dict[str, Any]) -> list[str]:
    chosen = (
        "largest face (the one the API's search and compare use)"
        if meta["face_choice"] == "largest"
        else "face nearest the image centre (the labelled person in centred photos like LFW's)"
    )
    return [
        f"Each image's {chosen} was detected and embedded with the {meta['pack']} pack "
        f"({meta['face_model_version']}). Images where no face was found take part in no pair; "
        "they are counted per group as failures to acquire.",
        "Every pair of images with a face was scored. Pairs of two images filed under one "
        "identity are genuine pairs; pairs of two identities are impostor pairs. The score is "
        "the calibrated Similarity (0–100) that the API returns.",
        "FMR(t) = impostor pairs with Similarity ≥ t ÷ impostor pairs; FNMR(t) = genuine pairs "
        f"with Similarity < t ÷ genuine pairs. Scores are counted in {BIN_WIDTH}-wide bins, so "
        "rates at thresholds on that grid are exact.",
        "A group's FMR counts only the impostor pairs within the group (both identities in "
        "it), as NIST FRVT's demographic-differential reports do. Pairs across two groups "
        "count in the overall rate and in the cross-group table.",
        f"With fewer than {MIN_ERRORS_FOR_RATE} errors a rate is shown as "
        f"'≤ x', its one-sided {CONFIDENCE:.0%} upper confidence bound (Clopper–Pearson), "
        "with the counts. Pairs share images, so they are not independent: bounds are "
        "indicative, somewhat narrower than the truth.",
        "Ratio to overall = group rate ÷ overall rate. 'max/min' is the largest group rate "
        f"divided by the smallest, over groups with ≥ {MIN_ERRORS_FOR_RATE} errors at that "
        f"threshold, leaving out '{UNASSIGNED}'.",
        "Identity-weighted FNMR averages each identity's own FNMR, so that identities with "
        "many images (many genuine pairs) do not dominate; the plain FNMR counts pairs. "
        "Likewise the false-match sources count each pair of people once (its denominator "
        "includes pairs of people whose image pairs the exclusion list removed).",
    ]


def _data(report: dict[str, Any], extra_data: Sequence[str]) -> list[str]:
    meta, excl = report["meta"], report["exclusions"]
    data = [
        f"{report['overall']['identities']:,} identities, {report['overall']['images']:,} "
        f"images under {meta['data_dir']}; {report['overall']['images_without_face']:,} without "
        f"a face, {report['overall']['images_unreadable']:,} unreadable.",
        f"{report['overall']['genuine_pairs']:,} genuine and "
        f"{report['overall']['impostor_pairs']:,} impostor pairs scored.",
    ]
    if excl["file"]:
        data.append(
            f"Exclusions from {excl['file']} ({excl['entries']} entries: label faults such as "
            "one person under two names, or one photo under two people): "
            f"{excl['impostor_pairs_removed']:,} impostor and {excl['genuine_pairs_removed']:,} "
            "genuine pairs left out."
        )
    else:
        data.append("No exclusion list: known label faults, if any, count as errors.")
    data.extend(extra_data)
    return data


def _limits(meta: dict[str, Any]) -> list[str]:
    limits = [
        "These rates describe this image set with these labels only. Other cameras, poses, "
        "lighting, resolutions and ages give other rates: measure on images like yours.",
        "A group's rate reflects everything that differs between the groups' images "
        "(lighting, image quality, age, sex, pose), not only the attribute that names the group.",
        "Group labels come from the groups file. Automatic or proxy labels are imperfect; "
        "small groups give wide bounds.",
        "Identity labels can be wrong: the highest-scoring impostor pairs (listed below) are "
        "often label faults rather than model errors; check them by eye.",
    ]
    if meta["calibration_reference"]:
        limits.append(
            f"The pack's Similarity calibration was fitted on: {meta['calibration_reference']}. "
            "If that is this data, the overall FMR at the anchor thresholds matches the "
            "calibration targets by construction (an in-sample figure); per-group differences "
            "are still informative."
        )
    if not meta["calibrated"]:
        limits.append("This pack is uncalibrated: Similarity is 100 · max(cosine, 0).")
    return limits
