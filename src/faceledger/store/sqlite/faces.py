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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.audit import CURRENT_INTENT
from faceledger.domain.collections import Collection
from faceledger.store import rules
from faceledger.store.face_tables import FaceTables
from faceledger.store.records import (
    ChangePosition,
    FaceChanges,
    FaceRow,
    IntentChange,
    NewFace,
    RequestRecord,
    UserFacesChange,
)
from faceledger.store.rules import FACE_COLUMNS, NEW_FACE_COLUMNS, REQUEST_TOKEN_TTL_S, face_row
from faceledger.store.sql import Connection
from faceledger.store.sqlite import crops
from faceledger.store.sqlite.connections import BUSY_TIMEOUT_MS, Connections, SqliteSql

__all__ = [  # the records are importable from here too, as before ``store/records.py``
    "REQUEST_TOKEN_TTL_S",
    "ChangePosition",
    "FaceChanges",
    "FaceRow",
    "IntentChange",
    "NewFace",
    "RequestRecord",
    "SQLiteStore",
    "UserFacesChange",
]

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
CREATE TABLE IF NOT EXISTS user_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    intent TEXT NOT NULL,
    collection_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('associate', 'disassociate', 'delete_user')),
    face_ids TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS user_changes_by_intent ON user_changes(intent);
"""


class SQLiteStore(FaceTables):
    """Collections, faces (with embeddings), users and the change log in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = Connections(self.path)
        self._write_lock = self._connections.write_lock
        self._db = self._connections.db
        self._tx = self._connections.tx
        self._sql = SqliteSql(self._connections)
        with self._write_lock:
            db = self._db()
            db.executescript(SCHEMA)  # idempotent; executescript manages its own commit
            db.executescript(crops.SCHEMA)  # kept face crops (``store/sqlite/crops.py``)
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

    def shared_secret(self, name: str, size: int = 32) -> bytes | None:
        """None: the embedded store shares no secrets (one host: callers keep key files)."""
        return None

    def database_vectors(self) -> None:
        """None: SQLite has no vector search; services keep in-memory indexes."""
        return None

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
    def _insert_collection(
        self, conn: Connection, collection_id: str, fmv: str, dim: int, now: float
    ) -> str:
        conn.execute(
            "INSERT INTO collections VALUES (%s, %s, %s, %s)", (collection_id, fmv, dim, now)
        )
        return collection_id

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
            raise rules.no_collection(collection_id)
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
            raise rules.no_collection(collection_id)
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
            raise rules.no_collection(collection_id)
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
                raise rules.no_collection(collection_id)
            crops.delete_collection_crops(db, collection_id)
            db.execute("DELETE FROM faces WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM users WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM tags WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM policies WHERE collection_id = ?", (collection_id,))
            db.execute("DELETE FROM changes WHERE collection_id = ?", (collection_id,))
        self.scrub_wal()  # deleted rows must not linger in the WAL

    # -- FaceTables' hooks (users, tokens, tags, policies, listing) --------------------------
    def _fmv_key(self, conn: Connection, collection_id: str) -> tuple[str, str]:
        row = conn.execute(
            "SELECT face_model_version FROM collections WHERE collection_id = %s", (collection_id,)
        ).fetchone()
        if row is None:
            raise rules.no_collection(collection_id)
        return collection_id, str(row[0])

    def _key(self, conn: Connection, collection_id: str, *, lock: bool = False) -> str:
        """The collection's id (a write transaction holds the file's lock already)."""
        return self._fmv_key(conn, collection_id)[0]

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)

    def _forget_user(self, key: Any) -> None:
        self.scrub_wal()  # the user row must not linger in the WAL either

    # -- faces ----------------------------------------------------------------------------
    def faces_of_image(
        self, collection_id: str, image_sha256: str, external_image_id: str | None
    ) -> list[FaceRow]:
        fmv = self.face_model_version(collection_id)
        rows = (
            self._db()
            .execute(
                f"SELECT {FACE_COLUMNS} FROM faces WHERE collection_id = ? AND image_sha256 = ? "
                "AND external_image_id IS ? ORDER BY row_id",
                (collection_id, image_sha256, external_image_id),
            )
            .fetchall()
        )
        return [face_row(r, fmv) for r in rows]

    def add_faces(self, collection_id: str, faces: Sequence[NewFace]) -> list[FaceRow]:
        """Insert faces of one image (with their sealed crops) in one transaction (all or
        none)."""
        fmv = self.face_model_version(collection_id)
        dim = self.embedding_dim(collection_id)
        image_id = str(uuid.uuid4())
        now = time.time()
        out: list[FaceRow] = []
        with self._tx() as db:
            for face, face_id, vector in rules.enrolments(faces, dim):
                cur = db.execute(
                    f"INSERT INTO faces (collection_id, {NEW_FACE_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        collection_id,
                        *rules.face_values(face, face_id, image_id),
                        vector.tobytes(),
                        now,
                        face.image_width_px,
                        face.image_height_px,
                    ),
                )
                row_id = int(cur.lastrowid or 0)
                if face.sealed_crop is not None:
                    crops.insert_crop(db, collection_id, face_id, face.sealed_crop)
                db.execute(
                    "INSERT INTO changes (collection_id, row_id, op, intent) "
                    "VALUES (?, ?, 'add', ?)",
                    (collection_id, row_id, CURRENT_INTENT.get()),
                )
                out.append(rules.new_face_row(row_id, face_id, image_id, face, fmv))
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
        for chunk in rules.chunks(face_ids):
            marks = ",".join("?" * len(chunk))
            for r in self._db().execute(
                f"SELECT {FACE_COLUMNS} FROM faces WHERE collection_id = ? "
                f"AND face_id IN ({marks})",
                (collection_id, *chunk),
            ):
                out[r["face_id"]] = face_row(r, fmv)
        return out

    def faces_by_row(self, collection_id: str, row_ids: Sequence[int]) -> dict[int, FaceRow]:
        fmv = self.face_model_version(collection_id)
        out: dict[int, FaceRow] = {}
        for chunk in rules.chunks([int(r) for r in row_ids]):
            marks = ",".join("?" * len(chunk))
            for r in self._db().execute(
                f"SELECT {FACE_COLUMNS} FROM faces WHERE collection_id = ? AND row_id IN ({marks})",
                (collection_id, *chunk),
            ):
                out[int(r["row_id"])] = face_row(r, fmv)
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
            raise rules.no_face(collection_id, face_id)
        return int(row[0]), np.frombuffer(row[1], dtype="<f4").astype(np.float32)

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[str]:
        """Delete faces (one transaction, then ``scrub_wal``); returns the FaceIds that existed
        and were deleted. A face's user association and kept crop go with its row."""
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
                crops.delete_crop(db, face_id)
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
            raise rules.no_collection(collection_id)
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

    # -- users (the rest: ``FaceTables``) ---------------------------------------------------
    def user_embeddings(
        self, collection_id: str, user_ids: Sequence[str]
    ) -> dict[str, NDArray[np.float32]]:
        """Each user's face embeddings, (n, dim) in enrolment order; users without faces are
        left out."""
        dim = self.embedding_dim(collection_id)
        blobs: dict[str, list[bytes]] = {}
        for chunk in rules.chunks(user_ids):
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
        for chunk in rules.chunks(face_ids):
            marks = ",".join("?" * len(chunk))
            for r in self._db().execute(
                f"SELECT face_id, embedding FROM faces WHERE collection_id = ? "
                f"AND face_id IN ({marks})",
                (collection_id, *chunk),
            ):
                out[r[0]] = np.frombuffer(r[1], dtype="<f4").astype(np.float32)
        return out
