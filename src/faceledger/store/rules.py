"""The stores' business rules, written once: pure functions both backends call around their SQL.

Each backend supplies storage (SQL, transactions, locks); what a row means, when a request
token answers again, which faces an association may change, how many tags a collection may
have and what each refusal says are decided here, so the two backends cannot drift apart.
Nothing here does I/O.

Rows: a face row is the columns ``FACE_COLUMNS`` in that order, a job row ``JOB_COLUMNS``, a
processor row ``PROCESSOR_COLUMNS``, a key row ``KEY_COLUMNS`` (+ its secret); SQLite's
``sqlite3.Row`` and psycopg's tuples both index by position. JSON columns are text in SQLite
and ``jsonb`` in PostgreSQL: the backend passes its own ``encode`` / ``decode``.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.collections import BoundingBox, StoredFace
from faceledger.domain.errors import (
    IdempotentParameterMismatchError,
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ResourceInUseError,
    ResourceNotFoundError,
    ServiceQuotaExceededError,
)
from faceledger.store.records import (
    IN_PROGRESS,
    AccessKey,
    FaceRow,
    JobRow,
    NewFace,
    ProcessorRow,
    RequestRecord,
    UserFacesChange,
)

#: A ClientRequestToken is remembered this long (seconds), then forgotten.
REQUEST_TOKEN_TTL_S = 24 * 3600.0

#: How many ids one ``IN (…)`` list holds (SQLite's limit on host parameters is far above).
ID_CHUNK = 500

FACE_COLUMNS = (
    "row_id, face_id, image_id, external_image_id, bbox_left, bbox_top, bbox_width, "
    "bbox_height, confidence, user_id, image_width_px, image_height_px"
)
JOB_COLUMNS = (
    "job_id, kind, status, status_message, video, params, job_tag, client_token, principal,"
    " caller, created_at, finished_at, metadata, attempts, claimed_by, claimed_at"
)
PROCESSOR_COLUMNS = (
    "name, source, outputs, settings, extra, status, status_message, created_at, updated_at, owner"
)
KEY_COLUMNS = (
    "key_id, principal, roles, created_at, revoked_at, description, rate_per_second, burst"
)

Decode = Callable[[Any], Any]
Encode = Callable[[Any], Any]


# -- refusals (one wording for both backends) -------------------------------------------------
def no_collection(collection_id: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"collection {collection_id!r} does not exist")


def collection_exists(collection_id: str) -> ResourceAlreadyExistsError:
    return ResourceAlreadyExistsError(f"collection {collection_id!r} already exists")


def no_user(collection_id: str, user_id: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"user {user_id!r} does not exist in collection {collection_id!r}")


def user_exists(collection_id: str, user_id: str) -> ResourceAlreadyExistsError:
    return ResourceAlreadyExistsError(
        f"user {user_id!r} already exists in collection {collection_id!r}"
    )


def no_face(collection_id: str, face_id: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"face {face_id!r} is not in collection {collection_id!r}")


def no_job(job_id: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"the job {job_id!r} does not exist")


def no_processor(name: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"the stream processor {name!r} does not exist")


def processor_exists(name: str) -> ResourceInUseError:
    return ResourceInUseError(f"a stream processor named {name!r} already exists")


# -- quotas -----------------------------------------------------------------------------------
def check_tag_count(collection_id: str, count: int, max_tags: int) -> None:
    """Refuse (``ServiceQuotaExceededError``) a collection that would hold too many tags; the
    backend calls it inside the transaction that wrote them, which then rolls back."""
    if count > max_tags:
        raise ServiceQuotaExceededError(
            f"collection {collection_id!r} would have {count} tags; at most {max_tags} are allowed"
        )


# -- request tokens (idempotency) -------------------------------------------------------------
def token_cutoff(now: float) -> float:
    """Tokens recorded before this time (epoch seconds) are forgotten."""
    return now - REQUEST_TOKEN_TTL_S


def replay(record: RequestRecord, params: str) -> dict[str, Any]:
    """A retried call's answer: the stored response when ``params`` are the ones the token was
    first used with, else ``IdempotentParameterMismatchError``."""
    if record.params != params:
        raise IdempotentParameterMismatchError(
            "ClientRequestToken was already used with different parameters"
        )
    response: dict[str, Any] = json.loads(record.response)
    return response


def same_request(earlier: JobRow, job: JobRow) -> JobRow:
    """``earlier`` (the job a ClientRequestToken made), if ``job`` asks for the same thing;
    else ``IdempotentParameterMismatchException``."""
    if (earlier.video, earlier.params, earlier.job_tag) != (job.video, job.params, job.job_tag):
        raise IdempotentParameterMismatchError(
            f"ClientRequestToken {job.client_token!r} was used for a different request "
            f"(job {earlier.job_id})"
        )
    return earlier


# -- faces --------------------------------------------------------------------------------------
def unique(ids: Sequence[str]) -> list[str]:
    """``ids`` without repeats, in the order given."""
    return list(dict.fromkeys(ids))


def chunks(ids: Sequence[Any], size: int = ID_CHUNK) -> list[list[Any]]:
    """``ids`` in lists of at most ``size`` (for ``IN (…)`` lists)."""
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def check_embedding(embedding: NDArray[np.floating[Any]], dim: int) -> NDArray[np.float32]:
    """The embedding as contiguous little-endian float32 of the collection's dimension, or
    ``InvalidParameterError``."""
    vector = np.ascontiguousarray(embedding, dtype="<f4")
    if vector.shape != (dim,):
        raise InvalidParameterError(
            f"embedding has shape {vector.shape}; collection expects ({dim},)"
        )
    return vector


#: The columns ``face_values`` fills, then the embedding and the enrolment time.
NEW_FACE_COLUMNS = (
    "face_id, image_id, image_sha256, external_image_id, bbox_left, bbox_top, bbox_width, "
    "bbox_height, confidence, embedding, created_at, image_width_px, image_height_px"
)


def enrolments(
    faces: Sequence[NewFace], dim: int
) -> Iterator[tuple[NewFace, str, NDArray[np.float32]]]:
    """Each face to enrol with its FaceId (the one it brings, else a new one) and its checked
    embedding (see ``check_embedding``)."""
    for face in faces:
        if face.sealed_crop is not None and face.face_id is None:
            raise ValueError("a sealed crop needs the FaceId it was sealed for")
        face_id = face.face_id or str(uuid.uuid4())
        yield face, face_id, check_embedding(face.embedding, dim)


def face_values(face: NewFace, face_id: str, image_id: str) -> tuple[Any, ...]:
    """The stored columns of a new face after its collection key: face_id, image_id,
    image_sha256, external_image_id, bbox_left, bbox_top, bbox_width, bbox_height, confidence."""
    box = face.bounding_box
    return (
        face_id,
        image_id,
        face.image_sha256,
        face.external_image_id,
        box.left,
        box.top,
        box.width,
        box.height,
        face.confidence,
    )


def new_face_row(
    row_id: int, face_id: str, image_id: str, face: NewFace, face_model_version: str
) -> FaceRow:
    """The row of a face just enrolled (no user yet)."""
    stored = StoredFace(
        face_id,
        image_id,
        face.external_image_id,
        face.bounding_box,
        face.confidence,
        None,
        face_model_version,
        face.image_width_px,
        face.image_height_px,
    )
    return FaceRow(row_id, stored)


def face_row(row: Sequence[Any], face_model_version: str) -> FaceRow:
    """A ``FaceRow`` from the columns ``FACE_COLUMNS`` (in that order)."""
    row_id, face_id, image_id, ext, left, top, width, height, confidence, user_id = row[:10]
    image_width_px, image_height_px = row[10], row[11]
    return FaceRow(
        int(row_id),
        StoredFace(
            face_id=face_id,
            image_id=image_id,
            external_image_id=ext,
            bounding_box=BoundingBox(left, top, width, height),
            confidence=float(confidence),
            user_id=user_id,
            face_model_version=face_model_version,
            image_width_px=image_width_px,
            image_height_px=image_height_px,
        ),
    )


def in_order_asked(face_ids: Sequence[str], gone: set[str]) -> list[str]:
    """The FaceIds of ``gone`` in the order they were asked for (each once)."""
    return [f for f in unique(face_ids) if f in gone]


# -- users: which faces an association may change ---------------------------------------------
@dataclass(frozen=True)
class AssociationPlan:
    """What an AssociateFaces / DisassociateFaces transaction may write, face by face.

    ``change``: the faces to (dis)associate now; ``not_found``: no such face in the
    collection; ``other_user``: (FaceId, the UserId it belongs to), never changed;
    ``limit_exceeded``: the association would take the user past its limit (write nothing).
    """

    change: tuple[str, ...]
    not_found: tuple[str, ...]
    other_user: tuple[tuple[str, str], ...]
    limit_exceeded: bool = False

    def outcome(self, face_count: int) -> UserFacesChange:
        """What the transaction did, the user having ``face_count`` faces after it."""
        return UserFacesChange(
            self.change, self.not_found, self.other_user, face_count, self.limit_exceeded
        )


def _split_by_owner(
    wanted: Sequence[str], owners: Mapping[str, str | None], user_id: str
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    not_found = tuple(f for f in wanted if f not in owners)
    other = tuple(
        (f, owner)
        for f in wanted
        if f in owners and (owner := owners[f]) is not None and owner != user_id
    )
    return not_found, other


def plan_association(
    wanted: Sequence[str],
    owners: Mapping[str, str | None],
    user_id: str,
    *,
    face_count: int,
    max_faces_per_user: int | None,
) -> AssociationPlan:
    """Associate the wanted faces nobody owns (``owners``: FaceId → UserId or None, for the
    faces that exist), unless that takes the user (``face_count`` faces now) past
    ``max_faces_per_user``."""
    not_found, other = _split_by_owner(wanted, owners, user_id)
    free = tuple(f for f in wanted if f in owners and owners[f] is None)
    if max_faces_per_user is not None and free and face_count + len(free) > max_faces_per_user:
        return AssociationPlan((), not_found, other, limit_exceeded=True)
    return AssociationPlan(free, not_found, other)


def plan_disassociation(
    wanted: Sequence[str], owners: Mapping[str, str | None], user_id: str
) -> AssociationPlan:
    """Disassociate the wanted faces the user owns; others' faces are reported, unowned ones
    ignored."""
    not_found, other = _split_by_owner(wanted, owners, user_id)
    mine = tuple(f for f in wanted if owners.get(f) == user_id)
    return AssociationPlan(mine, not_found, other)


# -- access keys ------------------------------------------------------------------------------
def key_values(key: AccessKey, secret: str) -> tuple[Any, ...]:
    """The columns of a new key: key_id, secret, principal, roles (JSON text), created_at,
    revoked_at, description, rate_per_second, burst."""
    return (
        key.key_id,
        secret,
        key.principal,
        json.dumps(list(key.roles)),
        key.created_at,
        key.revoked_at,
        key.description,
        key.rate_per_second,
        key.burst,
    )


def access_key(row: Sequence[Any], roles: Sequence[str]) -> AccessKey:
    """An ``AccessKey`` from the columns ``KEY_COLUMNS`` (roles decoded by the backend)."""
    key_id, principal, _, created_at, revoked_at, description, rate, burst = row[:8]
    return AccessKey(
        key_id=key_id,
        principal=principal,
        roles=tuple(roles),
        created_at=float(created_at),
        revoked_at=None if revoked_at is None else float(revoked_at),
        description=description,
        rate_per_second=None if rate is None else float(rate),
        burst=None if burst is None else int(burst),
    )


# -- stored-video jobs and stream processors --------------------------------------------------
UPDATABLE_PROCESSOR_COLUMNS = frozenset(
    {"status", "status_message", "settings", "extra", "outputs", "source", "owner"}
)


def check_processor_changes(changes: Mapping[str, Any]) -> None:
    if not set(changes) <= UPDATABLE_PROCESSOR_COLUMNS:
        raise ValueError(f"cannot update {sorted(set(changes) - UPDATABLE_PROCESSOR_COLUMNS)}")


def processor_updates(
    changes: Mapping[str, Any], mark: str, encode: Encode
) -> tuple[str, list[Any]]:
    """``SET`` clauses (``column = <mark>``, joined) and their values for
    ``update_processor``; dicts are encoded as JSON by ``encode``."""
    check_processor_changes(changes)
    sets = ", ".join(f"{column} = {mark}" for column in changes)
    values = [encode(v) if isinstance(v, dict) else v for v in changes.values()]
    return sets, values


#: Who may claim a job (``%s`` placeholders; SQLite swaps in ``?``): nobody holds it, or
#: ``owner`` does, or the dead owner it is taken from, or the holder's lease has run out.
CLAIM_JOB_SQL = (
    "UPDATE video_jobs SET attempts = attempts + 1, claimed_by = %s, claimed_at = %s"
    " WHERE job_id = %s AND status = %s AND (claimed_by IS NULL OR claimed_by = %s"
    " OR claimed_by = %s OR claimed_at < %s)"
)
FINISH_JOB_SQL = (
    "UPDATE video_jobs SET status = %s, status_message = %s, finished_at = %s,"
    " metadata = %s, results = %s WHERE job_id = %s"
)


def claim_values(
    job_id: str, owner: str, lease_s: float, take_from: str | None, now: float
) -> tuple[Any, ...]:
    """The parameters of ``CLAIM_JOB_SQL``."""
    return (owner, now, job_id, IN_PROGRESS, owner, take_from or owner, now - lease_s)


def encode_results(results: list[Any]) -> bytes:
    return zlib.compress(json.dumps(results, separators=(",", ":")).encode(), 6)


def decode_results(blob: bytes | None) -> list[Any]:
    out: list[Any] = json.loads(zlib.decompress(blob)) if blob is not None else []
    return out


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def job_row(row: Sequence[Any], decode: Decode) -> JobRow:
    """A ``JobRow`` from the columns ``JOB_COLUMNS``; ``decode`` reads a JSON column."""
    return JobRow(
        job_id=row[0],
        kind=row[1],
        status=row[2],
        status_message=row[3],
        video=decode(row[4]),
        params=decode(row[5]),
        job_tag=row[6],
        client_token=row[7],
        principal=row[8],
        caller=decode(row[9]),
        created_at=float(row[10]),
        finished_at=_optional_float(row[11]),
        metadata=None if row[12] is None else decode(row[12]),
        attempts=int(row[13]),
        claimed_by=row[14],
        claimed_at=_optional_float(row[15]),
    )


def job_values(job: JobRow, encode: Encode) -> tuple[Any, ...]:
    """The columns of a new job: job_id, kind, status, status_message, video, params,
    job_tag, client_token, principal, caller, created_at, attempts."""
    return (
        job.job_id,
        job.kind,
        job.status,
        job.status_message,
        encode(job.video),
        encode(job.params),
        job.job_tag,
        job.client_token,
        job.principal,
        encode(job.caller),
        job.created_at,
        job.attempts,
    )


def finish_values(
    status: str,
    message: str,
    now: float,
    metadata: dict[str, Any] | None,
    results: list[Any] | None,
    encode: Encode,
) -> tuple[Any, ...]:
    """status, status_message, finished_at, metadata, results (compressed) of a finished job."""
    return (
        status,
        message,
        now,
        None if metadata is None else encode(metadata),
        None if results is None else encode_results(results),
    )


def processor_row(row: Sequence[Any], decode: Decode) -> ProcessorRow:
    """A ``ProcessorRow`` from the columns ``PROCESSOR_COLUMNS``."""
    return ProcessorRow(
        name=row[0],
        source=row[1],
        outputs=decode(row[2]),
        settings=decode(row[3]),
        extra=decode(row[4]),
        status=row[5],
        status_message=row[6],
        created_at=float(row[7]),
        updated_at=float(row[8]),
        owner=row[9],
    )


def processor_values(processor: ProcessorRow, encode: Encode) -> tuple[Any, ...]:
    """The columns ``PROCESSOR_COLUMNS`` of a new processor."""
    return (
        processor.name,
        processor.source,
        encode(processor.outputs),
        encode(processor.settings),
        encode(processor.extra),
        processor.status,
        processor.status_message,
        processor.created_at,
        processor.updated_at,
        processor.owner,
    )


# -- the ledger's records ---------------------------------------------------------------------
class EntryFilter(Protocol):
    """What a ledger read asks for (``audit.core.EntryQuery``): records whose event fields
    equal ``fields`` and whose time is in ``[since, until)``; events only unless
    ``include_checkpoints``; bodies holding ``contains`` only, when given."""

    @property
    def fields(self) -> Mapping[str, str]: ...

    @property
    def since(self) -> float | None: ...

    @property
    def until(self) -> float | None: ...

    @property
    def limit(self) -> int | None: ...

    @property
    def newest_first(self) -> bool: ...

    @property
    def include_checkpoints(self) -> bool: ...

    @property
    def contains(self) -> bytes | None: ...


@dataclass(frozen=True)
class LedgerDialect:
    """How one backend's SQL reads the ledger's records: the table, the test for an event
    record, a field filter with one placeholder (``field_sql(name)``; names come from
    ``audit.core.FIELD_FILTERS``, never from a caller), the record's time as a number, and the
    placeholder."""

    table: str
    event_sql: str
    field_sql: Callable[[str], str]
    time_sql: str
    mark: str
    contains_sql: str  # the body holds the bytes of one placeholder

    def select(self, query: EntryFilter) -> tuple[str, list[Any]]:
        """The statement (``seq, body, digest`` in ``seq`` order) and its parameters."""
        conditions: list[str] = [] if query.include_checkpoints else [self.event_sql]
        params: list[Any] = []
        for name, value in query.fields.items():
            conditions.append(self.field_sql(name))
            params.append(value)
        if query.contains is not None:
            conditions.append(self.contains_sql)
            params.append(query.contains)
        for bound, op in ((query.since, ">="), (query.until, "<")):
            if bound is not None:
                conditions.append(f"{self.time_sql} {op} {self.mark}")
                params.append(bound)
        sql = f"SELECT seq, body, digest FROM {self.table}"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += " ORDER BY seq" + (" DESC" if query.newest_first else "")
        if query.limit is not None:
            sql += f" LIMIT {self.mark}"
            params.append(query.limit)
        return sql, params


def ledger_meta_values(now: float) -> tuple[str, float, float]:
    """A new ledger's meta row: (ledger id, created at, last checkpoint time)."""
    return uuid.uuid4().hex, now, now
