"""Scoring every pair of images and histogramming the Similarity by group."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceledger.evaluation.calibration_fit import Exclusions
from faceledger.evaluation.fairness.bins import (
    N_BINS,
    PUBLISHED_THRESHOLDS,
    similarity_bins,
    threshold_bin,
)
from faceledger.evaluation.fairness.images import identity_of
from faceledger.evaluation.fairness.rates import Rate

ToSimilarity = Callable[[NDArray[np.float32]], NDArray[np.float64]]


# -- exclusions -------------------------------------------------------------------------------
def excluded_index_pairs(paths: Sequence[str], exclusions: Exclusions) -> NDArray[np.int64]:
    """(k, 2) image-index pairs (i < j) that the exclusion list says to drop.

    ``same A B`` drops every pair between A's and B's images; ``photo X Y`` drops that pair;
    ``image X N`` (X shows N, not the person it is filed under) drops X's pairs with N's images
    and also X's pairs with its own folder, which are not same-person pairs either.
    """
    by_name: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        by_name.setdefault(identity_of(p), []).append(i)
    index = {p: i for i, p in enumerate(paths)}
    pairs: set[tuple[int, int]] = set()

    def add(i: int, j: int) -> None:
        if i != j:
            pairs.add((min(i, j), max(i, j)))

    for people in exclusions.same_people:
        if len(people) == 2:
            a, b = sorted(people)
            for i in by_name.get(a, []):
                for j in by_name.get(b, []):
                    add(i, j)
    for photos in exclusions.same_photos:
        found = [index[p] for p in photos if p in index]
        if len(found) == 2:
            add(found[0], found[1])
    for image, shows in exclusions.image_shows.items():
        if image not in index:
            continue
        i = index[image]
        for j in by_name.get(shows, []) + by_name.get(identity_of(image), []):
            add(i, j)
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


# -- scoring every pair -----------------------------------------------------------------------
@dataclass(frozen=True)
class HighPairs:
    """Impostor pairs scoring at or above ``floor``, kept one by one (image indices i < j).

    Few pairs score that high, and they show *who* is falsely matched: one pair of look-alike
    siblings with hundreds of photos can make a whole group's FMR.
    """

    floor: float
    similarity: NDArray[np.float64]
    i: NDArray[np.int64]
    j: NDArray[np.int64]

    @classmethod
    def empty(cls, floor: float) -> HighPairs:
        return cls(floor, np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))


@dataclass(frozen=True)
class PairHistograms:
    """Similarity histograms of every scored pair, by group (G groups, N_BINS bins).

    ``impostor[a, b]`` (a ≤ b) counts pairs between an identity of group a and one of group b;
    entries below the diagonal are zero. ``genuine[g]`` counts the pairs of identities in g;
    ``genuine_weighted[g]`` weighs each identity's pairs by 1 / its pair count, so every
    identity counts once (LFW's genuine pairs are dominated by a few much-photographed people).
    The per-image labels are kept to say which identities the ``high`` pairs join.
    """

    groups: tuple[str, ...]
    impostor: NDArray[np.int64]  # (G, G, N_BINS)
    genuine: NDArray[np.int64]  # (G, N_BINS)
    genuine_weighted: NDArray[np.float64]  # (G, N_BINS)
    identities_with_genuine: NDArray[np.int64]  # (G,)
    largest_identity_genuine: NDArray[np.int64]  # (G,) pairs of the identity with the most
    image_identity: NDArray[np.int64]  # (n,)
    image_group: NDArray[np.int64]  # (n,)
    image_valid: NDArray[np.bool_]  # (n,)
    high: HighPairs
    excluded_genuine: int = 0
    excluded_impostor: int = 0

    def overall_impostor(self) -> NDArray[np.int64]:
        return np.asarray(self.impostor.sum(axis=(0, 1)), np.int64)

    def overall_genuine(self) -> NDArray[np.int64]:
        return np.asarray(self.genuine.sum(axis=0), np.int64)

    def within(self, g: int) -> NDArray[np.int64]:
        """Impostor pairs with both identities in group g."""
        return self.impostor[g, g]

    def across(self, a: int, b: int) -> NDArray[np.int64]:
        """Impostor pairs with one identity in group a and one in group b (either order)."""
        return self.impostor[min(a, b), max(a, b)]

    def top_impostors(self, k: int) -> list[tuple[float, int, int]]:
        """The k highest-scoring impostor pairs (of those ≥ ``high.floor``), best first."""
        order = np.argsort(-self.high.similarity, kind="stable")[:k]
        return [
            (float(self.high.similarity[o]), int(self.high.i[o]), int(self.high.j[o]))
            for o in order
        ]


def _drop_mask(
    excluded: NDArray[np.int64], start: int, stop: int, n: int
) -> NDArray[np.bool_] | None:
    rows = excluded[(excluded[:, 0] >= start) & (excluded[:, 0] < stop)]
    if len(rows) == 0:
        return None
    mask = np.zeros((stop - start, n), bool)
    mask[rows[:, 0] - start, rows[:, 1]] = True
    return mask


def histogram_pairs(
    embeddings: NDArray[np.float32],
    identity: NDArray[np.int64],
    group: NDArray[np.int64],
    groups: Sequence[str],
    to_similarity: ToSimilarity,
    *,
    valid: NDArray[np.bool_] | None = None,
    excluded: NDArray[np.int64] | None = None,
    keep_from: float = min(PUBLISHED_THRESHOLDS),
    block: int = 512,
) -> PairHistograms:
    """Score every unordered pair of valid images and histogram the Similarity by group.

    ``identity`` and ``group`` are per-image integer labels. O(n²) dot products in row blocks
    of ``block`` (memory ≈ block·n·30 bytes). Genuine scores are kept (their number is small)
    to weight identities; impostor scores are only counted, apart from those ≥ ``keep_from``.
    """
    n = len(embeddings)
    valid = np.ones(n, bool) if valid is None else valid
    excluded = np.zeros((0, 2), np.int64) if excluded is None else excluded
    counts = _PairCounts(identity, group, len(groups), keep_from)
    cols = np.arange(n)
    for start in range(0, n, block):
        stop = min(start + block, n)
        rows = cols[start:stop]
        upper = (cols[None, :] > rows[:, None]) & valid[start:stop, None] & valid[None, :]
        same = identity[start:stop, None] == identity[None, :]
        drop = _drop_mask(excluded, start, stop, n)
        if drop is not None:
            upper &= ~counts.drop(drop & upper, same)
        sims = to_similarity(embeddings[start:stop] @ embeddings.T)
        counts.add(start, sims, upper & same, upper & ~same)
    return counts.histograms(tuple(groups), valid)


class _PairCounts:
    """What ``histogram_pairs`` gathers block by block: impostor counts by group pair and bin,
    the genuine pairs' bins and identities, the high-scoring impostor pairs, and the pairs the
    exclusion list dropped."""

    def __init__(
        self, identity: NDArray[np.int64], group: NDArray[np.int64], n_groups: int, keep_from: float
    ) -> None:
        self.identity, self.group, self.n_groups, self.keep_from = (
            identity,
            group,
            n_groups,
            keep_from,
        )
        self.impostor = np.zeros(n_groups * n_groups * N_BINS, np.int64)
        self.genuine_bins: list[NDArray[np.int64]] = []
        self.genuine_ids: list[NDArray[np.int64]] = []
        self.high: list[tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]] = []
        self.dropped_genuine = self.dropped_impostor = 0

    def drop(self, drop: NDArray[np.bool_], same: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Count the excluded pairs ``drop`` of a block; returns it."""
        self.dropped_genuine += int((drop & same).sum())
        self.dropped_impostor += int((drop & ~same).sum())
        return drop

    def add(
        self,
        start: int,
        sims: NDArray[np.float64],
        gen: NDArray[np.bool_],
        imp: NDArray[np.bool_],
    ) -> None:
        """Count one block of rows from ``start``: its genuine and impostor pairs."""
        stop = start + len(sims)
        self.genuine_bins.append(similarity_bins(sims[gen]))
        self.genuine_ids.append(np.broadcast_to(self.identity[start:stop, None], gen.shape)[gen])
        bins = similarity_bins(sims[imp])
        ga = np.broadcast_to(self.group[start:stop, None], imp.shape)[imp]
        gb = np.broadcast_to(self.group[None, :], imp.shape)[imp]
        combo = np.minimum(ga, gb) * self.n_groups + np.maximum(ga, gb)
        self.impostor += np.bincount(combo * N_BINS + bins, minlength=self.impostor.size)
        hi, hj = np.nonzero(imp & (sims >= self.keep_from))
        self.high.append((sims[hi, hj], hi + start, hj.astype(np.int64)))

    def histograms(self, groups: tuple[str, ...], valid: NDArray[np.bool_]) -> PairHistograms:
        n_groups, keep_from = self.n_groups, self.keep_from
        genuine = _genuine_histograms(
            n_groups,
            np.concatenate(self.genuine_bins) if self.genuine_bins else np.zeros(0, np.int64),
            np.concatenate(self.genuine_ids) if self.genuine_ids else np.zeros(0, np.int64),
            self.identity,
            self.group,
        )
        kept = (
            HighPairs(keep_from, *(np.concatenate(parts) for parts in zip(*self.high, strict=True)))
            if self.high
            else HighPairs.empty(keep_from)
        )
        return PairHistograms(
            groups,
            self.impostor.reshape(n_groups, n_groups, N_BINS),
            *genuine,
            image_identity=self.identity,
            image_group=self.group,
            image_valid=valid,
            high=kept,
            excluded_genuine=self.dropped_genuine,
            excluded_impostor=self.dropped_impostor,
        )


def _genuine_histograms(
    n_groups: int,
    gen_bins: NDArray[np.int64],
    gen_ids: NDArray[np.int64],
    identity: NDArray[np.int64],
    group: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Genuine histograms by group, plain and identity-weighted, from the kept genuine scores;
    and per group the identities with genuine pairs and the largest identity's pair count."""
    n_ids = int(identity.max()) + 1 if len(identity) else 0
    group_of_id = np.zeros(n_ids, np.int64)
    group_of_id[identity] = group
    pairs_of_id = np.bincount(gen_ids, minlength=n_ids)
    gen_group = group_of_id[gen_ids]
    genuine = np.bincount(gen_group * N_BINS + gen_bins, minlength=n_groups * N_BINS)
    weights = 1.0 / np.maximum(pairs_of_id[gen_ids], 1)
    weighted = np.bincount(
        gen_group * N_BINS + gen_bins, weights=weights, minlength=n_groups * N_BINS
    )
    with_genuine = np.bincount(group_of_id[pairs_of_id > 0], minlength=n_groups)
    largest = np.zeros(n_groups, np.int64)
    np.maximum.at(largest, group_of_id, pairs_of_id)
    return (
        genuine.reshape(n_groups, N_BINS).astype(np.int64),
        weighted.reshape(n_groups, N_BINS).astype(np.float64),
        with_genuine.astype(np.int64),
        largest,
    )


def false_match_sources(
    hist: PairHistograms,
    threshold: float,
    group: int | None = None,
    names: Sequence[str] = (),
    top: int = 3,
) -> dict[str, Any] | None:
    """Which pairs of identities the false matches at ``threshold`` come from.

    Over all impostor pairs, or those within ``group``. Returns the identity-pair FMR (each
    pair of people counted once: pairs with ≥ 1 false match ÷ pairs of identities with a
    usable image) and the ``top`` identity pairs by false matches with their share; None when
    ``threshold`` is below the floor the pairs were kept from.
    """
    if threshold < hist.high.floor:
        return None
    high, ident = hist.high, hist.image_identity
    keep = similarity_bins(high.similarity) >= threshold_bin(threshold)
    usable = hist.image_valid if group is None else hist.image_valid & (hist.image_group == group)
    people = np.unique(ident[usable])
    if group is not None:
        keep &= (hist.image_group[high.i] == group) & (hist.image_group[high.j] == group)
    a, b = ident[high.i[keep]], ident[high.j[keep]]
    n_ids = int(ident.max()) + 1 if len(ident) else 1
    keys, counts = np.unique(np.minimum(a, b) * n_ids + np.maximum(a, b), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    total = int(keep.sum())

    def name(k: int) -> str:
        return names[k] if k < len(names) else str(k)

    return {
        "false_matches": total,
        "identity_pair_fmr": Rate(len(keys), len(people) * (len(people) - 1) // 2).to_dict(),
        "top_identity_pairs": [
            {
                "identity_a": name(int(keys[o] // n_ids)),
                "identity_b": name(int(keys[o] % n_ids)),
                "false_matches": int(counts[o]),
                "share": int(counts[o]) / total,
            }
            for o in order
        ],
    }
