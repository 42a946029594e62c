"""Aligned 112×112 crops → L2-normalised embeddings, batched."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from faceledger.inference.manifest import ModelFile
from faceledger.inference.sessions import Session

BATCH_SIZE = 32


class Embedder:
    """ArcFace-style embedder: RGB or BGR input, (pixel − mean) / std, NCHW, one output."""

    def __init__(self, session: Session, model: ModelFile) -> None:
        self._session = session
        self._model = model
        self.embedding_size = model.embedding_size
        # A graph exported with a fixed batch of 1 (common for ONNX Runtime packs) runs face by
        # face; OpenCV DNN and dynamic graphs take whole batches.
        shape = getattr(session, "input_shape", None)
        self.batch_size = 1 if shape and shape[0] == 1 else BATCH_SIZE

    def embed(self, crops_bgr: NDArray[np.uint8]) -> NDArray[np.float32]:
        """(N, 112, 112, 3) BGR uint8 → (N, D) float32 with unit L2 norm."""
        n = len(crops_bgr)
        out = np.zeros((n, self.embedding_size), dtype=np.float32)
        for start in range(0, n, self.batch_size):
            chunk = crops_bgr[start : start + self.batch_size].astype(np.float32)
            if self._model.colour == "rgb":
                chunk = chunk[..., ::-1]
            chunk = (chunk - self._model.mean) / self._model.std
            batch = np.ascontiguousarray(chunk.transpose(0, 3, 1, 2))
            vectors = self._session.run(batch)[0].reshape(len(chunk), -1)
            if vectors.shape[1] != self.embedding_size:
                raise ValueError(
                    f"embedder gave {vectors.shape[1]}-d vectors, manifest says "
                    f"{self.embedding_size}"
                )
            out[start : start + len(chunk)] = vectors
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
