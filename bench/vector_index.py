"""Vector search on embedding-shaped data: faiss vs usearch, exact vs ANN, 1 M and 20 M faces.

    .venv/bin/python bench/vector_index.py [--sizes 1000000,20000000] [--backends a,b,...]
        [--queries 1000] [--curve]

Data (deterministic, seed 7): the real LFW development embeddings of the default pack (from the
``.cache/lfw_*.npz`` file bench/calibrate.py writes; skipped with a message when absent) plus
synthetic identities filling the gallery up to the requested size. A synthetic identity has a
random centre ``c = mu + sqrt(1-rho)·L·z`` and 1 + Poisson(2) faces ``x = normalise(c +
sqrt(rho)·exp(tau·e)·L·z')`` (z, z', e standard normal), where mu and L·Lᵀ are the mean and
covariance of the real LFW embeddings, so synthetic faces are spread like real ones (mean
direction, anisotropy). ``rho`` (within-identity share of variance) and ``tau`` (per-photo
quality spread) are fitted so that synthetic same-identity cosines match the real genuine-pair
quantiles of LFW (identity-balanced: every identity weighs the same, so George W Bush's 530
photos do not dominate); the fit and the resulting genuine/impostor quantiles are in the JSON.

Queries (default 1,000): 60 % new photos of synthetic gallery identities (mated), 20 % new
synthetic identities (non-mated), 15 % held-out LFW photos of people with another photo in the
gallery (mated), 5 % LFW people not in the gallery (non-mated). Ground truth: exact float32 top
100 over the whole gallery (batched numpy matmul, cached in .cache/).

Each backend/config runs in a fresh subprocess (clean RSS): build (train + add, timed without
data generation), single-query latency (one query per call, as an API request; p50/p95/p99 ms)
and recall for a sweep of its search parameter, save (size, time), a small-batch add/remove
test, then a second fresh process loads the saved file (cold start: ``load`` until the first
search returns) and re-runs the queries at the operating point. Recall: ``recall@10`` is the
share of exact top-10 ids found in the index's top 10; ``recall_sim50``/``recall_sim80`` are
the same restricted to exact results whose calibrated Similarity is ≥ 50 / ≥ 80 (the faces a
user must not miss), at k = 10 and k = 100; ``rank1_mate`` is the share of mated queries whose
top result is a true mate (exact and index). Writes bench/results/vector_index.json (merged
across runs, keyed by size and backend) and prints a table.

Backends: exact (faceledger ExactIndex, numpy fp32), faiss-flat, faiss-ivf-fp16,
faiss-ivf-int8, faiss-ivfhnsw-fp16, faiss-hnsw-fp16, usearch-hnsw-f16, usearch-hnsw-i8,
faceledger (``faceledger.index.build_index`` with its default policy). Sizes above 2 M run only
``faceledger`` unless --backends says otherwise. ``--curve`` measures exact vs ANN latency at
small sizes (the exact→ANN switch).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, RESULTS, machine, write_result

SEED = 7
DIM = 128
GT_K = 100
THREADS = 2
IDS_PER_BLOCK = 32_768
EXTRA_FACES_MEAN = 2.0  # faces per synthetic identity: 1 + Poisson(2)
LFW_TARGET_Q = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
RESULT_FILE = "vector_index.json"
SWEEPS: dict[str, list[int]] = {
    "ivf": [16, 64, 256, 512, 1024, 2048],
    "hnsw": [64, 128, 256, 512, 1024],
}


# --- resident memory ---------------------------------------------------------------------------


def rss_mb() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024 / 1e6
    return {"rss_mb": round(out["VmRSS"], 1), "peak_rss_mb": round(out["VmHWM"], 1)}


def trim() -> None:
    """Return freed heap pages to the OS so RSS reflects what is live."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


# --- data model fitted on LFW -----------------------------------------------------------------


def lfw_cache() -> Path | None:
    files = sorted(CACHE.glob("lfw_yunet-sface*.npz"))
    return files[0] if files else None


def load_lfw() -> tuple[np.ndarray, np.ndarray]:
    path = lfw_cache()
    if path is None:
        print("skipped: no LFW embeddings in .cache/ (run bench/calibrate.py first)")
        sys.exit(0)
    data = np.load(path)
    found = data["found"]
    emb = data["embeddings"][found].astype(np.float32)
    labels = np.array([p.split("/")[0] for p in data["paths"][found]])
    return emb, labels


