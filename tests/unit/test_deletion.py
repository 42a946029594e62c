"""Deletion really deletes, and retention purges old faces.

After DeleteFaces, DeleteCollection or a retention purge, a deleted face's embedding must be in
no file of the data directory — the SQLite file, its ``-wal`` and ``-shm``, the index
snapshots — neither as the stored float32 vector nor as the ANN index's float16 copy, nor as a
32-byte fragment of either; nor its kept crop (``keep_face_crops``), sealed or in plain JPEG.
Each test first checks that the same bytes *were* there, so it can fail. Collections are big
enough for both backends: a few real LFW faces (exact index), or those plus thousands of
synthetic unit vectors added through the store (ANN index).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from faceledger.config import Settings
from faceledger.domain.collections import BoundingBox
from faceledger.domain.errors import InvalidParameterError, ResourceNotFoundError
from faceledger.index import ANNIndex, ExactIndex, IndexPolicy
from faceledger.services.collections import CollectionService
from faceledger.services.crop_keys import CropCipher
from faceledger.services.faces import FaceService
from faceledger.store.sqlite.faces import NewFace, SQLiteStore
from helpers import services
from helpers.data import lfw_people

SYNTHETIC_FACES = 3000
#: With this policy a 128-d collection above 1,000 faces gets an ANN index.
ANN_POLICY = IndexPolicy(exact_max_size=1000)
DAY_S = 86_400.0


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread() -> Iterator[None]:
    """Behaviour, not speed: OpenMP spinning on a busy small box only slows the tests."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def face_service() -> Iterator[FaceService]:
    with services.face_service() as faces:
        yield faces


@pytest.fixture(scope="module")
def people(data_dir: Path) -> dict[str, list[Path]]:
    """Four LFW people with at least two images each."""
    return lfw_people(data_dir, 2, 4)


def _service(data: Path, face_service: FaceService, backend: str) -> CollectionService:
    service = CollectionService(Settings(data_dir=data, workers=1), faces=face_service)
    if backend == "ann":
        service.indexes._policy = ANN_POLICY
    return service


def _unit_vectors(n: int, dim: int, seed: int) -> NDArray[np.float32]:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _fill(
    service: CollectionService,
    collection_id: str,
    people: dict[str, list[Path]],
    backend: str,
    photo: int = 0,
) -> dict[str, str]:
    """Create the collection, enrol each person's ``photo``-th image (and, for ``ann``,
    thousands of synthetic faces through the store); returns person → FaceId."""
    service.create_collection(collection_id)
    if backend == "ann":
        dim = service.faces.engine.embedding_size
        box = BoundingBox(0.1, 0.1, 0.5, 0.5)
        synthetic = _unit_vectors(SYNTHETIC_FACES, dim, seed=len(collection_id))
        service.store.add_faces(
            collection_id, [NewFace("0" * 64, None, box, 99.0, v) for v in synthetic]
        )
    enrolled = {}
    for name, images in people.items():
        result = service.index_faces(collection_id, images[photo], external_image_id=name)
        enrolled[name] = result.face_records[0][0].face_id
    index = service.indexes.get(collection_id)
    if backend == "ann":
        assert isinstance(index, ANNIndex) and index.is_trained
    else:
        assert isinstance(index, ExactIndex)
    return enrolled


# -- finding bytes in files ----------------------------------------------------------------------
def _distinctive_slice(blob: bytes, size: int = 32) -> bytes:
    """The ``size``-byte window of ``blob`` with the most distinct byte values."""
    starts = range(0, len(blob) - size + 1, 2)
    best = max(starts, key=lambda s: len(set(blob[s : s + size])))
    return blob[best : best + size]


