"""Fit a pack's Similarity calibration from all genuine and impostor pairs of a labelled set.

With n images, every pair of images of different people is an impostor pair (LFW's
development split gives ≈45 M), every pair of images of one person a genuine pair. Scores are
accumulated in fine cosine bins, so the fit needs O(n²) dot products but little memory; the
highest-scoring impostor pairs are kept individually for inspection (label faults).

Anchors: Similarity s must mean a measured false-match rate ≤ FMR(s). For each anchor we take
the smallest cosine t (on the bin grid) at which at most ⌊FMR·N⌋ impostor pairs score ≥ t.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Similarity → the false-match rate it stands for (issue 14): 80 ↔ 1e-5 as before, then 4 points
# per decade, so FMR 1e-6 … 1e-10 (where true and false candidates of large galleries mix)
# spreads over Similarity 84 … 99. bench/calibrate.py fits it on identity pairs.
ANCHOR_FMR: dict[float, float] = {
    50.0: 1e-3,
    70.0: 1e-4,
    80.0: 1e-5,
    84.0: 1e-6,
    88.0: 1e-7,
    92.0: 1e-8,
    96.0: 1e-9,
    99.0: 1e-10,
}
BIN_COUNT = 40_000  # bins over [-1, 1]: 5e-5 cosine wide


@dataclass
class Exclusions:
    """Impostor pairs to leave out: one person under two names, misfiled images, duplicates."""

    same_people: set[frozenset[str]] = field(default_factory=set)
    image_shows: dict[str, str] = field(default_factory=dict)  # image → the person it shows
    same_photos: set[frozenset[str]] = field(default_factory=set)
    # Identical twins: real different people, kept in per-comparison calibration; left out of
    # open-set FPIR fits only when asked (``twins=True``), and reported separately.
    twins: set[frozenset[str]] = field(default_factory=set)

    @classmethod
    def parse(cls, lines: Iterable[str]) -> Exclusions:
        ex = cls()
        for raw in lines:
            line = raw.split("#", 1)[0].split()
            if not line:
                continue
            kind, a, b = line[0], line[1], line[2]
            if kind == "same":
                ex.same_people.add(frozenset((a, b)))
            elif kind == "image":
                ex.image_shows[a] = b
            elif kind == "photo":
                ex.same_photos.add(frozenset((a, b)))
            elif kind == "twins":
                ex.twins.add(frozenset((a, b)))
            else:
                raise ValueError(f"unknown exclusion kind {kind!r}")
        return ex

    def excluded(self, path_a: str, path_b: str, *, twins: bool = False) -> bool:
        """Whether the impostor pair (path_a, path_b) is a label fault (or, with ``twins``,
        a listed pair of identical twins)."""
        name_a, name_b = path_a.split("/", 1)[0], path_b.split("/", 1)[0]
        if frozenset((name_a, name_b)) in self.same_people:
            return True
        if twins and frozenset((name_a, name_b)) in self.twins:
            return True
        if frozenset((path_a, path_b)) in self.same_photos:
            return True
        return self.image_shows.get(path_a) == name_b or self.image_shows.get(path_b) == name_a


@dataclass(frozen=True)
class PairScores:
    """Histogrammed scores of all pairs, plus the top impostor pairs."""

    edges: NDArray[np.float64]
    impostor: NDArray[np.int64]  # counts per bin
    genuine: NDArray[np.int64]
    top_impostors: list[tuple[float, str, str]]  # (cosine, path_a, path_b), best first

    @property
    def impostor_pairs(self) -> int:
        return int(self.impostor.sum())

    @property
    def genuine_pairs(self) -> int:
        return int(self.genuine.sum())

    def fmr(self, cosine: float) -> float:
        """Fraction of impostor pairs scoring ≥ cosine (on the bin grid)."""
        k = int(np.searchsorted(self.edges, cosine, side="left"))
        return float(self.impostor[k:].sum()) / max(self.impostor_pairs, 1)

    def fnmr(self, cosine: float) -> float:
        k = int(np.searchsorted(self.edges, cosine, side="left"))
        return float(self.genuine[:k].sum()) / max(self.genuine_pairs, 1)

    def impostors_at_or_above(self, cosine: float) -> int:
        k = int(np.searchsorted(self.edges, cosine, side="left"))
        return int(self.impostor[k:].sum())

    def threshold_for_fmr(self, fmr: float) -> float:
        """Smallest bin edge t with #impostors ≥ t ≤ ⌊fmr·N⌋."""
        allowed = int(np.floor(fmr * self.impostor_pairs))
        tail = np.concatenate([np.cumsum(self.impostor[::-1])[::-1], [0]])  # tail[k] = # ≥ edge k
        k = int(np.argmax(tail <= allowed))
        return float(self.edges[k])


