"""``store/rules.py``: the rules both store backends share, table by table (no database).

The backends' own suites (``test_store.py``, ``test_postgres_store.py``, ``test_users.py``)
run the same rules through SQL on SQLite and PostgreSQL; these pin the rules themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest

from faceledger.domain.collections import BoundingBox
from faceledger.domain.errors import (
    IdempotentParameterMismatchError,
    InvalidParameterError,
    ServiceQuotaExceededError,
)
from faceledger.store import rules
from faceledger.store.records import JobRow, NewFace, RequestRecord

OWNERS: dict[str, str | None] = {"free1": None, "free2": None, "mine": "u1", "theirs": "u2"}


@pytest.mark.parametrize(
    ("wanted", "count", "limit", "change", "not_found", "other", "exceeded"),
    [
        (["free1", "mine"], 1, None, ("free1",), (), (), False),
        (["free1", "free2", "gone"], 0, 100, ("free1", "free2"), ("gone",), (), False),
        (["theirs", "free1"], 0, None, ("free1",), (), (("theirs", "u2"),), False),
        (["free1", "free2"], 99, 100, (), (), (), True),  # 99 + 2 > 100: nothing written
        (["free1"], 99, 100, ("free1",), (), (), False),  # exactly at the limit
        (["mine"], 100, 100, (), (), (), False),  # nothing new to add: no limit breached
    ],
)
def test_plan_association(
    wanted: list[str],
    count: int,
    limit: int | None,
    change: tuple[str, ...],
    not_found: tuple[str, ...],
    other: tuple[tuple[str, str], ...],
    exceeded: bool,
) -> None:
    plan = rules.plan_association(wanted, OWNERS, "u1", face_count=count, max_faces_per_user=limit)
    assert (plan.change, plan.not_found, plan.other_user) == (change, not_found, other)
    assert plan.limit_exceeded is exceeded
    outcome = plan.outcome(count + len(plan.change))
    assert (outcome.changed, outcome.face_count) == (change, count + len(change))


def test_plan_disassociation_touches_only_the_users_faces() -> None:
    plan = rules.plan_disassociation(["mine", "theirs", "free1", "gone"], OWNERS, "u1")
    assert plan.change == ("mine",)
    assert plan.not_found == ("gone",)
    assert plan.other_user == (("theirs", "u2"),)
    assert not plan.limit_exceeded


def test_replay_answers_the_same_parameters_and_refuses_others() -> None:
    record = RequestRecord(params='{"UserId": "a"}', response='{"ok": 1}')
    assert rules.replay(record, '{"UserId": "a"}') == {"ok": 1}
    with pytest.raises(IdempotentParameterMismatchError):
        rules.replay(record, '{"UserId": "b"}')


def _job(**changes: Any) -> JobRow:
    base = JobRow(
        job_id="j1", kind="faces", status="IN_PROGRESS", status_message="",
        video={"S3Object": {"Bucket": "b", "Name": "v.mp4"}}, params={"x": 1}, job_tag="t",
        client_token="tok", principal="p", caller={"principal": "p"}, created_at=1.0,
        finished_at=None, metadata=None, attempts=0,
    )  # fmt: skip
    return replace(base, **changes)


def test_same_request_by_video_params_and_tag() -> None:
    earlier = _job()
    assert rules.same_request(earlier, _job(job_id="j2")) is earlier
    for other in (_job(params={"x": 2}), _job(job_tag="u"), _job(video={"S3Object": {}})):
        with pytest.raises(IdempotentParameterMismatchError):
            rules.same_request(earlier, other)


def test_job_rows_round_trip_through_either_json_encoding() -> None:
    job = _job(metadata={})
    values = rules.job_values(job, json.dumps)
    # as the row comes back: JOB_COLUMNS order, with the columns job_values does not write
    row = (*values[:10], job.created_at, None, json.dumps({}), 0, None, None)
    assert rules.job_row(row, json.loads) == replace(job, metadata={})
    assert rules.job_row((*row[:12], None, *row[13:]), json.loads).metadata is None


def test_check_tag_count_refuses_past_the_quota() -> None:
    rules.check_tag_count("c", 50, 50)
    with pytest.raises(ServiceQuotaExceededError, match="51 tags"):
        rules.check_tag_count("c", 51, 50)


def test_enrolments_check_each_embedding_and_give_new_ids() -> None:
    face = NewFace("sha", None, BoundingBox(0.1, 0.2, 0.3, 0.4), 99.0, np.ones(4, np.float64))
    (out,) = list(rules.enrolments([face], 4))
    assert out[0] is face and len(out[1]) == 36 and out[2].dtype == np.dtype("<f4")
    with pytest.raises(InvalidParameterError, match=r"expects \(8,\)"):
        list(rules.enrolments([face], 8))


@dataclass(frozen=True)
class _Query:
    fields: dict[str, str]
    since: float | None = None
    until: float | None = None
    limit: int | None = None
    newest_first: bool = False
    include_checkpoints: bool = False
    contains: bytes | None = None


def test_ledger_dialect_builds_one_statement_for_either_backend() -> None:
    dialect = rules.LedgerDialect(
        table="records",
        event_sql="IS_EVENT",
        field_sql=lambda name: f"F({name}) = ?",
        time_sql="T",
        mark="?",
        contains_sql="HAS(?)",
    )
    sql, params = dialect.select(_Query({"operation": "X"}, since=1.0, until=2.0, limit=5))
    assert sql == (
        "SELECT seq, body, digest FROM records WHERE IS_EVENT AND F(operation) = ? "
        "AND T >= ? AND T < ? ORDER BY seq LIMIT ?"
    )
    assert params == ["X", 1.0, 2.0, 5]
    sql, params = dialect.select(_Query({}, newest_first=True, include_checkpoints=True))
    assert (sql, params) == ("SELECT seq, body, digest FROM records ORDER BY seq DESC", [])
    sql, params = dialect.select(_Query({}, contains=b'"lead_id'))
    assert sql == "SELECT seq, body, digest FROM records WHERE IS_EVENT AND HAS(?) ORDER BY seq"
    assert params == [b'"lead_id']