def _needles(vector: NDArray[np.float32]) -> dict[str, bytes]:
    """The byte patterns a stored copy of ``vector`` would leave in a file."""
    f32 = np.ascontiguousarray(vector, dtype="<f4").tobytes()
    f16 = np.ascontiguousarray(vector, dtype="<f2").tobytes()
    return {
        "float32": f32,
        "float32[32 B]": _distinctive_slice(f32),
        "float16": f16,
        "float16[32 B]": _distinctive_slice(f16),
    }


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative name → contents)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _where(root: Path, vector: NDArray[np.float32]) -> dict[str, list[str]]:
    """For each byte pattern of ``vector``: the files under ``root`` that contain it."""
    files = _files(root)
    return {
        name: [f for f, data in files.items() if needle in data]
        for name, needle in _needles(vector).items()
    }


def _assert_present(root: Path, vector: NDArray[np.float32], backend: str) -> None:
    """Before deletion: the store holds the float32 vector; the snapshot its backend's copy."""
    found = _where(root, vector)
    for name in ("float32", "float32[32 B]"):
        assert any(f.startswith("faceledger.sqlite3") for f in found[name]), found
    copy = "float16" if backend == "ann" else "float32"
    assert any(f.startswith("indexes/") for f in found[copy]), found
    assert any(f.startswith("indexes/") for f in found[f"{copy}[32 B]"]), found


def _assert_absent(root: Path, vector: NDArray[np.float32]) -> None:
    assert _where(root, vector) == {name: [] for name in _needles(vector)}


def _match_ids(service: CollectionService, collection_id: str, photo: Path) -> list[str]:
    found = service.search_faces_by_image(collection_id, photo, threshold=0, max_faces=4096)
    return [m.face.face_id for m in found.matches]


# -- DeleteFaces ---------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["exact", "ann"])
def test_delete_faces_leaves_no_copy_of_the_vector(
    tmp_path: Path, face_service: FaceService, people: dict[str, list[Path]], backend: str
) -> None:
    service = _service(tmp_path, face_service, backend)
    enrolled = _fill(service, "g", people, backend)
    name = list(people)[1]
    target = enrolled[name]
    row_id, vector = service.store.embedding("g", target)
    assert _match_ids(service, "g", people[name][1])[0] == target
    service.indexes.save_all()
    _assert_present(tmp_path, vector, backend)

    assert service.delete_faces("g", [target]) == ([target], [])
    _assert_absent(tmp_path, vector)
    assert not service.indexes.get("g").contains(row_id)
    assert target not in _match_ids(service, "g", people[name][1])
    assert not (tmp_path / "indexes" / "g.index").exists()  # a stale snapshot is gone

    # a restart before the next snapshot (as after a crash) rebuilds from the store
    restarted = _service(tmp_path, face_service, backend)
    assert target not in _match_ids(restarted, "g", people[name][1])
    others = _match_ids(restarted, "g", people[list(people)[2]][1])
    assert others[0] == enrolled[list(people)[2]]
    # the snapshots written on close are clean, and a restart from them still finds nothing
    restarted.close()
    service.close()
    assert (tmp_path / "indexes" / "g.index").is_file()
    _assert_absent(tmp_path, vector)
    again = _service(tmp_path, face_service, backend)
    assert target not in _match_ids(again, "g", people[name][1])
    assert len(again.indexes.get("g")) == len(people) - 1 + (
        SYNTHETIC_FACES if backend == "ann" else 0
    )


# -- DeleteCollection ----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["exact", "ann"])
def test_delete_collection_leaves_no_copy_of_its_vectors(
    tmp_path: Path, face_service: FaceService, people: dict[str, list[Path]], backend: str
) -> None:
    service = _service(tmp_path, face_service, backend)
    doomed = _fill(service, "doomed", people, backend)
    kept = _fill(service, "kept", dict(list(people.items())[:2]), "exact", photo=1)
    vectors = [service.store.embedding("doomed", f)[1] for f in doomed.values()]
    synthetic = (
        [v for _, vs in service.store.all_embeddings("doomed") for v in vs[:10]]
        if backend == "ann"
        else []
    )
    kept_vector = service.store.embedding("kept", next(iter(kept.values())))[1]
    service.indexes.save_all()
    for vector in vectors:
        _assert_present(tmp_path, vector, backend)

    service.delete_collection("doomed")
    for vector in [*vectors, *synthetic]:
        _assert_absent(tmp_path, vector)
    assert not any((tmp_path / "indexes").glob("doomed.*"))
    _assert_present(tmp_path, kept_vector, "exact")  # the other collection is untouched
    probe = next(iter(people.values()))[1]
    with pytest.raises(ResourceNotFoundError):
        service.search_faces_by_image("doomed", probe)

    service.close()
    restarted = _service(tmp_path, face_service, backend)
    with pytest.raises(ResourceNotFoundError):
        restarted.search_faces_by_image("doomed", probe)
    for vector in vectors:
        _assert_absent(tmp_path, vector)


