"""``faceledger eval search``: the NIST-style open-set 1:N protocol on a user's own photos.

Folder layout (one folder per person; the folder name is the identity):

    GALLERY/<person>/*.jpg|jpeg|png    photos to enrol: the largest face of each (the subject,
                                       as ``faceledger index`` enrols by default)
    PROBES/<person>/*.jpg|jpeg|png     photos to search with (their largest face); a probe whose
                                       <person> has a gallery folder is *mated*, any other is
                                       *non-mated* (someone not enrolled)

Every probe is compared with every gallery face (exact search, no index), so the figures are
the model's, not an index's. Per Similarity threshold (0 to 100 in steps of 0.1): FPIR (share
of non-mated probes with any candidate ≥ threshold), FNIR (share of mated probes whose right
person is not the first candidate ≥ threshold) and the hit rate 1 − FNIR; the rank-1 rate at
any Similarity; the floor the product would choose for a collection of this size (the pack's
open-set table) with the FPIR and FNIR measured here at that floor; and the lowest floor at
which the FPIR measured here is within the target (meaningful only with ≥ 1 / target
non-mated probes). Writes ``search_report.json`` and ``search_report.png`` (DET: FNIR vs FPIR).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.faces import AnalysedImage
from faceledger.evaluation.open_set import identification_rates
from faceledger.inference.engine import FaceEngine
from faceledger.inference.imaging import load_image
from faceledger.inference.scale import MIN_FLOOR, TARGET_FPIR

Progress = Callable[[int, int], None]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
THRESHOLDS = tuple(round(t / 10, 1) for t in range(0, 1001))


@dataclass(frozen=True)
class Photos:
    """Photos of a folder tree: (path, person) in sorted order."""

    paths: list[Path]
    people: list[str]

    @classmethod
    def of(cls, root: Path, option: str) -> Photos:
        if not root.is_dir():
            raise InvalidParameterError(f"{option}: no such folder: {root}")
        found = sorted(
            p for p in root.glob("*/*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not found:
            raise InvalidParameterError(
                f"{option}: no photos found; expected {root}/<person>/<photo>.jpg"
            )
        return cls(found, [p.parent.name for p in found])


def _embed(
    engine: FaceEngine, photos: Photos, progress: Progress | None, offset: int, total: int
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    emb = np.zeros((len(photos.paths), engine.embedding_size), np.float32)
    found = np.zeros(len(photos.paths), bool)
    row = {p: i for i, p in enumerate(photos.paths)}
    results = engine.analyse_many(photos.paths, loader=load_image, max_faces=1)
    for done, (path, result) in enumerate(results, 1):
        i = row[path]
        if isinstance(result, AnalysedImage) and len(result.faces):
            assert result.faces.embeddings is not None
            emb[i] = result.faces.embeddings[0]
            found[i] = True
        if progress is not None:
            progress(offset + done, total)
    return emb, found


def run_search_eval(
    engine: FaceEngine,
    gallery_dir: Path,
    probes_dir: Path,
    out_dir: Path,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the protocol; write the JSON report and the DET plot into ``out_dir``."""
    gallery = Photos.of(gallery_dir, "--gallery")
    probes = Photos.of(probes_dir, "--probes")
    total = len(gallery.paths) + len(probes.paths)
    g_emb, g_found = _embed(engine, gallery, progress, 0, total)
    p_emb, p_found = _embed(engine, probes, progress, len(gallery.paths), total)
    if not g_found.any():
        raise InvalidParameterError("--gallery: no face was found in any gallery photo")
    g_people = np.array(gallery.people)[g_found]
    similarity = engine.calibration.similarity(p_emb[p_found] @ g_emb[g_found].T)
    enrolled = set(g_people.tolist())
    probe_people = [p for p, ok in zip(probes.people, p_found, strict=True) if ok]
    mated_top, non_mated_top = _top_candidates(similarity, probe_people, g_people)
    rates = identification_rates(mated_top, non_mated_top, THRESHOLDS)
    faces = int(g_found.sum())
    product_floor = _product_floor(engine, faces, rates)
    measurable = len(non_mated_top) >= round(1 / TARGET_FPIR)
    measured_floor = _measured_floor(rates)
    report: dict[str, Any] = {
        "pack": engine.manifest.name,
        "face_model_version": engine.face_model_version,
        "protocol": "open-set 1:N (NIST FRVT style): largest face of each photo; exact search",
        "gallery_photos": len(gallery.paths),
        "gallery_faces": faces,
        "gallery_people": len(enrolled),
        "gallery_photos_without_face": _without_face(gallery, g_found, gallery_dir),
        "probes": len(probes.paths),
        "probes_without_face": _without_face(probes, p_found, probes_dir),
        "mated_probes": len(mated_top),
        "non_mated_probes": len(non_mated_top),
        "rank1_rate": (sum(r for _, r in mated_top) / len(mated_top) if mated_top else None),
        "product_floor": product_floor,
        "measured_floor": measured_floor if measurable else None,
        "measured_floor_note": (
            f"lowest Similarity >= {MIN_FLOOR:g} with measured FPIR <= {TARGET_FPIR:g}"
            if measurable
            else f"needs at least {round(1 / TARGET_FPIR):,} non-mated probes to measure an "
            f"FPIR of {TARGET_FPIR:g}; there are {len(non_mated_top):,}"
        ),
        "rates": rates,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = out_dir / "search_report.png"
    write_det(
        rates,
        product_floor["floor"],
        plot,
        title=f"{engine.manifest.name}: {faces:,} gallery faces",
    )
    report["plot"] = plot.name
    (out_dir / "search_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _top_candidates(
    similarity: NDArray[np.floating[Any]], probe_people: list[str], g_people: NDArray[Any]
) -> tuple[list[tuple[float, bool]], list[float]]:
    """Each probe's best Similarity: for a mated probe (its person enrolled) with whether the
    best candidate is that person; for a non-mated probe alone."""
    enrolled = set(g_people.tolist())
    mated_top: list[tuple[float, bool]] = []
    non_mated_top: list[float] = []
    for row, person in zip(similarity, probe_people, strict=True):
        best = int(np.argmax(row))
        if person in enrolled:
            mated_top.append((float(row[best]), g_people[best] == person))
        else:
            non_mated_top.append(float(row[best]))
    return mated_top, non_mated_top


def _product_floor(engine: FaceEngine, faces: int, rates: list[dict[str, Any]]) -> dict[str, Any]:
    """The floor the product applies at ``faces`` gallery faces: expected rates (from the
    pack's scale table, if any) beside the rates measured at it."""
    table = engine.scale
    floor, reachable = table.floor(faces) if table is not None else (MIN_FLOOR, True)
    at_floor = next(r for r in rates if r["threshold"] >= floor)
    estimate = table.estimate(floor, faces) if table is not None else None
    return {
        "floor": floor,
        "target_fpir": TARGET_FPIR,
        "target_reachable": reachable,
        "expected_fpir": None if estimate is None else estimate.fpir,
        "expected_hit_rate": None if estimate is None else estimate.hit_rate,
        "measured_fpir": at_floor["fpir"],
        "measured_fnir": at_floor["fnir"],
        "measured_hit_rate": at_floor["hit_rate"],
    }


def _measured_floor(rates: list[dict[str, Any]]) -> float | None:
    """The lowest Similarity >= ``MIN_FLOOR`` whose measured FPIR is within ``TARGET_FPIR``."""
    return next(
        (
            r["threshold"]
            for r in rates
            if r["threshold"] >= MIN_FLOOR and r["fpir"] is not None and r["fpir"] <= TARGET_FPIR
        ),
        None,
    )


def _without_face(photos: Photos, found: NDArray[np.bool_], root: Path) -> list[str]:
    """The photos (relative to ``root``) in which no face was found."""
    return [str(p.relative_to(root)) for p, ok in zip(photos.paths, found, strict=True) if not ok]


def write_det(rates: list[dict[str, Any]], floor: float, path: Path, *, title: str) -> None:
    """DET curve (FNIR against FPIR, log axes) with the product's floor marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    usable = [r for r in rates if r["fpir"] is not None and r["fnir"] is not None]
    tiny = 1e-4
    fpir = np.array([max(r["fpir"], tiny) for r in usable])
    fnir = np.array([max(r["fnir"], tiny) for r in usable])
    fig, ax = plt.subplots(figsize=(6, 5))
    if len(usable):
        ax.plot(fpir, fnir, label="Similarity 0–100")
        at = next((r for r in usable if r["threshold"] >= floor), usable[-1])
        ax.scatter(
            [max(at["fpir"], tiny)],
            [max(at["fnir"], tiny)],
            color="red",
            zorder=3,
            label=f"product floor {floor:g}",
        )
    ax.set(xscale="log", yscale="log", xlabel="FPIR", ylabel="FNIR", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
