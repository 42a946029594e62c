"""The report's charts (matplotlib, loaded on first use): DET curves and per-group bars."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from faceledger.evaluation.fairness import (
    BIN_WIDTH,
    N_BINS,
    SIMILARITY_EDGES,
    PairHistograms,
    det_curve,
)

CHART_THRESHOLDS: tuple[float, ...] = (80.0, 90.0)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _quiet_minor_labels(*axes: Any) -> None:
    """No labels on minor log ticks: short ranges would get dozens, slow to lay out."""
    from matplotlib.ticker import NullFormatter

    for ax in axes:
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    _pyplot().close(fig)
    return buffer.getvalue()


def _curves(report: dict[str, Any], hist: PairHistograms) -> list[tuple[str, Any, Any]]:
    """(label, impostor histogram, genuine histogram): overall, then each group's own."""
    out = [("overall", hist.overall_impostor(), hist.overall_genuine())]
    if report["groups"]["grouped"]:
        out += [(name, hist.within(g), hist.genuine[g]) for g, name in enumerate(hist.groups)]
    return out


def det_png(report: dict[str, Any], hist: PairHistograms) -> bytes:
    """DET (log FMR vs log FNMR) and FMR against threshold, overall and per group.

    Operating points at Similarity 80 (circle) and 90 (square) are marked; rates of zero are
    drawn at 1/n, the resolution of the data.
    """
    plt = _pyplot()
    fig, (det, fmr_ax) = plt.subplots(1, 2, figsize=(13, 5.2))
    marks = {80.0: "o", 90.0: "s"}
    for label, imp, gen in _curves(report, hist):
        if imp.sum() == 0 or gen.sum() == 0:
            continue
        fmr, fnmr = det_curve(imp, gen)
        fmr_c = np.maximum(fmr, 1.0 / imp.sum())
        fnmr_c = np.maximum(fnmr, 1.0 / gen.sum())
        width = 2.4 if label == "overall" else 1.3
        colour = {"color": "k"} if label == "overall" else {}
        (line,) = det.plot(fmr_c, fnmr_c, lw=width, label=label, **colour)
        fmr_ax.plot(SIMILARITY_EDGES, fmr_c, lw=width, color=line.get_color())
        for t, marker in marks.items():
            k = round(t / BIN_WIDTH)
            if k < N_BINS:
                det.plot(fmr_c[k], fnmr_c[k], marker, color=line.get_color(), ms=6)
    det.set(
        xscale="log",
        yscale="log",
        xlabel="false-match rate (FMR)",
        ylabel="false-non-match rate (FNMR)",
        title="DET (● Similarity 80, ■ 90; group curves use within-group impostors)",
    )
    det.grid(True, which="both", alpha=0.3)
    det.legend(fontsize=8)
    fmr_ax.set(
        yscale="log",
        xlim=(40, 100),
        xlabel="Similarity threshold",
        ylabel="FMR",
        title="FMR at each threshold",
    )
    for t in marks:
        fmr_ax.axvline(t, color="grey", ls=":", lw=1)
    fmr_ax.grid(True, which="both", alpha=0.3)
    _quiet_minor_labels(det, fmr_ax)
    fig.tight_layout()
    return _png(fig)


def bars_png(report: dict[str, Any], thresholds: Sequence[float] = CHART_THRESHOLDS) -> bytes:
    """Per-group FMR and FNMR at each chart threshold, with the overall rate as a dashed line.

    A bar from fewer than MIN_ERRORS_FOR_RATE errors is hatched and drawn at its 95% upper
    bound; every bar is labelled errors/pairs. FNMR panels also mark the identity-weighted
    FNMR (◆).
    """
    plt = _pyplot()
    groups = report["per_group"]
    fig, axes = plt.subplots(2, len(thresholds), figsize=(6.5 * len(thresholds), 8), squeeze=False)
    for col, t in enumerate(thresholds):
        key = f"{t:g}"
        for row, rate in enumerate(("fmr", "fnmr")):
            ax = axes[row][col]
            cells = [g["at"][key][rate] for g in groups]
            heights = [_bar_height(c) for c in cells]
            bars = ax.bar(range(len(groups)), heights, color=f"C{row}")
            for bar, cell in zip(bars, cells, strict=True):
                if not cell["reliable"]:
                    bar.set_hatch("//")
                    bar.set_alpha(0.5)
                ax.annotate(
                    f"{'≤ ' if not cell['reliable'] else ''}{cell['errors']}/{cell['pairs']:,}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
            if rate == "fnmr":  # each identity once: much-photographed people dominate pairs
                weighted = [g["at"][key]["fnmr_identity_weighted"] for g in groups]
                xs = [k for k, w in enumerate(weighted) if w]
                ax.plot(xs, [weighted[k] for k in xs], "kD", ms=5, label="identity-weighted")
            overall = report["overall"]["at"][key][rate]["rate"]
            if overall:
                ax.axhline(overall, color="k", ls="--", lw=1, label="overall")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
            ax.set_xticks(range(len(groups)), [g["group"] for g in groups], rotation=20)
            ax.set(yscale="log", title=f"{rate.upper()} at Similarity {key}")
            ax.grid(True, axis="y", which="both", alpha=0.3)
            _quiet_minor_labels(ax)
    fig.suptitle("Per group (FMR: within-group impostor pairs; hatched: bound from < 10 errors)")
    fig.tight_layout()
    return _png(fig)


def _bar_height(cell: dict[str, Any]) -> float:
    if not cell["pairs"]:
        return 0.0
    return float(cell["rate"] if cell["reliable"] else cell["upper_95"])
