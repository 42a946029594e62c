"""Layer 6: video — frame sources (files, RTSP/HTTP, cameras via PyAV), the latest-frame
reader, a ByteTrack-style tracker, and the per-frame pipeline for stored and live video.

Nothing here loads at import (PyAV and OpenCV are imported where they are used).
"""

from faceledger.video.live import LiveProcessor
from faceledger.video.pipeline import (
    AnalysisCancelled,
    EventCallback,
    FramePipeline,
    FrameResult,
    PipelineOptions,
    Searcher,
)
from faceledger.video.reader import LatestFrameReader, ReaderOptions
from faceledger.video.sources import Frame, SourceSpec, iter_frames, parse_source, probe
from faceledger.video.stored import analyse_video
from faceledger.video.tracker import Tracker, TrackerOptions, TrackUpdate

__all__ = [
    "AnalysisCancelled",
    "EventCallback",
    "Frame",
    "FramePipeline",
    "FrameResult",
    "LatestFrameReader",
    "LiveProcessor",
    "PipelineOptions",
    "ReaderOptions",
    "Searcher",
    "SourceSpec",
    "TrackUpdate",
    "Tracker",
    "TrackerOptions",
    "analyse_video",
    "iter_frames",
    "parse_source",
    "probe",
]