# -- the indexes themselves ----------------------------------------------------------------------
def test_exact_remove_zeroes_the_freed_row() -> None:
    vectors = _unit_vectors(5, 16, seed=1)
    index = ExactIndex(16, capacity=8)
    index.add(np.arange(5), vectors)
    index.remove(np.array([1]))  # row 4 moves into the hole; its old row must be zeroed
    index.remove(np.array([3]))  # the last row itself
    assert not np.any(index._vectors[len(index) :])
    held = index._vectors.tobytes()
    for i in (1, 3):
        assert vectors[i].tobytes() not in held


def test_ann_remove_erases_codes_and_fp16_rows(tmp_path: Path) -> None:
    vectors = _unit_vectors(1200, 32, seed=2)
    index = ANNIndex(32, nlist=16, nprobe=16, rerank=100)
    index.add(np.arange(1200), vectors)
    assert index.is_trained and index._ivf.ntotal == 1200
    gone = np.array([3, 500, 1199])
    assert index.remove(gone) == 3
    assert index._ivf.ntotal == 1197 and len(index) == 1197
    assert not np.any(index._rows.gather(np.array([3, 500, 1199])))  # slot = id here
    ids, _ = index.search(vectors[gone], k=5)
    assert not set(ids.ravel().tolist()) & set(gone.tolist())
    index.save(tmp_path / "a.index")
    blob = (tmp_path / "a.index").read_bytes()
    for i in gone:
        assert _distinctive_slice(vectors[i].astype("<f2").tobytes()) not in blob
    loaded = ANNIndex.load(tmp_path / "a.index")
    assert len(loaded) == 1197 and loaded._ivf.ntotal == 1197
    assert loaded.search(vectors[[10]], k=1).ids[0, 0] == 10


def test_ann_snapshot_with_tombstoned_codes_is_erased_on_load(tmp_path: Path) -> None:
    """Snapshots written before removal erased data (dead slots still coded) load cleanly."""
    vectors = _unit_vectors(1200, 32, seed=3)
    index = ANNIndex(32, nlist=16, nprobe=16, rerank=100)
    index.add(np.arange(1200), vectors)
    index._slot_ids[7] = -1  # the old remove: a tombstone only
    index._id_slot[7] = -1
    index._n, index._dead = 1199, 1
    index.save(tmp_path / "old.index")
    loaded = ANNIndex.load(tmp_path / "old.index")
    assert loaded._ivf.ntotal == 1199 and not np.any(loaded._rows.gather(np.array([7])))
    assert not loaded.contains(7) and loaded.contains(8)


# -- retention -----------------------------------------------------------------------------------
def _age(database: Path, face_id: str, days: float) -> None:
    """Test-only: pretend a face was enrolled ``days`` days ago."""
    db = sqlite3.connect(database)
    with db:
        db.execute(
            "UPDATE faces SET created_at = ? WHERE face_id = ?",
            (time.time() - days * DAY_S, face_id),
        )
    db.close()


def test_faces_older_than(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "faceledger.sqlite3")
    store.create_collection("c", "p", 4)
    box = BoundingBox(0, 0, 1, 1)
    rows = store.add_faces("c", [NewFace("a" * 64, None, box, 99.0, v) for v in np.eye(4)])
    ids = [r.face.face_id for r in rows]
    _age(store.path, ids[2], 40)
    _age(store.path, ids[0], 10)
    cutoff = time.time() - 30 * DAY_S
    assert store.faces_older_than("c", cutoff) == [ids[2]]
    assert store.faces_older_than("c", time.time() + 1) == ids
    with pytest.raises(ResourceNotFoundError):
        store.faces_older_than("missing", cutoff)


