"""Calibrated Similarity: raw cosine → 0–100, monotonic, anchored on measured false-match rates.

A pack's manifest carries anchor points (cosine, Similarity) fitted on a reference impostor /
genuine set (``bench/calibrate.py``). Between anchors the map is linear in cosine, so it is
continuous and strictly increasing; (-1 → 0) and (1 → 100) close the ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from faceledger.inference.manifest import CalibrationTable


@dataclass(frozen=True)
class Calibration:
    cosines: NDArray[np.float64]
    similarities: NDArray[np.float64]
    published: tuple[dict[str, Any], ...] = ()
    calibrated: bool = True

    @classmethod
    def from_table(cls, table: CalibrationTable | None) -> Calibration:
        if table is None:
            # Uncalibrated pack: Similarity = 100·max(cosine, 0). Flagged so callers can say so.
            return cls(np.array([-1.0, 0.0, 1.0]), np.array([0.0, 1e-9, 100.0]), (), False)
        points = sorted(table.anchors)
        if points[0][0] > -1.0:
            points.insert(0, (-1.0, 0.0))
        if points[-1][0] < 1.0:
            points.append((1.0, 100.0))
        cos = np.array([p[0] for p in points], dtype=np.float64)
        sim = np.array([p[1] for p in points], dtype=np.float64)
        if np.any(np.diff(cos) <= 0) or np.any(np.diff(sim) <= 0):
            raise ValueError("calibration anchors must increase strictly")
        return cls(cos, sim, table.published, True)

    def similarity(self, cosine: ArrayLike) -> NDArray[np.float64]:
        """Calibrated Similarity (0–100) for raw cosine score(s)."""
        return np.interp(
            np.clip(np.asarray(cosine, dtype=np.float64), -1, 1), self.cosines, self.similarities
        )

    def cosine(self, similarity: ArrayLike) -> NDArray[np.float64]:
        """The raw cosine at which Similarity reaches ``similarity`` (the inverse map)."""
        return np.interp(
            np.clip(np.asarray(similarity, dtype=np.float64), 0, 100),
            self.similarities,
            self.cosines,
        )

    def false_match_rate(self, similarity: float) -> float | None:
        """Measured FMR at the published threshold at or just below ``similarity``, if any."""
        rows = sorted(
            (r for r in self.published if float(r["similarity"]) <= similarity),
            key=lambda r: float(r["similarity"]),
        )
        return float(rows[-1]["fmr"]) if rows else None
