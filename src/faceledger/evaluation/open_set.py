"""Open-set (1:N) error rates and their growth with the gallery: fit, extrapolation, protocol.

Terms (NIST FRVT 1:N / ISO/IEC 19795-1):

* **FPIR** (false-positive identification rate) — share of searches for someone *not* enrolled
  that return any candidate at or above the threshold.
* **FNIR** — share of searches for someone enrolled whose right person is not the first
  candidate at or above the threshold; the **hit rate** is 1 − FNIR.

How FPIR grows with the gallery size N (``ProbeTails``). For every non-mated probe image we
score it against one image of every other identity (each identity pair counted once, so a few
people with hundreds of photos do not dominate). A probe's chance that one gallery face of
another person scores ≥ t is its exceedance p_i(t): empirical where there are scores, and above
the probe's k-th highest score u_i an exponential tail p_i(t) = (k/n)·exp(−(t − u_i)/β_i)
(peaks over threshold with shape 0, i.e. the maximum of N such scores is Gumbel-distributed;
β_i is the maximum-likelihood mean excess). Then, for a gallery of N faces of other people,

    FPIR(t, N) = mean over probes (weighted 1/images of the probe's person) of 1 − (1 − p_i(t))^N

and the chance that a mated probe's right person (score m) is first at or above t is
1[m ≥ t]·(1 − p_i(m))^(N−1). Cosine scores are bounded, so the true tail is lighter than
exponential: the extrapolation errs on the side of a higher FPIR (a higher floor). The
uncertainty is a bootstrap over identities. Faces of one person counted as N independent
people also overstate FPIR slightly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from faceledger.inference.scale import MIN_FLOOR, TARGET_FPIR

__all__ = ["MIN_FLOOR", "TARGET_FPIR", "MatedPairs", "ProbeTails", "choose_floor", "fpir_table"]
TAIL_K = 50  # scores of a probe that define its exponential tail
SCORE_GRID = np.linspace(-1.0, 1.0, 4001)  # empirical exceedance kept on a 5e-4 cosine grid


@dataclass(frozen=True)
class ProbeTails:
    """Per-probe impostor-score exceedance: an empirical part and a generalised Pareto tail."""

    weights: NDArray[np.float64]  # per probe, summing to 1
    empirical: NDArray[np.float32]  # probes × SCORE_GRID: share of gallery scores ≥ grid value
    start: NDArray[np.float64]  # u_i: the probe's k-th highest impostor score
    scale: NDArray[np.float64]  # β_i
    start_share: NDArray[np.float64]  # k / n_i
    shape: float = 0.0  # ξ, common to all probes (0: exponential; < 0: bounded tail)

    @classmethod
    def fit(
        cls,
        scores: Sequence[NDArray[np.float32]],
        weights: ArrayLike | None = None,
        *,
        k: int = TAIL_K,
        shape: float = 0.0,
    ) -> ProbeTails:
        """``scores[i]``: probe i's cosines against gallery faces of other people; each
        probe's scale β_i is the maximum-likelihood one for the common ``shape``."""
        n = len(scores)
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
        empirical = np.zeros((n, len(SCORE_GRID)), dtype=np.float32)
        start = np.zeros(n)
        beta = np.zeros(n)
        share = np.zeros(n)
        factors = np.linspace(0.2, 3.0, 141)
        for i, row in enumerate(scores):
            s = np.sort(np.asarray(row, dtype=np.float64))[::-1]
            kk = min(k, len(s) - 1)
            counts = len(s) - np.searchsorted(s[::-1], SCORE_GRID, side="left")
            empirical[i] = counts / len(s)
            start[i] = s[kk]
            excess = s[:kk] - s[kk]
            mean = max(float(np.mean(excess)), 1e-4)
            beta[i] = mean * _best_factor(excess, mean, factors, shape)
            share[i] = kk / len(s)
        return cls(w / w.sum(), empirical, start, beta, share, shape)

    def _tail(
        self, cosine: NDArray[np.float64], rows: NDArray[np.int64] | slice = slice(None)
    ) -> NDArray[np.float64]:
        x = np.maximum(cosine - self.start[rows], 0.0) / self.scale[rows]
        if abs(self.shape) < 1e-12:
            return self.start_share[rows] * np.exp(-x)
        z = np.maximum(1.0 + self.shape * x, 0.0)
        with np.errstate(divide="ignore"):
            return self.start_share[rows] * np.where(z > 0, z ** (-1.0 / self.shape), 0.0)

    def __len__(self) -> int:
        return len(self.weights)

    def exceedance(self, cosine: float) -> NDArray[np.float64]:
        """p_i(cosine) for every probe."""
        tail = self._tail(np.full(len(self.start), float(cosine)))
        col = int(np.clip(np.searchsorted(SCORE_GRID, cosine, side="left"), 0, len(SCORE_GRID) - 1))
        return np.where(cosine >= self.start, tail, self.empirical[:, col].astype(np.float64))

    def exceedance_at(self, rows: ArrayLike, cosines: ArrayLike) -> NDArray[np.float64]:
        """p_rows[j](cosines[j]): probe ``rows[j]`` at its own score (a mated probe at its
        mate's score)."""
        r = np.asarray(rows, dtype=np.int64)
        c = np.asarray(cosines, dtype=np.float64)
        tail = self._tail(c, r)
        cols = np.clip(np.searchsorted(SCORE_GRID, c, side="left"), 0, len(SCORE_GRID) - 1)
        emp = self.empirical[r, cols].astype(np.float64)
        return np.where(c >= self.start[r], tail, emp)

    def fmr(self, cosine: float) -> float:
        """Per-comparison false-match rate, each identity pair weighted once."""
        return float(self.weights @ self.exceedance(cosine))

    def fpir(
        self, cosine: float, faces: float, weights: NDArray[np.float64] | None = None
    ) -> float:
        """Expected FPIR at ``cosine`` in a gallery of ``faces`` faces of other people."""
        p = np.clip(self.exceedance(cosine), 0.0, 1.0 - 1e-12)
        w = self.weights if weights is None else weights
        return float(w @ -np.expm1(faces * np.log1p(-p)))

    def cosine_for_fmr(self, fmr: float) -> float:
        """The cosine at which the identity-pair FMR falls to ``fmr`` (bisection)."""
        lo, hi = -1.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if self.fmr(mid) > fmr:
                lo = mid
            else:
                hi = mid
        return hi


