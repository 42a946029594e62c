"""LFW: embed every image, score pairs, run the standard 10-fold protocol, write a report.

Layout expected (the LFW distribution): ``DIR/<Name>/<Name>_NNNN.jpg`` and a pairs file whose
lines are ``name i j`` (same person) or ``name1 i name2 j`` (different people). The first line
is a header (``N`` or ``folds N``). Pairs are split into 10 folds in file order, each fold
holding the same share of genuine and impostor pairs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.errors import FaceLedgerError, InvalidParameterError
from faceledger.domain.faces import AnalysedImage, Faces
from faceledger.inference.engine import FaceEngine
from faceledger.inference.imaging import load_image

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Pair:
    a: str  # relative image path, e.g. "Name/Name_0001.jpg"
    b: str
    same: bool


def image_relpath(name: str, number: int) -> str:
    return f"{name}/{name}_{number:04d}.jpg"


def read_pairs(pairs_file: Path) -> list[Pair]:
    lines = [ln.split() for ln in pairs_file.read_text().splitlines() if ln.strip()]
    if not lines:
        raise InvalidParameterError(f"{pairs_file.name} is empty")
    body = lines[1:] if len(lines[0]) <= 2 else lines
    pairs = []
    for fields in body:
        if len(fields) == 3:
            pairs.append(
                Pair(
                    image_relpath(fields[0], int(fields[1])),
                    image_relpath(fields[0], int(fields[2])),
                    True,
                )
            )
        elif len(fields) == 4:
            pairs.append(
                Pair(
                    image_relpath(fields[0], int(fields[1])),
                    image_relpath(fields[2], int(fields[3])),
                    False,
                )
            )
        else:
            raise InvalidParameterError(f"{pairs_file.name}: cannot read line {' '.join(fields)!r}")
    return pairs


def central_face(faces: Faces, width_px: int, height_px: int) -> int | None:
    """Index of the face whose box centre is nearest the image centre (LFW is centred)."""
    if len(faces) == 0:
        return None
    centres = (faces.boxes_px[:, :2] + faces.boxes_px[:, 2:]) / 2.0
    d = np.linalg.norm(centres - np.array([width_px / 2.0, height_px / 2.0]), axis=1)
    return int(np.argmin(d))


@dataclass(frozen=True)
class EmbeddedSet:
    """Embeddings of a list of images; rows of images without a face are zero and flagged."""

    paths: list[str]
    embeddings: NDArray[np.float32]
    found: NDArray[np.bool_]
    scores: NDArray[np.float32]  # detector confidence of the chosen face (0 when none)


def embed_images(
    engine: FaceEngine, root: Path, relpaths: list[str], progress: Progress | None = None
) -> EmbeddedSet:
    """Embed the central face of each image, using all engine workers."""
    n = len(relpaths)
    emb = np.zeros((n, engine.embedding_size), dtype=np.float32)
    found = np.zeros((n,), dtype=bool)
    scores = np.zeros((n,), dtype=np.float32)
    paths = [root / rel for rel in relpaths]
    index = {p: i for i, p in enumerate(paths)}

    for done, (path, result) in enumerate(engine.analyse_many(paths, loader=load_image), 1):
        i = index[path]
        if isinstance(result, AnalysedImage) and len(result.faces):
            faces = result.faces
            k = central_face(faces, result.width_px, result.height_px)
            assert k is not None and faces.embeddings is not None
            emb[i] = faces.embeddings[k]
            found[i] = True
            scores[i] = faces.scores[k]
        if progress is not None:
            progress(done, n)
    return EmbeddedSet(relpaths, emb, found, scores)


def best_threshold(scores: NDArray[np.float64], labels: NDArray[np.bool_]) -> float:
    """The threshold maximising accuracy on (scores, labels); midpoint between scores."""
    order = np.sort(np.unique(scores))
    candidates = np.concatenate(
        [[order[0] - 1e-6], (order[:-1] + order[1:]) / 2, [order[-1] + 1e-6]]
    )
    best, best_acc = float(candidates[0]), -1.0
    for t in candidates:
        acc = float(np.mean((scores >= t) == labels))
        if acc > best_acc:
            best, best_acc = float(t), acc
    return best


def ten_fold(
    scores: NDArray[np.float64], labels: NDArray[np.bool_], folds: int = 10
) -> dict[str, Any]:
    """Standard LFW protocol: threshold chosen on 9 folds, accuracy measured on the 10th."""
    genuine = np.flatnonzero(labels)
    impostor = np.flatnonzero(~labels)
    fold_of = np.zeros(len(scores), dtype=int)
    for idx in (genuine, impostor):
        fold_of[idx] = np.arange(len(idx)) * folds // len(idx)
    accs, thresholds = [], []
    for k in range(folds):
        train, test = fold_of != k, fold_of == k
        t = best_threshold(scores[train], labels[train])
        accs.append(float(np.mean((scores[test] >= t) == labels[test])))
        thresholds.append(t)
    return {
        "folds": folds,
        "accuracy_mean": float(np.mean(accs)),
        "accuracy_std": float(np.std(accs)),
        "fold_accuracies": accs,
        "thresholds_cosine": thresholds,
    }


def run_lfw_eval(
    engine: FaceEngine,
    data_dir: Path,
    pairs_file: Path,
    out_dir: Path,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Embed the images the pairs need, run 10-fold CV, write ``lfw_report.json`` and a PNG."""
    pairs = read_pairs(pairs_file)
    _check_images(pairs, data_dir, pairs_file)
    relpaths = sorted({p for pair in pairs for p in (pair.a, pair.b)})
    embedded = embed_images(engine, data_dir, relpaths, progress)
    row = {p: i for i, p in enumerate(relpaths)}
    ia = np.array([row[p.a] for p in pairs])
    ib = np.array([row[p.b] for p in pairs])
    labels = np.array([p.same for p in pairs])
    cosine = np.einsum("ij,ij->i", embedded.embeddings[ia], embedded.embeddings[ib]).astype(
        np.float64
    )
    # A pair with an undetected image scores -1 (counts as "different"), as is conventional.
    both = embedded.found[ia] & embedded.found[ib]
    cosine[~both] = -1.0
    protocol = ten_fold(cosine, labels)
    similarity = engine.calibration.similarity(cosine)
    report: dict[str, Any] = {
        "pack": engine.manifest.name,
        "face_model_version": engine.face_model_version,
        "pairs_file": pairs_file.name,
        "pairs": len(pairs),
        "genuine_pairs": int(labels.sum()),
        "impostor_pairs": int((~labels).sum()),
        "images": len(relpaths),
        "images_with_face": int(embedded.found.sum()),
        "pairs_with_undetected_image": int((~both).sum()),
        **protocol,
        "calibrated": engine.calibration.calibrated,
        "at_similarity": _rates_at(similarity, labels, (50, 80, 90, 95, 99)),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_path = out_dir / "lfw_report.png"
    write_plots(
        cosine[labels],
        cosine[~labels],
        plot_path,
        title=f"{engine.manifest.name} on {pairs_file.name}",
    )
    report["plot"] = plot_path.name
    report["tar_at_far"] = tar_at_far(cosine[labels], cosine[~labels], (1e-3, 1e-4))
    scores_path = out_dir / "lfw_pair_scores.csv"
    _write_pair_scores(scores_path, pairs, cosine, similarity)
    report["pair_scores"] = scores_path.name
    (out_dir / "lfw_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _check_images(pairs: list[Pair], data_dir: Path, pairs_file: Path) -> None:
    """Raise ``InvalidParameterError`` when an image the pairs name is not under ``data_dir``."""
    missing = [p for pair in pairs for p in (pair.a, pair.b) if not (data_dir / p).is_file()]
    if missing:
        raise InvalidParameterError(
            f"{len(missing)} images named in {pairs_file.name} are missing under the data "
            f"directory, e.g. {missing[0]}"
        )


def _rates_at(
    similarity: NDArray[np.float64], labels: NDArray[np.bool_], thresholds: tuple[int, ...]
) -> dict[str, dict[str, float]]:
    """FMR and FNMR of the pairs at each Similarity threshold (0–100), keyed by threshold."""
    return {
        str(t): {
            "false_match_rate": float(np.mean(similarity[~labels] >= t)),
            "false_non_match_rate": float(np.mean(similarity[labels] < t)),
        }
        for t in thresholds
    }


def _write_pair_scores(
    path: Path, pairs: list[Pair], cosine: NDArray[np.float64], similarity: NDArray[np.float64]
) -> None:
    """One CSV row per pair: both images, same person or not, cosine and Similarity."""
    with path.open("w", encoding="utf-8") as f:
        f.write("image_a,image_b,same,cosine,similarity\n")
        for pair, c, s in zip(pairs, cosine, similarity, strict=True):
            f.write(f"{pair.a},{pair.b},{int(pair.same)},{c:.6f},{s:.4f}\n")


def tar_at_far(
    genuine: NDArray[np.float64], impostor: NDArray[np.float64], fars: tuple[float, ...]
) -> dict[str, dict[str, Any]]:
    """True-accept rate at the strictest cosine threshold letting through at most FAR of the
    impostor pairs. With n impostor pairs a FAR below 1/n cannot be told from 0: such rows
    say so (``resolved`` false) and use the threshold above every impostor score."""
    out: dict[str, dict[str, Any]] = {}
    imp = np.sort(impostor)[::-1]
    n = len(imp)
    for far in fars:
        allowed = int(np.floor(far * n))
        threshold = float(imp[allowed]) + 1e-9 if allowed < n else float("-inf")
        out[f"{far:g}"] = {
            "tar": float(np.mean(genuine >= threshold)) if len(genuine) else None,
            "threshold_cosine": threshold,
            "false_accepts": int(np.sum(impostor >= threshold)),
            "impostor_pairs": n,
            "resolved": n * far >= 1.0,
        }
    return out


def write_plots(
    genuine: NDArray[np.float64], impostor: NDArray[np.float64], path: Path, *, title: str
) -> None:
    """ROC, DET and score histograms in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds = np.unique(np.concatenate([genuine, impostor]))
    fmr = np.array([np.mean(impostor >= t) for t in thresholds])
    fnmr = np.array([np.mean(genuine < t) for t in thresholds])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    axes[0].plot(fmr, 1 - fnmr)
    axes[0].set(xscale="log", xlabel="false-match rate", ylabel="true-match rate", title="ROC")
    axes[0].grid(True, which="both", alpha=0.3)
    floor = 1.0 / max(len(impostor), len(genuine), 1)
    axes[1].plot(np.maximum(fmr, floor), np.maximum(fnmr, floor))
    axes[1].set(
        xscale="log",
        yscale="log",
        xlabel="false-match rate",
        ylabel="false-non-match rate",
        title="DET",
    )
    axes[1].grid(True, which="both", alpha=0.3)
    bins = np.linspace(-1, 1, 101)
    axes[2].hist(
        impostor, bins=bins, alpha=0.6, label=f"impostor (n={len(impostor)})", density=True
    )
    axes[2].hist(genuine, bins=bins, alpha=0.6, label=f"genuine (n={len(genuine)})", density=True)
    axes[2].set(xlabel="cosine", ylabel="density", title="scores")
    axes[2].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def all_images(data_dir: Path) -> list[str]:
    """Every ``Name/Name_NNNN.jpg`` under ``data_dir``, sorted."""
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.glob("*/*.jpg"))


__all__ = [
    "EmbeddedSet",
    "FaceLedgerError",
    "Pair",
    "all_images",
    "embed_images",
    "read_pairs",
    "run_lfw_eval",
    "ten_fold",
]
