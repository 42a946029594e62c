"""Groups for LFW devtrain from an automatic, transparent proxy of apparent skin tone (ITA).

    .venv/bin/python bench/lfw_groups.py [--min-identities 200]

WHAT THIS IS — AND IS NOT. LFW has no demographic labels. To see whether error rates differ
between kinds of faces we need *some* grouping, and we want one anyone can recompute and
criticise: no hand labelling, no classifier of race or ethnicity (such classifiers encode
the very biases we want to measure, and guessing someone's ethnicity or self-identified race
from a photo is neither reliable nor appropriate). So each identity gets an **apparent skin
tone** category from the Individual Typology Angle (ITA), a colorimetric measure used in
dermatology and in face-dataset audits (e.g. Merler et al., "Diversity in Faces", 2019).
It is a proxy of how light or dark the skin *appears in these photos*, under uncontrolled
news-photo lighting, white balance and JPEG compression — NOT ethnicity, NOT race, and not
a person's actual skin type. Lighting alone moves an image by one or two categories; the
per-identity median over images damps this only partly. Read per-group rates with that in mind.

Method, per image (the face the default pack finds nearest the image centre: LFW's labelled
person, as in bench/fairness_report.py):
  1. Align the face to the 112×112 ArcFace template (the crop the embedder sees).
  2. Take the pixels of three skin patches of the template — both cheeks below the eyes
     (x 28–46 and 66–84, y 64–80) and the forehead above the eyebrows (x 42–70, y 24–36) —
     and convert them to CIELab (sRGB, D65; L* 0–100).
  3. Drop very dark or very bright pixels (L* < 15: shadow, hair, sunglasses; L* > 92:
     specular highlights). Skip the image if fewer than 50 pixels are left, or if the median
     chroma √(a*²+b*²) is below 5 or the median b* is not positive (greyscale or strongly
     colour-cast photos: ITA means nothing there).
  4. ITA = atan((L* − 50) / b*) · 180/π from the medians of L* and b* of those pixels.
Per identity: the median ITA of its usable images; identities with none are left out of the
CSV, so the report puts them in "unassigned".
Categories (the usual ITA scale): very_light > 55°, light 41–55°, intermediate 28–41°,
tan 10–28°, brown −30–10°, dark < −30°. Adjacent categories with fewer than
--min-identities identities are merged (smallest first, into its smaller neighbour), because
a group of a few dozen people gives within-group impostor pairs too few for any rate.

Writes bench/results/fairness/lfw_groups.csv (``identity,group``; its ``#`` lines repeat the
essentials and are shown in the report) and lfw_groups_counts.json (identities per category
before and after merging, images skipped, and how often an identity's images disagree).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, REPO, RESULTS, require_lfw
from faceledger.domain.faces import Faces
from faceledger.evaluation.fairness import EmbeddedImages, embed_dataset
from faceledger.inference.align import align_faces
from faceledger.inference.engine import FaceEngine

OUT = RESULTS / "fairness"
# (x0, y0, x1, y1) in the 112×112 aligned crop: left cheek, right cheek, forehead.
SKIN_PATCHES_112 = ((28, 64, 46, 80), (66, 64, 84, 80), (42, 24, 70, 36))
L_MIN, L_MAX = 15.0, 92.0
MIN_PIXELS = 50
MIN_CHROMA = 5.0
# Lightest first: (name, lower bound in degrees); a value belongs to the first bound it exceeds.
ITA_CATEGORIES: tuple[tuple[str, float], ...] = (
    ("very_light", 55.0),
    ("light", 41.0),
    ("intermediate", 28.0),
    ("tan", 10.0),
    ("brown", -30.0),
    ("dark", -math.inf),
)
DEFAULT_MIN_IDENTITIES = 200

PROXY_NOTE = (
    "Groups: apparent skin tone from the Individual Typology Angle (ITA) of cheek and forehead "
    "pixels of the aligned face, median per identity (bench/lfw_groups.py). An automatic proxy "
    "of how light or dark skin appears under uncontrolled news-photo lighting - NOT ethnicity, "
    "race or self-identified group, and not a person's actual skin type; lighting alone shifts "
    "an image by one or two categories. Used because LFW has no demographic labels and this "
    "proxy is transparent and recomputable."
)


# -- per image --------------------------------------------------------------------------------
def skin_lab(crop_bgr: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(k, 3) CIELab (L* 0–100) of the skin-patch pixels of a 112×112 crop, extremes dropped."""
    import cv2

    lab = cv2.cvtColor(crop_bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab)
    patches = [lab[y0:y1, x0:x1].reshape(-1, 3) for x0, y0, x1, y1 in SKIN_PATCHES_112]
    pixels = np.concatenate(patches)
    keep = (pixels[:, 0] >= L_MIN) & (pixels[:, 0] <= L_MAX)
    return np.asarray(pixels[keep], np.float32)