def genuine_cosines(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All same-person pair cosines, with weights 1/pairs(person) (identity-balanced)."""
    _, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    values, weights = [], []
    for person in np.flatnonzero(counts > 1):
        x = emb[inv == person].astype(np.float64)
        s = (x @ x.T)[np.triu_indices(len(x), 1)]
        values.append(s)
        weights.append(np.full(s.size, 1.0 / s.size))
    return np.concatenate(values), np.concatenate(weights)


def weighted_quantiles(v: np.ndarray, w: np.ndarray, q: tuple[float, ...]) -> np.ndarray:
    order = np.argsort(v)
    cw = np.cumsum(w[order]) / w.sum()
    return v[order][np.searchsorted(cw, q)]


@dataclass
class Model:
    mu: np.ndarray  # (D,) float32
    chol: np.ndarray  # (D, D) float32, L with L·Lᵀ = covariance of LFW embeddings
    rho: float
    tau: float
    fit: dict[str, Any]

    def digest(self) -> str:
        h = hashlib.sha256(self.mu.tobytes() + self.chol.tobytes())
        h.update(f"{self.rho:.6f}{self.tau:.6f}".encode())
        return h.hexdigest()[:10]


def fit_model() -> Model:
    cache = CACHE / "vector_index_model.npz"
    if cache.is_file():
        d = np.load(cache, allow_pickle=False)
        return Model(
            d["mu"], d["chol"], float(d["rho"]), float(d["tau"]), json.loads(str(d["fit"]))
        )
    emb, labels = load_lfw()
    e64 = emb.astype(np.float64)
    mu = e64.mean(0)
    chol = np.linalg.cholesky(np.cov(e64.T) + 1e-9 * np.eye(DIM))
    gv, gw = genuine_cosines(emb, labels)
    target = weighted_quantiles(gv, gw, LFW_TARGET_Q)
    # common random numbers: pairs of photos of 20k identities, then a grid over (rho, tau)
    rng = np.random.default_rng(SEED)
    n = 20_000
    c = rng.standard_normal((n, DIM)) @ chol.T
    n1, n2 = (rng.standard_normal((n, DIM)) @ chol.T for _ in range(2))
    e1, e2 = rng.standard_normal(n), rng.standard_normal(n)
    best: tuple[float, float, float] = (math.inf, 0.0, 0.0)
    for rho in np.linspace(0.20, 0.50, 31):
        for tau in np.linspace(0.0, 0.6, 25):
            base = mu + math.sqrt(1 - rho) * c
            x1 = base + (math.sqrt(rho) * np.exp(tau * e1))[:, None] * n1
            x2 = base + (math.sqrt(rho) * np.exp(tau * e2))[:, None] * n2
            cos = np.einsum("ij,ij->i", x1, x2) / np.linalg.norm(x1, axis=1)
            cos /= np.linalg.norm(x2, axis=1)
            err = float(((np.quantile(cos, LFW_TARGET_Q) - target) ** 2).sum())
            if err < best[0]:
                best = (err, float(rho), float(tau))
    _, rho, tau = best
    model = Model(mu.astype(np.float32), chol.astype(np.float32), rho, tau, {})
    # check: synthetic genuine / impostor quantiles vs real
    ds_check = synth_pairs(model, 50_000, np.random.default_rng(SEED + 1))
    iu = np.triu_indices(len(emb), 1)
    _, inv = np.unique(labels, return_inverse=True)
    s = (e64 @ e64.T)[iu]
    imp_real = s[inv[iu[0]] != inv[iu[1]]]
    qs = (0.5, 0.9, 0.99, 0.999)
    model.fit = {
        "method": "grid over rho∈[0.2,0.5], tau∈[0,0.6]; least squares on genuine quantiles",
        "quantiles": list(LFW_TARGET_Q),
        "lfw_genuine_identity_balanced": [round(float(v), 4) for v in target],
        "lfw_genuine_all_pairs": [round(float(v), 4) for v in np.quantile(gv, LFW_TARGET_Q)],
        "synthetic_genuine": [round(float(v), 4) for v in np.quantile(ds_check[0], LFW_TARGET_Q)],
        "impostor_quantiles": list(qs),
        "lfw_impostor": [round(float(v), 4) for v in np.quantile(imp_real, qs)],
        "synthetic_impostor": [round(float(v), 4) for v in np.quantile(ds_check[1], qs)],
        "rho": round(rho, 4),
        "tau": round(tau, 4),
        "lfw_mean_norm": round(float(np.linalg.norm(mu)), 4),
    }
    CACHE.mkdir(exist_ok=True)
    np.savez(cache, mu=model.mu, chol=model.chol, rho=rho, tau=tau, fit=json.dumps(model.fit))
    return model


def synth_faces(model: Model, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One new photo per centre (float32, L2-normalised)."""
    n = centres.shape[0]
    noise = rng.standard_normal((n, DIM), dtype=np.float32) @ model.chol.T
    scale = math.sqrt(model.rho) * np.exp(model.tau * rng.standard_normal(n, dtype=np.float32))
    x = centres + scale[:, None].astype(np.float32) * noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32, copy=False)


def synth_centres(model: Model, n: int, rng: np.random.Generator) -> np.ndarray:
    z = rng.standard_normal((n, DIM), dtype=np.float32) @ model.chol.T
    return (model.mu + math.sqrt(1 - model.rho) * z).astype(np.float32)


