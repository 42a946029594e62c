"""The accuracy and fairness report: run the evaluation and write ``report.json`` and
``report.html`` (self-contained: charts embedded as base64 PNGs, also written beside it).

``run_report`` is what ``faceledger eval report`` and ``bench/fairness_report.py`` call. The
numbers come from :mod:`faceledger.evaluation.fairness`; this module only arranges them.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from faceledger import __version__
from faceledger.domain.errors import InvalidParameterError
from faceledger.evaluation.calibration_fit import Exclusions
from faceledger.evaluation.fairness import (
    BIN_WIDTH,
    CONFIDENCE,
    MIN_ERRORS_FOR_RATE,
    N_BINS,
    PUBLISHED_THRESHOLDS,
    SIMILARITY_EDGES,
    UNASSIGNED,
    EmbeddedImages,
    GroupFile,
    Grouping,
    PairHistograms,
    Progress,
    ToSimilarity,
    assign_groups,
    det_curve,
    embed_dataset,
    excluded_index_pairs,
    histogram_pairs,
    image_counts,
    read_groups,
    summarise,
)
from faceledger.inference.engine import FaceEngine

CHART_THRESHOLDS: tuple[float, ...] = (80.0, 90.0)
TOP_IMPOSTORS = 25


@dataclass(frozen=True)
class ReportRequest:
    """What to evaluate and where to write it."""

    data_dir: Path
    out_dir: Path
    groups_file: Path | None = None
    exclusions_file: Path | None = None
    cache_dir: Path | None = None  # default: out_dir
    face: str = "largest"  # or "central" (see faceledger.evaluation.fairness)
    title: str = "FaceLedger accuracy and fairness report"
    notes: tuple[str, ...] = ()  # extra notes on the data, shown in the report
    thresholds: tuple[float, ...] = PUBLISHED_THRESHOLDS


# -- running ----------------------------------------------------------------------------------
def read_exclusions(path: Path) -> tuple[Exclusions, int]:
    """The exclusion list (bench/lfw_exclusions.txt format) and its number of entries."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        exclusions = Exclusions.parse(lines)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(f"cannot read exclusions file {path}: {exc}") from None
    except (ValueError, IndexError) as exc:
        raise InvalidParameterError(f"{path.name}: malformed exclusion line ({exc})") from None
    entries = (
        len(exclusions.same_people) + len(exclusions.image_shows) + len(exclusions.same_photos)
    )
    return exclusions, entries


@dataclass(frozen=True)
class PackInfo:
    """What the report says about the model pack (taken from the engine)."""

    name: str
    face_model_version: str
    calibrated: bool = True
    calibration_reference: str = ""

    @classmethod
    def of(cls, engine: FaceEngine) -> PackInfo:
        table = engine.manifest.calibration
        return cls(
            engine.manifest.name,
            engine.face_model_version,
            engine.calibration.calibrated,
            table.reference if table else "",
        )


def run_report(
    engine: FaceEngine, request: ReportRequest, progress: Progress | None = None
) -> dict[str, Any]:
    """Embed (or reuse the cache), score every pair, write the report files; returns the JSON."""
    # Read the small inputs first, so that a bad CSV fails before minutes of embedding.
    group_file = read_groups(request.groups_file) if request.groups_file else None
    exclusions = read_exclusions(request.exclusions_file) if request.exclusions_file else None
    embedded, cache_path, reused = embed_dataset(
        engine,
        request.data_dir,
        request.cache_dir or request.out_dir,
        face=request.face,
        progress=progress,
    )
    report, hist = build_report(
        embedded,
        request,
        PackInfo.of(engine),
        engine.calibration.similarity,
        group_file=group_file,
        exclusions=exclusions,
    )
    report["meta"]["embeddings_cache"] = str(cache_path)
    report["meta"]["embeddings_cache_reused"] = reused
    write_report(report, hist, request.out_dir)
    return report


