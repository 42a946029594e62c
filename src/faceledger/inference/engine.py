"""``FaceEngine``: detect → quality → align → embed → compare, for one model pack.

The pack loads once, lazily and thread-safely, on first use. Model sessions are not shared
between threads: each worker thread gets its own detector and embedder (OpenCV DNN objects are
not thread-safe), so bulk work (`analyse_many`) runs on every core.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.errors import FaceLedgerError, InvalidParameterError
from faceledger.domain.faces import AnalysedImage, CompareResult, FaceMatch, Faces, Image
from faceledger.inference.align import align_faces
from faceledger.inference.calibration import Calibration
from faceledger.inference.detectors import Detector, SCRFDDetector, YuNetDetector
from faceledger.inference.embedder import Embedder
from faceledger.inference.manifest import PackManifest
from faceledger.inference.packs import DEFAULT_PACK, PackFiles, PackRegistry
from faceledger.inference.quality import brightness_sharpness, pose_from_landmarks
from faceledger.inference.scale import ScaleTable
from faceledger.inference.sessions import apply_graph_fixes, make_session
from faceledger.inference.timing import StageClock

T = TypeVar("T")

MAX_FACES_PER_IMAGE = 100


@dataclass(frozen=True)
class EngineOptions:
    """Tunables with measured defaults (see bench/)."""

    detect_score_threshold: float = 0.6
    # Images are detected at their own resolution up to this long side; larger ones are
    # scaled down (a 40 px face in a 1920×1080 photo stays ≥ 40 px).
    max_detect_side_px: int = 1920
    # Large images are also detected at this long side, where YuNet's landmarks on big faces
    # are accurate; faces narrower than coarse_min_face_px there come from the fine pass.
    coarse_side_px: int = 640
    coarse_min_face_px: float = 48.0
    # Small images are padded up to this square so that a face filling the frame is found.
    min_detect_side_px: int = 320
    workers: int = max(1, min(os.cpu_count() or 1, 8))
    # OpenCV's threads for in-process inference: 0 adapts to load (every core for an inference
    # running alone, one thread each while several run at once); N fixes it at N.
    inference_threads: int = 0


class ThreadBudget:
    """OpenCV's worker threads, adapted to how many inferences this process runs at once.

    OpenCV's pthreads pool runs one parallel region at a time, so two requests that each use
    the pool take turns instead of overlapping; with one thread each they run side by side.
    Measured on 2 cores (640×480, one face): alone, 2 threads give 39 analyses/s and 1 thread
    25/s; two at once, 2 threads each give 40/s and 1 thread each 38–46/s. So a request alone
    gets every core (lowest latency) and concurrent requests get one each (most throughput).
    ``setNumThreads`` is process-wide; it is only called when the wanted count changes.

    Under sustained load, "alone" is mostly an accident of timing: the other request is between
    inferences (decoding, searching, writing its ledger record) and still needs its core, as do
    the HTTP work and the clients. So once inferences have overlapped, every inference gets one
    thread until none has overlapped for ``shared_window_s``; the count is chosen when an
    inference starts and never raised while others run. One client at a time still gets every
    core. (8 boto3 clients on 2 cores: the budget without this served 33.3 requests/s against
    34.3 with one thread fixed.)
    """

    def __init__(
        self,
        fixed: int = 0,
        cores: int | None = None,
        *,
        shared_window_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fixed = fixed
        self.cores = cores or os.cpu_count() or 1
        self.shared_window_s = shared_window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._active = 0
        self._last_shared = -math.inf  # when two inferences last ran at once
        self._current: int | None = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            self._active += 1
            now = self._clock()
            if self._active > 1:
                self._last_shared = now
            alone = self._active == 1 and now - self._last_shared > self.shared_window_s
            self._apply(self.fixed or (self.cores if alone else 1))
        try:
            yield
        finally:
            with self._lock:
                if self._active > 1:
                    self._last_shared = self._clock()
                self._active -= 1

    def _apply(self, want: int) -> None:
        if want != self._current:
            import cv2

            cv2.setNumThreads(want)
            self._current = want


class _Worker:
    """One thread's model sessions."""

    def __init__(self, files: PackFiles) -> None:
        manifest = files.manifest
        det = manifest.detector
        det_bytes = apply_graph_fixes(files.detector_bytes, det.graph_fixes)
        self.detector: Detector
        if det.kind == "yunet":
            self.detector = YuNetDetector(det_bytes)
        elif det.kind == "scrfd":
            self.detector = SCRFDDetector(
                make_session(det.runtime, det_bytes), input_size=det.input_size
            )
        else:
            raise FaceLedgerError(f"unknown detector kind {det.kind!r}")
        emb = manifest.embedder
        emb_bytes = apply_graph_fixes(files.embedder_bytes, emb.graph_fixes)
        self.embedder = Embedder(make_session(emb.runtime, emb_bytes), emb)


