"""Object-detection ("labels") packs: manifests, where their file is, SHA-256 checked at load.

The built-in pack ``labels`` (YOLOX-nano, COCO's 80 classes) is vendored in the package under
``faceledger/inference/labelpacks/`` with its licence notice. A user adds a larger YOLOX-style
detector (s, m, l, x: same pre- and post-processing, see ``yolox.py``) as a folder
``<model_dir>/<name>/`` holding the ONNX file and a ``labels-pack.json`` manifest of the same
form as ``labelpacks/labels.json`` with the file's own digest, then sets
``FACELEDGER_LABELS_PACK=<name>``. Nothing is downloaded; a file whose digest differs from its
manifest's is refused.

Optional manifest fields, each with its default: ``input_max_side`` (none: every image is
letterboxed into ``input_size``; a multiple of 32: the graph's input is made size-free at load
and each image goes in at its own aspect ratio, at ``input_size`` for large objects and at its
own size up to this for small ones — see ``yolox.py``), ``score_threshold`` 0.25,
``iou_threshold`` 0.45, ``tiles`` false.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from faceledger.domain.errors import (
    LicenceNotAcceptedError,
    ModelPackError,
    ResourceNotFoundError,
)
from faceledger.domain.labels import COCO80
from faceledger.inference.manifest import Licence
from faceledger.inference.packs import sha256_hex
from faceledger.inference.sessions import OrtSession
from faceledger.inference.yolox import YoloxDetector, dynamic_image_size

DEFAULT_LABELS_PACK = "labels"
USER_LABELS_MANIFEST = "labels-pack.json"
_BUILTIN_FOLDER = "labelpacks"
_KINDS = ("yolox",)
# Named class lists a manifest may give instead of spelling the classes out.
CLASS_LISTS: dict[str, tuple[str, ...]] = {"coco80": COCO80}


@dataclass(frozen=True)
class LabelsPackManifest:
    name: str
    label_model_version: str  # Rekognition's LabelModelVersion
    description: str
    licence: Licence
    kind: str  # "yolox"
    filename: str
    sha256: str
    input_size_px: tuple[int, int]  # (width, height)
    classes: tuple[str, ...]  # detector class index → class name (COCO names map to labels)
    score_threshold: float
    iou_threshold: float
    directory: Path | None  # None: the built-in folder inside the package
    size_bytes: int | None = None
    # Also detect on overlapping square tiles of wide images (small objects; ≈3× the work).
    tiles: bool = False
    # Feed each image at its own aspect ratio, coarse and fine up to this (None: input_size).
    input_max_side_px: int | None = None


@dataclass(frozen=True)
class LabelsPackFiles:
    manifest: LabelsPackManifest
    model_bytes: bytes  # the verified graph, with the repairs its manifest implies applied


def _require(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ModelPackError(f"{where}: missing field {key!r}")
    return data[key]


def _input_size(size: Any, where: str) -> tuple[int, int]:
    """A manifest's ``input_size``: [width, height], each a positive multiple of 32."""
    if not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(v, int) and v > 0 and v % 32 == 0 for v in size)
    ):
        raise ModelPackError(f"{where}: input_size must be [width, height], multiples of 32")
    return size[0], size[1]


def _classes(field: Any, where: str) -> tuple[str, ...]:
    """A manifest's ``classes``: the name of a class list, or a non-empty list of names."""
    if isinstance(field, str):
        if field not in CLASS_LISTS:
            raise ModelPackError(f"{where}: unknown class list {field!r}")
        return CLASS_LISTS[field]
    if isinstance(field, list) and field:
        return tuple(str(c) for c in field)
    raise ModelPackError(f"{where}: classes must be a class-list name or a list of names")


def _licence(lic: Any, where: str) -> Licence:
    """A manifest's ``licence`` object (``where`` names it in errors)."""
    return Licence(
        name=str(_require(lic, "name", where)),
        commercial_use=bool(_require(lic, "commercial_use", where)),
        notice=str(lic.get("notice", "")),
    )


def parse_labels_manifest(
    data: dict[str, Any], *, where: str, directory: Path | None = None
) -> LabelsPackManifest:
    """Validate a labels-pack manifest dict; ``directory`` is the folder of a user pack."""
    if not isinstance(data, dict):
        raise ModelPackError(f"{where}: a manifest is a JSON object")
    kind = str(_require(data, "kind", where))
    if kind not in _KINDS:
        raise ModelPackError(f"{where}: kind must be one of {', '.join(_KINDS)}")
    sha = str(_require(data, "sha256", where)).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelPackError(f"{where}: sha256 must be 64 hex digits")
    size = _input_size(_require(data, "input_size", where), where)
    classes = _classes(_require(data, "classes", where), where)
    lic = _require(data, "licence", where)
    filename = str(_require(data, "file", where))
    if Path(filename).name != filename:
        raise ModelPackError(f"{where}: file must be a file name inside the pack folder")
    score, iou = float(data.get("score_threshold", 0.25)), float(data.get("iou_threshold", 0.45))
    if not (0.0 < score < 1.0 and 0.0 < iou < 1.0):
        raise ModelPackError(f"{where}: score_threshold and iou_threshold must be in (0, 1)")
    max_side = data.get("input_max_side")
    if max_side is not None and not (
        isinstance(max_side, int) and max_side % 32 == 0 and max_side >= max(size)
    ):
        raise ModelPackError(
            f"{where}: input_max_side must be a multiple of 32, at least input_size's larger side"
        )
    name = str(_require(data, "name", where))
    return LabelsPackManifest(
        name=name,
        label_model_version=str(data.get("label_model_version", name)),
        description=str(data.get("description", "")),
        licence=_licence(lic, where + ".licence"),
        kind=kind,
        filename=filename,
        sha256=sha,
        input_size_px=size,
        classes=classes,
        score_threshold=score,
        iou_threshold=iou,
        directory=directory,
        size_bytes=data.get("size_bytes"),
        tiles=bool(data.get("tiles", False)),
        input_max_side_px=max_side,
    )