def ita_degrees(lightness: float, b_star: float) -> float:
    """ITA = atan((L* − 50) / b*) in degrees (b* > 0)."""
    return math.degrees(math.atan((lightness - 50.0) / b_star))


def image_ita(crop_bgr: NDArray[np.uint8]) -> float | None:
    """The ITA of one aligned crop, or None when the crop cannot give one (see module doc)."""
    pixels = skin_lab(crop_bgr)
    if len(pixels) < MIN_PIXELS:
        return None
    lightness, _, b_star = (float(v) for v in np.median(pixels, axis=0))
    chroma = float(np.median(np.hypot(pixels[:, 1], pixels[:, 2])))
    if chroma < MIN_CHROMA or b_star <= 0:
        return None
    return ita_degrees(lightness, b_star)


def category(ita: float) -> int:
    """Index into ITA_CATEGORIES (0 = very_light … 5 = dark)."""
    for k, (_, lower) in enumerate(ITA_CATEGORIES):
        if ita > lower:
            return k
    return len(ITA_CATEGORIES) - 1


def images_ita(root: Path, embedded: EmbeddedImages) -> list[float | None]:
    """ITA of every image's largest face (None: no face, or no usable skin pixels)."""
    import cv2

    values: list[float | None] = []
    for i, rel in enumerate(embedded.paths):
        pixels = cv2.imread(str(root / rel), cv2.IMREAD_COLOR) if embedded.found[i] else None
        if pixels is None:
            values.append(None)
            continue
        faces = Faces(
            embedded.boxes_px[i : i + 1], np.ones(1, np.float32), embedded.landmarks_px[i : i + 1]
        )
        values.append(image_ita(align_faces(np.asarray(pixels, np.uint8), faces)[0]))
    return values


# -- per identity -----------------------------------------------------------------------------
@dataclass(frozen=True)
class IdentityTone:
    identity: str
    ita: float  # median over usable images
    image_itas: tuple[float, ...]

    @property
    def images_used(self) -> int:
        return len(self.image_itas)


def identity_tones(paths: Sequence[str], itas: Sequence[float | None]) -> list[IdentityTone]:
    """Median ITA per identity over its usable images (identities with none are left out)."""
    by_id: dict[str, list[float]] = {}
    for path, ita in zip(paths, itas, strict=True):
        if ita is not None:
            by_id.setdefault(path.split("/", 1)[0], []).append(ita)
    return [IdentityTone(name, float(np.median(v)), tuple(v)) for name, v in sorted(by_id.items())]


def merge_small(counts: Sequence[int], minimum: int) -> list[list[int]]:
    """Runs of adjacent categories, each with ≥ ``minimum`` identities where possible.

    Repeatedly merges the smallest run into its smaller neighbour (ties: the lighter one).
    """
    runs = [[k] for k in range(len(counts))]
    sizes = list(counts)
    while len(runs) > 1 and min(sizes) < minimum:
        i = int(np.argmin(sizes))
        if i == 0:
            j = 1
        elif i == len(runs) - 1:
            j = i - 1
        else:
            j = i - 1 if sizes[i - 1] <= sizes[i + 1] else i + 1
        lo, hi = min(i, j), max(i, j)
        runs[lo : hi + 1] = [runs[lo] + runs[hi]]
        sizes[lo : hi + 1] = [sizes[lo] + sizes[hi]]
    return runs


def run_name(run: Sequence[int]) -> str:
    return "+".join(ITA_CATEGORIES[k][0] for k in run)


def run_range(run: Sequence[int]) -> str:
    """ITA range of a run of categories, e.g. '10° < ITA ≤ 41°'."""
    lower = ITA_CATEGORIES[run[-1]][1]
    upper = ITA_CATEGORIES[run[0] - 1][1] if run[0] > 0 else math.inf
    low = "" if lower == -math.inf else f"{lower:g}° < "
    high = "" if upper == math.inf else f" ≤ {upper:g}°"
    return f"{low}ITA{high}"


