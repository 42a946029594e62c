"""Leads, their candidates and the decisions on them, written once for both backends (over
``Sql``).

Four tables: ``leads`` (one row per search with candidates, with its ``state`` and whether
its search's ledger record landed: ``recorded``), ``lead_candidates`` (the candidates, best
first), ``lead_decisions`` (append-only: a later decision on a candidate supersedes an earlier
one, both stay) and ``lead_probes`` (the searched face, when the collection keeps crops;
written with the lead, deleted with it). A decision and the lead's new state are written in
one transaction. ``SQLiteLeadStore`` and ``PostgresLeadStore`` are this
class over their own tables (made by ``SCHEMA`` and ``store/sqlite/lead_probes.py`` on SQLite,
by the migrations ``0007_leads`` and ``0009_lead_probes`` on PostgreSQL).
"""

from __future__ import annotations

from typing import Any

from faceledger.domain.errors import ResourceNotFoundError
from faceledger.domain.leads import DECIDED, OPEN, Lead, LeadCandidate, LeadDecision
from faceledger.store.records import LeadProbe
from faceledger.store.sql import Connection, Sql

LEAD_COLUMNS = (
    "lead_id, created_at, request_id, operation, source, principal, purpose, case_reference,"
    " collection_id, threshold, face_count, fpir, hit_rate"
)
_LEAD = f"SELECT {LEAD_COLUMNS} FROM leads"
_CANDIDATES = (
    "SELECT candidate_id, kind, similarity, rank, external_image_id FROM lead_candidates"
    " WHERE lead_id = %s ORDER BY rank"
)
_DECISIONS = (
    "SELECT lead_id, candidate_id, decision, note, reviewer, request_id, decided_at"
    " FROM lead_decisions WHERE lead_id = %s ORDER BY seq"
)


def no_lead(lead_id: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"no lead {lead_id!r}")


