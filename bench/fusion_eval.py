"""Open-set outcomes of score matrices for the fusion study (bench/one_to_n_fusion.py).

A method ranks the gallery for each probe by one score and shows the candidates that pass
its gate (one threshold, or two: SFace's floor and dlib's). ``Pools`` keeps each probe's
top-K gallery faces by the ranking score, and its top-K among *other people's* faces (the
leave-person-out search), with the flags the open-set bench uses: own person, listed label
fault, listed identical twin. ``outcomes`` counts, for a grid of gates at once, the hits of
the mated probes, and the non-mated and leave-person-out searches that show a candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

REPORTED_K = 5  # candidates a search shows (as bench/one_to_n_open_set.py)
POOL_K = 20  # candidates kept per probe; gates only ever pass the first few
TARGET_FPIR = 0.001

Bools = NDArray[np.bool_]
Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Probes:
    """Probe ``rels``, their people, whether a face was found, which are mated, and the
    gallery's people (``gallery_person``) and ExternalImageIds."""

    rels: list[str]
    person: list[str]
    found: Bools
    mated: Bools
    gallery_person: NDArray[np.str_]
    gallery_ext: NDArray[np.str_]

    def own_columns(self) -> dict[str, NDArray[np.int64]]:
        by: dict[str, list[int]] = {}
        for j, p in enumerate(self.gallery_person):
            by.setdefault(str(p), []).append(j)
        return {p: np.array(v, np.int64) for p, v in by.items()}


@dataclass(frozen=True)
class Pool:
    """Per probe, K gallery faces in ranking order: their index and the flags."""

    idx: NDArray[np.int64]  # (P, K) gallery column
    own: Bools
    fault: Bools
    twin: Bools  # a listed twin and not a label fault
    valid: Bools  # False where fewer than K faces were left (leave-person-out)


@dataclass(frozen=True)
class Pools:
    main: Pool  # the whole gallery
    others: Pool  # without the probe's own person's faces


def flags(probes: Probes, exclusions: Any, idx: NDArray[np.int64]) -> tuple[Bools, ...]:
    """own / label fault / twin flags of each (probe, gallery face) in ``idx``."""
    memo: dict[tuple[str, str], tuple[bool, bool]] = {}
    own = np.zeros(idx.shape, bool)
    fault = np.zeros(idx.shape, bool)
    twin = np.zeros(idx.shape, bool)
    for i, rel in enumerate(probes.rels):
        for k, j in enumerate(idx[i]):
            person = str(probes.gallery_person[j])
            own[i, k] = person == probes.person[i]
            ext = str(probes.gallery_ext[j])
            key = (rel, ext)
            if key not in memo:
                f = exclusions.excluded(rel, f"{person}/x.jpg") or exclusions.excluded(
                    rel, ext.replace(":", "/", 1)
                )
                t = exclusions.excluded(rel, f"{person}/x.jpg", twins=True) and not f
                memo[key] = (f, t)
            fault[i, k], twin[i, k] = memo[key]
    return own, fault, twin


def top_k(scores: Floats, k: int) -> NDArray[np.int64]:
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def pools(probes: Probes, exclusions: Any, rank: Floats, k: int = POOL_K) -> Pools:
    """``rank``: (P, N) ranking score of every probe against every gallery face."""
    main_idx = top_k(rank, k)
    masked = rank.copy()
    columns = probes.own_columns()
    for i, p in enumerate(probes.person):
        if p in columns:
            masked[i, columns[p]] = -np.inf
    others_idx = top_k(masked, k)
    others_valid = np.isfinite(np.take_along_axis(masked, others_idx, axis=1))
    return Pools(
        Pool(main_idx, *flags(probes, exclusions, main_idx), np.ones(main_idx.shape, bool)),
        Pool(others_idx, *flags(probes, exclusions, others_idx), others_valid),
    )