class FaceEngine:
    """Face detection, embedding and comparison with one model pack (default ``yunet-sface``).

    ``similarity`` values are the pack's calibrated 0–100 scale (see ``calibration``).
    """

    def __init__(
        self,
        pack: str = DEFAULT_PACK,
        *,
        registry: PackRegistry | None = None,
        options: EngineOptions | None = None,
    ) -> None:
        self._registry = registry or PackRegistry()
        self.manifest: PackManifest = self._registry.manifest(pack)
        self.options = options or EngineOptions()
        self.calibration = Calibration.from_table(self.manifest.calibration)
        self._files: PackFiles | None = None
        self._scale: ScaleTable | None = None
        self._scale_read = False
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pool: ProcessPoolExecutor | None = None
        self._threads = ThreadBudget(self.options.inference_threads)
        self.clock = StageClock()  # stage times for metrics (no observer: nothing recorded)

    # -- loading -------------------------------------------------------------------------
    @property
    def face_model_version(self) -> str:
        return self.manifest.face_model_version

    @property
    def embedding_size(self) -> int:
        return self.manifest.embedder.embedding_size

    @property
    def scale(self) -> ScaleTable | None:
        """The pack's open-set table (expected FPIR and hit rate by threshold and collection
        size), read once on first use; None when the pack ships none."""
        if not self._scale_read:
            with self._lock:
                if not self._scale_read:
                    self._scale = ScaleTable.builtin(self.manifest.name)
                    self._scale_read = True
        return self._scale

    @property
    def loaded(self) -> bool:
        return self._files is not None

    def load(self) -> None:
        """Verify and load the pack (idempotent, thread-safe); warms this thread's sessions."""
        self._worker()

    def _pack_files(self) -> PackFiles:
        if self._files is None:
            with self._lock:
                if self._files is None:
                    self._files = self._registry.load(self.manifest.name)
        return self._files

    def _worker(self) -> _Worker:
        worker: _Worker | None = getattr(self._local, "worker", None)
        if worker is None:
            worker = _Worker(self._pack_files())
            self._local.worker = worker
        return worker

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- single image ---------------------------------------------------------------------
    def detect(self, image: Image, *, max_faces: int = MAX_FACES_PER_IMAGE) -> Faces:
        """Faces with confidence, landmarks and quality, largest first, at most ``max_faces``."""
        with self._threads():
            started = time.perf_counter()
            faces, _ = self._detect(image, max_faces)
            self.clock.record("detect", time.perf_counter() - started)
        return faces

    def analyse(self, image: Image, *, max_faces: int = MAX_FACES_PER_IMAGE) -> Faces:
        """``detect`` plus an embedding per face."""
        with self._threads():
            started = time.perf_counter()
            faces, crops = self._detect(image, max_faces)
            detected = time.perf_counter()
            self.clock.record("detect", detected - started)
            if len(faces) == 0:
                return faces.with_embeddings(np.zeros((0, self.embedding_size), np.float32))
            embeddings = self._worker().embedder.embed(crops)
            self.clock.record("embed", time.perf_counter() - detected)
            return faces.with_embeddings(embeddings)

    def _detect(self, image: Image, max_faces: int) -> tuple[Faces, NDArray[np.uint8]]:
        if not 1 <= max_faces <= MAX_FACES_PER_IMAGE:
            raise InvalidParameterError(
                f"max_faces must be between 1 and {MAX_FACES_PER_IMAGE}, got {max_faces}"
            )
        faces = self._detect_multiscale(image.pixels_bgr)
        if len(faces) == 0:
            return faces, np.zeros((0, 112, 112, 3), np.uint8)
        faces = faces.largest_first()[:max_faces]
        crops = align_faces(image.pixels_bgr, faces)
        brightness, sharpness = brightness_sharpness(crops)
        yaw, pitch, roll = pose_from_landmarks(faces.landmarks_px)
        faces = faces.with_quality(
            brightness=brightness, sharpness=sharpness, yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll
        )
        return faces, crops

    def _detect_at(self, pixels: NDArray[np.uint8], long_side_px: int) -> Faces:
        """Detect on ``pixels`` scaled so its long side is at most ``long_side_px``.

        Boxes and landmarks come back in the coordinates of ``pixels``. Images smaller than
        ``min_detect_side_px`` are padded (not scaled up) so a face filling the frame is found.
        """
        import cv2

        h, w = pixels.shape[:2]
        scale = min(1.0, long_side_px / max(h, w))
        work = pixels
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            work = np.asarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), np.uint8)
        min_side = self.options.min_detect_side_px
        if work.shape[0] < min_side or work.shape[1] < min_side:
            padded = np.zeros(
                (max(min_side, work.shape[0]), max(min_side, work.shape[1]), 3), dtype=np.uint8
            )
            padded[: work.shape[0], : work.shape[1]] = work
            work = padded
        raw = self._worker().detector.detect(
            work, score_threshold=self.options.detect_score_threshold
        )
        if len(raw) == 0:
            return raw
        boxes = raw.boxes_px / scale
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        faces = Faces(boxes_px=boxes, scores=raw.scores, landmarks_px=raw.landmarks_px / scale)
        return faces[faces.areas_px > 0]

    def _detect_multiscale(self, pixels: NDArray[np.uint8]) -> Faces:
        """Two scales: a coarse pass for large faces, a fine pass for small ones.

        YuNet's landmarks degrade on faces much larger than it was trained on (a 600 px face
        gets its eye line wrong by ~10°), and small faces need full resolution. So large images
        are detected at ``coarse_side_px`` (faces there keep their landmarks) and at up to
        ``max_detect_side_px``; a face from the fine pass replaces its coarse twin only when it
        is small in the coarse image. Images no larger than the coarse side take one pass.
        """
        coarse_side = self.options.coarse_side_px
        long_side = max(pixels.shape[:2])
        if long_side <= coarse_side:
            return self._detect_at(pixels, coarse_side)
        coarse = self._detect_at(pixels, coarse_side)
        fine = self._detect_at(pixels, self.options.max_detect_side_px)
        if len(fine) == 0:
            return coarse
        if len(coarse) == 0:
            return fine
        coarse_scale = coarse_side / long_side
        small_coarse = coarse.widths_px * coarse_scale < self.options.coarse_min_face_px
        overlap = _iou(coarse.boxes_px, fine.boxes_px)  # (coarse, fine)
        matched_fine = overlap.max(axis=0) > 0.3
        keep_coarse = ~(small_coarse & (overlap.max(axis=1) > 0.3))
        # fine faces: those no coarse face covers, and those replacing a small coarse face
        replaces = (overlap > 0.3) & small_coarse[:, None]
        keep_fine = ~matched_fine | replaces.any(axis=0)
        return _concat(coarse[keep_coarse], fine[keep_fine])

    # -- video frames ---------------------------------------------------------------------
    def detect_frame(
        self,
        pixels_bgr: NDArray[np.uint8],
        *,
        long_side_px: int = 640,
        score_threshold: float | None = None,
        max_faces: int = MAX_FACES_PER_IMAGE,
    ) -> tuple[Faces, NDArray[np.uint8]]:
        """Single-scale detection for video: faces (with quality, largest first) and their
        aligned 112×112 crops, cut from the full-resolution ``pixels_bgr``.

        The frame is detected at ``long_side_px`` (one pass: a 720p frame at 640 px costs
        ≈ 8 ms on this kind of machine, against ≈ 32 ms at full size), boxes and landmarks come
        back in ``pixels_bgr`` coordinates. ``score_threshold`` defaults to the engine's; a
        tracker may ask for a lower one (ByteTrack's low-score detections).
        """
        threshold = (
            self.options.detect_score_threshold if score_threshold is None else score_threshold
        )
        with self._threads():
            import cv2

            h, w = pixels_bgr.shape[:2]
            scale = min(1.0, long_side_px / max(h, w))
            work = pixels_bgr
            if scale < 1.0:
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
                work = np.asarray(cv2.resize(pixels_bgr, size, interpolation=cv2.INTER_AREA))
            raw = self._worker().detector.detect(work, score_threshold=threshold)
            if len(raw) == 0:
                return raw, np.zeros((0, 112, 112, 3), np.uint8)
            boxes = raw.boxes_px / scale
            boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
            boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
            faces = Faces(boxes_px=boxes, scores=raw.scores, landmarks_px=raw.landmarks_px / scale)
            faces = faces[faces.areas_px > 0].largest_first()[:max_faces]
            crops = align_faces(pixels_bgr, faces)
            brightness, sharpness = brightness_sharpness(crops)
            yaw, pitch, roll = pose_from_landmarks(faces.landmarks_px)
            faces = faces.with_quality(
                brightness=brightness,
                sharpness=sharpness,
                yaw_deg=yaw,
                pitch_deg=pitch,
                roll_deg=roll,
            )
            return faces, crops

    def embed_crops(self, crops_bgr: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Embeddings (N, D), L2-normalised, of aligned 112×112 BGR crops (``detect_frame``)."""
        if len(crops_bgr) == 0:
            return np.zeros((0, self.embedding_size), np.float32)
        with self._threads():
            return self._worker().embedder.embed(crops_bgr)

    # -- bulk -----------------------------------------------------------------------------
    def analyse_many(
        self,
        items: Iterable[T],
        *,
        loader: Callable[[T], Image],
        max_faces: int = MAX_FACES_PER_IMAGE,
    ) -> Iterator[tuple[T, AnalysedImage | FaceLedgerError]]:
        """Analyse many images on ``options.workers`` processes, yielding in input order.

        Each result is an ``AnalysedImage`` (the image's SHA-256 and size, and its faces with
        embeddings), or the FaceLedgerError that image raised.

        OpenCV DNN holds the GIL while it runs, so threads do not add throughput; each worker
        process runs its own single-threaded sessions instead. ``loader`` (a picklable,
        module-level function such as ``load_image``) turns an item into an Image inside the
        worker, so decoding is parallel too. A bad item yields its FaceLedgerError instead of
        stopping the batch.
        """
        if self.options.workers <= 1:
            for item in items:
                yield item, _analyse_item(self, loader, item, max_faces)
            return
        pool = self._process_pool()
        window = self.options.workers * 4
        pending: deque[tuple[T, Future[AnalysedImage | FaceLedgerError]]] = deque()
        for item in items:
            pending.append((item, pool.submit(_pool_analyse, loader, item, max_faces)))
            if len(pending) >= window:
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pack_files()  # fail here, in the caller, if the pack is unusable
            with self._lock:
                if self._pool is None:
                    self._pool = ProcessPoolExecutor(
                        self.options.workers,
                        mp_context=multiprocessing.get_context("spawn"),
                        initializer=_pool_init,
                        initargs=(
                            self.manifest.name,
                            self._registry.model_dirs,
                            tuple(self._registry.accepted_licences),
                            replace(self.options, workers=1),
                        ),
                    )
        return self._pool

    # -- comparison -----------------------------------------------------------------------
    def similarity(self, a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float64]:
        """Calibrated Similarity (0–100) between embeddings ``a`` (D,) or (N, D) and ``b``."""
        cos = np.asarray(a, np.float32) @ np.asarray(b, np.float32).T
        return self.calibration.similarity(cos)

    def compare(
        self, source: Image, target: Image, *, max_target_faces: int = MAX_FACES_PER_IMAGE
    ) -> CompareResult:
        """The largest face of ``source`` against every face of ``target`` (largest first).

        Raises InvalidParameterError when either image has no face.
        """
        src = self.analyse(source, max_faces=1)
        if len(src) == 0:
            raise InvalidParameterError("no face was found in the source image")
        tgt = self.analyse(target, max_faces=max_target_faces)
        if len(tgt) == 0:
            raise InvalidParameterError("no face was found in the target image")
        assert src.embeddings is not None and tgt.embeddings is not None
        cos = tgt.embeddings @ src.embeddings[0]
        sims = self.calibration.similarity(cos)
        matches = tuple(
            FaceMatch(target_index=i, cosine=float(cos[i]), similarity=float(sims[i]))
            for i in range(len(tgt))
        )
        return CompareResult(source=src, targets=tgt, matches=matches)


def _analyse_item(
    engine: FaceEngine, loader: Callable[[T], Image], item: T, max_faces: int
) -> AnalysedImage | FaceLedgerError:
    try:
        image = loader(item)
        return AnalysedImage.of(image, engine.analyse(image, max_faces=max_faces))
    except FaceLedgerError as exc:
        return exc


_POOL_ENGINE: FaceEngine | None = None


def _pool_init(
    pack: str, model_dirs: tuple[Path, ...], accepted: tuple[str, ...], options: EngineOptions
) -> None:
    """Runs once in each bulk worker process: one OpenCV thread, one engine."""
    global _POOL_ENGINE
    from faceledger.inference.sessions import configure_opencv

    configure_opencv(threads=1)
    registry = PackRegistry(model_dirs, accepted_licences=accepted)
    _POOL_ENGINE = FaceEngine(pack, registry=registry, options=options)
    _POOL_ENGINE.load()


def _pool_analyse(
    loader: Callable[[T], Image], item: T, max_faces: int
) -> AnalysedImage | FaceLedgerError:
    assert _POOL_ENGINE is not None, "worker not initialised"
    return _analyse_item(_POOL_ENGINE, loader, item, max_faces)


def _iou(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    """Pairwise IoU of (N, 4) and (M, 4) x1, y1, x2, y2 boxes."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def _concat(a: Faces, b: Faces) -> Faces:
    """Faces of ``a`` then ``b`` (detector output only: no quality, no embeddings)."""
    return Faces(
        boxes_px=np.concatenate([a.boxes_px, b.boxes_px]),
        scores=np.concatenate([a.scores, b.scores]),
        landmarks_px=np.concatenate([a.landmarks_px, b.landmarks_px]),
    )
