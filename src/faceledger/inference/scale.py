"""A pack's open-set table: expected FPIR and hit rate by Similarity threshold and gallery size.

Fitted by ``bench/calibrate.py`` (method in ``evaluation/open_set.py``) and shipped beside the
pack manifests as ``packs/scale/<pack>.json``; loaded lazily, once per engine. Lookups between
tabulated sizes interpolate FPIR and hit rate in log(size); a threshold between tabulated
Similarities takes the row at or just below it (the higher FPIR). The default floor of a
collection of N faces is the lowest tabulated Similarity ≥ ``min_floor`` whose FPIR (the
``floor_column``: the point estimate or its upper bound) at N is ≤ ``target_fpir``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

TARGET_FPIR = 1e-3  # a default floor keeps at most 1 in 1,000 non-mated searches with a candidate
MIN_FLOOR = 80.0  # never below Rekognition's default FaceMatchThreshold


@dataclass(frozen=True)
class ScaleEstimate:
    """Expected open-set behaviour of one threshold at one gallery size."""

    fpir: float
    fpir_upper: float
    hit_rate: float


@dataclass(frozen=True)
class ScaleTable:
    sizes: NDArray[np.float64]  # gallery sizes (faces), increasing
    similarities: NDArray[np.float64]  # thresholds, increasing
    fpir: NDArray[np.float64]  # similarities × sizes
    fpir_upper: NDArray[np.float64]
    hit_rate: NDArray[np.float64]
    target_fpir: float
    min_floor: float
    floor_column: str  # "fpir" or "fpir_upper"
    method: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScaleTable:
        table = cls(
            sizes=np.asarray(data["sizes"], dtype=np.float64),
            similarities=np.asarray(data["similarities"], dtype=np.float64),
            fpir=np.asarray(data["fpir"], dtype=np.float64),
            fpir_upper=np.asarray(data["fpir_upper"], dtype=np.float64),
            hit_rate=np.asarray(data["hit_rate"], dtype=np.float64),
            target_fpir=float(data["target_fpir"]),
            min_floor=float(data["min_floor"]),
            floor_column=str(data.get("floor_column", "fpir")),
            method=str(data.get("method", "")),
        )
        shape = (len(table.similarities), len(table.sizes))
        for name in ("fpir", "fpir_upper", "hit_rate"):
            if getattr(table, name).shape != shape:
                raise ValueError(f"scale table: {name} must be {shape}")
        if np.any(np.diff(table.sizes) <= 0) or np.any(np.diff(table.similarities) <= 0):
            raise ValueError("scale table: sizes and similarities must increase")
        return table

    @classmethod
    def builtin(cls, pack: str) -> ScaleTable | None:
        """The table shipped for ``pack``, or None when the pack has none."""
        entry = resources.files("faceledger.inference") / "packs" / "scale" / f"{pack}.json"
        if not entry.is_file():
            return None
        return cls.from_dict(json.loads(entry.read_text(encoding="utf-8")))

    def _column(self, values: NDArray[np.float64], faces: int) -> NDArray[np.float64]:
        """``values`` at ``faces`` for every Similarity row (log-size interpolation)."""
        x = np.log10(np.clip(float(max(faces, 1)), self.sizes[0], self.sizes[-1]))
        logs = np.log10(self.sizes)
        j = int(np.clip(np.searchsorted(logs, x, side="right") - 1, 0, len(logs) - 2))
        frac = (x - logs[j]) / (logs[j + 1] - logs[j])
        frac = float(np.clip(frac, 0.0, 1.0))
        return values[:, j] * (1.0 - frac) + values[:, j + 1] * frac

    def _row(self, similarity: float) -> int:
        """The tabulated Similarity at or just below ``similarity`` (−1: below the table)."""
        return int(np.searchsorted(self.similarities, similarity + 1e-9, side="right")) - 1

    def floor(self, faces: int) -> tuple[float, bool]:
        """(default floor, whether it reaches the target) for a collection of ``faces``."""
        column = self._column(
            self.fpir_upper if self.floor_column == "fpir_upper" else self.fpir, faces
        )
        for s, f in zip(self.similarities, column, strict=True):
            if s >= self.min_floor and f <= self.target_fpir:
                return float(s), True
        return float(self.similarities[-1]), False

    def estimate(self, similarity: float, faces: int) -> ScaleEstimate | None:
        """Expected FPIR (point, upper) and hit rate at ``similarity`` in ``faces`` faces;
        None below the table's lowest Similarity."""
        if faces <= 0:
            return ScaleEstimate(0.0, 0.0, 0.0)
        row = self._row(similarity)
        if row < 0:
            return None
        return ScaleEstimate(
            float(self._column(self.fpir, faces)[row]),
            float(self._column(self.fpir_upper, faces)[row]),
            float(self._column(self.hit_rate, faces)[row]),
        )