def outcomes(
    probes: Probes, pools: Pools, passed_main: Bools, passed_others: Bools, rows: Bools
) -> dict[str, NDArray[np.int64]]:
    """Counts for a grid of G gates: ``passed_*`` (P, K, G) say which pooled candidates a
    gate lets through; ``rows`` selects the probes counted (a half of the people, or all).

    hits: mated probes whose first candidate shown is their own person. false_nm /
    false_nm_nt: non-mated probes with a candidate among the first 5 shown that is not a
    label fault (/ nor a twin). false_lpo / false_lpo_nt: mated probes searched without their
    own person that show such a candidate. searches: non-mated + leave-person-out searches.
    """
    m, po = pools.main, pools.others
    found = probes.found[:, None]
    first = np.argmax(passed_main, axis=1)  # (P, G)
    any_pass = passed_main.any(axis=1)
    own_first = np.take_along_axis(m.own, first, axis=1) & any_pass
    mated = rows & probes.mated & probes.found
    rank_shown = np.cumsum(passed_main, axis=1, dtype=np.int16)
    shown = passed_main & (rank_shown <= REPORTED_K) & found[:, :, None]
    nm = rows & ~probes.mated & probes.found
    counted = shown & ~m.fault[:, :, None]
    false_nm = counted.any(axis=1) & nm[:, None]
    false_nm_nt = (counted & ~m.twin[:, :, None]).any(axis=1) & nm[:, None]
    others = (po.valid & ~po.fault)[:, :, None] & passed_others
    searchable = rows & probes.mated & probes.found & (po.valid & ~po.fault).any(axis=1)
    false_lpo = others.any(axis=1) & searchable[:, None]
    false_lpo_nt = (others & ~po.twin[:, :, None]).any(axis=1) & searchable[:, None]
    return {
        "mated": np.full(first.shape[1], int((rows & probes.mated).sum())),
        "hits": (own_first & mated[:, None]).sum(axis=0),
        # non-mated probes without a face are searches that return no candidate
        "non_mated": np.full(first.shape[1], int((rows & ~probes.mated).sum())),
        "false_nm": false_nm.sum(axis=0),
        "false_nm_nt": false_nm_nt.sum(axis=0),
        "lpo_searches": np.full(first.shape[1], int(searchable.sum())),
        "false_lpo": false_lpo.sum(axis=0),
        "false_lpo_nt": false_lpo_nt.sum(axis=0),
    }


def offenders(
    probes: Probes, pools: Pools, passed_main: Bools, passed_others: Bools
) -> list[dict[str, Any]]:
    """The searches of one gate (``passed_*`` (P, K)) that show a false candidate: the probe,
    the candidate shown first, whether it is a listed twin, and which search it was."""
    out = []
    m, po = pools.main, pools.others
    for i, rel in enumerate(probes.rels):
        if not probes.found[i]:
            continue
        if probes.mated[i]:
            ok = passed_others[i] & po.valid[i] & ~po.fault[i]
            idx, twin, kind = po.idx[i], po.twin[i], "leave_person_out"
        else:
            ok = passed_main[i] & (np.cumsum(passed_main[i]) <= REPORTED_K) & ~m.fault[i]
            idx, twin, kind = m.idx[i], m.twin[i], "non_mated"
        if ok.any():
            k = int(np.argmax(ok))
            out.append(
                {
                    "probe": rel,
                    "candidate": str(probes.gallery_ext[idx[k]]),
                    "search": kind,
                    "listed_twin": bool(twin[k]),
                }
            )
    return out


def rates(c: dict[str, NDArray[np.int64]], g: int) -> dict[str, Any]:
    """The figures of gate ``g``: hit rate, pooled FPIR (twins counted / not), counts."""
    searches = int(c["non_mated"][g] + c["lpo_searches"][g])
    false = int(c["false_nm"][g] + c["false_lpo"][g])
    false_nt = int(c["false_nm_nt"][g] + c["false_lpo_nt"][g])
    return {
        "hits": int(c["hits"][g]),
        "mated": int(c["mated"][g]),
        "hit_rate": round(int(c["hits"][g]) / max(int(c["mated"][g]), 1), 4),
        "searches": searches,
        "false": false,
        "fpir": round(false / max(searches, 1), 5),
        "fpir_upper_95": round(binomial_upper(false, searches), 5),
        "false_non_mated": int(c["false_nm"][g]),
        "false_leave_person_out": int(c["false_lpo"][g]),
        "false_not_twins": false_nt,
        "fpir_without_twins": round(false_nt / max(searches, 1), 5),
    }


def false_counts(c: dict[str, NDArray[np.int64]], twins: bool = True) -> NDArray[np.int64]:
    """Searches with a false candidate, per gate: twins counted, or left apart."""
    if twins:
        return c["false_nm"] + c["false_lpo"]
    return c["false_nm_nt"] + c["false_lpo_nt"]


def best(
    c: dict[str, NDArray[np.int64]], target: float = TARGET_FPIR, twins: bool = True
) -> int | None:
    """The gate with the most hits whose pooled FPIR is within ``target`` (ties: the last,
    i.e. the strictest in a grid ordered from lenient to strict); None if none is."""
    ok = false_counts(c, twins) <= target * (c["non_mated"] + c["lpo_searches"])
    if not ok.any():
        return None
    hits = np.where(ok, c["hits"], -1)
    return int(np.flatnonzero(hits == hits.max())[-1])


def binomial_upper(k: int, n: int, level: float = 0.975) -> float:
    """One-sided exact (Clopper–Pearson) upper bound of a rate with k events in n trials."""
    if n == 0:
        return 1.0
    if k >= n:
        return 1.0

    def cdf(p: float) -> float:
        return sum(
            math.exp(
                math.lgamma(n + 1)
                - math.lgamma(i + 1)
                - math.lgamma(n - i + 1)
                + (i * math.log(p) if i else 0.0)
                + (n - i) * math.log1p(-p)
            )
            for i in range(k + 1)
        )

    lo, hi = k / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if cdf(mid) > 1 - level:
            lo = mid
        else:
            hi = mid
    return hi