def _best_factor(
    excess: NDArray[np.float64], mean: float, factors: NDArray[np.float64], shape: float
) -> float:
    """The factor f maximising the GPD log-likelihood of ``excess`` with β = f·mean."""
    beta = mean * factors[:, None]
    if abs(shape) < 1e-12:
        ll = (-np.log(beta) - excess[None, :] / beta).sum(1)
    else:
        z = 1.0 + shape * excess[None, :] / beta
        ok = np.all(z > 0, axis=1)
        safe = np.where(z > 0, z, 1.0)
        ll = np.where(ok, (-np.log(beta) - (1 + 1 / shape) * np.log(safe)).sum(1), -np.inf)
    return float(factors[int(np.argmax(ll))])


@dataclass(frozen=True)
class MatedPairs:
    """Mated searches: the mate's score, the probe's exceedance at that score, a weight."""

    scores: NDArray[np.float64]
    exceedance: NDArray[np.float64]  # p_i(mate score): one other face outscoring the mate
    weights: NDArray[np.float64]  # summing to 1

    @classmethod
    def of(
        cls, tails: ProbeTails, rows: ArrayLike, scores: ArrayLike, weights: ArrayLike
    ) -> MatedPairs:
        """``rows``: each mated search's probe row in ``tails``."""
        s = np.asarray(scores, dtype=np.float64)
        w = np.asarray(weights, dtype=np.float64)
        p = np.clip(tails.exceedance_at(rows, s), 0.0, 1.0 - 1e-12)
        return cls(s, p, w / w.sum())

    def hit_rate(self, cosine: float, faces: float) -> float:
        """Expected share of mated searches whose mate is first and ≥ ``cosine`` among
        ``faces`` gallery faces (one of them the mate)."""
        first = np.exp(max(faces - 1.0, 0.0) * np.log1p(-self.exceedance))
        return float(self.weights @ ((self.scores >= cosine) * first))


