"""False-match and false-non-match rates of a labelled image set, overall and per group.

The data is a folder ``DIR/<identity>/<images>`` (LFW's layout). Every image is analysed with
one pack and one face is kept per image — the largest (what the API's search and compare use)
or the one nearest the image centre (LFW's convention: its photos are centred on the labelled
person, and a bystander can be larger) — and then **every** pair of images is scored: pairs
of one identity are genuine, pairs of two identities are impostors. A set of n images has
n(n-1)/2 pairs (LFW's development split: ≈45 M), so the scores are computed in row blocks
and only histogrammed, on the calibrated Similarity scale in bins ``BIN_WIDTH`` wide; a
threshold on that grid gives exact counts:

* FMR(t)  = impostor pairs with Similarity ≥ t / impostor pairs
* FNMR(t) = genuine pairs with Similarity < t / genuine pairs

Groups come from a CSV ``identity,group``. A group's FMR counts the impostor pairs *within*
the group (both identities in it), the convention of NIST FRVT's demographic-differential
reports; impostor pairs across two groups are counted separately. Images without a face
(failures to acquire) take part in no pair and are counted on their own.

Few errors make a rate unstable: with fewer than ``MIN_ERRORS_FOR_RATE`` errors a rate is
reported as its one-sided 95% upper confidence bound ("≤ x") rather than as a bare number.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.faces import AnalysedImage
from faceledger.evaluation.calibration_fit import Exclusions
from faceledger.evaluation.lfw import central_face
from faceledger.inference.engine import MAX_FACES_PER_IMAGE, FaceEngine
from faceledger.inference.imaging import load_image

Progress = Callable[[int, int], None]
ToSimilarity = Callable[[NDArray[np.float32]], NDArray[np.float64]]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
BINS_PER_UNIT = 100  # Similarity bins are 0.01 wide
BIN_WIDTH = 1.0 / BINS_PER_UNIT
# Left edges 0.00, 0.01, …, 100.00: bin k holds k/100 ≤ s < (k+1)/100; the last bin is s = 100.
SIMILARITY_EDGES: NDArray[np.float64] = np.arange(100 * BINS_PER_UNIT + 1) / BINS_PER_UNIT
N_BINS = len(SIMILARITY_EDGES)
PUBLISHED_THRESHOLDS: tuple[float, ...] = (50.0, 80.0, 90.0, 95.0, 99.0)
MIN_ERRORS_FOR_RATE = 10
CONFIDENCE = 0.95
UNASSIGNED = "unassigned"
ALL = "all"  # the single group when no groups file is given
FACE_CHOICES = ("largest", "central")


# -- the images and their embeddings --------------------------------------------------------
def list_images(data_dir: Path) -> list[str]:
    """``identity/file`` of every image one level below an identity folder, sorted.

    Hidden files and folders are skipped. Raises when the folder holds no such image.
    """
    if not data_dir.is_dir():
        raise InvalidParameterError(f"no such folder: {data_dir}")
    found = sorted(
        f"{person.name}/{image.name}"
        for person in data_dir.iterdir()
        if person.is_dir() and not person.name.startswith(".")
        for image in person.iterdir()
        if image.suffix.lower() in IMAGE_SUFFIXES and not image.name.startswith(".")
    )
    if not found:
        raise InvalidParameterError(
            f"{data_dir} holds no images laid out as <identity>/<image> "
            f"({', '.join(IMAGE_SUFFIXES)})"
        )
    return found


def identity_of(relpath: str) -> str:
    """The identity an image is filed under: its folder name."""
    return relpath.split("/", 1)[0]


@dataclass(frozen=True)
class EmbeddedImages:
    """One face per image (``face``: largest or central): embedding and landmarks (zeros where
    none was found)."""

    paths: tuple[str, ...]  # identity/file
    embeddings: NDArray[np.float32]  # (n, D), L2-normalised
    found: NDArray[np.bool_]  # (n,) a face was found
    unreadable: NDArray[np.bool_]  # (n,) the file could not be read or decoded
    boxes_px: NDArray[np.float32]  # (n, 4)
    landmarks_px: NDArray[np.float32]  # (n, 5, 2)
    face_model_version: str
    face: str = "largest"

    @property
    def identities(self) -> list[str]:
        return [identity_of(p) for p in self.paths]


def cache_file(
    engine: FaceEngine,
    data_dir: Path,
    relpaths: Sequence[str],
    cache_dir: Path,
    face: str = "largest",
) -> Path:
    """Cache path keyed by the pack, its detection options, the face choice and the file list
    (names and sizes).

    Worker counts are left out of the key: they change speed, not results.
    """
    digest = hashlib.sha256()
    options = replace(engine.options, workers=1, inference_threads=0)
    digest.update(f"{engine.face_model_version}\n{options!r}\n{face}\n".encode())
    for rel in relpaths:
        digest.update(f"{rel}\t{(data_dir / rel).stat().st_size}\n".encode())
    name = f"embeddings_{engine.face_model_version}_{face}_{digest.hexdigest()[:16]}.npz"
    return cache_dir / name


def _load_cached(
    path: Path, relpaths: Sequence[str], version: str, face: str
) -> EmbeddedImages | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            if [str(p) for p in data["paths"]] != list(relpaths):
                return None
            return EmbeddedImages(
                tuple(relpaths),
                data["embeddings"],
                data["found"],
                data["unreadable"],
                data["boxes_px"],
                data["landmarks_px"],
                version,
                face,
            )
    except (OSError, KeyError, ValueError):
        return None  # a damaged or older cache is recomputed, never trusted


def _save_cache(path: Path, embedded: EmbeddedImages) -> None:
    """Write atomically (temporary file, then rename) so an interrupted run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        paths=np.array(embedded.paths),
        embeddings=embedded.embeddings,
        found=embedded.found,
        unreadable=embedded.unreadable,
        boxes_px=embedded.boxes_px,
        landmarks_px=embedded.landmarks_px,
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(buffer.getvalue())
    os.replace(tmp, path)


