"""Writing a report: report.json, the charts, the histograms and report.html."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from faceledger.evaluation.fairness import (
    SIMILARITY_EDGES,
    PairHistograms,
)
from faceledger.evaluation.report.charts import bars_png, det_png
from faceledger.evaluation.report.page import render_html


# -- writing ----------------------------------------------------------------------------------
def write_report(report: dict[str, Any], hist: PairHistograms, out_dir: Path) -> None:
    """report.json, det.png, bars.png (with groups), histograms.npz and report.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = {"det.png": det_png(report, hist)}
    if report["groups"]["grouped"]:
        charts["bars.png"] = bars_png(report)
    for name, data in charts.items():
        (out_dir / name).write_bytes(data)
    np.savez_compressed(
        out_dir / "histograms.npz",
        similarity_edges=SIMILARITY_EDGES,
        groups=np.array(hist.groups),
        impostor=hist.impostor,
        genuine=hist.genuine,
        genuine_identity_weighted=hist.genuine_weighted,
    )
    report["files"] = {
        "html": "report.html",
        "json": "report.json",
        "charts": sorted(charts),
        "histograms": "histograms.npz",
    }
    (out_dir / "report.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out_dir / "report.html").write_text(render_html(report, charts), encoding="utf-8")