def fpir_table(
    tails: ProbeTails,
    cosines: Sequence[float],
    sizes: Sequence[float],
    *,
    groups: ArrayLike,
    rounds: int = 200,
    seed: int = 0,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """FPIR (cosines × sizes) with its 5th and 95th percentiles when the probes' identities
    (``groups``, one integer per probe) are resampled with replacement."""
    g = np.asarray(groups, dtype=np.int64)
    _, g = np.unique(g, return_inverse=True)
    n_groups = int(g.max()) + 1
    rng = np.random.default_rng(seed)
    picks = np.stack(
        [
            np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
            for _ in range(rounds)
        ]
    ).astype(np.float64)  # rounds × groups: how often each identity is drawn
    group_w = np.bincount(g, weights=tails.weights, minlength=n_groups)
    boot_w = picks @ group_w
    log_n = np.asarray(sizes, dtype=np.float64)
    point = np.zeros((len(cosines), len(log_n)))
    low = np.zeros_like(point)
    high = np.zeros_like(point)
    for r, c in enumerate(cosines):
        p = np.clip(tails.exceedance(float(c)), 0.0, 1.0 - 1e-12)
        hit = -np.expm1(np.outer(np.log1p(-p), log_n))  # probes × sizes
        per_group = np.stack(
            [
                np.bincount(g, weights=tails.weights * hit[:, j], minlength=n_groups)
                for j in range(len(log_n))
            ],
            axis=1,
        )
        point[r] = tails.weights @ hit
        boot = (picks @ per_group) / boot_w[:, None]
        low[r], high[r] = np.percentile(boot, [5, 95], axis=0)
    return point, low, high


def choose_floor(
    fpir_at: Sequence[float],
    similarities: Sequence[float],
    *,
    target: float = TARGET_FPIR,
    minimum: float = MIN_FLOOR,
) -> tuple[float, bool]:
    """Lowest Similarity ≥ ``minimum`` with FPIR ≤ ``target`` (FPIR falls with Similarity);
    (the highest Similarity, False) when none reaches it."""
    for s, f in zip(similarities, fpir_at, strict=True):
        if s >= minimum and f <= target:
            return float(s), True
    return float(similarities[-1]), False


def identification_rates(
    mated_top: Sequence[tuple[float, bool]],
    non_mated_top: Sequence[float],
    thresholds: Sequence[float],
) -> list[dict[str, Any]]:
    """Measured FPIR / FNIR per threshold from each search's best candidate.

    ``mated_top``: per mated search, (best score, whether the best candidate is the right
    person); ``non_mated_top``: per non-mated search, its best score (−inf when no gallery).
    """
    m = np.array([s for s, _ in mated_top], dtype=np.float64)
    right = np.array([r for _, r in mated_top], dtype=bool)
    nm = np.asarray(non_mated_top, dtype=np.float64)
    rows = []
    for t in thresholds:
        hits = int(np.sum(right & (m >= t)))
        false_pos = int(np.sum(nm >= t))
        rows.append(
            {
                "threshold": float(t),
                "fpir": false_pos / len(nm) if len(nm) else None,
                "non_mated_with_candidate": false_pos,
                "fnir": 1.0 - hits / len(m) if len(m) else None,
                "hit_rate": hits / len(m) if len(m) else None,
                "hits": hits,
            }
        )
    return rows