def _choose(result: AnalysedImage, face: str) -> int | None:
    """Index of the face to keep: 0 (faces come largest first) or the most central one."""
    if len(result.faces) == 0:
        return None
    if face == "largest":
        return 0
    return central_face(result.faces, result.width_px, result.height_px)


def analyse_images(
    engine: FaceEngine,
    data_dir: Path,
    relpaths: Sequence[str],
    face: str = "largest",
    progress: Progress | None = None,
) -> EmbeddedImages:
    """One face of every image through ``engine.analyse_many`` (every worker process).

    ``face="largest"`` asks the engine for one face; ``"central"`` needs them all (slower).
    """
    if face not in FACE_CHOICES:
        raise InvalidParameterError(f"face must be one of {', '.join(FACE_CHOICES)}, not {face!r}")
    n = len(relpaths)
    emb = np.zeros((n, engine.embedding_size), np.float32)
    found = np.zeros(n, bool)
    unreadable = np.zeros(n, bool)
    boxes = np.zeros((n, 4), np.float32)
    landmarks = np.zeros((n, 5, 2), np.float32)
    paths = [data_dir / rel for rel in relpaths]
    max_faces = 1 if face == "largest" else MAX_FACES_PER_IMAGE
    results = engine.analyse_many(paths, loader=load_image, max_faces=max_faces)
    for i, (_, result) in enumerate(results):
        if not isinstance(result, AnalysedImage):
            unreadable[i] = True
            k = None
        else:
            k = _choose(result, face)
        if isinstance(result, AnalysedImage) and k is not None:
            assert result.faces.embeddings is not None
            emb[i] = result.faces.embeddings[k]
            boxes[i] = result.faces.boxes_px[k]
            landmarks[i] = result.faces.landmarks_px[k]
            found[i] = True
        if progress is not None:
            progress(i + 1, n)
    return EmbeddedImages(
        tuple(relpaths), emb, found, unreadable, boxes, landmarks, engine.face_model_version, face
    )


