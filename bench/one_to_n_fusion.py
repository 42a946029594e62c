"""Can a second face model bring 1:N FPIR to ≤ 0.1 % at ≥ 90 % hits? (issue 14 research)

    .venv/bin/python bench/one_to_n_open_set.py   # once: enrols the gallery (cached)
    .venv/bin/python bench/one_to_n_fusion.py [--embed-only]

Same gallery, probes and label-fault exclusions as bench/one_to_n_open_set.py (its ``split``,
its cached collection ``.cache/open_set``: the 7,949 faces ``faceledger index`` enrolled from
8,000 photos at its defaults). The second model is dlib's ResNet face descriptor
(``face_recognition_models``: ``dlib_face_recognition_resnet_model_v1.dat`` and the 5-point
shape predictor, both CC0), computed on the same faces (bench/fusion_embed.py). Embeddings
are cached under ``/tmp/faceledger_fusion`` (``--cache``) so re-runs only evaluate.

Every probe is scored against every enrolled face by each model (SFace cosine; dlib: minus
the Euclidean distance, dlib's own metric). Methods, each with its own thresholds:

* ``sface`` — SFace alone (the product; at its default floor this reproduces the open-set
  bench's figures);
* ``dlib`` — dlib alone;
* ``zsum`` — w·z_sface + (1 − w)·z_dlib over the whole gallery (z: each model's score
  standardised by its impostor scores; needs a second index);
* ``zsum_rescore`` — the same fused score, but only SFace's top 100 candidates are re-scored
  (second embeddings stored, not indexed);
* ``gate`` — SFace ranks and its Similarity floor applies; a candidate is shown only if its
  dlib score also reaches a second threshold (a second opinion on the top 100);
  ``gate_at_floor`` fixes the SFace floor at the product's default.

Outcomes follow the open-set bench: a mated probe is a hit when the first candidate shown is
its own person; a non-mated search counts when any of the first 5 candidates shown is not a
listed label fault; every mated probe is also searched without its own person
(leave-person-out). FPIR = those searches with a candidate / all of them (twins counted;
also reported without them).

Held out: people are split in two halves (seeded); each method's parameters (thresholds,
weight) are chosen on one half — the highest hit rate whose FPIR is ≤ 0.1 % — and reported on
the other, both ways. Writes bench/results/one_to_n_fusion.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, REPO, machine, require_lfw, write_result
from fusion_embed import Dlib, gallery_embeddings, probe_embeddings
from fusion_eval import (
    TARGET_FPIR,
    Pools,
    Probes,
    best,
    binomial_upper,
    false_counts,
    offenders,
    outcomes,
    pools,
    rates,
)
from one_to_n_open_set import COLLECTION, split

DEFAULT_CACHE = Path("/tmp/faceledger_fusion")
RESCORE_K = 100  # SFace candidates re-scored by the second model (as the open-set bench keeps)
WEIGHTS = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 11))  # of SFace's z-score
GATE_FLOORS = tuple(float(x) for x in np.arange(80.0, 99.01, 0.5))  # SFace Similarity
GATE_DLIB = tuple(float(x) for x in np.linspace(-0.80, -0.20, 121))  # minus dlib distance
THRESHOLDS = 400  # per single-score method, from lenient to strict
SPLIT_SEED = 2026
Counts = dict[str, NDArray[np.int64]]


def embeddings(root: Path, s: dict[str, Any], cache: Path) -> dict[str, Any]:
    """The gallery's and probes' embeddings, computed once (one process) and cached."""
    path = cache / "embeddings.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    try:
        model = Dlib.load()
    except ImportError as exc:
        print(f"skipped: {exc.name} not installed (pip install dlib-bin face_recognition_models)")
        sys.exit(0)
    from faceledger.config import Settings
    from faceledger.inference.engine import EngineOptions, FaceEngine

    work = CACHE / "open_set"
    if not (work / "searches.json").exists():
        print("skipped: run bench/one_to_n_open_set.py first (it enrols the gallery)")
        sys.exit(0)
    settings = Settings(data_dir=work / "data", ledger_key_file=work / "ledger.key")
    engine = FaceEngine(options=EngineOptions(inference_threads=1))
    t0 = time.perf_counter()
    out = gallery_embeddings(settings, COLLECTION, work / "gallery", model)
    print(f"gallery: {len(out['gallery_ext'])} faces in {time.perf_counter() - t0:.0f} s")
    out.update(probe_embeddings(root, s["mated"] + s["non_mated"], engine, model))
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def score_matrices(emb: dict[str, Any]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """SFace cosines and minus dlib's Euclidean distances, (probes, gallery faces)."""
    s1 = emb["probe_sface"] @ emb["gallery_sface"].T
    p, g = emb["probe_dlib"], emb["gallery_dlib"]
    d2 = (p * p).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2 * (p @ g.T)
    return s1.astype(np.float32), -np.sqrt(np.maximum(d2, 0)).astype(np.float32)