class LeadTables:
    """The ``LeadStore`` protocol over ``sql``; safe to share by threads (and processes)."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def add_lead(self, lead: Lead, probe: LeadProbe | None = None) -> None:
        """Write a new lead (state ``open``, not yet ``recorded``) with its candidates and
        its searched face (``probe``), in one transaction."""
        with self._sql.transaction() as conn:
            conn.execute(
                f"INSERT INTO leads ({LEAD_COLUMNS}, state)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    lead.lead_id,
                    lead.created_at,
                    lead.request_id,
                    lead.operation,
                    lead.source,
                    lead.principal,
                    lead.purpose,
                    lead.case_reference,
                    lead.collection_id,
                    lead.threshold,
                    lead.face_count,
                    lead.fpir,
                    lead.hit_rate,
                    OPEN,
                ),
            )
            for c in lead.candidates:
                conn.execute(
                    "INSERT INTO lead_candidates (lead_id, candidate_id, kind, similarity, rank,"
                    " external_image_id) VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        lead.lead_id,
                        c.candidate_id,
                        c.kind,
                        c.similarity,
                        c.rank,
                        c.external_image_id,
                    ),
                )
            if probe is not None:
                conn.execute(
                    "INSERT INTO lead_probes (lead_id, collection_id, face_id, sealed, created_at)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (
                        lead.lead_id,
                        lead.collection_id,
                        probe.face_id,
                        probe.sealed,
                        lead.created_at,
                    ),
                )

    def lead(self, lead_id: str) -> Lead:
        """The lead with its candidates and decisions; ``ResourceNotFoundException``."""
        with self._sql.reading() as conn:
            row = conn.execute(f"{_LEAD} WHERE lead_id = %s", (lead_id,)).fetchone()
            if row is None:
                raise no_lead(lead_id)
            return self._lead(conn, row)

    def list_leads(
        self,
        *,
        state: str | None = None,
        collection_id: str | None = None,
        newest_first: bool = False,
        after: str | None = None,
        limit: int = 100,
        recorded: bool | None = None,
    ) -> list[Lead]:
        """Leads in creation order (oldest first: the review queue; or newest first), after
        the lead ``after`` (a page's last), at most ``limit``; ``recorded``: only the leads
        whose search's record landed (True) or only the others (False)."""
        where: list[str] = []
        params: list[Any] = []
        if recorded is not None:
            where.append("recorded = %s")
            params.append(recorded)
        if state is not None:
            where.append("state = %s")
            params.append(state)
        if collection_id is not None:
            where.append("collection_id = %s")
            params.append(collection_id)
        with self._sql.reading() as conn:
            if after is not None:
                mark = conn.execute(
                    "SELECT created_at FROM leads WHERE lead_id = %s", (after,)
                ).fetchone()
                if mark is None:
                    raise no_lead(after)
                op = "<" if newest_first else ">"
                where.append(f"(created_at, lead_id) {op} (%s, %s)")
                params += [mark[0], after]
            order = "DESC" if newest_first else "ASC"
            clause = f" WHERE {' AND '.join(where)}" if where else ""
            rows = conn.execute(
                f"{_LEAD}{clause} ORDER BY created_at {order}, lead_id {order} LIMIT %s",
                (*params, limit),
            ).fetchall()
            return [self._lead(conn, row) for row in rows]

    def add_decision(self, decision: LeadDecision) -> Lead:
        """Append a decision and set the lead's state (``decided`` once every candidate has
        one) in one transaction; the lead afterwards."""
        with self._sql.transaction() as conn:
            conn.execute(
                "INSERT INTO lead_decisions (lead_id, candidate_id, decision, note, reviewer,"
                " request_id, decided_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    decision.lead_id,
                    decision.candidate_id,
                    decision.decision,
                    decision.note,
                    decision.reviewer,
                    decision.request_id,
                    decision.decided_at,
                ),
            )
            undecided = conn.execute(
                "SELECT count(*) FROM lead_candidates c WHERE c.lead_id = %s AND NOT EXISTS"
                " (SELECT 1 FROM lead_decisions d WHERE d.lead_id = c.lead_id"
                " AND d.candidate_id = c.candidate_id)",
                (decision.lead_id,),
            ).fetchone()[0]
            conn.execute(
                "UPDATE leads SET state = %s WHERE lead_id = %s",
                (OPEN if undecided else DECIDED, decision.lead_id),
            )
        return self.lead(decision.lead_id)

    def delete_leads(self, collection_id: str, *, created_before: float | None = None) -> list[str]:
        """Remove a collection's leads (those made before ``created_before``, epoch seconds, if
        given) with their candidates and decisions, in one transaction; their ids."""
        where = "collection_id = %s"
        params: tuple[Any, ...] = (collection_id,)
        if created_before is not None:
            where += " AND created_at < %s"
            params += (created_before,)
        with self._sql.transaction() as conn:
            ids = [
                str(r[0])
                for r in conn.execute(f"SELECT lead_id FROM leads WHERE {where}", params).fetchall()
            ]
            chosen = f"SELECT lead_id FROM leads WHERE {where}"
            conn.execute(f"DELETE FROM lead_probes WHERE lead_id IN ({chosen})", params)
            conn.execute(f"DELETE FROM lead_decisions WHERE lead_id IN ({chosen})", params)
            conn.execute(f"DELETE FROM lead_candidates WHERE lead_id IN ({chosen})", params)
            conn.execute(f"DELETE FROM leads WHERE {where}", params)
        return ids

    def mark_recorded(self, lead_id: str) -> None:
        """Note that the lead's search record landed (the lead joins the queue)."""
        with self._sql.transaction() as conn:
            conn.execute("UPDATE leads SET recorded = %s WHERE lead_id = %s", (True, lead_id))

    def lead_probe(self, lead_id: str) -> LeadProbe | None:
        """The lead's searched face, or None when none was kept (or it was deleted)."""
        with self._sql.reading() as conn:
            row = conn.execute(
                "SELECT face_id, sealed FROM lead_probes WHERE lead_id = %s", (lead_id,)
            ).fetchone()
        if row is None:
            return None
        return LeadProbe(row[0], None if row[1] is None else bytes(row[1]))

    def has_sealed_probes(self) -> bool:
        """Whether any lead keeps a sealed searched face (then the crop key must be at hand)."""
        with self._sql.reading() as conn:
            row = conn.execute(
                "SELECT 1 FROM lead_probes WHERE sealed IS NOT NULL LIMIT 1"
            ).fetchone()
        return row is not None

    def delete_probes(self, collection_id: str) -> int:
        """Delete the searched faces kept for a collection's leads (the leads stay); how
        many."""
        with self._sql.transaction() as conn:
            cur = conn.execute("DELETE FROM lead_probes WHERE collection_id = %s", (collection_id,))
            return int(cur.rowcount)

    def _lead(self, conn: Connection, row: Any) -> Lead:
        lead_id = str(row[0])
        candidates = tuple(
            LeadCandidate(
                candidate_id=str(c[0]),
                kind=str(c[1]),
                similarity=float(c[2]),
                rank=int(c[3]),
                external_image_id=c[4],
            )
            for c in conn.execute(_CANDIDATES, (lead_id,)).fetchall()
        )
        decisions = tuple(
            LeadDecision(
                lead_id=str(d[0]),
                candidate_id=str(d[1]),
                decision=str(d[2]),
                note=str(d[3]),
                reviewer=str(d[4]),
                request_id=str(d[5]),
                decided_at=float(d[6]),
            )
            for d in conn.execute(_DECISIONS, (lead_id,)).fetchall()
        )
        return Lead(
            lead_id=lead_id,
            created_at=float(row[1]),
            request_id=str(row[2]),
            operation=str(row[3]),
            source=str(row[4]),
            principal=str(row[5]),
            purpose=row[6],
            case_reference=row[7],
            collection_id=str(row[8]),
            threshold=float(row[9]),
            face_count=None if row[10] is None else int(row[10]),
            fpir=None if row[11] is None else float(row[11]),
            hit_rate=None if row[12] is None else float(row[12]),
            candidates=candidates,
            decisions=decisions,
        )