def embed_dataset(
    engine: FaceEngine,
    data_dir: Path,
    cache_dir: Path,
    *,
    face: str = "largest",
    relpaths: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> tuple[EmbeddedImages, Path, bool]:
    """Embeddings of every image under ``data_dir``, from the cache when it matches.

    Returns (embeddings, cache path, whether the cache was reused).
    """
    relpaths = list(relpaths) if relpaths is not None else list_images(data_dir)
    path = cache_file(engine, data_dir, relpaths, cache_dir, face)
    cached = _load_cached(path, relpaths, engine.face_model_version, face)
    if cached is not None:
        return cached, path, True
    embedded = analyse_images(engine, data_dir, relpaths, face, progress)
    _save_cache(path, embedded)
    return embedded, path, False


# -- groups -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupFile:
    """``identity → group`` from a CSV, with its ``#`` comment lines (shown in the report)."""

    mapping: dict[str, str]
    notes: tuple[str, ...] = ()


def parse_groups(lines: Iterable[str], source: str = "groups CSV") -> GroupFile:
    """Parse ``identity,group`` lines; ``#`` lines are notes; an ``identity,group`` header is
    optional. A line without exactly two non-empty fields, or an identity given two different
    groups, raises InvalidParameterError naming the line."""
    mapping: dict[str, str] = {}
    notes: list[str] = []
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text:
            continue
        if text.startswith("#"):
            notes.append(text.lstrip("#").strip())
            continue
        fields = [f.strip() for f in next(csv.reader([text]))]
        if len(fields) != 2 or not all(fields):
            raise InvalidParameterError(
                f"{source} line {number}: expected 'identity,group', got {text!r}"
            )
        identity, group = fields
        if not mapping and (identity.lower(), group.lower()) == ("identity", "group"):
            continue
        if mapping.get(identity, group) != group:
            raise InvalidParameterError(
                f"{source} line {number}: {identity!r} is in group {mapping[identity]!r} "
                f"already, not {group!r}"
            )
        mapping[identity] = group
    return GroupFile(mapping, tuple(notes))


def read_groups(path: Path) -> GroupFile:
    """:func:`parse_groups` on a file (UTF-8)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(f"cannot read groups file {path}: {exc}") from None
    return parse_groups(text.splitlines(), source=path.name)


@dataclass(frozen=True)
class Grouping:
    """Group index per identity; ``names`` in the order the groups first appear in the CSV
    (so its author chooses the report's order), ``unassigned`` (if present) last."""

    names: tuple[str, ...]
    of_identity: dict[str, int]
    grouped: bool  # False when no groups file was given (one group, "all")

    @property
    def unassigned(self) -> int:
        """How many identities fell into the unassigned group."""
        if UNASSIGNED not in self.names:
            return 0
        k = self.names.index(UNASSIGNED)
        return sum(1 for g in self.of_identity.values() if g == k)


def assign_groups(identities: Iterable[str], mapping: Mapping[str, str] | None) -> Grouping:
    """Each identity's group; identities the mapping lacks go to ``unassigned``."""
    people = sorted(set(identities))
    if mapping is None:
        return Grouping((ALL,), dict.fromkeys(people, 0), False)
    named = {p: mapping.get(p, UNASSIGNED) for p in people}
    used = set(named.values())
    in_file_order = [g for g in dict.fromkeys(mapping.values()) if g in used and g != UNASSIGNED]
    names = in_file_order + ([UNASSIGNED] if UNASSIGNED in used else [])
    index = {g: k for k, g in enumerate(names)}
    return Grouping(tuple(names), {p: index[g] for p, g in named.items()}, True)


# -- exclusions -------------------------------------------------------------------------------
def excluded_index_pairs(paths: Sequence[str], exclusions: Exclusions) -> NDArray[np.int64]:
    """(k, 2) image-index pairs (i < j) that the exclusion list says to drop.

    ``same A B`` drops every pair between A's and B's images; ``photo X Y`` drops that pair;
    ``image X N`` (X shows N, not the person it is filed under) drops X's pairs with N's images
    and also X's pairs with its own folder, which are not same-person pairs either.
    """
    by_name: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        by_name.setdefault(identity_of(p), []).append(i)
    index = {p: i for i, p in enumerate(paths)}
    pairs: set[tuple[int, int]] = set()

    def add(i: int, j: int) -> None:
        if i != j:
            pairs.add((min(i, j), max(i, j)))

    for people in exclusions.same_people:
        if len(people) == 2:
            a, b = sorted(people)
            for i in by_name.get(a, []):
                for j in by_name.get(b, []):
                    add(i, j)
    for photos in exclusions.same_photos:
        found = [index[p] for p in photos if p in index]
        if len(found) == 2:
            add(found[0], found[1])
    for image, shows in exclusions.image_shows.items():
        if image not in index:
            continue
        i = index[image]
        for j in by_name.get(shows, []) + by_name.get(identity_of(image), []):
            add(i, j)
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


# -- scoring every pair -----------------------------------------------------------------------
def similarity_bins(similarity: NDArray[np.float64]) -> NDArray[np.int64]:
    """Bin index of each Similarity: k with edge k ≤ s < edge k+1 (so s ≥ t ⇔ bin ≥ bin(t))."""
    k = np.searchsorted(SIMILARITY_EDGES, similarity, side="right") - 1
    return np.clip(k, 0, N_BINS - 1).astype(np.int64)


def threshold_bin(similarity: float) -> int:
    """The bin a threshold starts; thresholds must lie on the 0.01 grid between 0 and 100."""
    k = round(similarity * BINS_PER_UNIT)
    if not 0 <= k < N_BINS or abs(k / BINS_PER_UNIT - similarity) > 1e-9:
        raise InvalidParameterError(
            f"threshold {similarity} must be a multiple of {BIN_WIDTH} between 0 and 100"
        )
    return int(k)


@dataclass(frozen=True)
class HighPairs:
    """Impostor pairs scoring at or above ``floor``, kept one by one (image indices i < j).

    Few pairs score that high, and they show *who* is falsely matched: one pair of look-alike
    siblings with hundreds of photos can make a whole group's FMR.
    """

    floor: float
    similarity: NDArray[np.float64]
    i: NDArray[np.int64]
    j: NDArray[np.int64]

    @classmethod
    def empty(cls, floor: float) -> HighPairs:
        return cls(floor, np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))


@dataclass(frozen=True)
class PairHistograms:
    """Similarity histograms of every scored pair, by group (G groups, N_BINS bins).

    ``impostor[a, b]`` (a ≤ b) counts pairs between an identity of group a and one of group b;
    entries below the diagonal are zero. ``genuine[g]`` counts the pairs of identities in g;
    ``genuine_weighted[g]`` weighs each identity's pairs by 1 / its pair count, so every
    identity counts once (LFW's genuine pairs are dominated by a few much-photographed people).
    The per-image labels are kept to say which identities the ``high`` pairs join.
    """

    groups: tuple[str, ...]
    impostor: NDArray[np.int64]  # (G, G, N_BINS)
    genuine: NDArray[np.int64]  # (G, N_BINS)
    genuine_weighted: NDArray[np.float64]  # (G, N_BINS)
    identities_with_genuine: NDArray[np.int64]  # (G,)
    largest_identity_genuine: NDArray[np.int64]  # (G,) pairs of the identity with the most
    image_identity: NDArray[np.int64]  # (n,)
    image_group: NDArray[np.int64]  # (n,)
    image_valid: NDArray[np.bool_]  # (n,)
    high: HighPairs
    excluded_genuine: int = 0
    excluded_impostor: int = 0

    def overall_impostor(self) -> NDArray[np.int64]:
        return np.asarray(self.impostor.sum(axis=(0, 1)), np.int64)

    def overall_genuine(self) -> NDArray[np.int64]:
        return np.asarray(self.genuine.sum(axis=0), np.int64)

    def within(self, g: int) -> NDArray[np.int64]:
        """Impostor pairs with both identities in group g."""
        return self.impostor[g, g]

    def across(self, a: int, b: int) -> NDArray[np.int64]:
        """Impostor pairs with one identity in group a and one in group b (either order)."""
        return self.impostor[min(a, b), max(a, b)]

    def top_impostors(self, k: int) -> list[tuple[float, int, int]]:
        """The k highest-scoring impostor pairs (of those ≥ ``high.floor``), best first."""
        order = np.argsort(-self.high.similarity, kind="stable")[:k]
        return [
            (float(self.high.similarity[o]), int(self.high.i[o]), int(self.high.j[o]))
            for o in order
        ]


def _drop_mask(
    excluded: NDArray[np.int64], start: int, stop: int, n: int
) -> NDArray[np.bool_] | None:
    rows = excluded[(excluded[:, 0] >= start) & (excluded[:, 0] < stop)]
    if len(rows) == 0:
        return None
    mask = np.zeros((stop - start, n), bool)
    mask[rows[:, 0] - start, rows[:, 1]] = True
    return mask


def histogram_pairs(
    embeddings: NDArray[np.float32],
    identity: NDArray[np.int64],
    group: NDArray[np.int64],
    groups: Sequence[str],
    to_similarity: ToSimilarity,
    *,
    valid: NDArray[np.bool_] | None = None,
    excluded: NDArray[np.int64] | None = None,
    keep_from: float = min(PUBLISHED_THRESHOLDS),
    block: int = 512,
) -> PairHistograms:
    """Score every unordered pair of valid images and histogram the Similarity by group.

    ``identity`` and ``group`` are per-image integer labels. O(n²) dot products in row blocks
    of ``block`` (memory ≈ block·n·30 bytes). Genuine scores are kept (their number is small)
    to weight identities; impostor scores are only counted, apart from those ≥ ``keep_from``.
    """
    n, n_groups = len(embeddings), len(groups)
    valid = np.ones(n, bool) if valid is None else valid
    excluded = np.zeros((0, 2), np.int64) if excluded is None else excluded
    impostor = np.zeros(n_groups * n_groups * N_BINS, np.int64)
    genuine_bins: list[NDArray[np.int64]] = []
    genuine_ids: list[NDArray[np.int64]] = []
    high: list[tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]] = []
    dropped_genuine = dropped_impostor = 0
    cols = np.arange(n)
    for start in range(0, n, block):
        stop = min(start + block, n)
        rows = cols[start:stop]
        upper = (cols[None, :] > rows[:, None]) & valid[start:stop, None] & valid[None, :]
        same = identity[start:stop, None] == identity[None, :]
        drop = _drop_mask(excluded, start, stop, n)
        if drop is not None:
            drop &= upper
            dropped_genuine += int((drop & same).sum())
            dropped_impostor += int((drop & ~same).sum())
            upper &= ~drop
        sims = to_similarity(embeddings[start:stop] @ embeddings.T)
        gen = upper & same
        genuine_bins.append(similarity_bins(sims[gen]))
        genuine_ids.append(np.broadcast_to(identity[start:stop, None], gen.shape)[gen])
        imp = upper & ~same
        bins = similarity_bins(sims[imp])
        ga = np.broadcast_to(group[start:stop, None], imp.shape)[imp]
        gb = np.broadcast_to(group[None, :], imp.shape)[imp]
        combo = np.minimum(ga, gb) * n_groups + np.maximum(ga, gb)
        impostor += np.bincount(combo * N_BINS + bins, minlength=impostor.size)
        hi, hj = np.nonzero(imp & (sims >= keep_from))
        high.append((sims[hi, hj], hi + start, hj.astype(np.int64)))
    genuine = _genuine_histograms(
        n_groups,
        np.concatenate(genuine_bins) if genuine_bins else np.zeros(0, np.int64),
        np.concatenate(genuine_ids) if genuine_ids else np.zeros(0, np.int64),
        identity,
        group,
    )
    kept = (
        HighPairs(keep_from, *(np.concatenate(parts) for parts in zip(*high, strict=True)))
        if high
        else HighPairs.empty(keep_from)
    )
    return PairHistograms(
        tuple(groups),
        impostor.reshape(n_groups, n_groups, N_BINS),
        *genuine,
        image_identity=identity,
        image_group=group,
        image_valid=valid,
        high=kept,
        excluded_genuine=dropped_genuine,
        excluded_impostor=dropped_impostor,
    )


