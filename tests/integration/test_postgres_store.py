"""The PostgreSQL backend's own guarantees: migrations and the at-head check, real deletion in
the database files, in-database HNSW search, and writers in several processes.

The behaviour shared with SQLite (every store, service, key and API verb) is tested by the
backend-parametrised tests (``database_url`` / ``store_backend`` in the conftest).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from numpy.typing import NDArray

from faceledger.config import Settings
from faceledger.domain.collections import BoundingBox
from faceledger.domain.errors import ResourceNotFoundError
from faceledger.services.collections import CollectionService
from faceledger.services.vectors import CollectionIndexes
from faceledger.store import migrations
from faceledger.store.factory import open_key_store, open_store
from faceledger.store.migrations import SchemaNotCurrentError
from faceledger.store.postgres.faces import (
    PostgresStore,
    PostgresVectors,
    hnsw_index_name,
    partition_name,
)
from faceledger.store.sqlite.faces import NewFace
from helpers.cli import script
from helpers.postgres import database_files

DIM = 32


def _unit(rng: np.random.Generator, n: int, dim: int = DIM) -> NDArray[np.float32]:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _faces(vectors: NDArray[np.float32], ext: str) -> list[NewFace]:
    box = BoundingBox(0.1, 0.2, 0.3, 0.4)
    return [
        NewFace(os.urandom(32).hex(), f"{ext}-{i}", box, 99.0, v) for i, v in enumerate(vectors)
    ]


@pytest.fixture
def store(migrated_database: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(migrated_database)
    yield opened
    opened.close()


def _cli(*args: str, url: str | None, **env: str) -> subprocess.CompletedProcess[str]:
    """``faceledger ARGS`` with ``FACELEDGER_DATABASE_URL=url`` (unset when None)."""
    environ = {k: v for k, v in os.environ.items() if k != "FACELEDGER_DATABASE_URL"}
    if url is not None:
        environ["FACELEDGER_DATABASE_URL"] = url
    return subprocess.run(
        [script(), *args], capture_output=True, text=True, env={**environ, **env}, timeout=180
    )


# -- migrations ----------------------------------------------------------------------------------
def test_db_upgrade_on_an_empty_database(postgres_server: str, tmp_path: Path) -> None:
    name = f"faceledger_empty_{os.getpid()}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')  # no extension, no tables
    url = postgres_server.replace("/postgres?", f"/{name}?", 1)

    before = _cli("db", "current", url=url)
    assert before.returncode == 1 and json.loads(before.stdout)["revision"] is None
    assert "faceledger db upgrade" in before.stderr

    done = _cli("db", "upgrade", url=url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["revision"] == migrations.head()
    again = _cli("db", "upgrade", url=url)  # repeatable: nothing left to do
    assert again.returncode == 0 and json.loads(again.stdout)["before"] == migrations.head()
    now = _cli("db", "current", url=url)
    assert now.returncode == 0 and json.loads(now.stdout)["at_head"] is True

    with psycopg.connect(url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
        extension = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert extension.fetchone() is not None
    assert {"collections", "faces", "users", "tags", "policies", "access_keys"} <= tables
    # the upgraded database serves: a store and a key store open on it
    settings = Settings(data_dir=tmp_path, database_url=url)
    opened = open_store(settings)
    opened.create_collection("c", "p", DIM)
    assert opened.collection("c").face_count == 0
    opened.close()
    open_key_store(settings).close()


def test_db_commands_explain_a_missing_url_or_database(postgres_server: str) -> None:
    missing = _cli("db", "upgrade", url=None)
    assert missing.returncode == 2 and "FACELEDGER_DATABASE_URL" in missing.stderr
    nowhere = postgres_server.replace("/postgres?", "/faceledger_no_such_db?", 1)
    failed = _cli("db", "upgrade", url=nowhere)
    assert failed.returncode == 2
    assert "cannot use the database 'faceledger_no_such_db'" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_a_database_not_at_head_is_refused(postgres_database: str, tmp_path: Path) -> None:
    """Stores, key stores and the server refuse a database that was never upgraded, or was
    upgraded by an older release, and say what to run."""
    from fastapi.testclient import TestClient

    from faceledger.api.app import create_app

    settings = Settings(data_dir=tmp_path, database_url=postgres_database)
    for opener in (open_store, open_key_store):
        with pytest.raises(SchemaNotCurrentError, match=r"has no FaceLedger schema.*db upgrade"):
            opener(settings)
    app = create_app(settings)
    with pytest.raises(SchemaNotCurrentError, match="faceledger db upgrade"), TestClient(app):
        pass  # the lifespan refuses before the server answers anything

    first = migrations.head() == "0001_initial"
    if not first:  # a database at an older revision is refused too
        migrations.upgrade(postgres_database, "0001_initial")
        with pytest.raises(SchemaNotCurrentError, match="is at revision 0001_initial"):
            open_store(settings)
    migrations.upgrade(postgres_database)
    open_store(settings).close()  # at head: accepted


def test_serve_refuses_to_start_on_an_unmigrated_database(
    postgres_database: str, tmp_path: Path
) -> None:
    result = _cli(
        "serve", url=postgres_database, FACELEDGER_DATA_DIR=str(tmp_path), FACELEDGER_PORT="1"
    )
    assert result.returncode != 0
    assert "faceledger db upgrade" in result.stderr
    with psycopg.connect(postgres_database) as conn:  # and it wrote nothing
        assert conn.execute("SELECT to_regclass('collections')").fetchone() == (None,)


# -- real deletion -------------------------------------------------------------------------------


def _fp16(vector: NDArray[np.float32]) -> bytes:
    """A vector as pgvector's halfvec stores it (IEEE fp16, the machine's byte order)."""
    return vector.astype(np.float16).tobytes()


def _relation_file(url: str, relation: str) -> bytes:
    """One table's or index's file, after a CHECKPOINT."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        (data_dir,) = conn.execute("SHOW data_directory").fetchone()  # type: ignore[misc]
        (path,) = conn.execute("SELECT pg_relation_filepath(%s)", (relation,)).fetchone()  # type: ignore[misc]
    return (Path(data_dir) / path).read_bytes()


