"""The pack registry: find manifests, locate their files, verify SHA-256, enforce licences.

Built-in manifests ship in ``faceledger/inference/packs/*.json``. A user pack is a directory
``<model_dir>/<name>/`` holding the model files and a ``pack.json`` manifest; built-in manifests
whose source is a directory (``buffalo_l``, ``antelopev2``) read their files from
``<model_dir>/<name>/`` as well. Nothing is downloaded here.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from faceledger.domain.errors import (
    LicenceNotAcceptedError,
    ModelPackError,
    ResourceNotFoundError,
)
from faceledger.inference.manifest import ModelFile, PackManifest, parse_manifest, read_manifest

DEFAULT_PACK = "yunet-sface"
USER_MANIFEST = "pack.json"


@dataclass(frozen=True)
class FileCheck:
    role: str
    filename: str
    path: Path | None
    expected_sha256: str
    actual_sha256: str | None
    status: Literal["ok", "missing", "mismatch"]


@dataclass(frozen=True)
class PackFiles:
    """A pack's verified model bytes (graph fixes not yet applied)."""

    manifest: PackManifest
    detector_bytes: bytes
    embedder_bytes: bytes


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _builtin_manifests() -> list[PackManifest]:
    import json

    out = []
    folder = resources.files("faceledger.inference") / "packs"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text(encoding="utf-8"))
            out.append(parse_manifest(data, where=entry.name))
    return out


class PackRegistry:
    """All packs this installation knows. Cheap to build: reads manifests only, no models."""

    def __init__(
        self,
        model_dirs: Iterable[Path] = (),
        *,
        accepted_licences: Iterable[str] = (),
    ) -> None:
        self.model_dirs = tuple(Path(d) for d in model_dirs)
        self.accepted_licences = frozenset(accepted_licences)
        packs: dict[str, PackManifest] = {m.name: m for m in _builtin_manifests()}
        for folder in self.model_dirs:
            if not folder.is_dir():
                continue
            for pack_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
                manifest_path = pack_dir / USER_MANIFEST
                if manifest_path.is_file():
                    manifest = read_manifest(manifest_path, directory=pack_dir)
                    if manifest.name in packs and packs[manifest.name].source.kind != "directory":
                        raise ModelPackError(
                            f"{manifest_path}: pack name {manifest.name!r} is built in"
                        )
                    packs[manifest.name] = manifest
        self._packs = packs

    def names(self) -> list[str]:
        return sorted(self._packs)

    def manifests(self) -> list[PackManifest]:
        return [self._packs[n] for n in self.names()]

    def manifest(self, name: str) -> PackManifest:
        try:
            return self._packs[name]
        except KeyError:
            raise ResourceNotFoundError(
                f"model pack {name!r} not found; known packs: {', '.join(self.names())}"
            ) from None

    def pack_directory(self, manifest: PackManifest) -> Path | None:
        """The folder that holds the pack's files, or None when it is not installed."""
        source = manifest.source
        if source.kind == "python-package":
            assert source.package is not None
            spec = importlib.util.find_spec(source.package)  # locates without importing it
            if spec is None or not spec.submodule_search_locations:
                return None
            if source.version is not None:
                installed = importlib.metadata.version(source.package)
                if installed != source.version:
                    raise ModelPackError(
                        f"pack {manifest.name!r} needs {source.package}=={source.version}, "
                        f"found {installed}"
                    )
            return Path(next(iter(spec.submodule_search_locations))) / source.subdir
        if source.directory is not None:
            return source.directory
        for folder in self.model_dirs:
            candidate = folder / manifest.name
            if candidate.is_dir():
                return candidate
        return None

    def _path(self, manifest: PackManifest, model: ModelFile) -> Path | None:
        folder = self.pack_directory(manifest)
        if folder is None:
            return None
        path = folder / model.filename
        return path if path.is_file() else None

    def verify(self, name: str) -> list[FileCheck]:
        """Hash every file of a pack; never raises for missing or mismatched files."""
        manifest = self.manifest(name)
        checks = []
        for model in manifest.files:
            path = self._path(manifest, model)
            if path is None:
                checks.append(
                    FileCheck(model.role, model.filename, None, model.sha256, None, "missing")
                )
                continue
            actual = sha256_hex(path.read_bytes())
            status: Literal["ok", "mismatch"] = "ok" if actual == model.sha256 else "mismatch"
            checks.append(FileCheck(model.role, model.filename, path, model.sha256, actual, status))
        return checks

    def check_licence(self, manifest: PackManifest) -> None:
        if not manifest.licence.commercial_use and manifest.name not in self.accepted_licences:
            raise LicenceNotAcceptedError(
                f"model pack {manifest.name!r} is licensed {manifest.licence.name!r}, which "
                f"forbids commercial use: {manifest.licence.notice} To accept it, add "
                f"{manifest.name!r} to FACELEDGER_ACCEPT_MODEL_LICENCES."
            )

    def load(self, name: str) -> PackFiles:
        """Read and verify a pack's files. Raises if missing, tampered or not licensed."""
        manifest = self.manifest(name)
        self.check_licence(manifest)
        blobs: dict[str, bytes] = {}
        for model in manifest.files:
            path = self._path(manifest, model)
            if path is None:
                where = self.pack_directory(manifest)
                raise ModelPackError(
                    f"pack {name!r}: {model.role} file {model.filename!r} not found"
                    + (f" in {where}" if where else " (pack not installed)")
                )
            data = path.read_bytes()
            actual = sha256_hex(data)
            if actual != model.sha256:
                raise ModelPackError(
                    f"pack {name!r}: {model.filename} has SHA-256 {actual}, expected "
                    f"{model.sha256}; refusing to load it"
                )
            blobs[model.role] = data
        return PackFiles(manifest, blobs["detector"], blobs["embedder"])