def build_report(
    embedded: EmbeddedImages,
    request: ReportRequest,
    pack: PackInfo,
    to_similarity: ToSimilarity,
    *,
    group_file: GroupFile | None = None,
    exclusions: tuple[Exclusions, int] | None = None,
) -> tuple[dict[str, Any], PairHistograms]:
    """Every number of the report (JSON-ready) and the histograms behind them."""
    grouping = assign_groups(embedded.identities, group_file.mapping if group_file else None)
    names = sorted(set(embedded.identities))
    hist = score(
        embedded,
        grouping,
        to_similarity,
        exclusions[0] if exclusions else None,
        keep_from=min(request.thresholds),
    )
    report = summarise(hist, image_counts(embedded, grouping), request.thresholds, names)
    report["meta"] = _meta(pack, request, embedded)
    report["groups"] = {
        "file": str(request.groups_file) if request.groups_file else None,
        "grouped": grouping.grouped,
        "names": list(grouping.names),
        "unassigned_identities": grouping.unassigned,
        "notes": list(group_file.notes) if group_file else [],
        "identities_in_file_not_in_data": (
            len(set(group_file.mapping) - set(grouping.of_identity)) if group_file else 0
        ),
    }
    report["exclusions"] = {
        "file": str(request.exclusions_file) if request.exclusions_file else None,
        "entries": exclusions[1] if exclusions else 0,
        "genuine_pairs_removed": hist.excluded_genuine,
        "impostor_pairs_removed": hist.excluded_impostor,
    }
    report["top_impostors"] = _top_impostors(hist, embedded, grouping)
    report["notes"] = notes(report, request)
    return report, hist


def score(
    embedded: EmbeddedImages,
    grouping: Grouping,
    to_similarity: ToSimilarity,
    exclusions: Exclusions | None,
    *,
    keep_from: float = min(PUBLISHED_THRESHOLDS),
) -> PairHistograms:
    """Histogram every pair of images with a face on the calibrated Similarity; identity
    labels are the indices of the sorted identity names."""
    names = embedded.identities
    _, identity = np.unique(np.array(names), return_inverse=True)
    group = np.array([grouping.of_identity[n] for n in names], np.int64)
    excluded = excluded_index_pairs(embedded.paths, exclusions) if exclusions else None
    return histogram_pairs(
        embedded.embeddings,
        identity.astype(np.int64),
        group,
        grouping.names,
        to_similarity,
        valid=embedded.found,
        excluded=excluded,
        keep_from=keep_from,
    )


def _meta(pack: PackInfo, request: ReportRequest, embedded: EmbeddedImages) -> dict[str, Any]:
    return {
        "title": request.title,
        "generated_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "faceledger_version": __version__,
        "pack": pack.name,
        "face_model_version": pack.face_model_version,
        "calibrated": pack.calibrated,
        "calibration_reference": pack.calibration_reference,
        "data_dir": str(request.data_dir),
        "face_choice": request.face,
        "embeddings_cache": None,
        "embeddings_cache_reused": False,
        "similarity_bin_width": BIN_WIDTH,
        "min_errors_for_rate": MIN_ERRORS_FOR_RATE,
        "confidence": CONFIDENCE,
        "images": len(embedded.paths),
    }


def _top_impostors(
    hist: PairHistograms, embedded: EmbeddedImages, grouping: Grouping
) -> list[dict[str, Any]]:
    """The highest-scoring impostor pairs: often label faults worth checking by eye."""
    group_of = [grouping.names[grouping.of_identity[n]] for n in embedded.identities]
    return [
        {
            "similarity": round(s, 3),
            "image_a": embedded.paths[i],
            "image_b": embedded.paths[j],
            "group_a": group_of[i],
            "group_b": group_of[j],
        }
        for s, i, j in hist.top_impostors(TOP_IMPOSTORS)
    ]