# -- building and writing ---------------------------------------------------------------------
def build_groups(
    root: Path, embedded: EmbeddedImages, min_identities: int = DEFAULT_MIN_IDENTITIES
) -> tuple[dict[str, str], dict[str, Any]]:
    """identity → group, and the counts that document the grouping."""
    itas = images_ita(root, embedded)
    tones = identity_tones(embedded.paths, itas)
    per_category = [0] * len(ITA_CATEGORIES)
    for tone in tones:
        per_category[category(tone.ita)] += 1
    runs = merge_small(per_category, min_identities)
    group_of_category = {k: run_name(run) for run in runs for k in run}
    mapping = {t.identity: group_of_category[category(t.ita)] for t in tones}
    multi = [t for t in tones if t.images_used >= 2]
    agree = [np.mean([category(x) == category(t.ita) for x in t.image_itas]) for t in multi]
    spread = [float(np.subtract(*np.percentile(t.image_itas, [75, 25]))) for t in multi]
    identities = {p.split("/", 1)[0] for p in embedded.paths}
    counts: dict[str, Any] = {
        "identities": len(identities),
        "identities_with_a_tone": len(tones),
        "identities_unassigned": len(identities) - len(tones),
        "images": len(embedded.paths),
        "images_with_a_tone": sum(v is not None for v in itas),
        "images_without_face": int((~embedded.found).sum()),
        "images_skipped_greyscale_or_few_skin_pixels": sum(
            v is None for v, f in zip(itas, embedded.found, strict=True) if f
        ),
        "identities_per_category": {
            name: per_category[k] for k, (name, _) in enumerate(ITA_CATEGORIES)
        },
        "min_identities_per_group": min_identities,
        "groups": [
            {
                "group": run_name(run),
                "ita_range": run_range(run),
                "identities": sum(per_category[k] for k in run),
                "images_used": sum(
                    t.images_used
                    for t in tones
                    if group_of_category[category(t.ita)] == run_name(run)
                ),
            }
            for run in runs
        ],
        "ita_identity_median_quartiles_deg": [
            float(q) for q in np.percentile([t.ita for t in tones], [25, 50, 75])
        ],
        "identities_with_2_or_more_images": len(multi),
        # How stable the proxy is: lighting moves one person's images across categories.
        "mean_share_of_an_identitys_images_in_its_category": float(np.mean(agree)),
        "identities_with_images_in_two_or_more_categories": sum(
            len({category(x) for x in t.image_itas}) > 1 for t in multi
        ),
        "median_within_identity_ita_iqr_deg": float(np.median(spread)),
        "method": {
            "face": embedded.face,
            "skin_patches_112_x0_y0_x1_y1": SKIN_PATCHES_112,
            "lightness_kept": [L_MIN, L_MAX],
            "min_pixels": MIN_PIXELS,
            "min_median_chroma": MIN_CHROMA,
            "categories_lower_bounds_deg": {n: b for n, b in ITA_CATEGORIES if b > -math.inf},
        },
    }
    return mapping, counts


def write_groups(mapping: dict[str, str], counts: dict[str, Any], out_dir: Path) -> Path:
    """The CSV (with '#' notes the report shows) and the counts JSON."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# {PROXY_NOTE}"]
    lines += [
        f"# {g['group']}: {g['ita_range']}, {g['identities']} identities" for g in counts["groups"]
    ]
    lines.append(
        f"# {counts['identities_unassigned']} identities without a usable image (greyscale or "
        "too few skin pixels) are not listed and count as 'unassigned'."
    )
    agree = counts["mean_share_of_an_identitys_images_in_its_category"]
    spanning = counts["identities_with_images_in_two_or_more_categories"]
    lines.append(
        f"# Stability of the proxy: on average only {agree:.0%} of an identity's images fall "
        f"in its own category; {spanning} of {counts['identities_with_2_or_more_images']} "
        "identities with 2+ usable images "
        "have images in two or more categories (median within-identity ITA spread, IQR: "
        f"{counts['median_within_identity_ita_iqr_deg']:.0f}°)."
    )
    lines.append("identity,group")
    # Rows lightest group first: the report lists groups in the order they first appear.
    order = {g["group"]: k for k, g in enumerate(counts["groups"])}
    rows = sorted(mapping.items(), key=lambda item: (order[item[1]], item[0]))
    lines += [f"{identity},{group}" for identity, group in rows]
    csv_path = out_dir / "lfw_groups.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out_dir / "lfw_groups_counts.json").write_text(
        json.dumps(counts, indent=2, default=float) + "\n", encoding="utf-8"
    )
    return csv_path


def make_groups(
    engine: FaceEngine,
    root: Path,
    min_identities: int = DEFAULT_MIN_IDENTITIES,
    face: str = "central",
) -> tuple[Path, dict[str, Any]]:
    """Embed (cached in .cache/), measure ITA, group, write; returns (CSV path, counts)."""
    embedded, _, reused = embed_dataset(engine, root, CACHE, face=face)
    print(f"{'reused' if reused else 'computed'} embeddings of {len(embedded.paths)} images")
    mapping, counts = build_groups(root, embedded, min_identities)
    return write_groups(mapping, counts, OUT), counts


def print_counts(counts: dict[str, Any]) -> None:
    print("identities per ITA category:", counts["identities_per_category"])
    for g in counts["groups"]:
        print(f"  {g['group']:<24} {g['ita_range']:<22} {g['identities']:>5} identities")
    print(
        f"  unassigned: {counts['identities_unassigned']} identities; images skipped "
        f"(greyscale / few skin pixels): {counts['images_skipped_greyscale_or_few_skin_pixels']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-identities", type=int, default=DEFAULT_MIN_IDENTITIES)
    parser.add_argument("--face", choices=("central", "largest"), default="central")
    args = parser.parse_args()
    root = require_lfw()
    engine = FaceEngine()
    try:
        csv_path, counts = make_groups(engine, root, args.min_identities, args.face)
    finally:
        engine.close()
    print_counts(counts)
    print(f"wrote {csv_path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
