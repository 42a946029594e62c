"""The embedded store: SQLite in WAL mode with ``synchronous=FULL``.

A write is acknowledged only after its transaction commits, so an acknowledged IndexFaces or
DeleteFaces survives ``kill -9`` (and power loss) of the process. Embeddings live here as
float32 blobs; every add and delete is also appended to ``changes`` with a monotonic sequence
number, which lets a saved vector-index snapshot catch up with the store on start-up instead
of being rebuilt.

Users own faces through ``faces.user_id`` (a face belongs to at most one user); associating,
disassociating and deleting a user are one transaction each. ``request_tokens`` remembers
ClientRequestTokens (parameters and response, for ``REQUEST_TOKEN_TTL_S``) so retried user
calls are answered once.

Deleting is final: connections run with ``secure_delete=ON`` (a deleted row's bytes are
overwritten in its page, a freed page is zeroed), and every deletion of faces, users or
collections ends with a ``TRUNCATE`` checkpoint (``scrub_wal``), so the old page images that still
hold the deleted rows do not survive in the ``-wal`` file either. (DeleteUser deletes only the
user row: its faces stay, disassociated, as in Rekognition.)

One ``SQLiteStore`` may be shared by threads: each thread gets its own connection.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.audit import CURRENT_INTENT
from faceledger.domain.collections import BoundingBox, Collection, StoredFace, User
from faceledger.domain.errors import (
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    ServiceQuotaExceededError,
)
from faceledger.store.sqlite.connections import BUSY_TIMEOUT_MS, Connections

logger = logging.getLogger(__name__)

#: A TRUNCATE checkpoint waits this long (ms) for readers and writers per attempt…
CHECKPOINT_BUSY_TIMEOUT_MS = 250
#: …and is attempted this many times before giving up (the next deletion tries again).
CHECKPOINT_ATTEMPTS = 8

SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    collection_id TEXT PRIMARY KEY,
    face_model_version TEXT NOT NULL,
    embedding_dim INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id TEXT NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
    face_id TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    external_image_id TEXT,
    bbox_left REAL NOT NULL, bbox_top REAL NOT NULL,
    bbox_width REAL NOT NULL, bbox_height REAL NOT NULL,
    confidence REAL NOT NULL,
    user_id TEXT,
    embedding BLOB NOT NULL,
    created_at REAL NOT NULL,
    image_width_px INTEGER,
    image_height_px INTEGER
);
CREATE INDEX IF NOT EXISTS faces_by_collection ON faces(collection_id, row_id);
CREATE INDEX IF NOT EXISTS faces_by_image ON faces(collection_id, image_sha256, external_image_id);
CREATE INDEX IF NOT EXISTS faces_by_user ON faces(collection_id, user_id);
CREATE TABLE IF NOT EXISTS users (
    collection_id TEXT NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (collection_id, user_id)
);
CREATE TABLE IF NOT EXISTS request_tokens (
    collection_id TEXT NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
    operation TEXT NOT NULL,
    token TEXT NOT NULL,
    params TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (collection_id, operation, token)
);
CREATE TABLE IF NOT EXISTS tags (
    collection_id TEXT NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (collection_id, key)
);
CREATE TABLE IF NOT EXISTS policies (
    collection_id TEXT PRIMARY KEY REFERENCES collections(collection_id) ON DELETE CASCADE,
    policy TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id TEXT NOT NULL,
    row_id INTEGER NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('add', 'del')),
    intent TEXT
);
CREATE INDEX IF NOT EXISTS changes_by_collection ON changes(collection_id, seq);
"""


@dataclass(frozen=True)
class IntentChange:
    """One face a biometric change added or deleted, from the store's change log."""

    collection_id: str
    face_id: str
    deleted: bool


@dataclass(frozen=True)
class NewFace:
    """A face to enrol (the store assigns FaceId and ImageId)."""

    image_sha256: str
    external_image_id: str | None
    bounding_box: BoundingBox
    confidence: float
    embedding: NDArray[np.float32]
    image_width_px: int | None = None  # the source image's size, after EXIF orientation
    image_height_px: int | None = None


@dataclass(frozen=True)
class RequestRecord:
    """A ClientRequestToken already used for an operation: the call's parameters and response
    (both JSON text, written by the service that recorded them)."""

    params: str
    response: str


