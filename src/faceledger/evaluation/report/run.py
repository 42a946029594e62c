"""Running the evaluation: embed the images, score every pair, and gather the numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from faceledger import __version__
from faceledger.domain.errors import InvalidParameterError
from faceledger.evaluation.calibration_fit import Exclusions
from faceledger.evaluation.fairness import (
    BIN_WIDTH,
    CONFIDENCE,
    MIN_ERRORS_FOR_RATE,
    PUBLISHED_THRESHOLDS,
    EmbeddedImages,
    GroupFile,
    Grouping,
    PairHistograms,
    Progress,
    ToSimilarity,
    assign_groups,
    embed_dataset,
    excluded_index_pairs,
    histogram_pairs,
    image_counts,
    read_groups,
    summarise,
)
from faceledger.evaluation.report.files import write_report
from faceledger.evaluation.report.notes import notes
from faceledger.inference.engine import FaceEngine

TOP_IMPOSTORS = 25


@dataclass(frozen=True)
class ReportRequest:
    """What to evaluate and where to write it."""

    data_dir: Path
    out_dir: Path
    groups_file: Path | None = None
    exclusions_file: Path | None = None
    cache_dir: Path | None = None  # default: out_dir
    face: str = "largest"  # or "central" (see faceledger.evaluation.fairness)
    title: str = "FaceLedger accuracy and fairness report"
    notes: tuple[str, ...] = ()  # extra notes on the data, shown in the report
    thresholds: tuple[float, ...] = PUBLISHED_THRESHOLDS
    # The installation's decisions by outcome (``decisions.decisions_by_outcome``), if asked.
    decisions: tuple[dict[str, Any], ...] | None = None


# -- running ----------------------------------------------------------------------------------
def read_exclusions(path: Path) -> tuple[Exclusions, int]:
    """The exclusion list (bench/lfw_exclusions.txt format) and its number of entries."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        exclusions = Exclusions.parse(lines)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(f"cannot read exclusions file {path}: {exc}") from None
    except (ValueError, IndexError) as exc:
        raise InvalidParameterError(f"{path.name}: malformed exclusion line ({exc})") from None
    entries = (
        len(exclusions.same_people) + len(exclusions.image_shows) + len(exclusions.same_photos)
    )
    return exclusions, entries


@dataclass(frozen=True)
class PackInfo:
    """What the report says about the model pack (taken from the engine)."""

    name: str
    face_model_version: str
    calibrated: bool = True
    calibration_reference: str = ""

    @classmethod
    def of(cls, engine: FaceEngine) -> PackInfo:
        table = engine.manifest.calibration
        return cls(
            engine.manifest.name,
            engine.face_model_version,
            engine.calibration.calibrated,
            table.reference if table else "",
        )


def run_report(
    engine: FaceEngine, request: ReportRequest, progress: Progress | None = None
) -> dict[str, Any]:
    """Embed (or reuse the cache), score every pair, write the report files; returns the JSON."""
    # Read the small inputs first, so that a bad CSV fails before minutes of embedding.
    group_file = read_groups(request.groups_file) if request.groups_file else None
    exclusions = read_exclusions(request.exclusions_file) if request.exclusions_file else None
    embedded, cache_path, reused = embed_dataset(
        engine,
        request.data_dir,
        request.cache_dir or request.out_dir,
        face=request.face,
        progress=progress,
    )
    report, hist = build_report(
        embedded,
        request,
        PackInfo.of(engine),
        engine.calibration.similarity,
        group_file=group_file,
        exclusions=exclusions,
    )
    report["meta"]["embeddings_cache"] = str(cache_path)
    report["meta"]["embeddings_cache_reused"] = reused
    write_report(report, hist, request.out_dir)
    return report


def build_report(
    embedded: EmbeddedImages,
    request: ReportRequest,
    pack: PackInfo,
    to_similarity: ToSimilarity,
    *,
    group_file: GroupFile | None = None,
    exclusions: tuple[Exclusions, int] | None = None,
) -> tuple[dict[str, Any], PairHistograms]:
    """Every number of the report (JSON-ready) and the histograms behind them."""
    grouping = assign_groups(embedded.identities, group_file.mapping if group_file else None)
    names = sorted(set(embedded.identities))
    hist = score(
        embedded,
        grouping,
        to_similarity,
        exclusions[0] if exclusions else None,
        keep_from=min(request.thresholds),
    )
    report = summarise(hist, image_counts(embedded, grouping), request.thresholds, names)
    report["meta"] = _meta(pack, request, embedded)
    report["groups"] = {
        "file": str(request.groups_file) if request.groups_file else None,
        "grouped": grouping.grouped,
        "names": list(grouping.names),
        "unassigned_identities": grouping.unassigned,
        "notes": list(group_file.notes) if group_file else [],
        "identities_in_file_not_in_data": (
            len(set(group_file.mapping) - set(grouping.of_identity)) if group_file else 0
        ),
    }
    report["exclusions"] = {
        "file": str(request.exclusions_file) if request.exclusions_file else None,
        "entries": exclusions[1] if exclusions else 0,
        "genuine_pairs_removed": hist.excluded_genuine,
        "impostor_pairs_removed": hist.excluded_impostor,
    }
    report["top_impostors"] = _top_impostors(hist, embedded, grouping)
    report["notes"] = notes(report, request.notes)
    if request.decisions is not None:
        report["decisions_by_outcome"] = list(request.decisions)
    return report, hist


def score(
    embedded: EmbeddedImages,
    grouping: Grouping,
    to_similarity: ToSimilarity,
    exclusions: Exclusions | None,
    *,
    keep_from: float = min(PUBLISHED_THRESHOLDS),
) -> PairHistograms:
    """Histogram every pair of images with a face on the calibrated Similarity; identity
    labels are the indices of the sorted identity names."""
    names = embedded.identities
    _, identity = np.unique(np.array(names), return_inverse=True)
    group = np.array([grouping.of_identity[n] for n in names], np.int64)
    excluded = excluded_index_pairs(embedded.paths, exclusions) if exclusions else None
    return histogram_pairs(
        embedded.embeddings,
        identity.astype(np.int64),
        group,
        grouping.names,
        to_similarity,
        valid=embedded.found,
        excluded=excluded,
        keep_from=keep_from,
    )


def _meta(pack: PackInfo, request: ReportRequest, embedded: EmbeddedImages) -> dict[str, Any]:
    return {
        "title": request.title,
        "generated_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "faceledger_version": __version__,
        "pack": pack.name,
        "face_model_version": pack.face_model_version,
        "calibrated": pack.calibrated,
        "calibration_reference": pack.calibration_reference,
        "data_dir": str(request.data_dir),
        "face_choice": request.face,
        "embeddings_cache": None,
        "embeddings_cache_reused": False,
        "similarity_bin_width": BIN_WIDTH,
        "min_errors_for_rate": MIN_ERRORS_FOR_RATE,
        "confidence": CONFIDENCE,
        "images": len(embedded.paths),
    }


def _top_impostors(
    hist: PairHistograms, embedded: EmbeddedImages, grouping: Grouping
) -> list[dict[str, Any]]:
    """The highest-scoring impostor pairs: often label faults worth checking by eye."""
    group_of = [grouping.names[grouping.of_identity[n]] for n in embedded.identities]
    return [
        {
            "similarity": round(s, 3),
            "image_a": embedded.paths[i],
            "image_b": embedded.paths[j],
            "group_a": group_of[i],
            "group_b": group_of[j],
        }
        for s, i, j in hist.top_impostors(TOP_IMPOSTORS)
    ]
