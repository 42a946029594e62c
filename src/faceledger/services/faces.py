"""Face verbs without a collection: detect, compare, and model-pack housekeeping.

``FaceService`` is built from ``Settings`` and owns one lazily created ``FaceEngine`` per process
(the default pack). Results are JSON-ready dicts in pixel units (``bbox_px``, ``landmarks_px``);
``similarity`` is the pack's calibrated 0–100 Similarity and ``cosine`` the raw model score.
This module imports neither FastAPI nor Typer: the HTTP API and the CLI are thin adapters on it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from faceledger.config import Settings
from faceledger.domain.errors import ModelPackError
from faceledger.domain.faces import AnalysedImage, CompareResult, Image
from faceledger.inference.engine import MAX_FACES_PER_IMAGE, EngineOptions, FaceEngine
from faceledger.inference.imaging import decode_image, load_image, read_image_file
from faceledger.inference.packs import FileCheck, PackRegistry

# Encoded bytes (an upload), a file path, or an already decoded image.
ImageSource = bytes | os.PathLike[str] | Image


def image_info(image: Image | AnalysedImage) -> dict[str, Any]:
    """The decoded image's size (after EXIF orientation), format and SHA-256 of its bytes."""
    return {
        "width_px": image.width_px,
        "height_px": image.height_px,
        "format": image.format,
        "size_bytes": image.size_bytes,
        "sha256": image.sha256,
    }


def _file_check_dict(check: FileCheck) -> dict[str, Any]:
    return {
        "role": check.role,
        "filename": check.filename,
        "status": check.status,
        "path": str(check.path) if check.path is not None else None,
        "expected_sha256": check.expected_sha256,
        "actual_sha256": check.actual_sha256,
    }


