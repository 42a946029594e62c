"""The gateway's verbs on images without a collection (DetectFaces, CompareFaces, DetectLabels,
DetectText), and what adapters may use without a record: stateless help (decoding the caller's
own upload, shaping a result, the pack's calibration table, model health)."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceledger.domain.audit import Caller
from faceledger.domain.errors import FaceLedgerError
from faceledger.domain.faces import AnalysedImage, CompareResult, Image
from faceledger.domain.labels import LabelsResult, TextResult
from faceledger.services.gateway_base import GatewayParts, probe_sha256
from faceledger.services.labels import LabelFilters, Region, WordFilter

if TYPE_CHECKING:
    from faceledger.inference.calibration import Calibration


class ImageVerbs(GatewayParts):
    """Images without a collection; the ledger keeps counts and names, never the text read."""

    # -- what adapters may use without a record (stateless) ---------------------------------
    @property
    def calibration(self) -> Calibration:
        """The pack's published Similarity ↔ false-match-rate table."""
        return self._faces.engine.calibration

    def health(self) -> dict[str, Any]:
        """Pack name, FaceModelVersion and whether the models are loaded (never loads)."""
        return self._faces.health()

    def load_models(self) -> None:
        """Verify and load the default pack now (the first request is then fast)."""
        self._faces.load()

    def close_models(self) -> None:
        self._faces.close()

    def decode_image(self, data: bytes) -> Image:
        """Decode image bytes the caller sent (with this installation's limits), e.g. to draw
        the boxes of a verb that has just accepted the same bytes."""
        return self._faces.image(data)

    def read_image_file(self, path: os.PathLike[str]) -> bytes:
        """A local image file's bytes, refused over the size limit (the CLI's photos)."""
        return self._faces.read_file(path)

    def detect_result(self, analysed: AnalysedImage, *, max_faces: int) -> dict[str, Any]:
        """The native JSON of a DetectFaces result."""
        return self._faces.detect_result(analysed, max_faces=max_faces)

    def compare_result(
        self, source: Image, target: Image, result: CompareResult, **options: Any
    ) -> dict[str, Any]:
        """The native JSON of a CompareFaces result."""
        return self._faces.compare_result(source, target, result, **options)

    def analyse_files(self, paths: Iterable[Path]) -> Generator[tuple[Path, Any], None, None]:
        """Analyse local image files on worker processes for a bulk enrolment: yields each
        path with its ``AnalysedImage`` or ``FaceLedgerError``. Nothing is stored or ledgered
        until a result is passed to ``index_faces``."""
        from faceledger.inference.imaging import load_image

        engine = self._faces.engine
        try:
            yield from engine.analyse_many(list(paths), loader=load_image)
        finally:
            engine.close()

    def read_image_object(
        self,
        caller: Caller,
        operation: str,
        bucket: str,
        name: str,
        version: str | None = None,
        *,
        collection_id: str | None = None,
    ) -> bytes:
        """An ``Image.S3Object``'s bytes for ``operation``. The verb that receives them records
        their SHA-256; a failure to read them is recorded here (the verb never runs)."""
        try:
            return self._objects.read(bucket, name, version)
        except FaceLedgerError as exc:
            self.record_refusal(caller, operation, collection_id, exc.code, exc.message)
            raise

    # -- images without a collection -----------------------------------------------------
    def detect_faces(self, caller: Caller, image: bytes | Image) -> AnalysedImage:
        return self._run(
            caller,
            "DetectFaces",
            lambda: self._faces.detect_faces(image),
            probes=probe_sha256(image),
            summary=lambda a: {"faces": len(a.faces)},
        )

    def compare_faces(
        self, caller: Caller, source: bytes | Image, target: bytes | Image
    ) -> tuple[Image, Image, CompareResult]:
        def summary(out: tuple[Image, Image, CompareResult]) -> dict[str, Any]:
            return {
                "target_faces": len(out[2].targets),
                "similarities": [round(m.similarity, 3) for m in out[2].matches],
            }

        return self._run(
            caller,
            "CompareFaces",
            lambda: self._faces.compare_faces(source, target),
            probes=probe_sha256(source, target),
            summary=summary,
        )

    # -- objects and text (no collection; the ledger keeps counts and names, never the
    # -- text read) ------------------------------------------------------------------------
    def detect_labels(
        self,
        caller: Caller,
        image: bytes | Image,
        *,
        max_labels: int | None = None,
        min_confidence_pct: float | None = None,
        features: tuple[str, ...] = ("GENERAL_LABELS",),
        filters: LabelFilters | None = None,
        max_dominant_colours: int | None = None,
    ) -> LabelsResult:
        options: dict[str, Any] = {"features": features, "filters": filters}
        if max_labels is not None:
            options["max_labels"] = max_labels
        if min_confidence_pct is not None:
            options["min_confidence_pct"] = min_confidence_pct
        if max_dominant_colours is not None:
            options["max_dominant_colours"] = max_dominant_colours

        def summary(out: LabelsResult) -> dict[str, Any]:
            return {
                "labels": [label.name for label in out.labels][:100],
                "instances": sum(len(label.instances) for label in out.labels),
                "label_model_version": out.label_model_version,
            }

        return self._run(
            caller,
            "DetectLabels",
            lambda: self._labels.detect_labels(image, **options),
            probes=probe_sha256(image),
            summary=summary,
        )

    def detect_text(
        self,
        caller: Caller,
        image: bytes | Image,
        *,
        word_filter: WordFilter | None = None,
        regions: tuple[Region, ...] = (),
    ) -> TextResult:
        def summary(out: TextResult) -> dict[str, Any]:
            kinds = [item.kind for item in out.items]
            return {"lines": kinds.count("LINE"), "words": kinds.count("WORD")}

        return self._run(
            caller,
            "DetectText",
            lambda: self._labels.detect_text(image, word_filter=word_filter, regions=regions),
            probes=probe_sha256(image),
            summary=summary,
        )
