"""The server store: PostgreSQL with pgvector, shared by any number of API processes.

``PostgresStore`` has the public methods and the guarantees of ``SQLiteStore`` (same errors,
same return types), on psycopg 3 with a small connection pool. The schema is made by the
Alembic migrations in ``faceledger.store.migrations`` (``faceledger db upgrade``); this class
never creates tables.

**Vectors** live in ``faces.embedding`` as pgvector ``halfvec`` (fp16; no fixed dimension in
the column, a collection's dimension is fixed by its pack). ``faces`` is partitioned by list on
``collection_pk``; creating a collection creates its partition and the partition's HNSW index
(on the empty table: instant, and no lock on the other collections' faces), then attaches it::

    CREATE TABLE faces_<pk> (LIKE faces INCLUDING DEFAULTS);
    CREATE INDEX faces_<pk>_hnsw ON faces_<pk>
        USING hnsw ((embedding::halfvec(<dim>)) halfvec_cosine_ops);
    ALTER TABLE faces ATTACH PARTITION faces_<pk> FOR VALUES IN (<pk>);

**Search** has two paths. By default (``FACELEDGER_VECTOR_SEARCH=memory``) each API process
keeps its own in-memory index per collection (``faceledger.services.vectors``), a cache of
this database: every write that adds or deletes faces also logs them in ``face_changes``
under the collection's next sequence numbers (``change_seq``, taken in commit order: see
migration ``0004_face_changes``), and before each search a process replays the changes since
its index's number (``changes_since``), so it sees every other process's committed writes at
once. At a million faces that index finds what an exact search finds (recall@10 ≈ 1.0); the
HNSW index does not (``bench/postgres.py``: 0.48 at ``ef_search`` 200). With
``FACELEDGER_VECTOR_SEARCH=database``, ``search_vectors`` queries ``faces`` with
``collection_pk = <pk>`` and the same expression (literals, so the planner prunes to the
partition and matches its index), under ``SET LOCAL hnsw.ef_search``: no memory per process.
Deleting a collection detaches its partition (``CONCURRENTLY``) and drops it: its files are
deleted.
(A partial HNSW index per collection on one table was the alternative; its creation scans and
write-locks the whole table, its removal takes an exclusive lock on it, and every VACUUM
after a deletion would walk every collection's index.)

**Durability**: a write returns after its transaction commits (``synchronous_commit`` is on by
default), so an acknowledged enrolment survives ``kill -9`` of the API process — and of the
database server, which replays its WAL.

**Deletion is real** (DELETE, not a flag), but PostgreSQL's MVCC keeps a deleted (or updated)
row's old version in its heap page as a dead tuple, and the HNSW index keeps its vector, until
VACUUM removes them. So every deletion of faces, users or collections is followed by
``VACUUM (INDEX_CLEANUP ON)`` of the tables it touched (``vacuum``): the rows become
unreadable and pgvector overwrites the deleted vectors in the HNSW index. Unlike SQLite's
``secure_delete``, PostgreSQL does not zero the space it frees: measured here, the last row
of a heap page and B-tree entries (FaceId, image SHA-256, UserId) can keep their bytes in
free space until reused. ``VACUUM FULL`` (``vacuum(full=True)``, ``faceledger db vacuum
--full``, exclusive lock: a maintenance window) rewrites the tables into new files and leaves
nothing. Neither reaches WAL segments not yet recycled, replicas or backups.

**Concurrency**: transactions run at READ COMMITTED; the read-then-write verbs lock what they
depend on (the user row for associations, the collection row for tag limits, an advisory lock
per ClientRequestToken) so two processes cannot interleave them.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import errors as pg_errors
from psycopg import sql as pg_sql
from psycopg_pool import ConnectionPool

from faceledger.domain.audit import CURRENT_INTENT
from faceledger.domain.collections import Collection
from faceledger.index.base import SearchHits
from faceledger.store import rules
from faceledger.store.face_tables import FaceTables
from faceledger.store.postgres.crops import DELETE_CROPS, INSERT_CROP, crop_values
from faceledger.store.postgres.hnsw import DEFAULT_EF_SEARCH, MAX_EF_SEARCH, PostgresVectors
from faceledger.store.postgres.pool import PooledStore
from faceledger.store.records import (
    ChangePosition,
    FaceChanges,
    FaceRow,
    IntentChange,
    NewFace,
)
from faceledger.store.rules import FACE_COLUMNS, NEW_FACE_COLUMNS, face_row
from faceledger.store.sql import Connection

logger = logging.getLogger(__name__)

#: Connections per store (per process). Each API process also has its key store's and the
#: ledger's; PostgreSQL's default ``max_connections`` is 100.
POOL_SIZE = 8
#: HNSW build parameters (pgvector's defaults).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


def vector_literal(vector: NDArray[np.floating[Any]]) -> str:
    """A vector in pgvector's text form ``[x,y,…]`` (cast to ``halfvec(dim)`` in SQL)."""
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, np.float32).ravel()) + "]"