def impostor_moments(emb: dict[str, Any], persons: NDArray[np.str_]) -> dict[str, float]:
    """Mean and spread of each model's scores between gallery faces of different people (an
    enrolment-time statistic: no probe, no label of a probe, is used)."""
    rng = np.random.default_rng(SPLIT_SEED)
    i = rng.integers(0, len(persons), 200_000)
    j = rng.integers(0, len(persons), 200_000)
    keep = persons[i] != persons[j]
    i, j = i[keep], j[keep]
    gs, gd = emb["gallery_sface"], emb["gallery_dlib"]
    s1 = (gs[i] * gs[j]).sum(1)
    s2 = -np.linalg.norm(gd[i] - gd[j], axis=1)
    return {
        "sface_mean": float(s1.mean()),
        "sface_sd": float(s1.std()),
        "dlib_mean": float(s2.mean()),
        "dlib_sd": float(s2.std()),
    }


def probes_of(s: dict[str, Any], emb: dict[str, Any]) -> Probes:
    rels = [str(r) for r in emb["probe_rels"]]
    ext = emb["gallery_ext"].astype(str)
    return Probes(
        rels=rels,
        person=[r.split("/", 1)[0] for r in rels],
        found=emb["probe_found"].astype(bool),
        mated=np.arange(len(rels)) < len(s["mated"]),
        gallery_person=np.array([e.split(":", 1)[0] for e in ext]),
        gallery_ext=ext,
    )