def test_deletion_leaves_no_copy_in_thedatabase_files(
    store: PostgresStore, migrated_database: str
) -> None:
    """Deleted vectors leave the HNSW index at once (VACUUM after the delete); after
    ``faceledger db vacuum --full`` no byte of a deleted face or user is in any file of the
    database (plain VACUUM may leave bytes in free space: see ``PostgresStore.vacuum``)."""
    rng = np.random.default_rng(7)
    store.create_collection("kept", "p", DIM)
    store.create_collection("case", "p", DIM)
    kept = store.add_faces("kept", _faces(_unit(rng, 20), "kept-face"))
    doomed_vectors = _unit(rng, 3)
    doomed = store.add_faces("case", _faces(doomed_vectors, "suspect-4711"))
    store.add_faces("case", _faces(_unit(rng, 30), "bystander"))
    index = hnsw_index_name(2)  # "case" is the second collection

    raw = database_files(migrated_database)
    assert raw.count(b"suspect-4711") == 3
    # each vector is in the heap and in the collection's HNSW index
    assert all(raw.count(_fp16(v)) == 2 for v in doomed_vectors)
    assert all(_fp16(v) in _relation_file(migrated_database, index) for v in doomed_vectors)
    user = "user-who-asked-to-be-forgotten"
    store.create_user("case", user)
    store.associate("case", user, [doomed[2].face.face_id])  # an UPDATE: a new row version
    assert user.encode() in database_files(migrated_database)

    deleted = store.delete_faces("case", [r.face.face_id for r in doomed[:2]] + ["missing"])
    assert deleted == [r.face.face_id for r in doomed[:2]]
    hnsw = _relation_file(migrated_database, index)
    assert not any(_fp16(v) in hnsw for v in doomed_vectors[:2])  # erased from the index now
    assert _fp16(doomed_vectors[2]) in hnsw  # the face not deleted is untouched
    store.delete_user("case", user)
    assert not store.user_exists("case", user)

    result = _cli("db", "vacuum", "--full", url=migrated_database)
    assert result.returncode == 0, result.stderr
    raw = database_files(migrated_database)
    for row in doomed[:2]:
        face = row.face
        assert face.face_id.encode() not in raw  # (its ImageId is doomed[2]'s too)
        assert str(face.external_image_id).encode() not in raw
    assert not any(_fp16(v) in raw for v in doomed_vectors[:2])
    assert user.encode() not in raw
    assert b"suspect-4711-2" in raw  # the face not deleted stays, vector and all
    assert raw.count(_fp16(doomed_vectors[2])) == 2

    store.delete_collection("case")  # drops its partition: its files go, no VACUUM FULL needed
    raw = database_files(migrated_database)
    assert b"suspect-4711" not in raw and b"bystander" not in raw
    assert _fp16(doomed_vectors[2]) not in raw
    assert b"kept-face-0" in raw  # the other collection is untouched
    assert store.faces_by_id("kept", [kept[0].face.face_id])
    with psycopg.connect(migrated_database) as conn:
        names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes")}
        partition = conn.execute("SELECT to_regclass(%s)", (partition_name(2),)).fetchone()
    assert index not in names and hnsw_index_name(1) in names and partition == (None,)