def test_purge_expired_deletes_old_faces_and_their_user_links(
    tmp_path: Path, face_service: FaceService, people: dict[str, list[Path]]
) -> None:
    service = _service(tmp_path, face_service, "exact")
    enrolled = _fill(service, "r", people, "exact")
    names = list(people)
    old, old_of_user, recent, new = (enrolled[n] for n in names)
    database = tmp_path / "faceledger.sqlite3"
    _age(database, old, 40)
    _age(database, old_of_user, 31)
    _age(database, recent, 29)
    service.store.create_user("r", "alice")
    assert service.store.associate("r", "alice", [old_of_user, recent]).changed
    vectors = {f: service.store.embedding("r", f)[1] for f in (old, old_of_user)}
    service.indexes.save_all()
    for vector in vectors.values():
        _assert_present(tmp_path, vector, "exact")

    assert service.purge_expired("r", None) == []  # no retention: nothing happens
    assert service.describe_collection("r").face_count == 4
    assert service.purge_expired("r", 30) == [old, old_of_user]

    left, _ = service.list_faces("r")
    assert [f.face_id for f in left] == [recent, new]
    # the user stays, with the faces that did not expire
    assert [f.face_id for f in service.list_faces("r", user_id="alice")[0]] == [recent]
    for vector in vectors.values():
        _assert_absent(tmp_path, vector)
    assert old_of_user not in _match_ids(service, "r", people[names[1]][1])
    assert service.purge_expired("r", 30) == []  # idempotent

    # ``now`` moves the cutoff: a year on, everything has expired
    assert service.purge_expired("r", 30, now=time.time() + 365 * DAY_S) == [recent, new]
    assert service.store.user_exists("r", "alice")
    assert service.list_faces("r", user_id="alice")[0] == []
    service.close()
    restarted = _service(tmp_path, face_service, "exact")
    assert _match_ids(restarted, "r", people[names[3]][1]) == []


@pytest.mark.parametrize("days", [0, -1, 0.0, True, "30"])
def test_purge_expired_refuses_a_bad_period(tmp_path: Path, days: object) -> None:
    service = CollectionService(Settings(data_dir=tmp_path, workers=1))
    service.store.create_collection("r", "p", 4)  # no model needed: nothing is enrolled
    with pytest.raises(InvalidParameterError, match="retention_days"):
        service.purge_expired("r", days)  # type: ignore[arg-type]
    with pytest.raises(ResourceNotFoundError):
        service.purge_expired("missing", 30)


def test_delete_user_keeps_the_faces_and_leaves_no_trace_of_the_user(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "faceledger.sqlite3")
    store.create_collection("c", "p", 4)
    box = BoundingBox(0, 0, 1, 1)
    (row,) = store.add_faces("c", [NewFace("a" * 64, None, box, 99.0, np.eye(4)[0])])
    user = "user-who-asked-to-be-forgotten"
    store.create_user("c", user)
    store.associate("c", user, [row.face.face_id])
    assert any(user.encode() in data for data in _files(tmp_path).values())
    store.delete_user("c", user)
    assert not any(user.encode() in data for data in _files(tmp_path).values())
    assert store.faces_by_id("c", [row.face.face_id])[row.face.face_id].face.user_id is None