def synth_pairs(model: Model, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    c = synth_centres(model, n, rng)
    a, b = synth_faces(model, c, rng), synth_faces(model, c, rng)
    genuine = np.einsum("ij,ij->i", a, b)
    impostor = np.einsum("ij,ij->i", a, np.roll(b, 1, axis=0))
    return genuine, impostor


# --- the gallery and the queries --------------------------------------------------------------


class Dataset:
    """A deterministic gallery of ``size`` faces (LFW first, then synthetic) and its queries."""

    def __init__(self, model: Model, size: int, n_queries: int, seed: int = SEED) -> None:
        self.model, self.size, self.seed = model, size, seed
        emb, labels = load_lfw()
        rng = np.random.default_rng([seed, 0])
        _, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
        n_lfw_mated = round(0.15 * n_queries)
        n_lfw_non = round(0.05 * n_queries)
        multi = rng.choice(np.flatnonzero(counts > 1), n_lfw_mated, replace=False)
        single = rng.choice(np.flatnonzero(counts == 1), n_lfw_non, replace=False)
        held = [int(np.flatnonzero(inv == p)[-1]) for p in multi]
        held += [int(np.flatnonzero(inv == p)[0]) for p in single]
        keep = np.ones(len(emb), bool)
        keep[held] = False
        self.lfw = emb[keep]
        lfw_inv = inv[keep]
        if size < len(self.lfw):
            raise SystemExit(f"size must be ≥ {len(self.lfw)} (the LFW part)")
        # synthetic identities: blocks of IDS_PER_BLOCK identities with their face counts
        self.n_syn = size - len(self.lfw)
        self.block_counts: list[np.ndarray] = []
        total = 0
        while total < self.n_syn:
            c = 1 + np.random.default_rng([seed, 1, len(self.block_counts)]).poisson(
                EXTRA_FACES_MEAN, IDS_PER_BLOCK
            )
            self.block_counts.append(c)
            total += int(c.sum())
        self.block_start = np.cumsum([0] + [int(c.sum()) for c in self.block_counts])
        # queries
        n_syn_non = round(0.20 * n_queries)
        n_syn_mated = n_queries - n_lfw_mated - n_lfw_non - n_syn_non
        qs: list[np.ndarray] = [emb[held]]
        mates: list[np.ndarray] = []
        lfw_ids = np.arange(len(self.lfw), dtype=np.int64)
        for p in multi:
            mates.append(lfw_ids[lfw_inv == p])
        mates += [np.zeros(0, np.int64)] * n_lfw_non
        # mated synthetic: identities whose faces are all in the gallery
        full_ids = self._identities_within()
        picks = np.sort(rng.choice(full_ids, n_syn_mated, replace=False))
        qrng = np.random.default_rng([seed, 2])
        syn_q = []
        for block in np.unique(picks // IDS_PER_BLOCK):
            local = picks[picks // IDS_PER_BLOCK == block] % IDS_PER_BLOCK
            centres = self._centres(int(block))[local]
            syn_q.append(synth_faces(model, centres, qrng))
            counts_b = self.block_counts[block]
            starts = np.concatenate([[0], np.cumsum(counts_b)])
            for j in local:
                first = len(self.lfw) + self.block_start[block] + starts[j]
                mates.append(np.arange(first, first + counts_b[j], dtype=np.int64))
        qs += syn_q
        nrng = np.random.default_rng([seed, 3])
        qs.append(synth_faces(model, synth_centres(model, n_syn_non, nrng), nrng))
        mates += [np.zeros(0, np.int64)] * n_syn_non
        self.queries = np.ascontiguousarray(np.concatenate(qs).astype(np.float32))
        self.mates = mates
        self.kind = (
            ["lfw-mated"] * n_lfw_mated
            + ["lfw-nonmated"] * n_lfw_non
            + ["synthetic-mated"] * n_syn_mated
            + ["synthetic-nonmated"] * n_syn_non
        )

    def _identities_within(self) -> np.ndarray:
        out = []
        for b, counts in enumerate(self.block_counts):
            ends = self.block_start[b] + np.cumsum(counts)
            ok = np.flatnonzero(ends <= self.n_syn)
            out.append(b * IDS_PER_BLOCK + ok)
        return np.concatenate(out)

    def _centres(self, block: int) -> np.ndarray:
        return synth_centres(
            self.model, IDS_PER_BLOCK, np.random.default_rng([self.seed, 4, block])
        )

    def _block_vectors(self, block: int) -> np.ndarray:
        centres = self._centres(block)
        rep = np.repeat(centres, self.block_counts[block], axis=0)
        rng = np.random.default_rng([self.seed, 5, block])
        out = np.empty_like(rep)
        step = 65_536
        for s in range(0, len(rep), step):
            out[s : s + step] = synth_faces(self.model, rep[s : s + step], rng)
        return out

    def batches(self, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, float32 vectors) in order, ``batch`` rows each (the last may be shorter)."""
        pending: list[np.ndarray] = [self.lfw]
        have = len(self.lfw)
        next_id = 0
        produced = 0
        block = 0
        while next_id < self.size:
            while have < batch and produced < self.n_syn:
                v = self._block_vectors(block)[: self.n_syn - produced]
                block += 1
                produced += len(v)
                pending.append(v)
                have += len(v)
            allv = np.concatenate(pending) if len(pending) > 1 else pending[0]
            take = allv[:batch]
            pending = [allv[batch:]] if len(allv) > batch else []
            have = len(allv) - len(take)
            ids = np.arange(next_id, next_id + len(take), dtype=np.int64)
            next_id += len(take)
            yield ids, np.ascontiguousarray(take)

    def extra_vectors(self, n: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 6])
        return synth_faces(self.model, synth_centres(self.model, n, rng), rng)

    def key(self) -> str:
        return f"{self.size}_{len(self.queries)}_{self.seed}_{self.model.digest()}"


def ground_truth(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-GT_K (ids, cosines) of every query over the gallery (cached)."""
    cache = CACHE / f"vector_index_gt_{ds.key()}.npz"
    if cache.is_file():
        d = np.load(cache)
        return d["ids"], d["cosines"]
    t0 = time.perf_counter()
    q = ds.queries
    best_ids = np.full((len(q), GT_K), -1, np.int64)
    best_cos = np.full((len(q), GT_K), -np.inf, np.float32)
    for ids, vecs in ds.batches(250_000):
        s = q @ vecs.T
        top = np.argpartition(-s, GT_K - 1, axis=1)[:, :GT_K]
        cand_ids = np.concatenate([best_ids, ids[top]], axis=1)
        cand_cos = np.concatenate([best_cos, np.take_along_axis(s, top, axis=1)], axis=1)
        keep = np.argpartition(-cand_cos, GT_K - 1, axis=1)[:, :GT_K]
        best_ids = np.take_along_axis(cand_ids, keep, axis=1)
        best_cos = np.take_along_axis(cand_cos, keep, axis=1)
        del s, top
    order = np.argsort(-best_cos, axis=1, kind="stable")
    best_ids = np.take_along_axis(best_ids, order, axis=1)
    best_cos = np.take_along_axis(best_cos, order, axis=1)
    np.savez(cache, ids=best_ids, cosines=best_cos)
    print(f"  ground truth for {ds.size:,} in {time.perf_counter() - t0:.0f} s", flush=True)
    return best_ids, best_cos


# --- backends ---------------------------------------------------------------------------------


def nlist_for(n: int) -> int:
    """≈ 4·√N rounded to a power of two."""
    return int(2 ** round(math.log2(max(4 * math.sqrt(n), 16))))


class Backend:
    """Thin adapters over each library so every config is measured the same way."""

    removable = True

    def __init__(self, size: int) -> None:
        self.size = size
        self.train_s = 0.0
        self.train_batch = 0  # vectors added inside train_s (the project's index trains on add)
        self._sweep = [0]

    def sweep(self) -> list[int]:
        """Values of the search parameter to measure (nprobe, ef…)."""
        return self._sweep

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        raise NotImplementedError

    def set_param(self, value: int) -> None:
        pass

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def remove(self, ids: np.ndarray) -> int:
        raise NotImplementedError

    def save(self, path: Path) -> None:
        raise NotImplementedError

    def load(self, path: Path) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {}


class ExactBackend(Backend):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        from faceledger.index import ExactIndex

        self.index = ExactIndex(DIM, capacity=size)

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        self.index.add(ids, vecs)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(q, k=k)

    def remove(self, ids: np.ndarray) -> int:
        return self.index.remove(ids)

    def save(self, path: Path) -> None:
        self.index.save(path)

    def load(self, path: Path) -> None:
        from faceledger.index import ExactIndex

        self.index = ExactIndex.load(path)

    def describe(self) -> dict[str, Any]:
        return {"library": "numpy", "storage": "fp32"}


class FaissBackend(Backend):
    kind = "flat"
    qtype = "fp16"

    def __init__(self, size: int) -> None:
        super().__init__(size)
        import faiss

        self.faiss = faiss
        faiss.omp_set_num_threads(THREADS)
        self.nlist = nlist_for(size)
        ip = faiss.METRIC_INNER_PRODUCT
        qt = {"fp16": faiss.ScalarQuantizer.QT_fp16, "int8": faiss.ScalarQuantizer.QT_8bit}
        if self.kind == "flat":
            self.index = faiss.IndexIDMap(faiss.IndexFlatIP(DIM))
            self.removable = True
        elif self.kind in ("ivf", "ivfhnsw"):
            if self.kind == "ivf":
                self.quantizer = faiss.IndexFlatIP(DIM)
            else:
                self.quantizer = faiss.IndexHNSWFlat(DIM, 32, ip)
                self.quantizer.hnsw.efSearch = 64
                self.quantizer.hnsw.efConstruction = 64
            self.index = faiss.IndexIVFScalarQuantizer(
                self.quantizer, DIM, self.nlist, qt[self.qtype], ip
            )
            self.index.cp.max_points_per_centroid = 64
            self._sweep = SWEEPS["ivf"]
        else:  # hnsw
            self.hnsw = faiss.IndexHNSWSQ(DIM, qt[self.qtype], 32, ip)
            self.hnsw.hnsw.efConstruction = 40
            self.index = faiss.IndexIDMap(self.hnsw)
            self._sweep = SWEEPS["hnsw"]
            self.removable = False
        self.params: Any = None

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        inner = self.hnsw if self.kind == "hnsw" else self.index
        if not inner.is_trained:
            t0 = time.perf_counter()
            self.index.train(vecs)
            self.train_s = time.perf_counter() - t0
        self.index.add_with_ids(vecs, ids)

    def set_param(self, value: int) -> None:
        if self.kind in ("ivf", "ivfhnsw"):
            self.params = self.faiss.SearchParametersIVF(nprobe=value)
        elif self.kind == "hnsw":
            self.params = self.faiss.SearchParametersHNSW(efSearch=value)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "hnsw":
            self.hnsw.hnsw.efSearch = self.params.efSearch  # IDMap drops params
            d, i = self.index.search(q, k)
        else:
            d, i = self.index.search(q, k, params=self.params)
        return i, d

    def remove(self, ids: np.ndarray) -> int:
        return int(self.index.remove_ids(self.faiss.IDSelectorBatch(ids)))

    def save(self, path: Path) -> None:
        self.faiss.write_index(self.index, str(path))

    def load(self, path: Path) -> None:
        self.index = self.faiss.read_index(str(path))
        if self.kind == "hnsw":
            self.hnsw = self.faiss.downcast_index(self.index.index)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "library": f"faiss-cpu {self.faiss.__version__}",
            "storage": self.qtype if self.kind != "flat" else "fp32",
            "type": type(self.index).__name__,
            "omp_threads": THREADS,
        }
        if self.kind in ("ivf", "ivfhnsw"):
            out.update(nlist=self.nlist, max_points_per_centroid=64)
            out["quantizer"] = "HNSW32" if self.kind == "ivfhnsw" else "flat"
        if self.kind == "hnsw":
            out.update(M=32, efConstruction=40)
        return out


def faiss_backend(kind: str, qtype: str) -> type[Backend]:
    return type(f"Faiss_{kind}_{qtype}", (FaissBackend,), {"kind": kind, "qtype": qtype})


class UsearchBackend(Backend):
    dtype = "f16"
    connectivity = 16
    expansion_add = 128

    def __init__(self, size: int) -> None:
        super().__init__(size)
        from usearch.index import Index

        self.Index = Index
        self.index = Index(
            ndim=DIM,
            metric="ip",
            dtype=self.dtype,
            connectivity=self.connectivity,
            expansion_add=self.expansion_add,
        )
        self._sweep = SWEEPS["hnsw"]

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        self.index.add(ids, vecs, threads=THREADS)

    def set_param(self, value: int) -> None:
        self.index.expansion_search = value

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        m = self.index.search(q, k, threads=1)
        keys = np.asarray(m.keys, dtype=np.int64).reshape(len(q), -1)
        dist = np.asarray(m.distances, dtype=np.float32).reshape(len(q), -1)
        counts = np.asarray(getattr(m, "counts", [keys.shape[1]])).reshape(-1)
        for r, c in enumerate(counts):
            keys[r, c:] = -1
        return keys, 1.0 - dist  # usearch "ip" distance is 1 - dot

    def remove(self, ids: np.ndarray) -> int:
        return int(np.sum(self.index.remove(ids)))

    def save(self, path: Path) -> None:
        self.index.save(str(path))

    def load(self, path: Path) -> None:
        self.index = self.Index.restore(str(path))

    def describe(self) -> dict[str, Any]:
        import usearch

        return {
            "library": f"usearch {usearch.__version__}",
            "storage": self.dtype,
            "connectivity": self.connectivity,
            "expansion_add": self.expansion_add,
            "threads_add": THREADS,
            "simd": self.index.hardware_acceleration,
        }


def usearch_backend(dtype: str) -> type[Backend]:
    return type(f"Usearch_{dtype}", (UsearchBackend,), {"dtype": dtype})


class FaceledgerBackend(Backend):
    """The project's own index as the service uses it (``make_index`` with its policy).

    ``faceledger:max_nlist=8192,rerank=500`` overrides policy / index settings.
    """

    options: ClassVar[dict[str, int]] = {}

    def __init__(self, size: int) -> None:
        super().__init__(size)
        from faceledger.index import IndexPolicy, make_index

        policy_keys = {"exact_max_size", "max_nlist"}
        self.policy = IndexPolicy(**{k: v for k, v in self.options.items() if k in policy_keys})
        self.index: Any = make_index(DIM, expected_size=size, policy=self.policy)
        if "rerank" in self.options and hasattr(self.index, "rerank"):
            self.index.rerank = self.options["rerank"]

    def sweep(self) -> list[int]:
        nlist = getattr(self.index, "nlist", 0)
        if not nlist:
            return [0]
        return sorted({max(1, int(nlist * f)) for f in (1 / 4, 3 / 8, 1 / 2, 5 / 8, 3 / 4, 1)})

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        t0 = time.perf_counter()
        was_trained = getattr(self.index, "is_trained", True)
        self.index.add(ids, vecs)
        if not was_trained and self.index.is_trained:
            self.train_s = time.perf_counter() - t0  # first batch: training + its add
            self.train_batch = len(ids)

    def set_param(self, value: int) -> None:
        if value:
            self.index.nprobe = value

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(q, k=k)

    def remove(self, ids: np.ndarray) -> int:
        return int(self.index.remove(ids))

    def save(self, path: Path) -> None:
        self.index.save(path)

    def load(self, path: Path) -> None:
        from faceledger.index import load_index

        self.index = load_index(path)

    def describe(self) -> dict[str, Any]:
        return {"policy": self.policy.describe(), "options": self.options}


def backend_class(name: str) -> Callable[[int], Backend]:
    if name.startswith("faceledger:"):
        opts = dict(kv.split("=") for kv in name.split(":", 1)[1].split(","))
        return type(
            "FaceledgerVariant",
            (FaceledgerBackend,),
            {"options": {k: int(v) for k, v in opts.items()}},
        )
    return BACKENDS[name]


BACKENDS: dict[str, Callable[[int], Backend]] = {
    "exact": ExactBackend,
    "faiss-flat": faiss_backend("flat", "fp32"),
    "faiss-ivf-fp16": faiss_backend("ivf", "fp16"),
    "faiss-ivf-int8": faiss_backend("ivf", "int8"),
    "faiss-ivfhnsw-fp16": faiss_backend("ivfhnsw", "fp16"),
    "faiss-hnsw-fp16": faiss_backend("hnsw", "fp16"),
    "usearch-hnsw-f16": usearch_backend("f16"),
    "usearch-hnsw-i8": usearch_backend("i8"),
    "faceledger": FaceledgerBackend,
}


# --- measuring --------------------------------------------------------------------------------


def similarity_cosines() -> dict[str, float]:
    from faceledger.inference.calibration import Calibration
    from faceledger.inference.packs import PackRegistry

    cal = Calibration.from_table(PackRegistry().manifest("yunet-sface").calibration)
    return {"sim50": float(cal.cosine(50)), "sim80": float(cal.cosine(80))}


def recall(
    found: np.ndarray, gt_ids: np.ndarray, gt_cos: np.ndarray, k: int, min_cos: float | None
) -> float | None:
    hit = total = 0
    for row in range(len(found)):
        truth = gt_ids[row, :k]
        if min_cos is not None:
            truth = truth[gt_cos[row, :k] >= min_cos]
        total += truth.size
        hit += np.isin(truth, found[row, :k]).sum()
    return round(hit / total, 5) if total else None


def rank1_mate(found: np.ndarray, mates: list[np.ndarray]) -> float:
    mated = [r for r, m in enumerate(mates) if m.size]
    return round(float(np.mean([found[r, 0] in mates[r] for r in mated])), 5)


def timed_queries(backend: Backend, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    for i in range(min(20, len(q))):  # warm-up
        backend.search(q[i : i + 1], k)
    found = np.full((len(q), k), -1, np.int64)
    times = np.empty(len(q))
    for i in range(len(q)):
        t0 = time.perf_counter()
        ids, _ = backend.search(q[i : i + 1], k)
        times[i] = (time.perf_counter() - t0) * 1e3
        found[i, : ids.shape[1]] = ids[0]
    return found, times


def query_report(
    backend: Backend, ds: Dataset, gt: tuple[np.ndarray, np.ndarray], cos: dict[str, float]
) -> dict[str, Any]:
    gt_ids, gt_cos = gt
    out: dict[str, Any] = {}
    for k in (10, 100):
        found, times = timed_queries(backend, ds.queries, k)
        p50, p95, p99 = np.percentile(times, [50, 95, 99])
        out[f"k{k}"] = {
            "p50_ms": round(float(p50), 3),
            "p95_ms": round(float(p95), 3),
            "p99_ms": round(float(p99), 3),
            "recall": recall(found, gt_ids, gt_cos, k, None),
            "recall_sim50": recall(found, gt_ids, gt_cos, k, cos["sim50"]),
            "recall_sim80": recall(found, gt_ids, gt_cos, k, cos["sim80"]),
        }
        if k == 10:
            out["rank1_mate"] = rank1_mate(found, ds.mates)
            out["ids_digest"] = hashlib.sha256(found.tobytes()).hexdigest()[:12]
    return out


def worker_build(cfg: dict[str, Any]) -> dict[str, Any]:
    model = fit_model()
    ds = Dataset(model, cfg["size"], cfg["queries"])
    gt = ground_truth(ds)
    cos = similarity_cosines()
    out: dict[str, Any] = {"backend": cfg["backend"], "size": ds.size}
    trim()
    base = rss_mb()
    backend = backend_class(cfg["backend"])(ds.size)
    out["config"] = backend.describe()
    add_s = 0.0
    batch = cfg.get("batch", 500_000)
    t_all = time.perf_counter()
    for ids, vecs in ds.batches(batch):
        t0 = time.perf_counter()
        backend.add(ids, vecs)
        add_s += time.perf_counter() - t0
        del vecs
    total_s = time.perf_counter() - t_all
    trim()
    after = rss_mb()
    out["build"] = {
        "batch": batch,
        "train_s": round(backend.train_s, 2),
        "add_s_incl_train": round(add_s, 2),
        "add_per_s": round((ds.size - backend.train_batch) / (add_s - backend.train_s))
        if ds.size > backend.train_batch
        else round(ds.size / add_s),
        "train_s_includes_adding": backend.train_batch,
        "add_per_s_incl_train": round(ds.size / add_s),
        "wall_s_incl_data_generation": round(total_s, 1),
        "rss_before_mb": base["rss_mb"],
        "rss_after_mb": after["rss_mb"],
        "rss_growth_mb": round(after["rss_mb"] - base["rss_mb"], 1),
        "peak_rss_mb": after["peak_rss_mb"],
    }
    if hasattr(backend, "index") and hasattr(backend.index, "describe"):
        out["config"]["index"] = backend.index.describe()
    print(f"  built {cfg['backend']} {ds.size:,}: {out['build']}", flush=True)
    sweep = cfg.get("sweep") or backend.sweep()
    out["sweep"] = []
    for value in sweep:
        backend.set_param(value)
        rep = query_report(backend, ds, gt, cos)
        rep["param"] = value
        out["sweep"].append(rep)
        print(
            f"  param {value}: p95 {rep['k10']['p95_ms']} ms recall@10 {rep['k10']['recall']} "
            f"sim80 {rep['k10']['recall_sim80']} recall@100 {rep['k100']['recall']}",
            flush=True,
        )
        if (rep["k10"]["recall"] or 0) >= 0.9995 or rep["k10"]["p95_ms"] > 150:
            break  # higher settings only cost time
    out["exact_rank1_mate"] = rank1_mate(gt[0][:, :10], ds.mates)
    target = cfg["target_recall"]
    ok = [r for r in out["sweep"] if (r["k10"]["recall"] or 0) >= target]
    point = ok[0] if ok else out["sweep"][-1]
    out["operating_point"] = point["param"]
    backend.set_param(point["param"])
    path = Path(cfg["workdir"]) / f"{cfg['backend']}_{ds.size}.index"
    t0 = time.perf_counter()
    backend.save(path)
    out["save"] = {"s": round(time.perf_counter() - t0, 2), "bytes": path.stat().st_size}
    out["save"]["bytes_per_vector"] = round(out["save"]["bytes"] / ds.size, 1)
    out["path"] = str(path)
    if backend.removable:
        extra = ds.extra_vectors(20_000)
        ids = np.arange(ds.size + 10, ds.size + 10 + len(extra), dtype=np.int64)
        t0 = time.perf_counter()
        for s in range(0, len(extra), 100):
            backend.add(ids[s : s + 100], extra[s : s + 100])
        small = time.perf_counter() - t0
        t0 = time.perf_counter()
        removed_one = backend.remove(ids[:1])
        one_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        removed = backend.remove(ids[1:]) + removed_one
        many_s = time.perf_counter() - t0
        out["small_batches"] = {
            "add_batch": 100,
            "add_per_s": round(len(extra) / small),
            "remove_one_ms": round(one_s * 1e3, 2),
            "remove_19999_s": round(many_s, 3),
            "removed": int(removed),
        }
    return out


def worker_load(cfg: dict[str, Any]) -> dict[str, Any]:
    t_start = time.perf_counter()
    backend = backend_class(cfg["backend"])(1)
    base = rss_mb()
    import_s = time.perf_counter() - t_start
    q = np.load(cfg["queries_file"])
    t0 = time.perf_counter()
    backend.load(Path(cfg["path"]))
    backend.set_param(cfg["param"])
    backend.search(q[:1], 10)
    ready_s = time.perf_counter() - t0
    after_load = rss_mb()
    found = np.full((len(q), 10), -1, np.int64)
    times = np.empty(len(q))
    for i in range(len(q)):
        t1 = time.perf_counter()
        ids, _ = backend.search(q[i : i + 1], 10)
        times[i] = (time.perf_counter() - t1) * 1e3
        found[i, : ids.shape[1]] = ids[0]
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    gt_ids = np.load(cfg["gt_file"])
    return {
        "recall": recall(found, gt_ids, gt_ids.astype(float), 10, None),
        "import_and_construct_s": round(import_s, 3),
        "load_until_first_result_s": round(ready_s, 3),
        "rss_after_load_mb": after_load["rss_mb"],
        "rss_growth_mb": round(after_load["rss_mb"] - base["rss_mb"], 1),
        "rss_after_queries_mb": rss_mb()["rss_mb"],
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
        "ids_digest": hashlib.sha256(found.tobytes()).hexdigest()[:12],
    }


def worker_curve(cfg: dict[str, Any]) -> dict[str, Any]:
    """Exact vs the project's ANN index at small sizes: where to switch."""
    from faceledger.index import ANNIndex, ExactIndex, IndexPolicy

    model = fit_model()
    ds = Dataset(model, max(cfg["sizes"]), 1000)
    q = ds.queries
    gallery_ids, gallery = next(ds.batches(max(cfg["sizes"])))
    rows = []
    for n in cfg["sizes"]:
        ids, vecs = gallery_ids[:n], gallery[:n]
        exact = ExactIndex(DIM, capacity=n)
        exact.add(ids, vecs)
        ann = ANNIndex(DIM, expected_size=n)
        t0 = time.perf_counter()
        ann.add(ids, vecs)
        build_s = time.perf_counter() - t0
        gt, _ = exact.search(q, k=10)
        row: dict[str, Any] = {"size": n, "ann_build_s": round(build_s, 3), "ann": ann.describe()}
        for name, index in (("exact", exact), ("ann", ann)):
            for i in range(20):
                index.search(q[i : i + 1], k=10)
            times, found = [], []
            for i in range(len(q)):
                t1 = time.perf_counter()
                hits = index.search(q[i : i + 1], k=10)
                times.append((time.perf_counter() - t1) * 1e3)
                found.append(hits.ids[0])
            row[f"{name}_p50_ms"] = round(float(np.percentile(times, 50)), 3)
            row[f"{name}_p95_ms"] = round(float(np.percentile(times, 95)), 3)
            if name == "ann":
                row["ann_recall@10"] = recall(np.array(found), gt, gt.astype(float), 10, None)
        rows.append(row)
        print(f"  curve {row}", flush=True)
    return {"rows": rows, "policy": IndexPolicy().describe()}


# --- orchestration ----------------------------------------------------------------------------


def run_worker(mode: str, cfg: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", mode, json.dumps(cfg)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    for ln in proc.stdout.splitlines():
        if not ln.startswith("RESULT "):
            print(ln, flush=True)
    if proc.returncode != 0 or not lines:
        return {"error": f"worker {mode} exited with {proc.returncode}"}
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def summary_row(size: int, name: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{size:>10,} {name:<20} {r['error']}"
    op = next(s for s in r["sweep"] if s["param"] == r["operating_point"])
    load = r.get("cold_load", {})
    return (
        f"{size:>10,} {name:<20} {r['operating_point']:>5} "
        f"{r['build']['add_per_s']:>9,} {r['build']['train_s']:>6.1f} "
        f"{r['build']['rss_growth_mb']:>8.0f} {r['save']['bytes'] / 1e6:>8.0f} "
        f"{load.get('load_until_first_result_s', float('nan')):>6.2f} "
        f"{op['k10']['p50_ms']:>6.2f} {op['k10']['p95_ms']:>6.2f} {op['k10']['p99_ms']:>6.2f} "
        f"{op['k10']['recall']:>6.4f} {op['k10']['recall_sim50'] or float('nan'):>6.4f} "
        f"{op['k10']['recall_sim80'] or float('nan'):>6.4f} {op['k100']['recall']:>6.4f} "
        f"{op['rank1_mate']:>6.4f}"
    )


HEADER = (
    f"{'size':>10} {'backend':<20} {'param':>5} {'add/s':>9} {'train':>6} {'RSS MB':>8} "
    f"{'file MB':>8} {'load s':>6} {'p50':>6} {'p95':>6} {'p99':>6} {'R@10':>6} "
    f"{'S≥50':>6} {'S≥80':>6} {'R@100':>6} {'rank1':>6}"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,20000000")
    parser.add_argument("--backends", default="")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--curve", action="store_true", help="exact vs ANN at small sizes")
    parser.add_argument("--workdir", default="", help="where index files go (default: a tmpdir)")
    parser.add_argument("--keep", action="store_true", help="keep the saved index files")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, cfg = args.worker[0], json.loads(args.worker[1])
        fn = {"build": worker_build, "load": worker_load, "curve": worker_curve}[mode]
        print("RESULT " + json.dumps(fn(cfg), default=float), flush=True)
        return
    model = fit_model()
    print("data model:", json.dumps(model.fit), flush=True)
    out_path = RESULTS / RESULT_FILE
    result: dict[str, Any] = json.loads(out_path.read_text()) if out_path.is_file() else {}
    result.update(
        {
            "command": " ".join(["python", "bench/vector_index.py", *sys.argv[1:]]),
            "machine": machine() | {"threads": THREADS},
            "data_model": model.fit,
            "similarity_cosines": similarity_cosines(),
            "queries": args.queries,
        }
    )
    runs: dict[str, Any] = result.setdefault("runs", {})
    if args.curve:
        result["switch_curve"] = run_worker(
            "curve", {"sizes": [5_000, 10_000, 20_000, 50_000, 100_000, 200_000]}
        )
    sizes = [int(s) for s in args.sizes.split(",") if s]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="vector_index_", dir=CACHE))
    workdir.mkdir(parents=True, exist_ok=True)
    for size in sizes:
        names = [b for b in args.backends.split(",") if b] or (
            list(BACKENDS) if size <= 2_000_000 else ["faceledger"]
        )
        ds = Dataset(model, size, args.queries)
        gt_ids, _ = ground_truth(ds)  # once, cached, before any worker
        qfile = workdir / f"queries_{size}.npy"
        np.save(qfile, ds.queries)
        gt_file = workdir / f"gt_ids_{size}.npy"
        np.save(gt_file, gt_ids)
        del ds
        trim()
        for name in names:
            if name == "exact" and size > 2_000_000:
                continue
            print(f"== {name} @ {size:,} (load {os.getloadavg()[0]:.2f})", flush=True)
            cfg = {
                "backend": name,
                "size": size,
                "queries": args.queries,
                "workdir": str(workdir),
                "target_recall": 0.99 if size <= 2_000_000 else 0.98,
                "batch": 1_000_000 if size > 2_000_000 else 500_000,
            }
            r = run_worker("build", cfg)
            r["load_average_at_start"] = os.getloadavg()
            if "error" not in r:
                r["cold_load"] = run_worker(
                    "load",
                    {
                        "backend": name,
                        "path": r["path"],
                        "param": r["operating_point"],
                        "queries_file": str(qfile),
                        "gt_file": str(gt_file),
                    },
                )
                same = r["cold_load"].get("ids_digest") == next(
                    s["ids_digest"] for s in r["sweep"] if s["param"] == r["operating_point"]
                )
                r["cold_load"]["same_results_as_before_save"] = same
                if not args.keep:
                    Path(r["path"]).unlink(missing_ok=True)
            runs[f"{size}/{name}"] = r
            write_result(RESULT_FILE, result)
    print(HEADER)
    for key, r in sorted(runs.items(), key=lambda kv: (int(kv[0].split("/")[0]), kv[0])):
        size, name = key.split("/")
        print(summary_row(int(size), name, r))
    write_result(RESULT_FILE, result)


if __name__ == "__main__":
    main()
