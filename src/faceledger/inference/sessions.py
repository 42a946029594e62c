"""Runtimes behind one small protocol, and the graph repairs a pack may ask for.

A ``Session`` runs a verified ONNX graph (given as bytes, never a path, so the bytes that were
hashed are the bytes that run) on one NCHW float32 batch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Protocol

import numpy as np
from numpy.typing import NDArray


class Session(Protocol):
    """An inference session for one model with one input."""

    input_name: str

    def run(self, batch: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        """Run one batch (N, C, H, W); returns the model outputs in graph order."""
        ...


def strip_unused_inputs(model_bytes: bytes) -> bytes:
    """Remove graph inputs no node consumes and inputs that duplicate initializers.

    OpenCV Zoo's SFace int8bq graph declares its float weights as graph inputs although only
    their quantised twins are used; ONNX Runtime and OpenCV 5 reject such inputs.
    """
    import onnx

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    consumed = {name for node in graph.node for name in node.input}
    initializers = {init.name for init in graph.initializer}
    keep = [i for i in graph.input if i.name in consumed and i.name not in initializers]
    if len(keep) == len(graph.input):
        return model_bytes
    del graph.input[:]
    graph.input.extend(keep)
    return bytes(model.SerializeToString())


def dynamic_batch(model_bytes: bytes) -> bytes:
    """Mark the first dimension of every graph input and output as symbolic (``N``)."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "N"
    del model.graph.value_info[:]
    return bytes(model.SerializeToString())


GRAPH_FIXES: dict[str, Callable[[bytes], bytes]] = {
    "strip_unused_inputs": strip_unused_inputs,
    "dynamic_batch": dynamic_batch,
}


def apply_graph_fixes(model_bytes: bytes, fixes: tuple[str, ...]) -> bytes:
    for name in fixes:
        try:
            fix = GRAPH_FIXES[name]
        except KeyError:
            raise ValueError(f"unknown graph fix {name!r}; known: {sorted(GRAPH_FIXES)}") from None
        model_bytes = fix(model_bytes)
    return model_bytes


def configure_opencv(threads: int | None = None) -> None:
    """Quiet OpenCV's logging and set its worker-thread count (process-wide)."""
    import cv2

    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    with contextlib.suppress(AttributeError):  # older builds have no utils.logging
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    if threads is not None:
        cv2.setNumThreads(threads)


class OpenCVSession:
    """OpenCV DNN. Fastest here for SFace (≈20 ms/face on one core vs ≈38 ms in ONNX Runtime).

    Not thread-safe: use one session per thread.
    """

    def __init__(self, model_bytes: bytes, *, input_name: str = "data") -> None:
        import cv2

        configure_opencv()
        self.input_name = input_name
        self._net = cv2.dnn.readNetFromONNX(np.frombuffer(model_bytes, dtype=np.uint8))

    def run(self, batch: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        self._net.setInput(np.ascontiguousarray(batch, dtype=np.float32))
        out = self._net.forward()
        if isinstance(out, tuple | list):
            return [np.asarray(o) for o in out]
        return [np.asarray(out)]


class OrtSession:
    """ONNX Runtime (CPU; ``onnxruntime-gpu`` providers when installed). Thread-safe."""

    def __init__(self, model_bytes: bytes, *, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self._session = ort.InferenceSession(model_bytes, options, providers=providers)
        self.input_name = self._session.get_inputs()[0].name
        self.input_shape = list(self._session.get_inputs()[0].shape)

    def run(self, batch: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        feed = {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        return [np.asarray(o) for o in self._session.run(None, feed)]


def make_session(runtime: str, model_bytes: bytes) -> Session:
    if runtime == "opencv":
        return OpenCVSession(model_bytes)
    if runtime == "onnxruntime":
        return OrtSession(model_bytes)
    raise ValueError(f"unknown runtime {runtime!r}")