def test_faces_older_than_and_purge(migrated_database: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=migrated_database)
    service = CollectionService(settings)
    service.store.create_collection("r", "p", DIM)  # no model needed: nothing is analysed
    rows = service.store.add_faces("r", _faces(_unit(np.random.default_rng(3), 3), "aged"))
    ids = [r.face.face_id for r in rows]
    with psycopg.connect(migrated_database) as conn:
        conn.execute(
            "UPDATE faces SET created_at = created_at - %s WHERE face_id = %s",
            (40 * 86_400.0, ids[1]),
        )
    cutoff = time.time() - 30 * 86_400.0
    assert service.store.faces_older_than("r", cutoff) == [ids[1]]
    with pytest.raises(ResourceNotFoundError):
        service.store.faces_older_than("missing", cutoff)
    assert service.purge_expired("r", 30) == [ids[1]]
    assert set(service.store.faces_by_id("r", ids)) == {ids[0], ids[2]}
    service.close()


# -- search in the database ----------------------------------------------------------------------
def test_search_uses_the_collections_hnsw_index_and_matches_exact_search(
    store: PostgresStore, migrated_database: str
) -> None:
    rng = np.random.default_rng(11)
    gallery = _unit(rng, 2000)
    store.create_collection("g", "p", DIM)
    store.create_collection("other", "p", DIM)
    rows = [store.add_faces("g", _faces(gallery[i : i + 500], "g")) for i in range(0, 2000, 500)]
    ids = np.array([r.row_id for chunk in rows for r in chunk])
    other = store.add_faces("other", _faces(gallery[:50], "twin"))  # the same vectors
    other_rows = {r.row_id for r in other}

    queries = gallery[rng.choice(2000, 20, replace=False)] + 0.05 * _unit(rng, 20)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    hits = store.search_vectors("g", queries, k=10, ef_search=100)
    stored = gallery.astype(np.float16).astype(np.float32)
    exact = ids[np.argsort(-(queries @ stored.T), axis=1)[:, :10]]
    recall = np.mean([len(set(h) & set(e)) / 10 for h, e in zip(hits.ids, exact, strict=True)])
    assert recall >= 0.95
    assert not other_rows & set(hits.ids.ravel().tolist())  # never another collection's faces
    assert np.all(np.diff(hits.cosines, axis=1) <= 1e-6)  # best first
    expected = np.sum(queries[:, None, :] * stored[np.searchsorted(ids, hits.ids)], axis=2)
    assert np.allclose(hits.cosines, expected, atol=2e-3)

    # min_cosine cuts the tail (padding -1 / -inf); k above pgvector's ef_search cap (1,000)
    # still returns k results, in order, through the iterative scan
    best = np.sort(queries[0] @ stored.T)[::-1]
    cut = float(best[4] + best[5]) / 2  # between the 5th and the 6th best cosine
    some = store.search_vectors("g", queries[0], k=50, min_cosine=cut)
    kept = some.ids[0] >= 0
    assert kept.sum() == 5 and np.all(some.cosines[0][kept] >= cut)
    assert np.all(some.cosines[0][~kept] == -np.inf)
    many = store.search_vectors("g", queries[0], k=1500)
    assert np.all(many.ids >= 0) and len(set(many.ids[0].tolist())) == 1500
    assert np.all(np.diff(many.cosines[0]) <= 1e-6)

    # the plan reads the collection's own partial index (once the planner has statistics and
    # is kept from the exact plans it prefers at this small size)
    pk = 1
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        conn.execute("ANALYZE faces")
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                f"EXPLAIN SELECT row_id FROM faces WHERE collection_pk = {pk} "
                f"ORDER BY embedding::halfvec({DIM}) <=> %s::halfvec({DIM}) LIMIT 10",
                ("[" + ",".join(["0.1"] * DIM) + "]",),
            )
        )
    assert hnsw_index_name(pk) in plan


