"""The Similarity grid every pair is histogrammed on, and the thresholds published on it."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.errors import InvalidParameterError

BINS_PER_UNIT = 100  # Similarity bins are 0.01 wide
BIN_WIDTH = 1.0 / BINS_PER_UNIT
# Left edges 0.00, 0.01, …, 100.00: bin k holds k/100 ≤ s < (k+1)/100; the last bin is s = 100.
SIMILARITY_EDGES: NDArray[np.float64] = np.arange(100 * BINS_PER_UNIT + 1) / BINS_PER_UNIT
N_BINS = len(SIMILARITY_EDGES)
PUBLISHED_THRESHOLDS: tuple[float, ...] = (50.0, 80.0, 90.0, 95.0, 99.0)


def similarity_bins(similarity: NDArray[np.float64]) -> NDArray[np.int64]:
    """Bin index of each Similarity: k with edge k ≤ s < edge k+1 (so s ≥ t ⇔ bin ≥ bin(t))."""
    k = np.searchsorted(SIMILARITY_EDGES, similarity, side="right") - 1
    return np.clip(k, 0, N_BINS - 1).astype(np.int64)


def threshold_bin(similarity: float) -> int:
    """The bin a threshold starts; thresholds must lie on the 0.01 grid between 0 and 100."""
    k = round(similarity * BINS_PER_UNIT)
    if not 0 <= k < N_BINS or abs(k / BINS_PER_UNIT - similarity) > 1e-9:
        raise InvalidParameterError(
            f"threshold {similarity} must be a multiple of {BIN_WIDTH} between 0 and 100"
        )
    return int(k)
