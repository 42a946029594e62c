"""The report as a self-contained HTML page, and its summary as plain text for terminals."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

from faceledger.evaluation.fairness import (
    CONFIDENCE,
    MIN_ERRORS_FOR_RATE,
    UNASSIGNED,
)
from faceledger.evaluation.report.charts import CHART_THRESHOLDS
from faceledger.evaluation.report.decisions import decisions_html

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
    if "decisions_by_outcome" in report:
        parts.append(decisions_html(report["decisions_by_outcome"]))
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