def halves(probes: Probes) -> dict[str, NDArray[np.bool_]]:
    """Probes of half A / half B of the people (seeded), and all."""
    names = sorted(set(probes.person))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(names))
    a = {names[k] for k in order[: len(names) // 2]}
    in_a = np.array([p in a for p in probes.person])
    return {"A": in_a, "B": ~in_a, "all": np.ones(len(in_a), bool)}


class Method:
    """One way to rank and gate: its configurations (``params``) and their counts for each
    row set (``counts``: A, B, all), and how to rebuild one configuration's gate."""

    def __init__(self, name: str, description: str) -> None:
        self.name, self.description = name, description
        self.params: list[dict[str, float]] = []
        self.counts: dict[str, Counts] = {}
        self._gates: list[Any] = []

    def add(
        self,
        params: list[dict[str, float]],
        counts: dict[str, Counts],
        gate: Any,
    ) -> None:
        """``gate(k)`` → (pools, passed_main, passed_others) of the k-th of ``params``."""
        base = len(self.params)
        self.params += params
        for rows, c in counts.items():
            old = self.counts.setdefault(rows, {})
            for key, v in c.items():
                old[key] = np.concatenate([old[key], v]) if key in old else v
        self._gates += [(gate, k) for k in range(len(params))]
        assert len(self._gates) == base + len(params)

    def gate(self, g: int) -> tuple[Pools, Any, Any]:
        fn, k = self._gates[g]
        return fn(k)  # type: ignore[no-any-return]


def pooled(score: NDArray[np.float32], pl: Pools) -> tuple[Any, Any]:
    return (
        np.take_along_axis(score, pl.main.idx, axis=1),
        np.take_along_axis(score, pl.others.idx, axis=1),
    )


def add_single(
    method: Method,
    probes: Probes,
    exclusions: Any,
    rank: NDArray[np.float32],
    rows: dict[str, NDArray[np.bool_]],
    extra: dict[str, float],
    grid: NDArray[np.float64] | None = None,
) -> None:
    """A ranking score with one threshold, over a grid from lenient to strict."""
    pl = pools(probes, exclusions, rank)
    main, others = pooled(rank, pl)
    if grid is None:
        nm_top = main[~probes.mated & probes.found, 0]
        grid = np.linspace(float(np.quantile(nm_top, 0.9)), float(main[:, 0].max()), THRESHOLDS)
    pm, po = main[:, :, None] >= grid, others[:, :, None] >= grid
    counts = {r: outcomes(probes, pl, pm, po, m) for r, m in rows.items()}
    method.add(
        [{**extra, "threshold": float(t)} for t in grid],
        counts,
        lambda k: (pl, pm[:, :, k], po[:, :, k]),
    )


def add_gate(
    method: Method,
    probes: Probes,
    exclusions: Any,
    s1: NDArray[np.float32],
    s2: NDArray[np.float32],
    rows: dict[str, NDArray[np.bool_]],
    floors: list[float],
    calibration: Any,
) -> None:
    """SFace ranks; a candidate is shown if its Similarity ≥ floor and dlib's score ≥ t2."""
    pl = pools(probes, exclusions, s1)
    main1, others1 = pooled(s1, pl)
    main2, others2 = pooled(s2, pl)
    grid2 = np.array(GATE_DLIB)
    for floor in floors:
        cos = float(calibration.cosine(floor))
        pm = (main1 >= cos)[:, :, None] & (main2[:, :, None] >= grid2)
        po = (others1 >= cos)[:, :, None] & (others2[:, :, None] >= grid2)
        counts = {r: outcomes(probes, pl, pm, po, m) for r, m in rows.items()}
        method.add(
            [{"sface_floor": floor, "dlib_min": float(t)} for t in grid2],
            counts,
            lambda k, pm=pm, po=po: (pl, pm[:, :, k], po[:, :, k]),
        )


def rescored(s1: NDArray[np.float32], fused: NDArray[np.float32]) -> NDArray[np.float32]:
    """``fused`` on SFace's top RESCORE_K candidates of each probe, -inf elsewhere."""
    top = np.argpartition(-s1, RESCORE_K, axis=1)[:, :RESCORE_K]
    out = np.full(s1.shape, -np.inf, np.float32)
    np.put_along_axis(out, top, np.take_along_axis(fused, top, axis=1), axis=1)
    return out


def subset(counts: Counts, idx: NDArray[np.int64]) -> Counts:
    return {k: v[idx] for k, v in counts.items()}


def select(method: Method, probes: Probes, keep: NDArray[np.int64]) -> dict[str, Any]:
    """The method's figures with twins counted as false candidates, and left apart."""
    c = {r: subset(v, keep) for r, v in method.counts.items()}
    return {
        "name": method.name,
        "description": method.description,
        "twins_counted": choose(method, probes, keep, c, twins=True),
        "twins_apart": choose(method, probes, keep, c, twins=False),
    }


def choose(
    method: Method, probes: Probes, keep: NDArray[np.int64], c: dict[str, Counts], twins: bool
) -> dict[str, Any]:
    """In-sample best, the lowest FPIR at ≥ 90 % hits, and held-out: parameters chosen on
    one half of the people, figures on the other (both ways, then added up)."""
    out: dict[str, Any] = {}
    false_key = "false" if twins else "false_not_twins"
    g = best(c["all"], twins=twins)
    out["in_sample"] = None
    if g is not None:
        pl, pm, po = method.gate(int(keep[g]))
        out["in_sample"] = {
            "params": method.params[keep[g]],
            **rates(c["all"], g),
            "false_candidates": offenders(probes, pl, pm, po),
        }
    hit_ok = c["all"]["hits"] >= 0.9 * c["all"]["mated"]
    if hit_ok.any():
        fpir = false_counts(c["all"], twins) / (c["all"]["non_mated"] + c["all"]["lpo_searches"])
        g90 = int(np.flatnonzero(hit_ok)[np.argmin(fpir[hit_ok])])
        out["lowest_fpir_at_90_percent_hits"] = {
            "params": method.params[keep[g90]],
            **rates(c["all"], g90),
        }
    held, total = [], {"hits": 0, "mated": 0, "false": 0, "searches": 0}
    for tune, test in (("A", "B"), ("B", "A")):
        g = best(c[tune], twins=twins)
        if g is None:
            held.append({"tuned_on": tune, "params": None})
            continue
        r = rates(c[test], g)
        held.append(
            {
                "tuned_on": tune,
                "params": method.params[keep[g]],
                "tuning": rates(c[tune], g),
                "test": r,
            }
        )
        for k in ("hits", "mated", "searches"):
            total[k] += r[k]
        total["false"] += r[false_key]
    out["held_out"] = held
    out["held_out_combined"] = {
        **total,
        "hit_rate": round(total["hits"] / max(total["mated"], 1), 4),
        "fpir": round(total["false"] / max(total["searches"], 1), 5),
        "fpir_upper_95": round(binomial_upper(total["false"], total["searches"]), 5),
    }
    return out


def crosscheck(
    probes: Probes, exclusions: Any, s1: NDArray[np.float32], calibration: Any
) -> list[dict[str, Any]]:
    """SFace alone at the open-set bench's sweep thresholds, counted by this bench, beside
    the figures bench/results/one_to_n_open_set.json recorded (they must be equal)."""
    path = REPO / "bench" / "results" / "one_to_n_open_set.json"
    if not path.exists():
        return []
    sweep = json.loads(path.read_text())["sweep"]
    pl = pools(probes, exclusions, s1)
    main, others = pooled(s1, pl)
    grid = np.array([calibration.cosine(r["threshold"]) for r in sweep])
    everyone = np.ones(len(probes.rels), bool)
    c = outcomes(probes, pl, main[:, :, None] >= grid, others[:, :, None] >= grid, everyone)
    return [
        {
            "similarity": r["threshold"],
            "hits": int(c["hits"][k]),
            "open_set_hits": r["hits"],
            "false_non_mated": int(c["false_nm"][k]),
            "open_set_false_non_mated": r["non_mated_with_candidate_not_label_fault"],
            "false_non_mated_not_twins": int(c["false_nm_nt"][k]),
            "open_set_false_non_mated_not_twins": r["non_mated_with_candidate_not_fault_not_twin"],
        }
        for k, r in enumerate(sweep)
    ]


def standing(
    at_floor: dict[str, Any], probes: Probes, pl: Pools, passed: Any, s2: NDArray[np.float32]
) -> None:
    """dlib's second opinion on SFace's false candidates at the default floor: each one's
    dlib score and the share of SFace's hits there whose dlib score is lower."""
    rows = np.arange(len(probes.rels))
    hit = probes.mated & probes.found & passed[:, 0] & pl.main.own[:, 0]
    hits_dlib = s2[rows[hit], pl.main.idx[hit, 0]]
    where = {r: i for i, r in enumerate(probes.rels)}
    column = {str(e): j for j, e in enumerate(probes.gallery_ext)}
    for f in at_floor["false_candidates"]:
        v = float(s2[where[f["probe"]], column[f["candidate"]]])
        f["dlib_score"] = round(v, 4)
        f["share_of_hits_with_lower_dlib_score"] = round(float(np.mean(hits_dlib < v)), 4)
    at_floor["hits_dlib_score_quantiles"] = {
        str(q): round(float(np.quantile(hits_dlib, q)), 4) for q in (0.01, 0.05, 0.1, 0.5)
    }


def cost(root: Path, rels: list[str]) -> dict[str, Any]:
    """Per-face CPU time, side by side on the same faces, one thread each: the engine's
    detection, SFace (alignment + embedding) and dlib (shape predictor + descriptor)."""
    from faceledger.inference.align import align_faces
    from faceledger.inference.engine import EngineOptions, FaceEngine
    from faceledger.inference.imaging import decode_image

    model = Dlib.load()
    engine = FaceEngine(options=EngineOptions(inference_threads=1))
    times: dict[str, list[float]] = {"detect_ms": [], "sface_ms": [], "dlib_ms": []}
    for n, rel in enumerate(rels):
        image = decode_image((root / rel).read_bytes())
        rgb = np.ascontiguousarray(image.pixels_bgr[:, :, ::-1])
        t0 = time.process_time()
        faces = engine.detect(image, max_faces=1)
        t1 = time.process_time()
        if len(faces) == 0:
            continue
        engine.embed_crops(align_faces(image.pixels_bgr, faces))
        t2 = time.process_time()
        model.embed(rgb, faces.boxes_px[0])
        t3 = time.process_time()
        if n:  # the first face warms both models up
            times["detect_ms"].append(1000 * (t1 - t0))
            times["sface_ms"].append(1000 * (t2 - t1))
            times["dlib_ms"].append(1000 * (t3 - t2))
    out: dict[str, Any] = {k: round(float(np.median(v)), 1) for k, v in times.items()}
    out["faces"] = len(times["dlib_ms"])
    out["dlib_over_sface"] = round(out["dlib_ms"] / max(out["sface_ms"], 1e-9), 1)
    return out


def table_row(name: str, r: dict[str, Any], twins: bool) -> str:
    ins, ho = r["in_sample"], r["held_out_combined"]
    at90 = r.get("lowest_fpir_at_90_percent_hits")
    false_key = "false" if twins else "false_not_twins"
    fpir_key = "fpir" if twins else "fpir_without_twins"
    ins_text = "unreachable" if ins is None else f"{ins['hit_rate']:.2%} ({ins[false_key]} false)"
    at90_text = "-" if at90 is None else f"{at90[fpir_key]:.3%} ({at90[false_key]})"
    return (
        f"{name:<20} {ins_text:>22} {ho['hit_rate']:>9.2%} "
        f"{ho['fpir']:>7.3%} ({ho['false']}/{ho['searches']}) {at90_text:>15}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--embed-only", action="store_true", help="compute embeddings, stop")
    parser.add_argument(
        "--no-write", action="store_true", help="print only: no cost pass, no results file"
    )
    args = parser.parse_args()
    root = require_lfw()
    load_before = os.getloadavg()
    s = split(root, None)
    emb = embeddings(root, s, args.cache)
    if args.embed_only:
        print({k: v.shape for k, v in emb.items() if hasattr(v, "shape")})
        return
    from faceledger.evaluation.calibration_fit import Exclusions
    from faceledger.inference.engine import FaceEngine

    exclusions = Exclusions.parse((REPO / "bench" / "lfw_exclusions.txt").read_text().splitlines())
    engine = FaceEngine()
    calibration = engine.calibration
    faces = len(emb["gallery_ext"])
    floor, _ = engine.scale.floor(faces) if engine.scale is not None else (80.0, True)
    probes = probes_of(s, emb)
    rows = halves(probes)
    s1, s2 = score_matrices(emb)
    z = impostor_moments(emb, probes.gallery_person)
    z1 = (s1 - z["sface_mean"]) / z["sface_sd"]
    z2 = (s2 - z["dlib_mean"]) / z["dlib_sd"]
    product = Method("sface_default_floor", "SFace alone at the product's default floor")
    add_single(product, probes, exclusions, s1, rows, {"similarity": floor},
               np.array([calibration.cosine(floor)]))  # fmt: skip
    fused = Method("zsum", "w·z_sface + (1 − w)·z_dlib, whole gallery")
    rescore = Method("zsum_rescore", f"the same, SFace's top {RESCORE_K} re-scored")
    for w in WEIGHTS:
        f = (w * z1 + (1 - w) * z2).astype(np.float32)
        add_single(fused, probes, exclusions, f, rows, {"w": w})
        add_single(rescore, probes, exclusions, rescored(s1, f), rows, {"w": w})
        print(f"  weight {w} done", flush=True)
    gate = Method("gate", "SFace ranks; shown if Similarity ≥ floor and dlib ≥ t2")
    add_gate(gate, probes, exclusions, s1, s2, rows, sorted({*GATE_FLOORS, floor}), calibration)
    w_of = np.array([p["w"] for p in fused.params])
    gate_floor = np.array([p["sface_floor"] for p in gate.params])
    everything = np.arange(len(fused.params))
    pl, pm, po = product.gate(0)
    at_floor = {
        "similarity": floor,
        **rates(product.counts["all"], 0),
        "false_candidates": offenders(probes, pl, pm, po),
    }
    standing(at_floor, probes, pl, pm, s2)
    reports = [
        {**select(fused, probes, np.flatnonzero(w_of == 1.0)), "name": "sface"},
        {**select(fused, probes, np.flatnonzero(w_of == 0.0)), "name": "dlib"},
        select(fused, probes, everything),
        select(rescore, probes, everything),
        select(gate, probes, np.arange(len(gate.params))),
        {**select(gate, probes, np.flatnonzero(gate_floor == floor)), "name": "gate_at_floor"},
    ]
    for r in reports:
        for block in (r["twins_counted"], r["twins_apart"]):
            found = (block["in_sample"], block.get("lowest_fpir_at_90_percent_hits"))
            for p in (*found, *block["held_out"]):
                params = None if p is None else p.get("params")
                if params and params.get("w") == 1.0:
                    cos = params["threshold"] * z["sface_sd"] + z["sface_mean"]
                    params["sface_similarity"] = round(float(calibration.similarity(cos)), 2)
    print(f"{faces} gallery faces, {int(probes.mated.sum())} mated, "
          f"{int((~probes.mated).sum())} non-mated probes; default floor {floor}")  # fmt: skip
    print(
        f"SFace at the default floor {floor}: hits {at_floor['hits']}/{at_floor['mated']}, "
        f"false {at_floor['false_non_mated']} non-mated + {at_floor['false_leave_person_out']} "
        f"leave-person-out / {at_floor['searches']} (open-set bench: 1,076; 3 + 4 / 2,608)"
    )
    for f in at_floor["false_candidates"]:
        print(
            f"  {f['probe']} -> {f['candidate']} ({f['search']}"
            f"{', twin' if f['listed_twin'] else ''}): dlib {f['dlib_score']:.3f}, "
            f"{f['share_of_hits_with_lower_dlib_score']:.1%} of hits score lower"
        )
    checked = crosscheck(probes, exclusions, s1, calibration)
    same = all(
        r["hits"] == r["open_set_hits"]
        and r["false_non_mated"] == r["open_set_false_non_mated"]
        and r["false_non_mated_not_twins"] == r["open_set_false_non_mated_not_twins"]
        for r in checked
    )
    print(
        f"SFace at the open-set bench's {len(checked)} sweep thresholds: hits and non-mated "
        f"false candidates {'equal to' if same else 'DIFFER FROM'} its recorded figures"
    )
    for twins in (True, False):
        print(f"twins {'counted' if twins else 'left apart'}:")
        print(f"{'method':<20} {'in-sample hits@0.1%':>22} {'held-out':>9} FPIR {'FPIR@90%':>15}")
        for r in reports:
            print(table_row(r["name"], r["twins_counted" if twins else "twins_apart"], twins))
    if args.no_write:
        return
    spent = cost(root, s["mated"][:: max(1, len(s["mated"]) // 100)])
    print(f"per-face CPU (median ms, one thread): {spent}")
    write_result(
        "one_to_n_fusion.json",
        {
            "command": "python bench/one_to_n_fusion.py",
            "second_model": {
                "package": "face_recognition_models 0.3.0 (CC0 models) + dlib-bin 20.0.1.post1",
                "files": [
                    "dlib_face_recognition_resnet_model_v1.dat",
                    "shape_predictor_5_face_landmarks.dat",
                ],
                "score": "minus the Euclidean distance of the 128-d descriptors",
            },
            "gallery_faces": faces,
            "mated_probes": int(probes.mated.sum()),
            "non_mated_probes": int((~probes.mated).sum()),
            "probes_without_face": int((~probes.found).sum()),
            "halves": {k: int(v.sum()) for k, v in rows.items()},
            "split_seed": SPLIT_SEED,
            "target_fpir": TARGET_FPIR,
            "default_floor": floor,
            "impostor_moments": z,
            "embedding_seconds": {
                k: round(float(emb[k]), 1)
                for k in ("gallery_dlib_seconds", "probe_sface_seconds", "probe_dlib_seconds")
            },
            "cost_per_face": spent,
            "sface_at_default_floor": at_floor,
            "sface_vs_open_set_sweep": checked,
            "methods": reports,
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