def _genuine_histograms(
    n_groups: int,
    gen_bins: NDArray[np.int64],
    gen_ids: NDArray[np.int64],
    identity: NDArray[np.int64],
    group: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Genuine histograms by group, plain and identity-weighted, from the kept genuine scores;
    and per group the identities with genuine pairs and the largest identity's pair count."""
    n_ids = int(identity.max()) + 1 if len(identity) else 0
    group_of_id = np.zeros(n_ids, np.int64)
    group_of_id[identity] = group
    pairs_of_id = np.bincount(gen_ids, minlength=n_ids)
    gen_group = group_of_id[gen_ids]
    genuine = np.bincount(gen_group * N_BINS + gen_bins, minlength=n_groups * N_BINS)
    weights = 1.0 / np.maximum(pairs_of_id[gen_ids], 1)
    weighted = np.bincount(
        gen_group * N_BINS + gen_bins, weights=weights, minlength=n_groups * N_BINS
    )
    with_genuine = np.bincount(group_of_id[pairs_of_id > 0], minlength=n_groups)
    largest = np.zeros(n_groups, np.int64)
    np.maximum.at(largest, group_of_id, pairs_of_id)
    return (
        genuine.reshape(n_groups, N_BINS).astype(np.int64),
        weighted.reshape(n_groups, N_BINS).astype(np.float64),
        with_genuine.astype(np.int64),
        largest,
    )


def false_match_sources(
    hist: PairHistograms,
    threshold: float,
    group: int | None = None,
    names: Sequence[str] = (),
    top: int = 3,
) -> dict[str, Any] | None:
    """Which pairs of identities the false matches at ``threshold`` come from.

    Over all impostor pairs, or those within ``group``. Returns the identity-pair FMR (each
    pair of people counted once: pairs with ≥ 1 false match ÷ pairs of identities with a
    usable image) and the ``top`` identity pairs by false matches with their share; None when
    ``threshold`` is below the floor the pairs were kept from.
    """
    if threshold < hist.high.floor:
        return None
    high, ident = hist.high, hist.image_identity
    keep = similarity_bins(high.similarity) >= threshold_bin(threshold)
    usable = hist.image_valid if group is None else hist.image_valid & (hist.image_group == group)
    people = np.unique(ident[usable])
    if group is not None:
        keep &= (hist.image_group[high.i] == group) & (hist.image_group[high.j] == group)
    a, b = ident[high.i[keep]], ident[high.j[keep]]
    n_ids = int(ident.max()) + 1 if len(ident) else 1
    keys, counts = np.unique(np.minimum(a, b) * n_ids + np.maximum(a, b), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    total = int(keep.sum())

    def name(k: int) -> str:
        return names[k] if k < len(names) else str(k)

    return {
        "false_matches": total,
        "identity_pair_fmr": Rate(len(keys), len(people) * (len(people) - 1) // 2).to_dict(),
        "top_identity_pairs": [
            {
                "identity_a": name(int(keys[o] // n_ids)),
                "identity_b": name(int(keys[o] % n_ids)),
                "false_matches": int(counts[o]),
                "share": int(counts[o]) / total,
            }
            for o in order
        ],
    }


# -- rates ------------------------------------------------------------------------------------
def binomial_upper_bound(errors: int, trials: int, confidence: float = CONFIDENCE) -> float:
    """One-sided upper confidence bound on a rate from ``errors`` in ``trials``.

    Exact (Clopper–Pearson, by bisection on the binomial CDF) below 100 errors; above, the
    Wilson score bound, which is then within a few per cent of it. 1.0 when ``trials`` is 0.
    """
    if trials <= 0 or errors >= trials:
        return 1.0
    alpha = 1.0 - confidence
    if errors == 0:
        return 1.0 - alpha ** (1.0 / trials)
    if errors >= 100:
        z = _normal_quantile(confidence)
        p = errors / trials
        centre = p + z * z / (2 * trials)
        spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
        return min(1.0, (centre + spread) / (1 + z * z / trials))
    lo, hi = errors / trials, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if _binomial_cdf(errors, trials, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p), summed in log space (k small)."""
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)
    return sum(
        math.exp(base - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
        for i in range(k + 1)
    )


def _normal_quantile(q: float) -> float:
    """Standard normal quantile by bisection on erf (no SciPy)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True)
class Rate:
    """``errors`` out of ``pairs``, with the rate, its 95% upper bound and how to show it."""

    errors: int
    pairs: int

    @property
    def rate(self) -> float | None:
        return self.errors / self.pairs if self.pairs else None

    @property
    def upper_95(self) -> float | None:
        return binomial_upper_bound(self.errors, self.pairs) if self.pairs else None

    @property
    def reliable(self) -> bool:
        """Enough errors (≥ MIN_ERRORS_FOR_RATE) for the rate itself to be meaningful."""
        return self.errors >= MIN_ERRORS_FOR_RATE

    def display(self) -> str:
        """``1.2e-05 (449/45,140,361)``, or ``≤ 6.6e-07 (0/45,140,361)`` when errors are few."""
        if not self.pairs:
            return "n/a (0 pairs)"
        counts = f"({self.errors:,}/{self.pairs:,})"
        if self.reliable:
            return f"{self.rate:.2e} {counts}"
        return f"≤ {self.upper_95:.1e} {counts}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "errors": self.errors,
            "pairs": self.pairs,
            "rate": self.rate,
            "upper_95": self.upper_95,
            "reliable": self.reliable,
            "display": self.display(),
        }


def false_match(impostor: NDArray[np.int64], threshold: float) -> Rate:
    """Impostor pairs at or above ``threshold`` (Similarity) out of all impostor pairs."""
    k = threshold_bin(threshold)
    return Rate(int(impostor[k:].sum()), int(impostor.sum()))


def false_non_match(genuine: NDArray[np.int64], threshold: float) -> Rate:
    """Genuine pairs below ``threshold`` (Similarity) out of all genuine pairs."""
    k = threshold_bin(threshold)
    return Rate(int(genuine[:k].sum()), int(genuine.sum()))


def weighted_fnmr(weighted: NDArray[np.float64], threshold: float) -> float | None:
    """Identity-weighted FNMR: the mean over identities of each one's FNMR at ``threshold``."""
    total = float(weighted.sum())
    if total <= 0:
        return None
    return float(weighted[: threshold_bin(threshold)].sum()) / total


def det_curve(
    impostor: NDArray[np.int64], genuine: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(FMR, FNMR) at every bin edge threshold, for a DET plot."""
    tail = np.cumsum(impostor[::-1])[::-1]
    head = np.concatenate([[0], np.cumsum(genuine)[:-1]])
    fmr = tail / max(int(impostor.sum()), 1)
    fnmr = head / max(int(genuine.sum()), 1)
    return fmr.astype(np.float64), fnmr.astype(np.float64)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return a / b


# -- the numbers of the report ----------------------------------------------------------------
def _key(threshold: float) -> str:
    return f"{threshold:g}"


def image_counts(embedded: EmbeddedImages, grouping: Grouping) -> list[dict[str, int]]:
    """Per group: identities, images, images without a face, unreadable images."""
    counts = [
        {"identities": 0, "images": 0, "images_without_face": 0, "images_unreadable": 0}
        for _ in grouping.names
    ]
    for g in grouping.of_identity.values():
        counts[g]["identities"] += 1
    for path, found, bad in zip(embedded.paths, embedded.found, embedded.unreadable, strict=True):
        row = counts[grouping.of_identity[identity_of(path)]]
        row["images"] += 1
        row["images_without_face"] += int(not found and not bad)
        row["images_unreadable"] += int(bad)
    return counts


def curve(
    impostor: NDArray[np.int64], genuine: NDArray[np.int64], step: float = 1.0
) -> list[dict[str, float | int | None]]:
    """FMR and FNMR (with counts) at every threshold 0, step, …, 100."""
    rows: list[dict[str, float | int | None]] = []
    for t in np.arange(0.0, 100.0 + step / 2, step):
        fm, fnm = false_match(impostor, float(t)), false_non_match(genuine, float(t))
        rows.append(
            {
                "similarity": float(t),
                "fmr": fm.rate,
                "false_matches": fm.errors,
                "fnmr": fnm.rate,
                "false_non_matches": fnm.errors,
            }
        )
    return rows


def _at(
    impostor: NDArray[np.int64],
    genuine: NDArray[np.int64],
    weighted: NDArray[np.float64],
    threshold: float,
    overall: dict[str, Any] | None,
) -> dict[str, Any]:
    fm, fnm = false_match(impostor, threshold), false_non_match(genuine, threshold)
    row: dict[str, Any] = {
        "fmr": fm.to_dict(),
        "fnmr": fnm.to_dict(),
        "fnmr_identity_weighted": weighted_fnmr(weighted, threshold),
    }
    if overall is not None:
        for name, rate in (("fmr", fm), ("fnmr", fnm)):
            base = overall[name]["rate"]
            row[f"{name}_ratio_to_overall"] = ratio(rate.rate, base)
            # With few errors the ratio itself means little; its upper bound still does.
            row[f"{name}_ratio_to_overall_upper_95"] = ratio(rate.upper_95, base)
            row[f"{name}_ratio_display"] = _ratio_display(rate, base)
    return row


def _ratio_display(rate: Rate, base: float | None) -> str:
    """``2.31×``, or ``≤ 0.85×`` (from the upper bound) when the rate rests on few errors."""
    point, upper = ratio(rate.rate, base), ratio(rate.upper_95, base)
    if point is None or upper is None:
        return "–"
    return f"{point:.2f}×" if rate.reliable else f"≤ {upper:.2f}×"


def _population(
    counts: Mapping[str, int],
    impostor: NDArray[np.int64],
    genuine: NDArray[np.int64],
    with_genuine: int,
    largest: int,
) -> dict[str, Any]:
    pairs = int(genuine.sum())
    return {
        **counts,
        "genuine_pairs": pairs,
        "impostor_pairs": int(impostor.sum()),
        "identities_with_genuine_pairs": with_genuine,
        "largest_identity_share_of_genuine_pairs": largest / pairs if pairs else None,
    }


def differentials(per_group: Sequence[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """FRVT-style max/min of the group rates at ``threshold``.

    Only groups whose rate rests on ≥ MIN_ERRORS_FOR_RATE errors take part (a ratio of two
    rates from a handful of errors means little), and never the ``unassigned`` group.
    """
    out: dict[str, Any] = {}
    for rate in ("fmr", "fnmr"):
        usable = [
            (g["at"][_key(threshold)][rate]["rate"], g["group"])
            for g in per_group
            if g["group"] != UNASSIGNED and g["at"][_key(threshold)][rate]["reliable"]
        ]
        if len(usable) < 2:
            out[rate] = {"max_over_min": None, "groups_compared": [g for _, g in usable]}
            continue
        (low, low_g), (high, high_g) = min(usable), max(usable)
        out[rate] = {
            "max_over_min": high / low,
            "max_group": high_g,
            "min_group": low_g,
            "groups_compared": sorted(g for _, g in usable),
        }
    return out


def summarise(
    hist: PairHistograms,
    counts: Sequence[Mapping[str, int]],
    thresholds: Sequence[float] = PUBLISHED_THRESHOLDS,
    identity_names: Sequence[str] = (),
) -> dict[str, Any]:
    """Every number of the report, JSON-ready: overall, per group, across groups, differentials.

    ``identity_names[k]`` names identity label k (for the false-match sources).
    """
    imp_all, gen_all = hist.overall_impostor(), hist.overall_genuine()
    weighted_all = np.asarray(hist.genuine_weighted.sum(axis=0), np.float64)
    total = {k: sum(c[k] for c in counts) for k in counts[0]} if counts else {}
    overall: dict[str, Any] = _population(
        total,
        imp_all,
        gen_all,
        int(hist.identities_with_genuine.sum()),
        int(hist.largest_identity_genuine.max(initial=0)),
    )
    overall["at"] = {_key(t): _at(imp_all, gen_all, weighted_all, t, None) for t in thresholds}
    for t in thresholds:
        overall["at"][_key(t)]["false_match_sources"] = false_match_sources(
            hist, t, None, identity_names
        )
    overall["curve"] = curve(imp_all, gen_all)
    per_group = []
    for g, name in enumerate(hist.groups):
        imp, gen, weighted = hist.within(g), hist.genuine[g], hist.genuine_weighted[g]
        row: dict[str, Any] = {"group": name}
        row.update(
            _population(
                counts[g],
                imp,
                gen,
                int(hist.identities_with_genuine[g]),
                int(hist.largest_identity_genuine[g]),
            )
        )
        row["at"] = {
            _key(t): _at(imp, gen, weighted, t, overall["at"][_key(t)]) for t in thresholds
        }
        for t in thresholds:
            row["at"][_key(t)]["false_match_sources"] = false_match_sources(
                hist, t, g, identity_names
            )
        row["curve"] = curve(imp, gen)
        per_group.append(row)
    return {
        "thresholds": [float(t) for t in thresholds],
        "overall": overall,
        "per_group": per_group,
        "cross_group": _cross_group(hist, thresholds),
        "differentials": {_key(t): differentials(per_group, t) for t in thresholds},
    }


def _cross_group(hist: PairHistograms, thresholds: Sequence[float]) -> list[dict[str, Any]]:
    """Impostor pairs between every two groups (a before b), with FMR at each threshold."""
    rows = []
    for a in range(len(hist.groups)):
        for b in range(a, len(hist.groups)):
            imp = hist.across(a, b)
            rows.append(
                {
                    "group_a": hist.groups[a],
                    "group_b": hist.groups[b],
                    "within": a == b,
                    "impostor_pairs": int(imp.sum()),
                    "at": {_key(t): false_match(imp, t).to_dict() for t in thresholds},
                }
            )
    return rows


__all__ = [
    "PUBLISHED_THRESHOLDS",
    "EmbeddedImages",
    "GroupFile",
    "Grouping",
    "PairHistograms",
    "Rate",
    "assign_groups",
    "binomial_upper_bound",
    "det_curve",
    "embed_dataset",
    "excluded_index_pairs",
    "false_match",
    "false_match_sources",
    "false_non_match",
    "histogram_pairs",
    "image_counts",
    "list_images",
    "parse_groups",
    "read_groups",
    "summarise",
    "weighted_fnmr",
]