@dataclass(frozen=True)
class UserFacesChange:
    """What one AssociateFaces / DisassociateFaces transaction did, face by face.

    ``changed``: faces (dis)associated now; ``not_found``: no such face in the collection;
    ``other_user``: (FaceId, the UserId it belongs to); faces already in the wanted state are
    in none of these. ``face_count`` is the user's faces after the transaction.
    ``limit_exceeded``: the association would have taken the user past its limit, so nothing
    was written.
    """

    changed: tuple[str, ...]
    not_found: tuple[str, ...]
    other_user: tuple[tuple[str, str], ...]
    face_count: int
    limit_exceeded: bool = False


def split_by_owner(
    wanted: Sequence[str], owners: Mapping[str, str | None], user_id: str
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """For an association change of ``user_id``: the wanted faces that do not exist, and those
    that belong to another user (FaceId, its UserId). ``owners``: FaceId → UserId or None."""
    not_found = tuple(f for f in wanted if f not in owners)
    other = tuple(
        (f, owner)
        for f in wanted
        if f in owners and (owner := owners[f]) is not None and owner != user_id
    )
    return not_found, other


# A ClientRequestToken is remembered this long (seconds), then forgotten.
REQUEST_TOKEN_TTL_S = 24 * 3600.0


@dataclass(frozen=True)
class FaceRow:
    row_id: int
    face: StoredFace


@dataclass(frozen=True)
class ChangePosition:
    """Where a collection's change log stands: its ``generation`` (a collection deleted and
    created again under the same id is a new generation, whose sequence starts over) and
    ``seq``, its last change's sequence number."""

    generation: int
    seq: int


@dataclass(frozen=True)
class FaceChanges:
    """A collection's changes after some sequence number (``changes_since``): faces added and
    still present (``ids``, ``vectors``), row ids deleted, and the newest sequence number
    (``last`` below the number asked means the log went back: the database was restored)."""

    generation: int
    ids: NDArray[np.int64]
    vectors: NDArray[np.float32]
    deleted: NDArray[np.int64]
    last: int

    @classmethod
    def none(cls, generation: int, seq: int, dim: int) -> FaceChanges:
        empty = np.zeros(0, np.int64)
        return cls(generation, empty, np.zeros((0, dim), np.float32), empty, seq)


_FACE_COLUMNS = (
    "row_id, face_id, image_id, external_image_id, bbox_left, bbox_top, bbox_width, "
    "bbox_height, confidence, user_id, image_width_px, image_height_px"
)


def _row_to_face(row: sqlite3.Row, face_model_version: str) -> FaceRow:
    return FaceRow(
        int(row["row_id"]),
        StoredFace(
            face_id=row["face_id"],
            image_id=row["image_id"],
            external_image_id=row["external_image_id"],
            bounding_box=BoundingBox(
                row["bbox_left"], row["bbox_top"], row["bbox_width"], row["bbox_height"]
            ),
            confidence=float(row["confidence"]),
            user_id=row["user_id"],
            face_model_version=face_model_version,
            image_width_px=row["image_width_px"],
            image_height_px=row["image_height_px"],
        ),
    )


class SQLiteStore:
    """Collections, faces (with embeddings), users and the change log in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = Connections(self.path)
        self._write_lock = self._connections.write_lock
        self._db = self._connections.db
        self._tx = self._connections.tx
        with self._write_lock:
            db = self._db()
            db.executescript(SCHEMA)  # idempotent; executescript manages its own commit
            columns = {r[1] for r in db.execute("PRAGMA table_info(changes)")}
            if "intent" not in columns:  # a store from before intents
                db.execute("ALTER TABLE changes ADD COLUMN intent TEXT")
            face_columns = {r[1] for r in db.execute("PRAGMA table_info(faces)")}
            if "image_width_px" not in face_columns:  # a store from before image sizes
                db.execute("ALTER TABLE faces ADD COLUMN image_width_px INTEGER")
                db.execute("ALTER TABLE faces ADD COLUMN image_height_px INTEGER")
            db.execute(
                "CREATE INDEX IF NOT EXISTS changes_by_intent ON changes(intent) "
                "WHERE intent IS NOT NULL"
            )

    def close(self) -> None:
        """Close this thread's connection (other threads close their own on exit)."""
        self._connections.close()

    # -- connections ----------------------------------------------------------------------

    def scrub_wal(self) -> bool:
        """Checkpoint the WAL into the main file and truncate it to zero bytes.

        Called after every deletion: until the WAL is checkpointed and reset, its old frames
        still hold the page images of deleted rows. A TRUNCATE checkpoint needs every reader to
        be on the newest snapshot and no writer, so it holds this store's write lock and, while
        another connection is busy, retries briefly (``CHECKPOINT_ATTEMPTS`` ×
        ``CHECKPOINT_BUSY_TIMEOUT_MS``). Returns False (with a warning logged) when it could
        not complete; the deleted rows then stay in the WAL until a later checkpoint succeeds.
        """
        db = self._db()
        with self._write_lock:
            db.execute(f"PRAGMA busy_timeout = {CHECKPOINT_BUSY_TIMEOUT_MS}")
            try:
                for attempt in range(CHECKPOINT_ATTEMPTS):
                    if self._checkpoint_truncate(db):
                        return True
                    time.sleep(0.01 * (attempt + 1))
            finally:
                db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        logger.warning(
            "%s: the WAL could not be checkpointed after a deletion (the database stayed "
            "busy); deleted rows remain in %s-wal until a later checkpoint",
            self.path,
            self.path.name,
        )
        return False

    @staticmethod
    def _checkpoint_truncate(db: sqlite3.Connection) -> bool:
        """One ``wal_checkpoint(TRUNCATE)``; True when it completed (not busy)."""
        try:
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.OperationalError:  # "database is locked" on some SQLite versions
            return False
        return not busy

    # -- collections ----------------------------------------------------------------------
    def create_collection(
        self,
        collection_id: str,
        face_model_version: str,
        dim: int,
        tags: Mapping[str, str] | None = None,
    ) -> Collection:
        now = time.time()
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO collections VALUES (?, ?, ?, ?)",
                    (collection_id, face_model_version, dim, now),
                )
                db.executemany(
                    "INSERT INTO tags VALUES (?, ?, ?)",
                    [(collection_id, k, v) for k, v in (tags or {}).items()],
                )
        except sqlite3.IntegrityError:
            raise ResourceAlreadyExistsError(
                f"collection {collection_id!r} already exists"
            ) from None
        return Collection(collection_id, face_model_version, now)

    def collection(self, collection_id: str) -> Collection:
        row = (
            self._db()
            .execute(
                "SELECT c.*, (SELECT COUNT(*) FROM faces f WHERE f.collection_id = c.collection_id)"
                " AS face_count, (SELECT COUNT(*) FROM users u WHERE u.collection_id ="
                " c.collection_id) AS user_count FROM collections c WHERE collection_id = ?",
                (collection_id,),
            )
            .fetchone()
        )
        if row is None:
            raise ResourceNotFoundError(f"collection {collection_id!r} does not exist")
        return Collection(
            row["collection_id"],
            row["face_model_version"],
            float(row["created_at"]),
            int(row["face_count"]),
            int(row["user_count"]),
        )

    def face_model_version(self, collection_id: str) -> str:
        """The collection's FaceModelVersion; ResourceNotFoundError if it does not exist. (The
        existence check of the verbs below: ``collection`` counts the faces, a scan.)"""
        row = (
            self._db()
            .execute(
                "SELECT face_model_version FROM collections WHERE collection_id = ?",
                (collection_id,),
            )
            .fetchone()
        )
        if row is None:
            raise ResourceNotFoundError(f"collection {collection_id!r} does not exist")
        return str(row[0])

    def embedding_dim(self, collection_id: str) -> int:
        row = (
            self._db()
            .execute(
                "SELECT embedding_dim FROM collections WHERE collection_id = ?", (collection_id,)
            )
            .fetchone()
        )
        if row is None:
            raise ResourceNotFoundError(f"collection {collection_id!r} does not exist")
        return int(row[0])

    def list_collections(self, *, after: str | None, limit: int) -> list[Collection]:
        rows = (
            self._db()
            .execute(
                "SELECT collection_id FROM collections WHERE collection_id > ? "
                "ORDER BY collection_id LIMIT ?",
                (after or "", limit),
            )
            .fetchall()
        )
        return [self.collection(r[0]) for r in rows]

    def delete_collection(self, collection_id: str) -> None:
        with self._tx() as db:
            cur = db.execute("DELETE FROM collections WHERE collection_id = ?", (collection_id,))
            if cur.rowcount == 0:
                raise ResourceNotFoundError(f"collection {collection_id!r} does not exist")
            db.execute("DELETE FROM faces WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM users WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM tags WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM policies WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM changes WHERE collection_id = ?", (collection_id,))
        self.scrub_wal()  # deleted rows must not linger in the WAL

    # -- tags -----------------------------------------------------------------------------
    def _require_collection(self, db: sqlite3.Connection, collection_id: str) -> None:
        row = db.execute(
            "SELECT 1 FROM collections WHERE collection_id = ?", (collection_id,)
        ).fetchone()
        if row is None:
            raise ResourceNotFoundError(f"collection {collection_id!r} does not exist")

    def tags(self, collection_id: str) -> dict[str, str]:
        db = self._db()
        self._require_collection(db, collection_id)
        rows = db.execute(
            "SELECT key, value FROM tags WHERE collection_id = ? ORDER BY key", (collection_id,)
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def set_tags(self, collection_id: str, tags: Mapping[str, str], max_tags: int) -> None:
        """Add or overwrite tags; refuses (changing nothing) when the total would exceed
        ``max_tags``."""
        with self._tx() as db:
            self._require_collection(db, collection_id)
            db.executemany(
                "INSERT OR REPLACE INTO tags VALUES (?, ?, ?)",
                [(collection_id, k, v) for k, v in tags.items()],
            )
            (count,) = db.execute(
                "SELECT COUNT(*) FROM tags WHERE collection_id = ?", (collection_id,)
            ).fetchone()
            if count > max_tags:
                raise ServiceQuotaExceededError(
                    f"collection {collection_id!r} would have {count} tags; "
                    f"at most {max_tags} are allowed"
                )

    def remove_tags(self, collection_id: str, keys: list[str]) -> None:
        with self._tx() as db:
            self._require_collection(db, collection_id)
            db.executemany(
                "DELETE FROM tags WHERE collection_id = ? AND key = ?",
                [(collection_id, k) for k in keys],
            )

    # -- policies -------------------------------------------------------------------------
    def policy(self, collection_id: str) -> str | None:
        """The collection's policy document (JSON), None when it has none of its own."""
        db = self._db()
        self._require_collection(db, collection_id)
        row = db.execute(
            "SELECT policy FROM policies WHERE collection_id = ?", (collection_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def set_policy(self, collection_id: str, policy: str) -> None:
        with self._tx() as db:
            self._require_collection(db, collection_id)
            db.execute(
                "INSERT OR REPLACE INTO policies VALUES (?, ?, ?)",
                (collection_id, policy, time.time()),
            )

    # -- faces ----------------------------------------------------------------------------
    def faces_of_image(
        self, collection_id: str, image_sha256: str, external_image_id: str | None
    ) -> list[FaceRow]:
        fmv = self.face_model_version(collection_id)
        rows = (
            self._db()
            .execute(
                f"SELECT {_FACE_COLUMNS} FROM faces WHERE collection_id = ? AND image_sha256 = ? "
                "AND external_image_id IS ? ORDER BY row_id",
                (collection_id, image_sha256, external_image_id),
            )
            .fetchall()
        )
        return [_row_to_face(r, fmv) for r in rows]

    def add_faces(self, collection_id: str, faces: Sequence[NewFace]) -> list[FaceRow]:
        """Insert faces of one image in one transaction (all or none)."""
        fmv = self.face_model_version(collection_id)
        dim = self.embedding_dim(collection_id)
        image_id = str(uuid.uuid4())
        now = time.time()
        out: list[FaceRow] = []
        with self._tx() as db:
            for face in faces:
                vector = np.ascontiguousarray(face.embedding, dtype="<f4")
                if vector.shape != (dim,):
                    raise InvalidParameterError(
                        f"embedding has shape {vector.shape}; collection expects ({dim},)"
                    )
                face_id = str(uuid.uuid4())
                box = face.bounding_box
                cur = db.execute(
                    "INSERT INTO faces (collection_id, face_id, image_id, image_sha256, "
                    "external_image_id, bbox_left, bbox_top, bbox_width, bbox_height, "
                    "confidence, user_id, embedding, created_at, image_width_px, "
                    "image_height_px) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
                    (
                        collection_id,
                        face_id,
                        image_id,
                        face.image_sha256,
                        face.external_image_id,
                        box.left,
                        box.top,
                        box.width,
                        box.height,
                        face.confidence,
                        vector.tobytes(),
                        now,
                        face.image_width_px,
                        face.image_height_px,
                    ),
                )
                row_id = int(cur.lastrowid or 0)
                db.execute(
                    "INSERT INTO changes (collection_id, row_id, op, intent) "
                    "VALUES (?, ?, 'add', ?)",
                    (collection_id, row_id, CURRENT_INTENT.get()),
                )
                out.append(
                    FaceRow(
                        row_id,
                        StoredFace(
                            face_id,
                            image_id,
                            face.external_image_id,
                            box,
                            face.confidence,
                            None,
                            fmv,
                            face.image_width_px,
                            face.image_height_px,
                        ),
                    )
                )
        return out

    def external_image_ids(self, collection_id: str) -> set[str]:
        """Every ExternalImageId with at least one face in the collection."""
        self.face_model_version(collection_id)
        rows = self._db().execute(
            "SELECT DISTINCT external_image_id FROM faces WHERE collection_id = ? "
            "AND external_image_id IS NOT NULL",
            (collection_id,),
        )
        return {r[0] for r in rows}

    def faces_by_id(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, FaceRow]:
        fmv = self.face_model_version(collection_id)
        out: dict[str, FaceRow] = {}
        for start in range(0, len(face_ids), 500):
            chunk = list(face_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for r in self._db().execute(
                f"SELECT {_FACE_COLUMNS} FROM faces WHERE collection_id = ? "
                f"AND face_id IN ({marks})",
                (collection_id, *chunk),
            ):
                out[r["face_id"]] = _row_to_face(r, fmv)
        return out

    def faces_by_row(self, collection_id: str, row_ids: Sequence[int]) -> dict[int, FaceRow]:
        fmv = self.face_model_version(collection_id)
        out: dict[int, FaceRow] = {}
        for start in range(0, len(row_ids), 500):
            chunk = [int(r) for r in row_ids[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            for r in self._db().execute(
                f"SELECT {_FACE_COLUMNS} FROM faces WHERE collection_id = ? "
                f"AND row_id IN ({marks})",
                (collection_id, *chunk),
            ):
                out[int(r["row_id"])] = _row_to_face(r, fmv)
        return out

    def embedding(self, collection_id: str, face_id: str) -> tuple[int, NDArray[np.float32]]:
        row = (
            self._db()
            .execute(
                "SELECT row_id, embedding FROM faces WHERE collection_id = ? AND face_id = ?",
                (collection_id, face_id),
            )
            .fetchone()
        )
        if row is None:
            raise ResourceNotFoundError(f"face {face_id!r} is not in collection {collection_id!r}")
        return int(row[0]), np.frombuffer(row[1], dtype="<f4").astype(np.float32)

    def list_faces(
        self,
        collection_id: str,
        *,
        after_row: int,
        limit: int,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> list[FaceRow]:
        fmv = self.face_model_version(collection_id)
        sql = f"SELECT {_FACE_COLUMNS} FROM faces WHERE collection_id = ? AND row_id > ?"
        args: list[object] = [collection_id, after_row]
        if user_id is not None:
            sql += " AND user_id = ?"
            args.append(user_id)
        if face_ids is not None:
            sql += f" AND face_id IN ({','.join('?' * len(face_ids))})"
            args.extend(face_ids)
        sql += " ORDER BY row_id LIMIT ?"
        args.append(limit)
        return [_row_to_face(r, fmv) for r in self._db().execute(sql, args)]

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[str]:
        """Delete faces (one transaction, then ``scrub_wal``); returns the FaceIds that existed
        and were deleted. A face's user association goes with its row."""
        self.face_model_version(collection_id)
        deleted: list[str] = []
        with self._tx() as db:
            for face_id in face_ids:
                row = db.execute(
                    "SELECT row_id FROM faces WHERE collection_id = ? AND face_id = ?",
                    (collection_id, face_id),
                ).fetchone()
                if row is None:
                    continue
                db.execute("DELETE FROM faces WHERE row_id = ?", (row[0],))
                db.execute(
                    "INSERT INTO changes (collection_id, row_id, op, intent) "
                    "VALUES (?, ?, 'del', ?)",
                    (collection_id, row[0], CURRENT_INTENT.get()),
                )
                deleted.append(face_id)
        if deleted:
            self.scrub_wal()  # deleted rows must not linger in the WAL
        return deleted

    def faces_older_than(self, collection_id: str, cutoff_epoch: float) -> list[str]:
        """FaceIds of the collection's faces enrolled before ``cutoff_epoch`` (Unix seconds),
        oldest first (a retention purge deletes them). ResourceNotFoundError for an unknown
        collection."""
        self.face_model_version(collection_id)
        rows = self._db().execute(
            "SELECT face_id FROM faces WHERE collection_id = ? AND created_at < ? ORDER BY row_id",
            (collection_id, float(cutoff_epoch)),
        )
        return [r[0] for r in rows]

    # -- vectors for the index --------------------------------------------------------------
    def all_embeddings(
        self, collection_id: str, *, batch: int = 100_000
    ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]:
        """Every (row_id, embedding) of a collection, in row order, in batches."""
        dim = self.embedding_dim(collection_id)
        after = 0
        while True:
            rows = (
                self._db()
                .execute(
                    "SELECT row_id, embedding FROM faces WHERE collection_id = ? AND row_id > ? "
                    "ORDER BY row_id LIMIT ?",
                    (collection_id, after, batch),
                )
                .fetchall()
            )
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(-1, dim)
            yield ids, vecs.astype(np.float32)
            after = int(ids[-1])

    def _change_head(self, collection_id: str) -> tuple[ChangePosition, int]:
        """(the collection's change position, its embedding dimension)."""
        row = (
            self._db()
            .execute(
                "SELECT c.created_at, c.embedding_dim, (SELECT COALESCE(MAX(seq), 0) FROM changes "
                "WHERE collection_id = c.collection_id) FROM collections c "
                "WHERE c.collection_id = ?",
                (collection_id,),
            )
            .fetchone()
        )
        if row is None:
            raise ResourceNotFoundError(f"collection {collection_id!r} does not exist")
        return ChangePosition(round(float(row[0]) * 1e6), int(row[2])), int(row[1])

    def change_position(self, collection_id: str) -> ChangePosition:
        """The collection's generation (its creation time in microseconds) and last change."""
        return self._change_head(collection_id)[0]

    def changes_since(self, collection_id: str, seq: int) -> FaceChanges:
        """Faces added (still present) and row ids deleted after ``seq``; and the newest seq.
        (SQLite has one writer at a time, so sequence numbers commit in order.)"""
        position, dim = self._change_head(collection_id)
        if position.seq == seq:
            return FaceChanges.none(position.generation, seq, dim)
        rows = (
            self._db()
            .execute(
                "SELECT c.seq, c.row_id, c.op, f.embedding FROM changes c LEFT JOIN faces f "
                "ON f.row_id = c.row_id WHERE c.collection_id = ? AND c.seq > ? ORDER BY c.seq",
                (collection_id, seq),
            )
            .fetchall()
        )
        added = [(r[1], r[3]) for r in rows if r[2] == "add" and r[3] is not None]
        return FaceChanges(
            generation=position.generation,
            ids=np.array([a[0] for a in added], dtype=np.int64),
            vectors=(
                np.frombuffer(b"".join(a[1] for a in added), dtype="<f4").reshape(-1, dim).copy()
                if added
                else np.zeros((0, dim), np.float32)
            ),
            deleted=np.array([r[1] for r in rows if r[2] == "del"], dtype=np.int64),
            last=int(rows[-1][0]) if rows else position.seq,  # < seq: restored from a backup
        )

    def intent_changes(self, intent_id: str) -> list[IntentChange]:
        """The faces added or deleted under the intent record ``intent_id`` (see
        ``domain.audit.CURRENT_INTENT``), in commit order. The change log keeps row ids only
        (a deleted face leaves no id behind): an added face still present has its FaceId,
        the others ``""``."""
        rows = self._db().execute(
            "SELECT c.collection_id, f.face_id, c.op FROM changes c LEFT JOIN faces f "
            "ON f.row_id = c.row_id AND c.op = 'add' WHERE c.intent = ? ORDER BY c.seq",
            (intent_id,),
        )
        return [IntentChange(str(r[0]), str(r[1] or ""), r[2] == "del") for r in rows]

    # -- users ----------------------------------------------------------------------------
    def create_user(self, collection_id: str, user_id: str) -> None:
        self.face_model_version(collection_id)
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO users VALUES (?, ?, ?)", (collection_id, user_id, time.time())
                )
        except sqlite3.IntegrityError:
            raise ResourceAlreadyExistsError(
                f"user {user_id!r} already exists in collection {collection_id!r}"
            ) from None

    def list_users(self, collection_id: str, *, after: str | None, limit: int) -> list[User]:
        self.face_model_version(collection_id)
        rows = (
            self._db()
            .execute(
                "SELECT user_id FROM users WHERE collection_id = ? AND user_id > ? "
                "ORDER BY user_id LIMIT ?",
                (collection_id, after or "", limit),
            )
            .fetchall()
        )
        return [User(r[0]) for r in rows]

    def user_exists(self, collection_id: str, user_id: str) -> bool:
        """Whether the user exists; ResourceNotFoundError when the collection does not."""
        self.face_model_version(collection_id)
        row = (
            self._db()
            .execute(
                "SELECT 1 FROM users WHERE collection_id = ? AND user_id = ?",
                (collection_id, user_id),
            )
            .fetchone()
        )
        return row is not None

    def user_face_counts(self, collection_id: str, user_ids: Sequence[str]) -> dict[str, int]:
        """How many faces each of ``user_ids`` has (users without faces are left out)."""
        out: dict[str, int] = {}
        for start in range(0, len(user_ids), 500):
            chunk = list(user_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for r in self._db().execute(
                f"SELECT user_id, COUNT(*) FROM faces WHERE collection_id = ? "
                f"AND user_id IN ({marks}) GROUP BY user_id",
                (collection_id, *chunk),
            ):
                out[r[0]] = int(r[1])
        return out

    def user_embeddings(
        self, collection_id: str, user_ids: Sequence[str]
    ) -> dict[str, NDArray[np.float32]]:
        """Each user's face embeddings, (n, dim) in enrolment order; users without faces are
        left out."""
        dim = self.embedding_dim(collection_id)
        blobs: dict[str, list[bytes]] = {}
        for start in range(0, len(user_ids), 500):
            chunk = list(user_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for r in self._db().execute(
                f"SELECT user_id, embedding FROM faces WHERE collection_id = ? "
                f"AND user_id IN ({marks}) ORDER BY row_id",
                (collection_id, *chunk),
            ):
                blobs.setdefault(r[0], []).append(r[1])
        return {
            user: np.frombuffer(b"".join(parts), dtype="<f4").reshape(-1, dim).astype(np.float32)
            for user, parts in blobs.items()
        }

    def face_embeddings(
        self, collection_id: str, face_ids: Sequence[str]
    ) -> dict[str, NDArray[np.float32]]:
        """Embeddings of the given faces that exist in the collection."""
        self.face_model_version(collection_id)
        out: dict[str, NDArray[np.float32]] = {}
        for start in range(0, len(face_ids), 500):
            chunk = list(face_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for r in self._db().execute(
                f"SELECT face_id, embedding FROM faces WHERE collection_id = ? "
                f"AND face_id IN ({marks})",
                (collection_id, *chunk),
            ):
                out[r[0]] = np.frombuffer(r[1], dtype="<f4").astype(np.float32)
        return out

    def _classify_faces(
        self, db: sqlite3.Connection, collection_id: str, face_ids: Sequence[str]
    ) -> dict[str, str | None]:
        """FaceId → its user_id (None when unassociated) for the faces that exist."""
        owners: dict[str, str | None] = {}
        for start in range(0, len(face_ids), 500):
            chunk = list(face_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for r in db.execute(
                f"SELECT face_id, user_id FROM faces WHERE collection_id = ? "
                f"AND face_id IN ({marks})",
                (collection_id, *chunk),
            ):
                owners[r[0]] = r[1]
        return owners

    @staticmethod
    def _require_user(db: sqlite3.Connection, collection_id: str, user_id: str) -> None:
        row = db.execute(
            "SELECT 1 FROM users WHERE collection_id = ? AND user_id = ?", (collection_id, user_id)
        ).fetchone()
        if row is None:
            raise ResourceNotFoundError(
                f"user {user_id!r} does not exist in collection {collection_id!r}"
            )

    @staticmethod
    def _user_face_count(db: sqlite3.Connection, collection_id: str, user_id: str) -> int:
        row = db.execute(
            "SELECT COUNT(*) FROM faces WHERE collection_id = ? AND user_id = ?",
            (collection_id, user_id),
        ).fetchone()
        return int(row[0])

    def associate(
        self,
        collection_id: str,
        user_id: str,
        face_ids: Sequence[str],
        *,
        max_faces_per_user: int | None = None,
    ) -> UserFacesChange:
        """Associate unowned faces with the user, in one transaction.

        A face can belong to one user only: faces of another user are reported, never moved.
        When the user would end up with more than ``max_faces_per_user`` faces nothing is
        written and ``limit_exceeded`` is set. ResourceNotFoundError for an unknown collection
        or user.
        """
        self.face_model_version(collection_id)
        wanted = list(dict.fromkeys(face_ids))
        with self._tx() as db:
            self._require_user(db, collection_id, user_id)
            owners = self._classify_faces(db, collection_id, wanted)
            not_found, other = split_by_owner(wanted, owners, user_id)
            free = [f for f in wanted if f in owners and owners[f] is None]
            count = self._user_face_count(db, collection_id, user_id)
            if max_faces_per_user is not None and free and count + len(free) > max_faces_per_user:
                return UserFacesChange((), not_found, other, count, limit_exceeded=True)
            for face_id in free:
                db.execute(
                    "UPDATE faces SET user_id = ? WHERE collection_id = ? AND face_id = ? "
                    "AND user_id IS NULL",
                    (user_id, collection_id, face_id),
                )
        return UserFacesChange(tuple(free), not_found, other, count + len(free))

    def disassociate(
        self, collection_id: str, user_id: str, face_ids: Sequence[str]
    ) -> UserFacesChange:
        """Remove the user's association from its faces among ``face_ids`` (one transaction).

        Faces of another user are reported, never changed; unassociated faces are ignored.
        ResourceNotFoundError for an unknown collection or user.
        """
        self.face_model_version(collection_id)
        wanted = list(dict.fromkeys(face_ids))
        with self._tx() as db:
            self._require_user(db, collection_id, user_id)
            owners = self._classify_faces(db, collection_id, wanted)
            not_found, other = split_by_owner(wanted, owners, user_id)
            mine = [f for f in wanted if owners.get(f) == user_id]
            for face_id in mine:
                db.execute(
                    "UPDATE faces SET user_id = NULL WHERE collection_id = ? AND face_id = ?",
                    (collection_id, face_id),
                )
            count = self._user_face_count(db, collection_id, user_id)
        return UserFacesChange(tuple(mine), not_found, other, count)

    def delete_user(
        self,
        collection_id: str,
        user_id: str,
        *,
        request_token: str | None = None,
        params: str = "",
    ) -> RequestRecord | None:
        """Delete a user; its faces stay in the collection, disassociated (one transaction).

        With ``request_token``, the token is remembered in the same transaction; when that
        token was already used for DeleteUser, nothing happens and its record is returned
        (the caller compares parameters). ResourceNotFoundError for an unknown collection or
        user.
        """
        self.face_model_version(collection_id)
        with self._tx() as db:
            if request_token is not None:
                earlier = self._request_record(db, collection_id, "DeleteUser", request_token)
                if earlier is not None:
                    return earlier
            self._require_user(db, collection_id, user_id)
            db.execute(
                "UPDATE faces SET user_id = NULL WHERE collection_id = ? AND user_id = ?",
                (collection_id, user_id),
            )
            db.execute(
                "DELETE FROM users WHERE collection_id = ? AND user_id = ?",
                (collection_id, user_id),
            )
            if request_token is not None:
                self._insert_request(db, collection_id, "DeleteUser", request_token, params, "{}")
        self.scrub_wal()  # the user row must not linger in the WAL either
        return None

    def create_user_once(
        self, collection_id: str, user_id: str, *, request_token: str, params: str
    ) -> RequestRecord | None:
        """CreateUser with an idempotency token, remembered in the same transaction.

        Returns None when the user was created now; the earlier record (nothing written) when
        the token was already used for CreateUser in this collection. ResourceAlreadyExistsError
        when the user exists and the token is new.
        """
        self.face_model_version(collection_id)
        try:
            with self._tx() as db:
                earlier = self._request_record(db, collection_id, "CreateUser", request_token)
                if earlier is not None:
                    return earlier
                db.execute(
                    "INSERT INTO users VALUES (?, ?, ?)", (collection_id, user_id, time.time())
                )
                self._insert_request(db, collection_id, "CreateUser", request_token, params, "{}")
        except sqlite3.IntegrityError:
            raise ResourceAlreadyExistsError(
                f"user {user_id!r} already exists in collection {collection_id!r}"
            ) from None
        return None

    # -- idempotency tokens ---------------------------------------------------------------
    @staticmethod
    def _request_record(
        db: sqlite3.Connection, collection_id: str, operation: str, token: str
    ) -> RequestRecord | None:
        row = db.execute(
            "SELECT params, response FROM request_tokens WHERE collection_id = ? AND "
            "operation = ? AND token = ? AND created_at >= ?",
            (collection_id, operation, token, time.time() - REQUEST_TOKEN_TTL_S),
        ).fetchone()
        return None if row is None else RequestRecord(row[0], row[1])

    @staticmethod
    def _insert_request(
        db: sqlite3.Connection,
        collection_id: str,
        operation: str,
        token: str,
        params: str,
        response: str,
    ) -> None:
        now = time.time()
        db.execute("DELETE FROM request_tokens WHERE created_at < ?", (now - REQUEST_TOKEN_TTL_S,))
        db.execute(
            "INSERT OR REPLACE INTO request_tokens VALUES (?, ?, ?, ?, ?, ?)",
            (collection_id, operation, token, params, response, now),
        )

    def request_record(
        self, collection_id: str, operation: str, token: str
    ) -> RequestRecord | None:
        """The record of an earlier call with this ClientRequestToken, if remembered."""
        return self._request_record(self._db(), collection_id, operation, token)

    def record_request(
        self, collection_id: str, operation: str, token: str, params: str, response: str
    ) -> None:
        """Remember a call's parameters and response under its ClientRequestToken."""
        with self._tx() as db:
            self._insert_request(db, collection_id, operation, token, params, response)
