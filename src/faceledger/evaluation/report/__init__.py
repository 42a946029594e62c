"""The accuracy and fairness report: run the evaluation and write ``report.json`` and
``report.html`` (self-contained: charts embedded as base64 PNGs, also written beside it).

``run_report`` is what ``faceledger eval report`` and ``bench/fairness_report.py`` call. The
numbers come from :mod:`faceledger.evaluation.fairness`; this module only arranges them.

The package: ``run`` (embed, score, gather the numbers), ``notes`` (method, data and limits in
words), ``charts`` (matplotlib PNGs), ``page`` (the HTML page and the plain-text summary),
``files`` (writing them all) and ``decisions`` (what reviewers decided about real searches'
leads: decisions by outcome, added with ``faceledger eval report --decisions``).
"""

from faceledger.evaluation.report.decisions import (
    decisions_by_outcome,
    decisions_html,
    decisions_text,
)
from faceledger.evaluation.report.files import write_report
from faceledger.evaluation.report.page import render_html, sources_summary, summary_table
from faceledger.evaluation.report.run import (
    PackInfo,
    ReportRequest,
    build_report,
    read_exclusions,
    run_report,
)

__all__ = [
    "PackInfo",
    "ReportRequest",
    "build_report",
    "decisions_by_outcome",
    "decisions_html",
    "decisions_text",
    "read_exclusions",
    "render_html",
    "run_report",
    "sources_summary",
    "summary_table",
    "write_report",
]