def _builtin() -> LabelsPackManifest:
    entry = resources.files("faceledger.inference") / _BUILTIN_FOLDER / "labels.json"
    data = json.loads(entry.read_text(encoding="utf-8"))
    return parse_labels_manifest(data, where="labelpacks/labels.json")


class LabelsPackRegistry:
    """The labels packs this installation knows. Cheap: reads manifests only."""

    def __init__(
        self, model_dirs: Iterable[Path] = (), *, accepted_licences: Iterable[str] = ()
    ) -> None:
        self.accepted_licences = frozenset(accepted_licences)
        builtin = _builtin()
        packs = {builtin.name: builtin}
        for folder in (Path(d) for d in model_dirs):
            if not folder.is_dir():
                continue
            for pack_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
                path = pack_dir / USER_LABELS_MANIFEST
                if not path.is_file():
                    continue
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise ModelPackError(f"cannot read {path}: {exc}") from None
                manifest = parse_labels_manifest(data, where=str(path), directory=pack_dir)
                if manifest.name == builtin.name:
                    raise ModelPackError(f"{path}: pack name {manifest.name!r} is built in")
                packs[manifest.name] = manifest
        self._packs = packs

    def names(self) -> list[str]:
        return sorted(self._packs)

    def manifest(self, name: str) -> LabelsPackManifest:
        try:
            return self._packs[name]
        except KeyError:
            raise ResourceNotFoundError(
                f"labels pack {name!r} not found; known labels packs: {', '.join(self.names())}"
            ) from None

    def load(self, name: str) -> LabelsPackFiles:
        """Read the pack's model and check its SHA-256 and licence; raises when it cannot."""
        manifest = self.manifest(name)
        if not manifest.licence.commercial_use and name not in self.accepted_licences:
            raise LicenceNotAcceptedError(
                f"labels pack {name!r} is licensed {manifest.licence.name!r}, which forbids "
                f"commercial use: {manifest.licence.notice} To accept it, add {name!r} to "
                "FACELEDGER_ACCEPT_MODEL_LICENCES."
            )
        if manifest.directory is None:
            entry = resources.files("faceledger.inference") / _BUILTIN_FOLDER / manifest.filename
            if not entry.is_file():
                raise ModelPackError(f"labels pack {name!r}: {manifest.filename} is missing")
            data = entry.read_bytes()
        else:
            path = manifest.directory / manifest.filename
            if not path.is_file():
                raise ModelPackError(f"labels pack {name!r}: {path} not found")
            data = path.read_bytes()
        actual = sha256_hex(data)
        if actual != manifest.sha256:
            raise ModelPackError(
                f"labels pack {name!r}: {manifest.filename} has SHA-256 {actual}, expected "
                f"{manifest.sha256}; refusing to load it"
            )
        if manifest.input_max_side_px is not None:
            try:
                data = dynamic_image_size(data)
            except Exception as exc:  # onnx's parse errors have no common base class
                raise ModelPackError(
                    f"labels pack {name!r}: cannot free the input size of "
                    f"{manifest.filename} ({exc}); remove input_max_side"
                ) from None
        return LabelsPackFiles(manifest, data)


def detector_for_pack(
    files: LabelsPackFiles, *, score_threshold: float | None = None, threads: int = 1
) -> YoloxDetector:
    """The pack's detector with its manifest's settings (``score_threshold`` overrides the
    manifest's: benchmarks sweep operating points from a low one), run once to check it.

    One ONNX Runtime thread by default: measured on the shared 2-core machine (load ≈ 6.5,
    YOLOX-nano on 1280×720), one thread took 160 ms wall and 98 ms CPU per image, two threads
    319 ms and 188 ms (idle workers spin; 189 ms and 138 ms without spinning); concurrent
    requests each get a core."""
    manifest = files.manifest
    detector = YoloxDetector(
        OrtSession(files.model_bytes, threads=threads),
        manifest.input_size_px,
        score_threshold=manifest.score_threshold if score_threshold is None else score_threshold,
        iou_threshold=manifest.iou_threshold,
        tiles=manifest.tiles,
        max_side_px=manifest.input_max_side_px,
    )
    try:
        detector.probe()
    except Exception as exc:  # ONNX Runtime's errors have no common base class
        raise ModelPackError(
            f"labels pack {manifest.name!r}: the model does not run as a YOLOX detector "
            f"({exc}); check input_size, input_max_side and the export's layout"
        ) from None
    return detector
