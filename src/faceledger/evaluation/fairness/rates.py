"""Error rates from pair histograms, with confidence bounds where errors are few."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceledger.evaluation.fairness.bins import threshold_bin

MIN_ERRORS_FOR_RATE = 10
CONFIDENCE = 0.95


# -- rates ------------------------------------------------------------------------------------
def binomial_upper_bound(errors: int, trials: int, confidence: float = CONFIDENCE) -> float:
    """One-sided upper confidence bound on a rate from ``errors`` in ``trials``.

    Exact (Clopper–Pearson, by bisection on the binomial CDF) below 100 errors; above, the
    Wilson score bound, which is then within a few per cent of it. 1.0 when ``trials`` is 0.
    """
    if trials <= 0 or errors >= trials:
        return 1.0
    alpha = 1.0 - confidence
    if errors == 0:
        return 1.0 - alpha ** (1.0 / trials)
    if errors >= 100:
        z = _normal_quantile(confidence)
        p = errors / trials
        centre = p + z * z / (2 * trials)
        spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
        return min(1.0, (centre + spread) / (1 + z * z / trials))
    lo, hi = errors / trials, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if _binomial_cdf(errors, trials, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p), summed in log space (k small)."""
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)
    return sum(
        math.exp(base - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
        for i in range(k + 1)
    )


def _normal_quantile(q: float) -> float:
    """Standard normal quantile by bisection on erf (no SciPy)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True)
class Rate:
    """``errors`` out of ``pairs``, with the rate, its 95% upper bound and how to show it."""

    errors: int
    pairs: int

    @property
    def rate(self) -> float | None:
        return self.errors / self.pairs if self.pairs else None

    @property
    def upper_95(self) -> float | None:
        return binomial_upper_bound(self.errors, self.pairs) if self.pairs else None

    @property
    def reliable(self) -> bool:
        """Enough errors (≥ MIN_ERRORS_FOR_RATE) for the rate itself to be meaningful."""
        return self.errors >= MIN_ERRORS_FOR_RATE

    def display(self) -> str:
        """``1.2e-05 (449/45,140,361)``, or ``≤ 6.6e-07 (0/45,140,361)`` when errors are few."""
        if not self.pairs:
            return "n/a (0 pairs)"
        counts = f"({self.errors:,}/{self.pairs:,})"
        if self.reliable:
            return f"{self.rate:.2e} {counts}"
        return f"≤ {self.upper_95:.1e} {counts}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "errors": self.errors,
            "pairs": self.pairs,
            "rate": self.rate,
            "upper_95": self.upper_95,
            "reliable": self.reliable,
            "display": self.display(),
        }


def false_match(impostor: NDArray[np.int64], threshold: float) -> Rate:
    """Impostor pairs at or above ``threshold`` (Similarity) out of all impostor pairs."""
    k = threshold_bin(threshold)
    return Rate(int(impostor[k:].sum()), int(impostor.sum()))


def false_non_match(genuine: NDArray[np.int64], threshold: float) -> Rate:
    """Genuine pairs below ``threshold`` (Similarity) out of all genuine pairs."""
    k = threshold_bin(threshold)
    return Rate(int(genuine[:k].sum()), int(genuine.sum()))


def weighted_fnmr(weighted: NDArray[np.float64], threshold: float) -> float | None:
    """Identity-weighted FNMR: the mean over identities of each one's FNMR at ``threshold``."""
    total = float(weighted.sum())
    if total <= 0:
        return None
    return float(weighted[: threshold_bin(threshold)].sum()) / total


def det_curve(
    impostor: NDArray[np.int64], genuine: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(FMR, FNMR) at every bin edge threshold, for a DET plot."""
    tail = np.cumsum(impostor[::-1])[::-1]
    head = np.concatenate([[0], np.cumsum(genuine)[:-1]])
    fmr = tail / max(int(impostor.sum()), 1)
    fnmr = head / max(int(genuine.sum()), 1)
    return fmr.astype(np.float64), fnmr.astype(np.float64)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return a / b
