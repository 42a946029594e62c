"""Embeddings for the fusion study (bench/one_to_n_fusion.py): SFace and dlib's ResNet.

The gallery faces are the ones ``faceledger index`` enrolled in the open-set bench's collection
(their stored SFace embeddings and boxes); each probe's face is the largest one the engine
detects, as a search uses. dlib's descriptor is computed on the same face: its 5-point shape
predictor is run in the engine's (YuNet) box, adapted to the shape of the HOG boxes the
predictor was trained on (``BOX_ADAPT``), then ``compute_face_descriptor`` (150 px chip,
padding 0.25, no jitter). Needs ``dlib`` (or the ``dlib-bin`` wheel) and
``face_recognition_models``, which are not dependencies of FaceLedger: the bench installs
nothing and says so when they are missing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

# dlib HOG box relative to the YuNet box of the same face, measured on 197 DevTrain faces
# (every 40th image; both detectors found the face): centre shift (x, y) in box widths /
# heights, then width and height ratios (sd 0.08, 0.05, 0.10, 0.08).
BOX_ADAPT = (0.0135, 0.047, 1.094, 0.816)


@dataclass(frozen=True)
class Dlib:
    """dlib's 5-point shape predictor and ResNet face descriptor (face_recognition_models)."""

    predictor: Any
    descriptor: Any

    @classmethod
    def load(cls) -> Dlib:
        import dlib
        import face_recognition_models as frm

        return cls(
            dlib.shape_predictor(frm.pose_predictor_five_point_model_location()),
            dlib.face_recognition_model_v1(frm.face_recognition_model_location()),
        )

    def embed(self, rgb: NDArray[np.uint8], box_px: NDArray[np.float32]) -> NDArray[np.float32]:
        """The 128-d descriptor of the face in ``box_px`` (x1, y1, x2, y2, engine's box)."""
        import dlib

        x1, y1, x2, y2 = (float(v) for v in box_px)
        w, h = x2 - x1, y2 - y1
        cx, cy = (x1 + x2) / 2 + BOX_ADAPT[0] * w, (y1 + y2) / 2 + BOX_ADAPT[1] * h
        hw, hh = BOX_ADAPT[2] * w / 2, BOX_ADAPT[3] * h / 2
        rect = dlib.rectangle(round(cx - hw), round(cy - hh), round(cx + hw), round(cy + hh))
        shape = self.predictor(rgb, rect)
        return np.asarray(self.descriptor.compute_face_descriptor(rgb, shape), np.float32)


def read_rgb(path: Path) -> NDArray[np.uint8]:
    bgr = cv2.imread(str(path))
    if bgr is None:
        raise OSError(f"unreadable image {path}")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def gallery_embeddings(settings: Any, collection: str, folder: Path, model: Dlib) -> dict[str, Any]:
    """Every enrolled face: ExternalImageId, stored SFace embedding, dlib descriptor."""
    from faceledger.store.factory import open_store

    store = open_store(settings)
    try:
        rows, sface = [], []
        for ids, vectors in store.all_embeddings(collection):
            rows.extend(int(i) for i in ids)
            sface.append(vectors)
        faces = store.faces_by_row(collection, rows)
    finally:
        store.close()
    ext, boxes, dl = [], [], []
    spent_s = 0.0
    for k, row in enumerate(rows, 1):
        face = faces[row].face
        ext.append(face.external_image_id or "")
        rgb = read_rgb(folder / (face.external_image_id or "").replace(":", "/", 1))
        h, w = rgb.shape[:2]
        b = face.bounding_box
        box = np.array([b.left * w, b.top * h, (b.left + b.width) * w, (b.top + b.height) * h])
        boxes.append(box)
        t0 = time.perf_counter()
        dl.append(model.embed(rgb, box))
        spent_s += time.perf_counter() - t0
        if k % 1000 == 0:
            print(f"  gallery dlib {k}/{len(rows)}", flush=True)
    return {
        "gallery_ext": np.array(ext),
        "gallery_sface": np.concatenate(sface).astype(np.float32),
        "gallery_dlib": np.stack(dl),
        "gallery_dlib_seconds": spent_s,
    }


def probe_embeddings(root: Path, rels: list[str], engine: Any, model: Dlib) -> dict[str, Any]:
    """Each probe's largest face (as a search takes it): SFace and dlib embeddings; probes
    without a face get zero vectors and ``probe_found`` False."""
    from faceledger.inference.imaging import decode_image

    sface = np.zeros((len(rels), engine.embedding_size), np.float32)
    dl = np.zeros((len(rels), 128), np.float32)
    found = np.zeros(len(rels), bool)
    sface_s = dlib_s = 0.0
    for k, rel in enumerate(rels):
        data = (root / rel).read_bytes()
        image = decode_image(data)
        t0 = time.perf_counter()
        faces = engine.analyse(image, max_faces=1)
        sface_s += time.perf_counter() - t0
        if len(faces) == 0 or faces.embeddings is None:
            continue
        found[k] = True
        sface[k] = faces.embeddings[0]
        rgb = np.ascontiguousarray(cv2.cvtColor(image.pixels_bgr, cv2.COLOR_BGR2RGB))
        t0 = time.perf_counter()
        dl[k] = model.embed(rgb, faces.boxes_px[0])
        dlib_s += time.perf_counter() - t0
        if (k + 1) % 500 == 0:
            print(f"  probes {k + 1}/{len(rels)}", flush=True)
    return {
        "probe_rels": np.array(rels),
        "probe_found": found,
        "probe_sface": sface,
        "probe_dlib": dl,
        "probe_sface_seconds": sface_s,
        "probe_dlib_seconds": dlib_s,
    }
