"""Decisions by outcome: what reviewers decided about the leads searches made, per collection
and effective threshold — the real-world false-match figure an agency can publish.

For each (collection, threshold): the leads, their candidates, how many candidates have a
decision (the one in force: the latest), how many were confirmed, rejected or inconclusive,
the leads still undecided (``open``), and the observed rejected share among confirmed +
rejected (None before any). A rejected candidate is a false match a human caught; the share is
an estimate over what was reviewed, so the undecided count stands beside it.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from faceledger.domain.leads import OPEN, Lead


def decisions_by_outcome(leads: Iterable[Lead]) -> list[dict[str, Any]]:
    """One row per (collection, effective threshold), sorted by both."""
    rows: dict[tuple[str, float], dict[str, Any]] = {}
    for lead in leads:
        key = (lead.collection_id, round(lead.threshold, 3))
        row = rows.setdefault(
            key,
            {
                "collection_id": key[0],
                "threshold": key[1],
                "leads": 0,
                "undecided_leads": 0,
                "candidates": 0,
                "candidates_decided": 0,
                "confirmed": 0,
                "rejected": 0,
                "inconclusive": 0,
            },
        )
        row["leads"] += 1
        row["undecided_leads"] += lead.state == OPEN
        row["candidates"] += len(lead.candidates)
        for decision in lead.latest().values():
            row["candidates_decided"] += 1
            row[decision.decision] += 1
    out = []
    for key in sorted(rows):
        row = rows[key]
        judged = row["confirmed"] + row["rejected"]
        row["rejected_share"] = round(row["rejected"] / judged, 4) if judged else None
        out.append(row)
    return out


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def decisions_text(rows: list[dict[str, Any]]) -> str:
    """A plain-text table for terminals."""
    header = (
        f"{'collection':<24}{'threshold':>10}{'leads':>7}{'undecided':>10}{'confirmed':>10}"
        f"{'rejected':>9}{'inconcl.':>9}{'rejected share':>16}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['collection_id'][:23]:<24}{r['threshold']:>10g}{r['leads']:>7}"
            f"{r['undecided_leads']:>10}{r['confirmed']:>10}{r['rejected']:>9}"
            f"{r['inconclusive']:>9}{_share(r['rejected_share']):>16}"
        )
    if not rows:
        lines.append("no leads yet")
    return "\n".join(lines)


def decisions_html(rows: list[dict[str, Any]]) -> str:
    """The report's section: a heading, what the figures mean, the table."""
    head = (
        "<h2>Decisions by outcome</h2><p>What reviewers decided about the leads this "
        "installation's searches made, per collection and effective threshold (the decision in "
        "force for each candidate). The rejected share among confirmed + rejected candidates is "
        "the observed false-match rate of real searches; undecided leads are not in it.</p>"
    )
    if not rows:
        return head + "<p>No leads yet.</p>"
    cells = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                r["collection_id"],
                f"{r['threshold']:g}",
                r["leads"],
                r["undecided_leads"],
                r["confirmed"],
                r["rejected"],
                r["inconclusive"],
                _share(r["rejected_share"]),
            )
        )
        + "</tr>"
        for r in rows
    )
    return (
        head + "<table><tr><th>collection</th><th>threshold</th><th>leads</th>"
        "<th>undecided leads</th><th>confirmed</th><th>rejected</th><th>inconclusive</th>"
        f"<th>rejected share</th></tr>{cells}</table>"
    )