# -- several processes ---------------------------------------------------------------------------
def test_writers_in_several_processes_keep_the_guarantees(migrated_database: str) -> None:
    """Two stores (as two API processes would have) on one database: each sees the other's
    writes at once; concurrent associations never take a user past its limit; one
    ClientRequestToken creates one user."""
    first, second = PostgresStore(migrated_database), PostgresStore(migrated_database)
    try:
        first.create_collection("c", "p", DIM)
        vectors = _unit(np.random.default_rng(5), 40)
        faces = first.add_faces("c", _faces(vectors, "shared"))
        hits = second.search_vectors("c", vectors[7], k=1)
        assert hits.ids[0][0] == faces[7].row_id  # found through the other store at once

        first.create_user("c", "u")
        ids = [r.face.face_id for r in faces]
        results = []

        def associate(store: PostgresStore, chunk: list[str]) -> None:
            for face_id in chunk:
                results.append(store.associate("c", "u", [face_id], max_faces_per_user=15))

        workers = [
            threading.Thread(target=associate, args=(s, ids[i::4]))
            for i, s in enumerate([first, second, first, second])
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert len(second.list_faces("c", after_row=0, limit=100, user_id="u")) == 15
        assert sum(len(r.changed) for r in results) == 15
        assert sum(r.limit_exceeded for r in results) == 25

        outcomes: list[object] = []

        def create_once(store: PostgresStore) -> None:
            outcomes.append(
                store.create_user_once("c", "v", request_token="tok-1", params='{"UserId":"v"}')
            )

        racers = [threading.Thread(target=create_once, args=(s,)) for s in (first, second) * 3]
        for r in racers:
            r.start()
        for r in racers:
            r.join()
        assert outcomes.count(None) == 1  # created once; the others replayed its record
        assert first.user_exists("c", "v")

        # enrolments from both at once: nothing lost, and the kept counts stay exact
        def enrol(store: PostgresStore, seed: int) -> None:
            for vector in _unit(np.random.default_rng(seed), 25):
                store.add_faces("c", _faces(vector[None, :], f"race-{seed}"))

        enrolers = [
            threading.Thread(target=enrol, args=(s, i)) for i, s in enumerate([first, second] * 2)
        ]
        for e in enrolers:
            e.start()
        for e in enrolers:
            e.join()
        described = second.collection("c")
        with psycopg.connect(migrated_database) as conn:
            counted = conn.execute("SELECT COUNT(*) FROM faces").fetchone()
        assert described.face_count == 40 + 100 == counted[0]  # type: ignore[index]
        assert described.user_count == 2
    finally:
        first.close()
        second.close()


def test_each_replicas_in_memory_index_follows_every_writer(
    migrated_database: str, tmp_path: Path
) -> None:
    """Two API processes' in-memory indexes (``CollectionIndexes`` over two stores on one
    database): each replays the change log before searching, so it finds the other's
    enrolments at once, loses none of many concurrent ones, drops the other's deletions (from
    memory and from its snapshot on disk), and rebuilds when the collection is made again."""
    first, second = PostgresStore(migrated_database), PostgresStore(migrated_database)
    one = CollectionIndexes(first, tmp_path / "one")
    two = CollectionIndexes(second, tmp_path / "two")
    try:
        first.create_collection("c", "p", DIM)
        vectors = _unit(np.random.default_rng(8), 40)
        faces = first.add_faces("c", _faces(vectors, "a"))
        ids, cosines = two.search("c", vectors[7], k=1, min_cosine=0.0)
        assert int(ids[0]) == faces[7].row_id and cosines[0] > 0.999

        # concurrent enrolment through both while the second replica keeps replaying
        stop = threading.Event()

        def enrol(store: PostgresStore, seed: int) -> None:
            for vector in _unit(np.random.default_rng(seed), 30):
                store.add_faces("c", _faces(vector[None, :], f"race-{seed}"))

        def replay() -> None:
            while not stop.is_set():
                two.get("c")

        reader = threading.Thread(target=replay)
        reader.start()
        enrolers = [
            threading.Thread(target=enrol, args=(s, 100 + i))
            for i, s in enumerate([first, second] * 2)
        ]
        for e in enrolers:
            e.start()
        for e in enrolers:
            e.join()
        stop.set()
        reader.join()
        rows = [r.row_id for r in second.list_faces("c", after_row=0, limit=1000)]
        assert len(rows) == 40 + 120
        for replica in (one, two):
            index = replica.get("c")
            assert len(index) == len(rows) and all(index.contains(r) for r in rows)

        # a deletion through one leaves the other's memory and its snapshot
        two.save("c")
        snapshot = tmp_path / "two" / "c.index"
        assert snapshot.is_file()
        first.delete_faces("c", [faces[7].face.face_id])
        two.refresh_all()  # the maintenance pass, with no search in between
        assert not snapshot.exists()
        assert not two.get("c").contains(faces[7].row_id)
        ids, _ = two.search("c", vectors[7], k=1, min_cosine=0.0)
        assert int(ids[0]) != faces[7].row_id

        # a restart loads the snapshot (written again) and catches up from its sequence number
        two.save("c")
        more = first.add_faces("c", _faces(_unit(np.random.default_rng(9), 3), "late"))
        restarted = CollectionIndexes(second, tmp_path / "two")
        index = restarted.get("c")
        assert len(index) == len(rows) - 1 + 3 and index.contains(more[2].row_id)

        # the database restored from a backup older than the index (the last 3 changes gone):
        # the replica rebuilds, and the change numbers taken again later are not skipped
        with psycopg.connect(migrated_database) as conn:
            conn.execute("DELETE FROM faces WHERE row_id = ANY(%s)", ([m.row_id for m in more],))
            conn.execute(
                "DELETE FROM face_changes WHERE seq > (SELECT change_seq - 3 FROM collections)"
            )
            conn.execute(
                "UPDATE collections SET change_seq = change_seq - 3, face_count = %s",
                (len(rows) - 1,),
            )
        index = restarted.get("c")
        assert len(index) == len(rows) - 1 and not index.contains(more[0].row_id)
        again = first.add_faces("c", _faces(_unit(np.random.default_rng(12), 1), "again"))
        assert restarted.get("c").contains(again[0].row_id)

        # the collection deleted and made again through the first: the second rebuilds
        first.delete_collection("c")
        first.create_collection("c", "p", DIM)
        fresh = first.add_faces("c", _faces(_unit(np.random.default_rng(10), 2), "new"))
        for replica in (two, restarted):
            index = replica.get("c")
            assert len(index) == 2 and all(index.contains(f.row_id) for f in fresh)
    finally:
        first.close()
        second.close()


def test_pagination_tokens_work_on_every_replica(migrated_database: str, tmp_path: Path) -> None:
    one = CollectionService(Settings(data_dir=tmp_path / "a", database_url=migrated_database))
    two = CollectionService(Settings(data_dir=tmp_path / "b", database_url=migrated_database))
    for name in ("c0", "c1", "c2"):
        one.store.create_collection(name, "p", DIM)
    page, token = one.list_collections(max_results=2)
    assert [c.collection_id for c in page] == ["c0", "c1"] and token
    rest, _ = two.list_collections(max_results=2, next_token=token)
    assert [c.collection_id for c in rest] == ["c2"]
    one.close()
    two.close()


def test_vector_search_setting_chooses_memory_or_the_database(
    migrated_database: str, tmp_path: Path
) -> None:
    """``FACELEDGER_VECTOR_SEARCH``: the in-memory index by default, pgvector's HNSW search
    with ``database``; both find a face enrolled through the other; ``database`` needs a
    PostgreSQL URL."""
    memory = CollectionService(Settings(data_dir=tmp_path / "m", database_url=migrated_database))
    database = CollectionService(
        Settings(data_dir=tmp_path / "d", database_url=migrated_database, vector_search="database")
    )
    assert isinstance(memory.indexes, CollectionIndexes)
    assert isinstance(database.indexes, PostgresVectors)
    memory.store.create_collection("c", "p", DIM)
    vectors = _unit(np.random.default_rng(11), 5)
    rows = memory.store.add_faces("c", _faces(vectors, "x"))
    for service in (memory, database):
        ids, _ = service.indexes.search("c", vectors[3], k=1, min_cosine=0.0)
        assert int(ids[0]) == rows[3].row_id
    memory.close()
    database.close()
    with pytest.raises(ValueError, match="FACELEDGER_DATABASE_URL"):
        Settings(data_dir=tmp_path, vector_search="database")