def test_a_busy_checkpoint_is_retried_then_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    from faceledger.store.sqlite import faces as sqlite_store

    monkeypatch.setattr(sqlite_store, "CHECKPOINT_BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_ATTEMPTS", 3)
    store = SQLiteStore(tmp_path / "faceledger.sqlite3")
    store.create_collection("c", "p", 4)
    box = BoundingBox(0, 0, 1, 1)
    rows = store.add_faces("c", [NewFace("a" * 64, None, box, 99.0, v) for v in np.eye(4)])
    wal = tmp_path / "faceledger.sqlite3-wal"

    def open_reader() -> sqlite3.Connection:
        """Another connection inside a read transaction on the snapshot before the delete."""
        reader = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM faces").fetchone()
        return reader

    reader = open_reader()
    assert store.delete_faces("c", [rows[0].face.face_id]) == [rows[0].face.face_id]
    assert "could not be checkpointed" in caplog.text and wal.stat().st_size > 0
    reader.close()
    assert store.scrub_wal() and wal.stat().st_size == 0  # the next one succeeds

    monkeypatch.setattr(sqlite_store, "CHECKPOINT_ATTEMPTS", 30)  # a window of seconds
    reader = open_reader()  # a reader that finishes while the checkpoint retries
    threading.Timer(0.08, reader.close).start()
    caplog.clear()
    assert store.delete_faces("c", [rows[1].face.face_id]) == [rows[1].face.face_id]
    assert "could not be checkpointed" not in caplog.text and wal.stat().st_size == 0


# -- kept face crops -----------------------------------------------------------------------------
class _KeptCrops:
    """A crop sealer (``keep_face_crops``) that remembers each face's JPEG and sealed bytes."""

    def __init__(self, key_file: Path) -> None:
        self._cipher = CropCipher(os.urandom(32), key_file)
        self.kept: dict[str, tuple[bytes, bytes]] = {}

    def __call__(self, face_id: str, jpeg: bytes) -> bytes:
        sealed = self._cipher.seal(face_id, jpeg)
        self.kept[face_id] = (jpeg, sealed)
        return sealed


def _crop_needles(jpeg: bytes, sealed: bytes) -> dict[str, bytes]:
    """The bytes a stored crop would leave: the sealed row, and the plain JPEG (its scan data:
    the headers are the same in every crop). A crop spans several database pages, so whole
    copies are not contiguous in the files: the 32-byte fragments are what finds them."""
    body = jpeg[len(jpeg) // 2 :]
    return {
        "sealed": sealed,
        "sealed[32 B]": _distinctive_slice(sealed[12:]),
        "jpeg": jpeg,
        "jpeg[32 B]": _distinctive_slice(body),
    }


def _crop_where(root: Path, jpeg: bytes, sealed: bytes) -> dict[str, list[str]]:
    files = _files(root)
    return {
        name: [f for f, data in files.items() if needle in data]
        for name, needle in _crop_needles(jpeg, sealed).items()
    }


@pytest.mark.parametrize("deletion", ["DeleteFaces", "DeleteCollection", "retention"])
def test_deletion_leaves_no_copy_of_the_kept_crop(
    tmp_path: Path, face_service: FaceService, people: dict[str, list[Path]], deletion: str
) -> None:
    data = tmp_path / "data"
    service = _service(data, face_service, "exact")
    service.create_collection("k")
    seal = _KeptCrops(tmp_path / "keys" / "crops.key")
    for name, images in people.items():
        service.index_faces("k", images[0], external_image_id=name, seal_crop=seal)
    assert len(seal.kept) == len(people)
    target, (jpeg, sealed) = next(iter(seal.kept.items()))
    other_jpeg, other_sealed = list(seal.kept.values())[1]
    before = _crop_where(data, jpeg, sealed)
    # the sealed crop is in the store's files; the plain JPEG in none, ever
    assert any(f.startswith("faceledger.sqlite3") for f in before["sealed[32 B]"]), before
    assert before["jpeg"] == [] and before["jpeg[32 B]"] == []

    if deletion == "DeleteFaces":
        assert service.delete_faces("k", [target]) == ([target], [])
    elif deletion == "DeleteCollection":
        service.delete_collection("k")
    else:
        _age(data / "faceledger.sqlite3", target, 40)
        assert service.purge_expired("k", 30) == [target]
    empty = {name: [] for name in _crop_needles(jpeg, sealed)}
    assert _crop_where(data, jpeg, sealed) == empty
    kept_other = _crop_where(data, other_jpeg, other_sealed)["sealed[32 B]"]
    assert bool(kept_other) == (deletion != "DeleteCollection")  # only what was deleted went
    service.close()
    assert _crop_where(data, jpeg, sealed) == empty
