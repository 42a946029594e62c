"""Vector indexes: both backends behave the same; ANN agrees with the exact oracle."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from faceledger.index import (
    ANNIndex,
    ExactIndex,
    IndexPolicy,
    VectorIndex,
    build_index,
    load_index,
    make_index,
)

DIM = 64


def clustered(
    n_ids: int, per_id: int, *, dim: int = DIM, seed: int = 0, noise: float = 0.08
) -> np.ndarray:
    """Unit vectors around random unit centres (same-identity cosine ≈ 0.6 at noise 0.08)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.repeat(centres, per_id, axis=0)
    x += noise * rng.standard_normal(x.shape).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def ids_for(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * 3 + 7  # sparse, like store row ids after deletes


def ann_small() -> ANNIndex:
    """An ANN index that trains after 16·32 = 512 vectors (fast in tests)."""
    return ANNIndex(DIM, nlist=32, nprobe=16, rerank=200)


BACKENDS: dict[str, Callable[[], VectorIndex]] = {
    "exact": lambda: ExactIndex(DIM),
    "ann": ann_small,
}


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread() -> Iterator[None]:
    """Tests check behaviour, not speed: OpenMP spinning on a busy 2-core box only slows them."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x = clustered(400, 5)
    return ids_for(len(x)), x


@pytest.fixture(scope="module")
def saved(
    data: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Each backend filled once (two batches: the ANN index trains during the first), saved."""
    ids, x = data
    folder = tmp_path_factory.mktemp("indexes")
    out = {}
    for name, make in BACKENDS.items():
        index = make()
        index.add(ids[:1000], x[:1000])
        index.add(ids[1000:], x[1000:])
        out[name] = folder / f"{name}.bin"
        index.save(out[name])
    return out


@pytest.fixture(params=sorted(BACKENDS))
def filled(request: pytest.FixtureRequest, saved: dict[str, Path]) -> VectorIndex:
    """A fresh copy per test (tests mutate it)."""
    return load_index(saved[request.param])


def test_protocol_and_training(filled: VectorIndex, data: tuple[np.ndarray, np.ndarray]) -> None:
    assert isinstance(filled, VectorIndex)
    assert len(filled) == len(data[0]) and filled.dim == DIM
    if isinstance(filled, ANNIndex):
        assert filled.is_trained and filled.nlist == 32


def test_search_finds_itself(filled: VectorIndex, data: tuple[np.ndarray, np.ndarray]) -> None:
    ids, x = data
    hits = filled.search(x[::97], k=5)
    assert hits.ids.shape == (len(x[::97]), 5) and hits.ids.dtype == np.int64
    assert hits.cosines.dtype == np.float32
    assert (hits.ids[:, 0] == ids[::97]).all()
    np.testing.assert_allclose(hits.cosines[:, 0], 1.0, atol=2e-3)
    assert (np.diff(hits.cosines, axis=1) <= 1e-6).all()  # sorted, best first
    one = filled.search(x[0], k=1)  # a single 1-D query is accepted
    assert one.ids.shape == (1, 1)


def test_save_load_round_trip(
    filled: VectorIndex, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    ids, x = data
    before = filled.search(x[:50], k=10)
    path = tmp_path / "sub" / "index.bin"
    filled.save(path)
    filled.save(path)  # overwriting is atomic too
    assert [p.name for p in path.parent.iterdir()] == ["index.bin"]  # no temp files left
    for loaded in (type(filled).load(path), load_index(path)):
        assert type(loaded) is type(filled) and len(loaded) == len(filled)
        after = loaded.search(x[:50], k=10)
        np.testing.assert_array_equal(after.ids, before.ids)
        np.testing.assert_allclose(after.cosines, before.cosines, atol=1e-6)
        assert loaded.contains(int(ids[3])) and not loaded.contains(1)


def test_padding_when_k_exceeds_size() -> None:
    x = clustered(3, 1)
    for make in BACKENDS.values():
        index = make()
        index.add(np.array([5, 9, 11]), x)
        hits = index.search(x[:2], k=6)
        assert (hits.ids[:, 3:] == -1).all() and np.isneginf(hits.cosines[:, 3:]).all()
        assert set(hits.ids[0, :3].tolist()) == {5, 9, 11}


def test_min_cosine_filters(filled: VectorIndex, data: tuple[np.ndarray, np.ndarray]) -> None:
    _, x = data
    hits = filled.search(x[:20], k=20, min_cosine=0.5)
    kept = hits.ids >= 0
    assert kept[:, 0].all()  # each query finds itself
    assert (hits.cosines[kept] >= 0.5).all()
    assert np.isneginf(hits.cosines[~kept]).all()
    assert not kept.all()  # with 5 photos per identity, most of 20 are below 0.5


def test_remove(filled: VectorIndex, data: tuple[np.ndarray, np.ndarray]) -> None:
    ids, x = data
    gone = ids[:500:2]
    assert filled.remove(np.concatenate([gone, [1, 2]])) == len(gone)  # unknown ids ignored
    assert filled.remove(gone) == 0
    assert len(filled) == len(ids) - len(gone)
    assert not filled.contains(int(gone[0])) and filled.contains(int(ids[1]))
    hits = filled.search(x[:500], k=20)
    assert not np.isin(hits.ids, gone).any()
    filled.add(gone[:3], x[:500:2][:3])  # a removed id may come back
    assert (filled.search(x[:1], k=1).ids[0, 0]) == gone[0]


def test_ann_compacts_after_many_removals() -> None:
    x = clustered(500, 6)
    ids = ids_for(len(x))
    index = ann_small()
    index.add(ids, x)
    index.remove(ids[: len(ids) // 3])  # > 25 % dead → compaction
    assert index.dead_fraction == 0.0 and len(index) == len(ids) - len(ids) // 3
    hits = index.search(x[len(ids) // 3 :: 50], k=3)
    assert (hits.ids[:, 0] == ids[len(ids) // 3 :: 50]).all()


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_invalid_input(name: str) -> None:
    index = BACKENDS[name]()
    x = clustered(4, 1)
    with pytest.raises(ValueError):
        index.add(np.arange(4), clustered(4, 1, dim=DIM + 2))  # dimension mismatch
    index.add(np.arange(4), x)
    with pytest.raises(ValueError):
        index.search(np.zeros((1, DIM + 1), np.float32), k=1)
    with pytest.raises(ValueError):
        index.add(np.array([3]), x[:1])  # duplicate id
    with pytest.raises(ValueError):
        index.add(np.array([-1]), x[:1])  # -1 is padding
    with pytest.raises(ValueError):
        index.add(np.array([10]), 2 * x[:1])  # not normalised
    with pytest.raises(ValueError):
        index.add(np.array([10, 11]), x[:1])  # count mismatch
    with pytest.raises(ValueError):
        index.search(x, k=0)
    assert len(index) == 4


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_empty_index(name: str, tmp_path: Path) -> None:
    index = BACKENDS[name]()
    hits = index.search(clustered(2, 1), k=3)
    assert (hits.ids == -1).all() and np.isneginf(hits.cosines).all()
    assert index.remove(np.array([1])) == 0 and len(index) == 0
    index.save(tmp_path / "empty.bin")
    assert len(load_index(tmp_path / "empty.bin")) == 0


def test_ann_is_exact_until_trained(tmp_path: Path) -> None:
    x = clustered(120, 5)
    ids = ids_for(len(x))
    ann, exact = ann_small(), ExactIndex(DIM)
    ann.add(ids[:300], x[:300])
    exact.add(ids[:300], x[:300])
    assert not ann.is_trained and ann.train_min == 512
    a, e = ann.search(x[::7], k=10), exact.search(x[::7], k=10)
    np.testing.assert_array_equal(a.ids, e.ids)
    ann.save(tmp_path / "pending.bin")  # the untrained state persists too
    reloaded = ANNIndex.load(tmp_path / "pending.bin")
    np.testing.assert_array_equal(reloaded.search(x[::7], k=10).ids, e.ids)
    reloaded.add(ids[300:], x[300:])
    assert reloaded.is_trained and len(reloaded) == len(ids)


def test_ann_recall_against_exact() -> None:
    x = clustered(2000, 10, noise=0.1, seed=1)  # 20,000 vectors
    ids = ids_for(len(x))
    rng = np.random.default_rng(2)
    queries = x[rng.choice(len(x), 300, replace=False)]
    queries = queries + 0.05 * rng.standard_normal(queries.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = ExactIndex(DIM)
    exact.add(ids, x)
    ann = ANNIndex(DIM, expected_size=len(x))  # policy defaults: nlist, nprobe, rerank
    ann.add(ids, x)
    truth, found = exact.search(queries, k=10), ann.search(queries, k=10)
    recall = np.mean([np.isin(truth.ids[i], found.ids[i]).mean() for i in range(len(queries))])
    assert recall >= 0.95, recall
    same = found.ids == truth.ids  # where both agree, the cosines are exact to fp16 rounding
    np.testing.assert_allclose(found.cosines[same], truth.cosines[same], atol=2e-3)


def test_concurrent_searches_agree(
    filled: VectorIndex, data: tuple[np.ndarray, np.ndarray]
) -> None:
    _, x = data
    expected = filled.search(x[:64], k=5).ids
    results: dict[int, np.ndarray] = {}

    def work(t: int) -> None:
        results[t] = np.concatenate([filled.search(x[i : i + 1], k=5).ids for i in range(64)])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results.values():
        np.testing.assert_array_equal(got, expected)


def test_policy_picks_backend_by_size() -> None:
    policy = IndexPolicy(exact_max_size=500)  # 1000 at 64-d
    assert isinstance(make_index(128, expected_size=500, policy=policy), ExactIndex)
    assert isinstance(make_index(128, expected_size=5000, policy=policy), ANNIndex)
    assert policy.exact_limit(512) == 125  # scaled by dimension
    x = clustered(300, 10)
    small = build_index(ids_for(800), x[:800], policy=policy)
    assert isinstance(small, ExactIndex) and len(small) == 800
    big = build_index(ids_for(3000), x, policy=policy)
    assert isinstance(big, ANNIndex) and big.is_trained and len(big) == 3000
    assert not policy.wants_rebuild(big) and not policy.wants_rebuild(small)
    grown = ExactIndex(DIM)
    grown.add(ids_for(1600), x[:1600])
    assert policy.wants_rebuild(grown)
    assert isinstance(build_index(np.zeros(0, np.int64), np.zeros((0, DIM)), dim=DIM), ExactIndex)


def test_load_rejects_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not an index at all")
    with pytest.raises(ValueError):
        load_index(bad)


def test_ann_small_single_query_scans_on_one_openmp_thread(
    data: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small single-query scan runs on one OpenMP thread (threads would double its CPU),
    large scans and batches keep every thread, and the caller's setting is put back."""
    import faiss

    from faceledger.index import ann

    ids, x = data
    index = ann_small()
    index.add(ids, x)
    seen: list[int] = []

    class Recording:
        def __init__(self, ivf: object) -> None:
            self.ivf = ivf

        def search(self, *args: object, **kwargs: object) -> object:
            seen.append(faiss.omp_get_max_threads())
            return self.ivf.search(*args, **kwargs)  # type: ignore[attr-defined]

    index._ivf = Recording(index._ivf)
    faiss.omp_set_num_threads(2)
    try:
        batch = index.search(x[:3], k=5).ids
        single = np.concatenate([index.search(x[i : i + 1], k=5).ids for i in range(3)])
        assert faiss.omp_get_max_threads() == 2  # put back
        monkeypatch.setattr(ann, "PARALLEL_MIN_SCAN", 1)  # now every scan counts as large
        index.search(x[:1], k=5)
    finally:
        faiss.omp_set_num_threads(1)
    assert seen == [2, 1, 1, 1, 2]  # batch, three small single scans, one large
    np.testing.assert_array_equal(single, batch)