def notes(report: dict[str, Any], request: ReportRequest) -> dict[str, Any]:
    """Method, data and limits, in words, for the HTML report (and kept in the JSON)."""
    meta, excl = report["meta"], report["exclusions"]
    chosen = (
        "largest face (the one the API's search and compare use)"
        if meta["face_choice"] == "largest"
        else "face nearest the image centre (the labelled person in centred photos like LFW's)"
    )
    method = [
        f"Each image's {chosen} was detected and embedded with the {meta['pack']} pack "
        f"({meta['face_model_version']}). Images where no face was found take part in no pair; "
        "they are counted per group as failures to acquire.",
        "Every pair of images with a face was scored. Pairs of two images filed under one "
        "identity are genuine pairs; pairs of two identities are impostor pairs. The score is "
        "the calibrated Similarity (0–100) that the API returns.",
        "FMR(t) = impostor pairs with Similarity ≥ t ÷ impostor pairs; FNMR(t) = genuine pairs "
        f"with Similarity < t ÷ genuine pairs. Scores are counted in {BIN_WIDTH}-wide bins, so "
        "rates at thresholds on that grid are exact.",
        "A group's FMR counts only the impostor pairs within the group (both identities in "
        "it), as NIST FRVT's demographic-differential reports do. Pairs across two groups "
        "count in the overall rate and in the cross-group table.",
        f"With fewer than {MIN_ERRORS_FOR_RATE} errors a rate is shown as "
        f"'≤ x', its one-sided {CONFIDENCE:.0%} upper confidence bound (Clopper–Pearson), "
        "with the counts. Pairs share images, so they are not independent: bounds are "
        "indicative, somewhat narrower than the truth.",
        "Ratio to overall = group rate ÷ overall rate. 'max/min' is the largest group rate "
        f"divided by the smallest, over groups with ≥ {MIN_ERRORS_FOR_RATE} errors at that "
        f"threshold, leaving out '{UNASSIGNED}'.",
        "Identity-weighted FNMR averages each identity's own FNMR, so that identities with "
        "many images (many genuine pairs) do not dominate; the plain FNMR counts pairs. "
        "Likewise the false-match sources count each pair of people once (its denominator "
        "includes pairs of people whose image pairs the exclusion list removed).",
    ]
    data = [
        f"{report['overall']['identities']:,} identities, {report['overall']['images']:,} "
        f"images under {meta['data_dir']}; {report['overall']['images_without_face']:,} without "
        f"a face, {report['overall']['images_unreadable']:,} unreadable.",
        f"{report['overall']['genuine_pairs']:,} genuine and "
        f"{report['overall']['impostor_pairs']:,} impostor pairs scored.",
    ]
    if excl["file"]:
        data.append(
            f"Exclusions from {excl['file']} ({excl['entries']} entries: label faults such as "
            "one person under two names, or one photo under two people): "
            f"{excl['impostor_pairs_removed']:,} impostor and {excl['genuine_pairs_removed']:,} "
            "genuine pairs left out."
        )
    else:
        data.append("No exclusion list: known label faults, if any, count as errors.")
    data.extend(request.notes)
    limits = [
        "These rates describe this image set with these labels only. Other cameras, poses, "
        "lighting, resolutions and ages give other rates: measure on images like yours.",
        "A group's rate reflects everything that differs between the groups' images "
        "(lighting, image quality, age, sex, pose), not only the attribute that names the group.",
        "Group labels come from the groups file. Automatic or proxy labels are imperfect; "
        "small groups give wide bounds.",
        "Identity labels can be wrong: the highest-scoring impostor pairs (listed below) are "
        "often label faults rather than model errors; check them by eye.",
    ]
    if meta["calibration_reference"]:
        limits.append(
            f"The pack's Similarity calibration was fitted on: {meta['calibration_reference']}. "
            "If that is this data, the overall FMR at the anchor thresholds matches the "
            "calibration targets by construction (an in-sample figure); per-group differences "
            "are still informative."
        )
    if not meta["calibrated"]:
        limits.append("This pack is uncalibrated: Similarity is 100 · max(cosine, 0).")
    return {"method": method, "data": data, "limits": limits}


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


