"""Live processing: a latest-frame reader plus the frame pipeline, each on its own thread.

``LiveProcessor(source, engine, searcher=…, on_event=…).start()`` reads the source (RTSP,
HTTP(S), file URL, camera) into a one-slot queue and analyses the newest frame at most
``PipelineOptions.max_detect_fps`` times a second; each declared match goes to ``on_event``
(called on the processing thread: hand slow work to a queue). ``status()`` combines the
reader's state and counters with the processing counters; ``stop()`` ends both threads.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.video import StreamState, StreamStatus
from faceledger.inference.engine import FaceEngine
from faceledger.video.pipeline import EventCallback, FramePipeline, PipelineOptions, Searcher
from faceledger.video.reader import LatestFrameReader, ReaderOptions
from faceledger.video.sources import parse_source

log = logging.getLogger(__name__)


class FrameProcessor(Protocol):
    """What the live processor runs on each analysed frame (``FramePipeline``, or
    ``person_events.PersonEventPipeline``)."""

    frames_analysed: int
    events_emitted: int

    def process(
        self, pixels_bgr: NDArray[np.uint8], timestamp_ms: int, arrival_s: float | None = None
    ) -> Any: ...


class LiveProcessor:
    """Searches a live source's faces against ``searcher`` (see the module docstring).

    ``searcher`` None runs detection and tracking only (no events). ``source_options`` are
    extra FFmpeg options for the source (e.g. ``{"rtsp_flags": "listen"}``). ``pipeline``
    replaces the face pipeline (e.g. person events); it then makes its own events.
    """

    def __init__(
        self,
        source: str,
        engine: FaceEngine,
        *,
        searcher: Searcher | None,
        on_event: EventCallback | None = None,
        threshold: float = 80.0,
        source_id: str = "",
        options: PipelineOptions | None = None,
        reader_options: ReaderOptions | None = None,
        source_options: dict[str, str] | None = None,
        pipeline: FrameProcessor | None = None,
    ) -> None:
        self.spec = parse_source(source, options=source_options)
        self.source_id = source_id or source
        self.options = options or PipelineOptions()
        self.reader = LatestFrameReader(self.spec, options=reader_options, name=self.source_id)
        self.pipeline: FrameProcessor = pipeline or FramePipeline(
            engine,
            searcher=searcher,
            threshold=threshold,
            options=self.options,
            on_event=on_event,
            source_id=self.source_id,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: str | None = None

    def start(self) -> None:
        """Start reading and processing (returns at once; watch ``status()``)."""
        if self._thread is not None and self._thread.is_alive():
            raise InvalidParameterError("the processor is already running")
        self._stop.clear()
        self._failure = None
        self.reader.start()
        self._thread = threading.Thread(
            target=self._run, name=f"live:{self.source_id}"[:60], daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self.reader.stop(timeout_s)
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> StreamStatus:
        status = replace(
            self.reader.status(),
            frames_analysed=self.pipeline.frames_analysed,
            events=self.pipeline.events_emitted,
        )
        if self._failure is not None:
            return replace(status, state=StreamState.FAILED, message=self._failure)
        return status

    def _run(self) -> None:
        interval = 1.0 / self.options.max_detect_fps
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                wait = next_at - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
                frame = self.reader.get(timeout_s=0.5)
                if frame is None:
                    if self.reader.finished:
                        return
                    continue
                next_at = max(next_at + interval, time.monotonic())
                self.pipeline.process(frame.pixels_bgr, frame.timestamp_ms, frame.arrival_s)
        except Exception as exc:  # the processing thread reports, never dies silently
            log.exception("live processing of %s failed", self.source_id)
            self._failure = f"processing failed: {type(exc).__name__}: {exc}"
            self.reader.stop(1.0)