class FaceService:
    """Detect and compare faces with the default pack; list and verify model packs.

    Cheap to construct (reads pack manifests only). The engine is created on first use and
    its models load on first inference or on :meth:`load`; both are thread-safe.
    """

    def __init__(self, settings: Settings, *, registry: PackRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or PackRegistry(
            settings.model_dirs, accepted_licences=settings.accept_model_licences
        )
        self._engine: FaceEngine | None = None
        self._lock = threading.Lock()
        # Large image decodes at once (each may take a second and ~130 MB; see imaging).
        self._large_decodes = threading.BoundedSemaphore(settings.large_decode_slots)

    # -- engine ---------------------------------------------------------------------------
    @property
    def pack(self) -> str:
        return self.settings.default_pack

    @property
    def face_model_version(self) -> str:
        return self.registry.manifest(self.pack).face_model_version

    @property
    def engine(self) -> FaceEngine:
        """The process's engine for the default pack (created once; models not yet loaded)."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = FaceEngine(
                        self.pack,
                        registry=self.registry,
                        options=EngineOptions(
                            workers=self.settings.workers,
                            inference_threads=self.settings.inference_threads,
                        ),
                    )
        return self._engine

    @property
    def loaded(self) -> bool:
        return self._engine is not None and self._engine.loaded

    def load(self) -> None:
        """Verify and load the default pack now (idempotent), so the first request is fast."""
        self.engine.load()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()

    def health(self) -> dict[str, Any]:
        """Pack name, its FaceModelVersion and whether its models are loaded (never loads)."""
        return {
            "pack": self.pack,
            "face_model_version": self.face_model_version,
            "loaded": self.loaded,
        }

    # -- images ---------------------------------------------------------------------------
    def image(self, source: ImageSource) -> Image:
        """Decode bytes or read a file with this installation's limits; an Image passes through.

        Raises InvalidImageFormatError, ImageTooLargeError or InvalidParameterError.
        """
        if isinstance(source, Image):
            return source
        limits: dict[str, Any] = {
            "max_bytes": self.settings.max_image_bytes,
            "max_decode_bytes": self.settings.max_decode_bytes,
            "large_decodes": self._large_decodes,
        }
        started = time.perf_counter()
        if isinstance(source, bytes | bytearray | memoryview):
            image = decode_image(bytes(source), **limits)
        else:
            image = load_image(source, **limits)
        self.engine.clock.record("decode", time.perf_counter() - started)
        return image

    def read_file(self, path: os.PathLike[str]) -> bytes:
        """An image file's bytes, undecoded, refused over ``settings.max_image_bytes`` (for
        the verbs that take encoded bytes, such as ``Gateway``'s)."""
        return read_image_file(path, max_bytes=self.settings.max_image_bytes)

    # -- verbs ----------------------------------------------------------------------------
    def detect_faces(
        self, image: ImageSource, *, max_faces: int = MAX_FACES_PER_IMAGE
    ) -> AnalysedImage:
        """The image's faces, largest first, with quality and pose (no embeddings)."""
        decoded = self.image(image)
        return AnalysedImage.of(decoded, self.engine.detect(decoded, max_faces=max_faces))

    def detect(self, image: ImageSource, *, max_faces: int = MAX_FACES_PER_IMAGE) -> dict[str, Any]:
        """Faces in an image, largest first: pixel boxes, confidence (0–100), five landmarks,
        quality (brightness, sharpness 0–100) and pose (degrees).

        Returns ``{"face_model_version", "image": {...}, "faces": [...]}``.
        """
        return self.detect_result(self.detect_faces(image, max_faces=max_faces))

    def detect_result(
        self, analysed: AnalysedImage, *, max_faces: int = MAX_FACES_PER_IMAGE
    ) -> dict[str, Any]:
        """:meth:`detect`'s answer for an image already analysed (``detect_faces``), keeping
        its ``max_faces`` largest faces (as ``detect_faces(max_faces=…)`` would have)."""
        return {
            "face_model_version": self.engine.face_model_version,
            "image": image_info(analysed),
            "faces": analysed.faces[:max_faces].to_dicts(),
        }

    def compare_faces(
        self,
        source: ImageSource,
        target: ImageSource,
        *,
        max_target_faces: int = MAX_FACES_PER_IMAGE,
    ) -> tuple[Image, Image, CompareResult]:
        """Decoded source and target and the comparison (see :meth:`compare`)."""
        source_image = self.image(source)
        target_image = self.image(target)
        result = self.engine.compare(source_image, target_image, max_target_faces=max_target_faces)
        return source_image, target_image, result

    def compare(
        self,
        source: ImageSource,
        target: ImageSource,
        *,
        max_target_faces: int = MAX_FACES_PER_IMAGE,
    ) -> dict[str, Any]:
        """The largest face of ``source`` against every face of ``target``.

        ``matches`` are sorted by Similarity, highest first; ``calibrated`` is false when the
        pack has no Similarity calibration (then Similarity is 100·max(cosine, 0)).
        Raises InvalidParameterError when the source image has no face.
        """
        source_image, target_image, result = self.compare_faces(
            source, target, max_target_faces=max_target_faces
        )
        return self.compare_result(source_image, target_image, result)

    def compare_result(
        self,
        source_image: Image,
        target_image: Image,
        result: CompareResult,
        *,
        max_target_faces: int = MAX_FACES_PER_IMAGE,
    ) -> dict[str, Any]:
        """:meth:`compare`'s answer for a comparison already made (``compare_faces``), keeping
        the ``max_target_faces`` largest target faces (as ``compare_faces(max_target_faces=…)``
        would have: targets are largest first)."""
        engine = self.engine
        if len(result.targets) > max_target_faces:
            result = CompareResult(
                result.source,
                result.targets[:max_target_faces],
                tuple(m for m in result.matches if m.target_index < max_target_faces),
            )
        target_faces = result.targets.to_dicts()
        matches = sorted(result.matches, key=lambda m: m.similarity, reverse=True)
        return {
            "face_model_version": engine.face_model_version,
            "calibrated": engine.calibration.calibrated,
            "source_image": image_info(source_image),
            "target_image": image_info(target_image),
            "source_face": result.source.to_dicts()[0],
            "matches": [
                {
                    "face": target_faces[m.target_index],
                    "similarity": round(m.similarity, 4),
                    "cosine": round(m.cosine, 6),
                    # measured FMR at the highest published threshold this score clears
                    "false_match_rate_at_most": engine.calibration.false_match_rate(m.similarity),
                }
                for m in matches
            ],
        }

    # -- model packs ----------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        """Every known pack: licence, whether its files are present and pass SHA-256."""
        out = []
        for manifest in self.registry.manifests():
            problem: str | None = None
            try:
                checks = self.registry.verify(manifest.name)
            except ModelPackError as exc:
                checks, problem = [], exc.message
            statuses = [c.status for c in checks]
            installed = any(s != "missing" for s in statuses)
            out.append(
                {
                    "name": manifest.name,
                    "face_model_version": manifest.face_model_version,
                    "description": manifest.description,
                    "default": manifest.name == self.pack,
                    "licence": manifest.licence.name,
                    "commercial_use": manifest.licence.commercial_use,
                    "licence_accepted": manifest.licence.commercial_use
                    or manifest.name in self.registry.accepted_licences,
                    "embedding_size": manifest.embedder.embedding_size,
                    "calibrated": manifest.calibration is not None,
                    "installed": installed,
                    "verified": installed and all(s == "ok" for s in statuses),
                    "problem": problem,
                }
            )
        return out

    def verify_models(self, name: str | None = None) -> list[dict[str, Any]]:
        """SHA-256 of every file of one pack (or all): ``ok`` / ``missing`` / ``mismatch``.

        ``installed`` is true when at least one file is present; ``ok`` when all files are.
        Raises ResourceNotFoundError for an unknown pack name.
        """
        names = [self.registry.manifest(name).name] if name else self.registry.names()
        out = []
        for pack in names:
            problem: str | None = None
            try:
                checks = self.registry.verify(pack)
            except ModelPackError as exc:
                checks, problem = [], exc.message
            files = [_file_check_dict(c) for c in checks]
            out.append(
                {
                    "name": pack,
                    "installed": any(c.status != "missing" for c in checks),
                    "ok": problem is None and all(c.status == "ok" for c in checks),
                    "problem": problem,
                    "files": files,
                }
            )
        return out