def score_all_pairs(
    embeddings: NDArray[np.float32],
    paths: list[str],
    *,
    valid: NDArray[np.bool_] | None = None,
    exclusions: Exclusions | None = None,
    keep_top: int = 2000,
    top_floor: float = 0.4,
    block: int = 1024,
) -> PairScores:
    """Every unordered pair of valid images scored; person = the folder name of the path."""
    n = len(paths)
    valid = np.ones(n, bool) if valid is None else valid
    names = np.array([p.split("/", 1)[0] for p in paths])
    _, labels = np.unique(names, return_inverse=True)
    edges = np.linspace(-1.0, 1.0, BIN_COUNT + 1)
    imp = np.zeros(BIN_COUNT, np.int64)
    gen = np.zeros(BIN_COUNT, np.int64)
    top: list[tuple[float, str, str]] = []
    cols = np.arange(n)
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        scores = embeddings[rows] @ embeddings.T
        upper = (cols[None, :] > rows[:, None]) & valid[rows][:, None] & valid[None, :]
        same = labels[rows][:, None] == labels[None, :]
        candidate = upper & ~same & (scores >= top_floor)
        removed = np.zeros_like(candidate)
        for i, j in zip(*np.nonzero(candidate), strict=True):
            a, b = paths[rows[i]], paths[j]
            if exclusions is not None and exclusions.excluded(a, b):
                removed[i, j] = True
            else:
                top.append((float(scores[i, j]), a, b))
        imp += np.histogram(scores[upper & ~same & ~removed], edges)[0]
        gen += np.histogram(scores[upper & same], edges)[0]
    top.sort(reverse=True)
    return PairScores(edges, imp, gen, top[:keep_top])


def fit_anchors(
    scores: PairScores, anchor_fmr: dict[float, float] | None = None
) -> list[list[float]]:
    """(cosine, Similarity) anchors, strictly increasing in both."""
    anchor_fmr = anchor_fmr or ANCHOR_FMR
    anchors: list[list[float]] = []
    for similarity in sorted(anchor_fmr):
        t = scores.threshold_for_fmr(anchor_fmr[similarity])
        # Round up to 4 decimals so the published guarantee holds for the stored number.
        t = float(np.ceil(t * 1e4) / 1e4)
        if anchors and t <= anchors[-1][0]:
            t = anchors[-1][0] + 1e-4
        anchors.append([round(t, 4), similarity])
    return anchors


def published_table(
    scores: PairScores, cosine_at: dict[float, float], thresholds: Iterable[float]
) -> list[dict[str, Any]]:
    """For each Similarity threshold: its cosine, measured FMR and FNMR, and the pair counts."""
    rows = []
    for s in thresholds:
        c = cosine_at[s]
        rows.append(
            {
                "similarity": s,
                "cosine": round(c, 4),
                "fmr": scores.fmr(c),
                "false_matches": scores.impostors_at_or_above(c),
                "fnmr": scores.fnmr(c),
                "impostor_pairs": scores.impostor_pairs,
                "genuine_pairs": scores.genuine_pairs,
            }
        )
    return rows