def partition_name(collection_pk: int) -> str:
    """The collection's partition of ``faces``."""
    return f"faces_{int(collection_pk)}"


def hnsw_index_name(collection_pk: int) -> str:
    """The HNSW index of the collection's partition."""
    return f"faces_{int(collection_pk)}_hnsw"


def hnsw_index_sql(collection_pk: int, dim: int) -> str:
    """The DDL of the collection's HNSW index, on its partition (``create_collection`` runs it;
    a bulk load may drop the index, ``COPY`` into the partition, and run it again)."""
    return (
        f"CREATE INDEX {hnsw_index_name(collection_pk)} ON {partition_name(collection_pk)} "
        f"USING hnsw ((embedding::halfvec({int(dim)})) halfvec_cosine_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
    )


def _halfvecs(values: Sequence[bytes], dim: int) -> NDArray[np.float32]:
    """float32 (N, dim) from pgvector ``halfvec`` values in binary format (each: int16 dim,
    int16 unused, then ``dim`` big-endian fp16): ten times faster to read than text."""
    if not values:
        return np.zeros((0, dim), np.float32)
    raw = b"".join(bytes(v)[4:] for v in values)
    return np.frombuffer(raw, dtype=">f2").reshape(-1, dim).astype(np.float32)


class PostgresStore(PooledStore, FaceTables):
    """Collections, faces (vectors in pgvector), users, tags, policies and request tokens."""

    def __init__(
        self, url: str, *, pool: ConnectionPool | None = None, pool_size: int = POOL_SIZE
    ) -> None:
        self.url = url
        self._sql = self._use_pool(url, pool, size=pool_size, name="faceledger-store")

    def database_vectors(self) -> PostgresVectors:
        """pgvector's HNSW search of this store's collections (``VECTOR_SEARCH=database``)."""
        return PostgresVectors(self)

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction on a pooled connection, committed (durably) when the block exits
        without error, rolled back otherwise."""
        with self._pool.connection() as conn:
            yield conn

    # -- maintenance ----------------------------------------------------------------------
    def vacuum(self, *tables: str, full: bool = False) -> None:
        """``VACUUM (INDEX_CLEANUP ON)`` the tables (default: faces and users).

        Called after every deletion. Until VACUUM runs, a deleted row is a dead tuple still
        readable in its heap page, and a deleted face's vector is still in the HNSW index.
        VACUUM prunes the dead tuples and, with ``INDEX_CLEANUP ON`` (never skipped, even for a
        few dead rows in a large table), makes pgvector mark the HNSW elements deleted and
        overwrite their vectors. It does not zero the free space it leaves: bytes of a pruned
        row can survive in a heap or B-tree page until the space is reused. ``full=True``
        (``VACUUM FULL``, ``faceledger db vacuum --full``) rewrites the tables and their
        indexes into new files, leaving nothing of deleted rows in the database; it locks each
        table exclusively while it runs (a maintenance window). VACUUM cannot run in a
        transaction, so this uses an autocommit connection.
        """
        names = tables or ("faces", "users")
        options = pg_sql.SQL("FULL" if full else "INDEX_CLEANUP ON")
        with self._pool.connection() as conn:
            conn.autocommit = True
            try:
                for name in names:
                    conn.execute(
                        pg_sql.SQL("VACUUM ({}) {}").format(options, pg_sql.Identifier(name))
                    )
            finally:
                conn.autocommit = False

    # -- collections ----------------------------------------------------------------------
    @staticmethod
    def _info(conn: Connection, collection_id: str, *, lock: bool = False) -> tuple[int, str, int]:
        """(collection_pk, face_model_version, embedding_dim); ResourceNotFoundError if absent.
        ``lock`` takes the collection row FOR UPDATE until the transaction ends."""
        row = conn.execute(
            "SELECT collection_pk, face_model_version, embedding_dim FROM collections "
            "WHERE collection_id = %s" + (" FOR NO KEY UPDATE" if lock else ""),
            (collection_id,),
        ).fetchone()
        if row is None:
            raise rules.no_collection(collection_id)
        return int(row[0]), str(row[1]), int(row[2])

    def _collection_info(self, collection_id: str) -> tuple[int, str, int]:
        with self._tx() as conn:
            return self._info(conn, collection_id)

    def _insert_collection(
        self, conn: Connection, collection_id: str, fmv: str, dim: int, now: float
    ) -> int:
        """The collection's row, its partition of ``faces`` and the partition's HNSW index (in
        the caller's transaction; see the module docstring); its key."""
        row = conn.execute(
            "INSERT INTO collections (collection_id, face_model_version, embedding_dim,"
            " created_at) VALUES (%s, %s, %s, %s) RETURNING collection_pk",
            (collection_id, fmv, int(dim), now),
        ).fetchone()
        pk = int(row[0])
        table = partition_name(pk)
        conn.execute(f"CREATE TABLE {table} (LIKE faces INCLUDING DEFAULTS)")
        conn.execute(f"ALTER TABLE {table} ADD CHECK (collection_pk = {pk})")
        conn.execute(hnsw_index_sql(pk, dim))
        conn.execute(f"ALTER TABLE faces ATTACH PARTITION {table} FOR VALUES IN ({pk})")
        return pk

    # face_count / user_count are kept in the collection's row by the writes below (in their
    # transactions), so describing a collection costs the same at any size.
    _COLLECTION_SQL = (
        "SELECT c.collection_id, c.face_model_version, c.created_at, c.face_count, "
        "c.user_count FROM collections c "
    )

    @staticmethod
    def _count(conn: Connection, pk: int, column: str, delta: int) -> None:
        """Add ``delta`` to the collection's ``face_count`` or ``user_count`` (row-locked until
        the transaction ends: do it last)."""
        assert column in ("face_count", "user_count")
        if delta:
            conn.execute(
                f"UPDATE collections SET {column} = {column} + %s WHERE collection_pk = %s",
                (delta, pk),
            )

    @staticmethod
    def _log_face_changes(
        conn: psycopg.Connection[Any], pk: int, row_ids: Sequence[int], *, deleted: bool
    ) -> None:
        """Count faces added to (or deleted from) the collection and log them in
        ``face_changes`` under its next sequence numbers. The UPDATE row-locks the collection
        until the transaction ends, so its writers take their numbers in commit order (see
        migration ``0004_face_changes``): do it last."""
        if not row_ids:
            return
        n = len(row_ids)
        row = conn.execute(
            "UPDATE collections SET face_count = face_count + %s, change_seq = change_seq + %s "
            "WHERE collection_pk = %s RETURNING change_seq",
            (-n if deleted else n, n, pk),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO face_changes (collection_pk, seq, row_id, deleted, intent) "
            "SELECT %s, %s + n, row_id, %s, %s FROM unnest(%s::bigint[]) "
            "WITH ORDINALITY AS t(row_id, n)",
            (pk, int(row[0]) - n, deleted, CURRENT_INTENT.get(), [int(r) for r in row_ids]),
        )

    @staticmethod
    def _to_collection(row: Sequence[Any]) -> Collection:
        return Collection(str(row[0]), str(row[1]), float(row[2]), int(row[3]), int(row[4]))

    def collection(self, collection_id: str) -> Collection:
        with self._tx() as conn:
            row = conn.execute(
                self._COLLECTION_SQL + "WHERE c.collection_id = %s", (collection_id,)
            ).fetchone()
        if row is None:
            raise rules.no_collection(collection_id)
        return self._to_collection(row)

    def face_model_version(self, collection_id: str) -> str:
        """The collection's FaceModelVersion; ResourceNotFoundError if it does not exist."""
        return self._collection_info(collection_id)[1]

    def embedding_dim(self, collection_id: str) -> int:
        return self._collection_info(collection_id)[2]

    def list_collections(self, *, after: str | None, limit: int) -> list[Collection]:
        with self._tx() as conn:
            rows = conn.execute(
                self._COLLECTION_SQL + 'WHERE c.collection_id COLLATE "C" > %s '
                'ORDER BY c.collection_id COLLATE "C" LIMIT %s',
                (after or "", limit),
            ).fetchall()
        return [self._to_collection(r) for r in rows]

    def delete_collection(self, collection_id: str) -> None:
        """Delete the collection: its partition of ``faces`` (detached concurrently, then
        dropped: the files go), then its row with its users, tags, policy, tokens and kept crops
        (cascade), then VACUUM of those tables. Each step can be repeated, so a deletion
        interrupted by a crash completes when asked again."""
        pk, _, _ = self._collection_info(collection_id)
        table = partition_name(pk)
        with self._pool.connection() as conn:
            conn.autocommit = True
            try:
                row = conn.execute(
                    "SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = to_regclass(%s)",
                    (table,),
                ).fetchone()
                if row is not None:  # attached (or left half-detached by a crash)
                    mode = "FINALIZE" if row[0] else "CONCURRENTLY"
                    conn.execute(f"ALTER TABLE faces DETACH PARTITION {table} {mode}")
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            finally:
                conn.autocommit = False
        with self._tx() as conn:
            deleted = conn.execute("DELETE FROM collections WHERE collection_pk = %s", (pk,))
            if deleted.rowcount == 0:
                raise rules.no_collection(collection_id)
        self.vacuum("users", "tags", "policies", "request_tokens", "face_crops")

    # -- FaceTables' hooks (users, tokens, tags, policies, listing) --------------------------
    KEY = "collection_pk"
    COLLATE = ' COLLATE "C"'
    LOCK_USER = " FOR UPDATE"  # the user's row, while its faces change
    LOCK_FACES = " FOR NO KEY UPDATE"  # the faces whose owner a transaction reads

    def _key(self, conn: Connection, collection_id: str, *, lock: bool = False) -> int:
        return self._info(conn, collection_id, lock=lock)[0]

    def _fmv_key(self, conn: Connection, collection_id: str) -> tuple[int, str]:
        pk, fmv, _ = self._info(conn, collection_id)
        return pk, fmv

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(%s)", [list(values)]

    def _lock_token(self, conn: Connection, key: Any, operation: str, token: str) -> None:
        """An advisory lock per (collection, operation, token), until the transaction ends."""
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", (f"{operation}/{token}", key)
        )

    def _count_users(self, conn: Connection, key: Any, delta: int) -> None:
        self._count(conn, key, "user_count", delta)

    def _forget_user(self, key: Any) -> None:
        self.vacuum(partition_name(key), "users")  # nor the user id, in dead tuples

    # -- faces ----------------------------------------------------------------------------
    def faces_of_image(
        self, collection_id: str, image_sha256: str, external_image_id: str | None
    ) -> list[FaceRow]:
        with self._tx() as conn:
            pk, fmv, _ = self._info(conn, collection_id)
            rows = conn.execute(
                f"SELECT {FACE_COLUMNS} FROM faces WHERE collection_pk = %s "
                "AND image_sha256 = %s AND external_image_id IS NOT DISTINCT FROM %s "
                "ORDER BY row_id",
                (pk, image_sha256, external_image_id),
            ).fetchall()
        return [face_row(r, fmv) for r in rows]

    def add_faces(self, collection_id: str, faces: Sequence[NewFace]) -> list[FaceRow]:
        """Insert faces of one image (with their sealed crops) in one transaction (all or
        none)."""
        image_id = str(uuid.uuid4())
        now = time.time()
        out: list[FaceRow] = []
        try:
            with self._tx() as conn:
                pk, fmv, dim = self._info(conn, collection_id)
                for face, face_id, vector in rules.enrolments(faces, dim):
                    row = conn.execute(
                        f"INSERT INTO faces (collection_pk, {NEW_FACE_COLUMNS}) VALUES "
                        f"(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::halfvec({dim}), %s, %s, %s) "
                        "RETURNING row_id",
                        (
                            pk,
                            *rules.face_values(face, face_id, image_id),
                            vector_literal(vector),
                            now,
                            face.image_width_px,
                            face.image_height_px,
                        ),
                    ).fetchone()
                    assert row is not None
                    if face.sealed_crop is not None:
                        conn.execute(INSERT_CROP, crop_values(pk, face_id, face.sealed_crop))
                    out.append(rules.new_face_row(int(row[0]), face_id, image_id, face, fmv))
                self._log_face_changes(conn, pk, [f.row_id for f in out], deleted=False)
        except pg_errors.CheckViolation:  # its partition went with a concurrent deletion
            raise rules.no_collection(collection_id) from None
        return out

    def external_image_ids(self, collection_id: str) -> set[str]:
        """Every ExternalImageId with at least one face in the collection."""
        with self._tx() as conn:
            pk, _, _ = self._info(conn, collection_id)
            rows = conn.execute(
                "SELECT DISTINCT external_image_id FROM faces WHERE collection_pk = %s "
                "AND external_image_id IS NOT NULL",
                (pk,),
            ).fetchall()
        return {r[0] for r in rows}

    def faces_by_id(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, FaceRow]:
        with self._tx() as conn:
            pk, fmv, _ = self._info(conn, collection_id)
            rows = conn.execute(
                f"SELECT {FACE_COLUMNS} FROM faces WHERE collection_pk = %s AND face_id = ANY(%s)",
                (pk, list(face_ids)),
            ).fetchall()
        return {r[1]: face_row(r, fmv) for r in rows}

    def faces_by_row(self, collection_id: str, row_ids: Sequence[int]) -> dict[int, FaceRow]:
        with self._tx() as conn:
            pk, fmv, _ = self._info(conn, collection_id)
            rows = conn.execute(
                f"SELECT {FACE_COLUMNS} FROM faces WHERE collection_pk = %s AND row_id = ANY(%s)",
                (pk, [int(r) for r in row_ids]),
            ).fetchall()
        return {int(r[0]): face_row(r, fmv) for r in rows}

    def embedding(self, collection_id: str, face_id: str) -> tuple[int, NDArray[np.float32]]:
        """(row id, embedding) of a face; the embedding as stored (fp16, widened)."""
        with self._tx() as conn, conn.cursor(binary=True) as cur:
            pk, _, dim = self._info(conn, collection_id)
            row = cur.execute(
                "SELECT row_id, embedding FROM faces WHERE collection_pk = %s AND face_id = %s",
                (pk, face_id),
            ).fetchone()
        if row is None:
            raise rules.no_face(collection_id, face_id)
        return int(row[0]), _halfvecs([row[1]], dim)[0]

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[str]:
        """Delete faces (one transaction, then VACUUM); returns the FaceIds that existed and
        were deleted, in the order asked. A face's user association and kept crop go with it."""
        with self._tx() as conn:
            pk, _, _ = self._info(conn, collection_id)
            rows = conn.execute(
                "DELETE FROM faces WHERE collection_pk = %s AND face_id = ANY(%s) "
                "RETURNING face_id, row_id",
                (pk, list(face_ids)),
            ).fetchall()
            self._log_face_changes(conn, pk, [int(r[1]) for r in rows], deleted=True)
            dropped = conn.execute(DELETE_CROPS, (pk, [r[0] for r in rows])).rowcount
        gone = {r[0] for r in rows}
        if gone:  # the deleted rows, vectors and crops must not linger
            self.vacuum(partition_name(pk), *(["face_crops"] if dropped else []))
        return rules.in_order_asked(face_ids, gone)

    def faces_older_than(self, collection_id: str, cutoff_epoch: float) -> list[str]:
        """FaceIds of the collection's faces enrolled before ``cutoff_epoch`` (Unix seconds),
        oldest first. ResourceNotFoundError for an unknown collection."""
        with self._tx() as conn:
            pk, _, _ = self._info(conn, collection_id)
            rows = conn.execute(
                "SELECT face_id FROM faces WHERE collection_pk = %s AND created_at < %s "
                "ORDER BY row_id",
                (pk, float(cutoff_epoch)),
            ).fetchall()
        return [r[0] for r in rows]

    # -- vectors --------------------------------------------------------------------------
    def all_embeddings(
        self, collection_id: str, *, batch: int = 100_000
    ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]:
        """Every (row_id, embedding) of a collection, in row order, in batches."""
        pk, _, dim = self._collection_info(collection_id)
        after = 0
        while True:
            with self._tx() as conn, conn.cursor(binary=True) as cur:
                rows = cur.execute(
                    f"SELECT row_id, embedding FROM faces WHERE collection_pk = {pk} "
                    "AND row_id > %s ORDER BY row_id LIMIT %s",
                    (after, batch),
                ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            yield ids, _halfvecs([r[1] for r in rows], dim)
            after = int(ids[-1])

    def change_position(self, collection_id: str) -> ChangePosition:
        """The collection's generation (its surrogate key: a collection deleted and created
        again under the same id is another generation) and its last change's sequence number."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT collection_pk, change_seq FROM collections WHERE collection_id = %s",
                (collection_id,),
            ).fetchone()
        if row is None:
            raise rules.no_collection(collection_id)
        return ChangePosition(int(row[0]), int(row[1]))

    def intent_changes(self, intent_id: str) -> list[IntentChange]:
        """The faces added or deleted under the intent record ``intent_id`` (see
        ``domain.audit.CURRENT_INTENT``), in commit order. The change log keeps row ids only
        (a deleted face leaves no id behind): an added face still present has its FaceId,
        the others ``""``."""
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT c.collection_id, f.face_id, ch.deleted FROM face_changes ch "
                "JOIN collections c ON c.collection_pk = ch.collection_pk "
                "LEFT JOIN faces f ON f.collection_pk = ch.collection_pk "
                "AND f.row_id = ch.row_id AND NOT ch.deleted "
                "WHERE ch.intent = %s ORDER BY ch.collection_pk, ch.seq",
                (intent_id,),
            ).fetchall()
        return [IntentChange(str(r[0]), str(r[1] or ""), bool(r[2])) for r in rows]

    def changes_since(self, collection_id: str, seq: int) -> FaceChanges:
        """The faces added (and still present) and the row ids deleted after ``seq``, from
        ``face_changes``; one round trip when nothing changed (every search asks)."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT collection_pk, embedding_dim, change_seq FROM collections "
                "WHERE collection_id = %s",
                (collection_id,),
            ).fetchone()
            if row is None:
                raise rules.no_collection(collection_id)
            pk, dim, head = int(row[0]), int(row[1]), int(row[2])
            if head == seq:
                return FaceChanges.none(pk, seq, dim)
            with conn.cursor(binary=True) as cur:
                rows = cur.execute(
                    "SELECT c.seq, c.row_id, c.deleted, f.embedding FROM face_changes c "
                    f"LEFT JOIN faces f ON f.collection_pk = {pk} AND f.row_id = c.row_id "
                    f"AND NOT c.deleted WHERE c.collection_pk = {pk} AND c.seq > %s "
                    "ORDER BY c.seq",
                    (seq,),
                ).fetchall()
        added = [(r[1], r[3]) for r in rows if not r[2] and r[3] is not None]
        return FaceChanges(
            generation=pk,
            ids=np.array([a[0] for a in added], dtype=np.int64),
            vectors=_halfvecs([a[1] for a in added], dim),
            deleted=np.array([r[1] for r in rows if r[2]], dtype=np.int64),
            last=int(rows[-1][0]) if rows else head,  # head < seq: restored from a backup
        )

    def search_vectors(
        self,
        collection_id: str,
        vectors: NDArray[np.float32],
        *,
        k: int,
        ef_search: int | None = None,
        min_cosine: float | None = None,
    ) -> SearchHits:
        """The ``k`` nearest faces (cosine) of each query, from the collection's HNSW index.

        ``vectors``: (Q, dim) or (dim,) float32 unit vectors. Returns ``SearchHits`` like a
        ``VectorIndex`` (ids are row ids; -1 / -inf padding; best first; cosines below
        ``min_cosine`` dropped). ``ef_search`` (default ``DEFAULT_EF_SEARCH``, raised to
        ``k``, at most 1,000) is set with ``SET LOCAL`` for this transaction only; when ``k``
        exceeds it, pgvector's iterative scan (strict order) supplies the rest. A small
        collection may be scanned exactly instead, when the planner finds that cheaper.
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        with self._tx() as conn:
            pk, _, dim = self._info(conn, collection_id)
            queries = np.asarray(vectors, dtype=np.float32).reshape(-1, dim)
            ef = min(MAX_EF_SEARCH, max(int(ef_search or DEFAULT_EF_SEARCH), k))
            conn.execute(f"SET LOCAL hnsw.ef_search = {ef}")
            if k > ef:
                conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
            statement = (
                f"SELECT row_id, embedding::halfvec({dim}) <=> %s::halfvec({dim}) AS distance "
                f"FROM faces WHERE collection_pk = {pk} ORDER BY distance LIMIT %s"
            )
            ids = np.full((len(queries), k), -1, np.int64)
            cosines = np.full((len(queries), k), -np.inf, np.float32)
            for q, query in enumerate(queries):
                rows = conn.execute(statement, (vector_literal(query), k)).fetchall()
                # The HNSW scan's order can differ from the exact distances by ~1e-5: re-sort.
                rows.sort(key=lambda row: float(row[1]))
                for j, (row_id, distance) in enumerate(rows):
                    cosine = 1.0 - float(distance)
                    if min_cosine is not None and cosine < min_cosine:
                        break  # best first
                    ids[q, j] = int(row_id)
                    cosines[q, j] = cosine
        return SearchHits(ids, cosines)

    # -- users (the rest: ``FaceTables``) ---------------------------------------------------
    def user_embeddings(
        self, collection_id: str, user_ids: Sequence[str]
    ) -> dict[str, NDArray[np.float32]]:
        """Each user's face embeddings, (n, dim) in enrolment order; users without faces are
        left out."""
        with self._tx() as conn, conn.cursor(binary=True) as cur:
            pk, _, dim = self._info(conn, collection_id)
            rows = cur.execute(
                "SELECT user_id, embedding FROM faces WHERE collection_pk = %s "
                "AND user_id = ANY(%s) ORDER BY row_id",
                (pk, list(user_ids)),
            ).fetchall()
        grouped: dict[str, list[bytes]] = {}
        for user, vector in rows:
            grouped.setdefault(user, []).append(vector)
        return {user: _halfvecs(vectors, dim) for user, vectors in grouped.items()}

    def face_embeddings(
        self, collection_id: str, face_ids: Sequence[str]
    ) -> dict[str, NDArray[np.float32]]:
        """Embeddings of the given faces that exist in the collection."""
        with self._tx() as conn, conn.cursor(binary=True) as cur:
            pk, _, dim = self._info(conn, collection_id)
            rows = cur.execute(
                "SELECT face_id, embedding FROM faces WHERE collection_pk = %s "
                "AND face_id = ANY(%s)",
                (pk, list(face_ids)),
            ).fetchall()
        return {r[0]: _halfvecs([r[1]], dim)[0] for r in rows}

    # -- secrets shared by every process ----------------------------------------------------
    def shared_secret(self, name: str, size: int = 32) -> bytes:
        """A random secret shared by every process on this database (created on first use),
        e.g. the key signing pagination tokens, so a token from one replica works on another."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO shared_secrets (name, secret, created_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING",
                (name, secrets.token_bytes(size), time.time()),
            )
            row = conn.execute(
                "SELECT secret FROM shared_secrets WHERE name = %s", (name,)
            ).fetchone()
        assert row is not None
        return bytes(row[0])
