"""Face detectors: pixels in, ``Faces`` (boxes, confidence, 5 landmarks) out.

All detectors return landmarks in ``LANDMARK_NAMES`` order (image-left eye first) and boxes as
x1, y1, x2, y2 in pixels of the image they were given. Detector objects are not thread-safe;
the engine keeps one per worker thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.errors import ModelPackError
from faceledger.domain.faces import Faces

if TYPE_CHECKING:
    from faceledger.inference.sessions import Session


class Detector(Protocol):
    def detect(self, pixels_bgr: NDArray[np.uint8], *, score_threshold: float) -> Faces:
        """All faces scoring at least ``score_threshold`` (0–1), in no particular order."""
        ...


def nms(boxes: NDArray[np.float32], scores: NDArray[np.float32], iou: float) -> NDArray[np.intp]:
    """Indices kept by greedy non-maximum suppression, best score first."""
    if len(boxes) == 0:
        return np.zeros((0,), dtype=np.intp)
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.intp)


class YuNetDetector:
    """OpenCV's ``FaceDetectorYN`` on YuNet: any input size, decoding and NMS in C++.

    The detector runs at the image's own resolution (YuNet finds faces from ≈10 px up), so a
    40 px face in a 1920×1080 photo is found without tiling; the engine bounds the resolution.
    """

    def __init__(self, model_bytes: bytes, *, nms_iou: float = 0.3, top_k: int = 5000) -> None:
        import cv2

        from faceledger.inference.sessions import configure_opencv

        configure_opencv()
        self._detector = cv2.FaceDetectorYN.create(
            "onnx",
            np.frombuffer(model_bytes, dtype=np.uint8),
            np.zeros((0,), dtype=np.uint8),
            (320, 320),
            0.5,
            nms_iou,
            top_k,
        )
        self._size = (320, 320)

    def detect(self, pixels_bgr: NDArray[np.uint8], *, score_threshold: float) -> Faces:
        h, w = pixels_bgr.shape[:2]
        if (w, h) != self._size:
            self._detector.setInputSize((w, h))
            self._size = (w, h)
        self._detector.setScoreThreshold(float(score_threshold))
        _, found = self._detector.detect(pixels_bgr)
        if found is None or len(found) == 0:
            return Faces.empty()
        raw: NDArray[np.float32] = np.asarray(found, dtype=np.float32)
        x, y, bw, bh = raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3]
        boxes = np.stack([x, y, x + bw, y + bh], axis=1)
        # YuNet: right eye, left eye, nose, right mouth corner, left mouth corner (subject's
        # view) = image-left eye first, the order of LANDMARK_NAMES.
        landmarks = raw[:, 4:14].reshape(-1, 5, 2)
        return Faces(boxes_px=boxes, scores=raw[:, 14], landmarks_px=landmarks)


class SCRFDDetector:
    """InsightFace's SCRFD with 5 keypoints (``*_kps`` / ``*_bnkps`` exports), decoded in numpy.

    The image is letterboxed into ``input_size`` (width, height; aspect ratio kept, padded
    bottom/right with black), so faces smaller than about 10 px *after* that resize are missed:
    at 640×640 a 1920×1080 photo is shrunk 3×, and its faces need ≳ 30 px. Larger inputs find
    smaller faces at a cost that grows with the area; a model exported with a fixed input (e.g.
    ``scrfd_500m_kps.onnx``, 640×640) accepts only that size.

    Output layout (InsightFace's ``scrfd.py``): nine tensors in graph order — scores for strides
    8, 16, 32, then box distances for the same strides, then keypoint distances — each (N, C) or
    batched (1, N, C), with two anchors per feature-map location. Distances are in units of the
    stride from the anchor centre. Keypoints come image-left eye first (the order of
    ``LANDMARK_NAMES``).
    """

    STRIDES: tuple[int, ...] = (8, 16, 32)
    ANCHORS_PER_LOCATION = 2

    def __init__(
        self,
        session: Session,
        *,
        input_size: tuple[int, int] = (640, 640),
        nms_iou: float = 0.4,
    ) -> None:
        width, height = (int(v) for v in input_size)
        if width <= 0 or height <= 0 or width % 32 or height % 32:
            raise ValueError(f"input_size must be positive multiples of 32, got {input_size}")
        fixed = getattr(session, "input_shape", None)
        if (
            fixed is not None
            and len(fixed) == 4
            and isinstance(fixed[2], int)
            and isinstance(fixed[3], int)
            and (fixed[3], fixed[2]) != (width, height)
        ):
            raise ModelPackError(
                f"SCRFD model has a fixed {fixed[3]}×{fixed[2]} input; "
                f"the pack asks for {width}×{height}"
            )
        self._session = session
        self.input_size = (width, height)
        self.nms_iou = float(nms_iou)
        self._centres: dict[int, NDArray[np.float32]] = {}

    def _anchor_centres(self, stride: int) -> NDArray[np.float32]:
        """(rows × cols × 2, 2) anchor centres in input pixels, x fastest, each one twice."""
        centres = self._centres.get(stride)
        if centres is None:
            width, height = self.input_size
            ys, xs = np.mgrid[: height // stride, : width // stride]
            grid = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
            centres = np.repeat(grid, self.ANCHORS_PER_LOCATION, axis=0)
            self._centres[stride] = centres
        return centres

    def _letterbox(self, pixels_bgr: NDArray[np.uint8]) -> tuple[NDArray[np.float32], float, float]:
        """NCHW float32 RGB batch of one, and the x and y scale factors image → input."""
        import cv2

        h, w = pixels_bgr.shape[:2]
        in_w, in_h = self.input_size
        scale = min(in_w / w, in_h / h)
        new_w = min(in_w, max(1, round(w * scale)))
        new_h = min(in_h, max(1, round(h * scale)))
        canvas = np.zeros((in_h, in_w, 3), dtype=np.uint8)
        canvas[:new_h, :new_w] = cv2.resize(
            pixels_bgr,
            (new_w, new_h),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
        rgb = canvas[:, :, ::-1].astype(np.float32)
        blob = ((rgb - 127.5) / 128.0).transpose(2, 0, 1)[np.newaxis]
        return np.ascontiguousarray(blob), new_w / w, new_h / h

    def _outputs(self, outputs: list[NDArray[np.float32]]) -> list[NDArray[np.float32]]:
        n_strides = len(self.STRIDES)
        if len(outputs) != 3 * n_strides:
            raise ModelPackError(
                f"SCRFD with keypoints has {3 * n_strides} outputs, this model gave "
                f"{len(outputs)} (a model without keypoints cannot be used)"
            )
        width, height = self.input_size
        out = []
        for i, raw in enumerate(outputs):
            arr = np.asarray(raw, dtype=np.float32)
            if arr.ndim == 3:  # batched (1, N, C)
                arr = arr[0]
            stride = self.STRIDES[i % n_strides]
            channels = (1, 4, 10)[i // n_strides]
            rows = (height // stride) * (width // stride) * self.ANCHORS_PER_LOCATION
            if arr.shape != (rows, channels):
                raise ModelPackError(
                    f"SCRFD output {i}: expected shape ({rows}, {channels}) for a "
                    f"{width}×{height} input, got {tuple(np.shape(raw))}"
                )
            out.append(arr)
        return out

    def detect(self, pixels_bgr: NDArray[np.uint8], *, score_threshold: float) -> Faces:
        if pixels_bgr.ndim != 3 or pixels_bgr.shape[2] != 3 or min(pixels_bgr.shape[:2]) == 0:
            raise ValueError(f"expected a non-empty H×W×3 BGR image, got {pixels_bgr.shape}")
        h, w = pixels_bgr.shape[:2]
        blob, sx, sy = self._letterbox(pixels_bgr)
        outputs = self._outputs(self._session.run(blob))
        n_strides = len(self.STRIDES)
        all_scores: list[NDArray[np.float32]] = []
        all_boxes: list[NDArray[np.float32]] = []
        all_kps: list[NDArray[np.float32]] = []
        for i, stride in enumerate(self.STRIDES):
            scores = outputs[i][:, 0]
            keep = scores >= score_threshold
            if not keep.any():
                continue
            centres = self._anchor_centres(stride)[keep]
            dist = outputs[i + n_strides][keep] * stride  # left, top, right, bottom
            kps = outputs[i + 2 * n_strides][keep].reshape(-1, 5, 2) * stride
            all_scores.append(scores[keep])
            all_boxes.append(np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1))
            all_kps.append(centres[:, np.newaxis, :] + kps)
        if not all_scores:
            return Faces.empty()
        scale_xy = np.array([sx, sy], dtype=np.float32)
        scores = np.concatenate(all_scores).astype(np.float32)
        boxes = (np.concatenate(all_boxes) / np.tile(scale_xy, 2)).astype(np.float32)
        landmarks = (np.concatenate(all_kps) / scale_xy).astype(np.float32)
        kept = nms(boxes, scores, self.nms_iou)
        boxes = boxes[kept]
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, w)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, h)
        return Faces(boxes_px=boxes, scores=scores[kept], landmarks_px=landmarks[kept])