# -- HTML -------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f2f2f2} td.l,th.l{text-align:left} tr.overall td{font-weight:600;background:#fafafa}
.warn{background:#fff4e0} .box{border-left:4px solid #d08000;background:#fff8ec;padding:.5em 1em}
img{max-width:100%} code{background:#f4f4f4;padding:0 3px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt_pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def _cell(rate: dict[str, Any]) -> str:
    cls = "" if rate["reliable"] or not rate["pairs"] else ' class="warn"'
    return f"<td{cls}>{_e(rate['display'])}</td>"


def summary_rows(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, population) rows of the summary: overall, then each group (when grouped)."""
    rows = [("overall", report["overall"])]
    if report["groups"]["grouped"]:
        rows += [(g["group"], g) for g in report["per_group"]]
    return rows


def _summary_table(report: dict[str, Any], thresholds: Sequence[float]) -> str:
    head = (
        "<tr><th class=l rowspan=2>group</th><th rowspan=2>identities</th><th rowspan=2>"
        "images</th><th rowspan=2>no face</th><th rowspan=2>genuine pairs</th><th rowspan=2>"
        "impostor pairs</th>"
        + "".join(f"<th colspan=5>Similarity {t:g}</th>" for t in thresholds)
        + "</tr><tr>"
        + "<th>FMR</th><th>× overall</th><th>FNMR</th><th>× overall</th>"
        "<th>FNMR (identity-weighted)</th>" * len(thresholds) + "</tr>"
    )
    body = []
    for label, pop in summary_rows(report):
        cls = ' class="overall"' if label == "overall" else ""
        cells = (
            f"<td class=l>{_e(label)}</td><td>{pop['identities']:,}</td><td>{pop['images']:,}"
            f"</td><td>{pop['images_without_face'] + pop['images_unreadable']:,}</td>"
            f"<td>{pop['genuine_pairs']:,}</td><td>{pop['impostor_pairs']:,}</td>"
        )
        for t in thresholds:
            at = pop["at"][f"{t:g}"]
            cells += (
                _cell(at["fmr"])
                + f"<td>{_e(at.get('fmr_ratio_display', '–'))}</td>"
                + _cell(at["fnmr"])
                + f"<td>{_e(at.get('fnmr_ratio_display', '–'))}</td>"
                + f"<td>{_fmt_pct(at['fnmr_identity_weighted'])}</td>"
            )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _sources_text(sources: dict[str, Any] | None) -> str:
    """``A – B: 377 (84%); C – D: 23 (5%)``: the identity pairs behind the false matches."""
    if not sources or not sources["top_identity_pairs"]:
        return "–"
    return "; ".join(
        f"{p['identity_a']} – {p['identity_b']}: {p['false_matches']:,} ({p['share']:.0%})"
        for p in sources["top_identity_pairs"]
    )


def _sources_table(report: dict[str, Any], thresholds: Sequence[float]) -> str:
    rows = []
    for t in thresholds:
        for label, pop in summary_rows(report):
            sources = pop["at"][f"{t:g}"].get("false_match_sources")
            if not sources:
                continue
            rows.append(
                f"<tr><td>{t:g}</td><td class=l>{_e(label)}</td>"
                f"<td>{sources['false_matches']:,}</td>{_cell(sources['identity_pair_fmr'])}"
                f"<td class=l>{_e(_sources_text(sources))}</td></tr>"
            )
    return (
        "<table><tr><th>Similarity</th><th class=l>group</th><th>false matches</th>"
        "<th>pairs of people with a false match</th><th class=l>largest sources (pairs of "
        "people: false matches, share)</th></tr>" + "".join(rows) + "</table>"
    )


def _differentials_table(report: dict[str, Any]) -> str:
    rows = []
    for key, diff in report["differentials"].items():
        for rate in ("fmr", "fnmr"):
            d = diff[rate]
            value = "–" if d["max_over_min"] is None else f"{d['max_over_min']:.2f}"
            who = f"{d['max_group']} / {d['min_group']}" if d["max_over_min"] else ""
            rows.append(
                f"<tr><td>{_e(key)}</td><td class=l>{rate.upper()}</td><td>{value}</td>"
                f"<td class=l>{_e(who)}</td><td class=l>{_e(', '.join(d['groups_compared']))}"
                "</td></tr>"
            )
    return (
        "<table><tr><th>Similarity</th><th class=l>rate</th><th>max/min</th>"
        "<th class=l>max / min group</th><th class=l>groups compared</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _cross_table(report: dict[str, Any], thresholds: Sequence[float]) -> str:
    head = "<tr><th class=l>group A</th><th class=l>group B</th><th>impostor pairs</th>" + "".join(
        f"<th>FMR at {t:g}</th>" for t in thresholds
    )
    rows = [
        f"<tr><td class=l>{_e(r['group_a'])}</td><td class=l>{_e(r['group_b'])}</td>"
        f"<td>{r['impostor_pairs']:,}</td>"
        + "".join(_cell(r["at"][f"{t:g}"]) for t in thresholds)
        + "</tr>"
        for r in report["cross_group"]
    ]
    return f"<table>{head}</tr>{''.join(rows)}</table>"


def _top_table(report: dict[str, Any]) -> str:
    rows = [
        f"<tr><td>{r['similarity']:.2f}</td><td class=l><code>{_e(r['image_a'])}</code></td>"
        f"<td class=l><code>{_e(r['image_b'])}</code></td><td class=l>{_e(r['group_a'])}</td>"
        f"<td class=l>{_e(r['group_b'])}</td></tr>"
        for r in report["top_impostors"]
    ]
    return (
        "<table><tr><th>Similarity</th><th class=l>image A</th><th class=l>image B</th>"
        "<th class=l>group A</th><th class=l>group B</th></tr>" + "".join(rows) + "</table>"
    )


def _list(items: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _img(charts: dict[str, bytes], name: str, alt: str) -> str:
    if name not in charts:
        return ""
    data = base64.b64encode(charts[name]).decode("ascii")
    return f'<p><img alt="{_e(alt)}" src="data:image/png;base64,{data}"></p>'


def render_html(report: dict[str, Any], charts: dict[str, bytes]) -> str:
    """The self-contained HTML page (no external files or scripts)."""
    meta, groups, notes_ = report["meta"], report["groups"], report["notes"]
    all_t = report["thresholds"]
    key_t = [t for t in CHART_THRESHOLDS if t in all_t] or all_t[:2]
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(meta['title'])}"
        f"</title><style>{_CSS}</style></head><body><h1>{_e(meta['title'])}</h1>",
        f"<p>{_e(meta['pack'])} (<code>{_e(meta['face_model_version'])}</code>) · "
        f"FaceLedger {_e(meta['faceledger_version'])} · generated {_e(meta['generated_utc'])}"
        "</p>",
        '<div class="box"><b>Read this first.</b>' + _list(notes_["limits"]) + "</div>",
        f"<h2>Summary at Similarity {' and '.join(f'{t:g}' for t in key_t)}</h2>",
        _summary_table(report, key_t),
        f"<p>Shaded cells rest on fewer than {MIN_ERRORS_FOR_RATE} errors: the value shown is "
        f"'≤' its {CONFIDENCE:.0%} upper bound, then (errors/pairs).</p>",
        "<h2>Where the false matches come from</h2>",
        "<p>A pair of look-alike relatives, or one person filed under two names, with many "
        "photos each can make most of a group's false matches. The second column counts each "
        "pair of people once (pairs with ≥ 1 false match ÷ pairs of people).</p>",
        _sources_table(report, key_t),
        "<h2>DET curves</h2>",
        _img(charts, "det.png", "DET curves"),
    ]
    if groups["grouped"]:
        parts += [
            "<h2>Per-group FMR and FNMR</h2>",
            _img(charts, "bars.png", "per-group bars"),
            "<h2>Differentials (FRVT-style max/min)</h2>",
            _differentials_table(report),
            "<h2>Groups</h2>",
            f"<p>From <code>{_e(groups['file'])}</code>: {len(groups['names'])} groups; "
            f"{groups['unassigned_identities']:,} identities not in the file are "
            f"'{UNASSIGNED}'.</p>",
            _list(groups["notes"]) if groups["notes"] else "",
        ]
    parts += [
        "<details><summary><b>All published thresholds</b></summary>",
        _summary_table(report, all_t),
        "</details>",
    ]
    if groups["grouped"]:
        parts += ["<h2>Impostor pairs within and across groups</h2>", _cross_table(report, key_t)]
    parts += [
        "<h2>Highest-scoring impostor pairs</h2>",
        "<p>Check these by eye: they are often label faults (one person under two names, or a "
        "misfiled photo), which belong in the exclusion list, not in the error rate.</p>",
        _top_table(report),
        "<h2>Method</h2>",
        _list(notes_["method"]),
        "<h2>Data and exclusions</h2>",
        _list(notes_["data"]),
        "<p>Every number is in <code>report.json</code>; the 0.01-wide Similarity histograms "
        "are in <code>histograms.npz</code>.</p></body></html>",
    ]
    return "\n".join(parts) + "\n"


def summary_table(report: dict[str, Any], thresholds: Sequence[float] = CHART_THRESHOLDS) -> str:
    """A plain-text summary (overall and per group) for terminals."""
    header = f"{'group':<16}{'ids':>6}{'images':>7}{'genuine':>9}{'impostor':>12}"
    for t in thresholds:
        header += f"  {'FMR@' + f'{t:g}':<28}{'×overall':>8}  {'FNMR@' + f'{t:g}':<24}"
    lines = [header, "-" * len(header)]
    for label, pop in summary_rows(report):
        line = (
            f"{label[:15]:<16}{pop['identities']:>6}{pop['images']:>7}{pop['genuine_pairs']:>9,}"
            f"{pop['impostor_pairs']:>12,}"
        )
        for t in thresholds:
            at = pop["at"][f"{t:g}"]
            r = at.get("fmr_ratio_display", "")
            line += f"  {at['fmr']['display']:<28}{r:>8}  {at['fnmr']['display']:<24}"
        lines.append(line)
    return "\n".join(lines)


def sources_summary(report: dict[str, Any], thresholds: Sequence[float] = CHART_THRESHOLDS) -> str:
    """Plain-text lines: the identity pairs behind the false matches, per group."""
    lines = []
    for t in thresholds:
        for label, pop in summary_rows(report):
            sources = pop["at"][f"{t:g}"].get("false_match_sources")
            if sources and sources["false_matches"]:
                lines.append(f"  @{t:g} {label:<14} {_sources_text(sources)}")
    return "false matches by pair of people:\n" + "\n".join(lines) if lines else ""


__all__ = [
    "PackInfo",
    "ReportRequest",
    "build_report",
    "read_exclusions",
    "render_html",
    "run_report",
    "sources_summary",
    "summary_table",
    "write_report",
]
