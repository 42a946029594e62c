"""FaceLedger: self-hosted, Rekognition-compatible face recognition with an accountable ledger.

Nothing happens at import: models load lazily the first time they are needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from faceledger.inference.engine import FaceEngine

__all__ = ["FaceEngine", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "FaceEngine":
        from faceledger.inference.engine import FaceEngine

        return FaceEngine
    raise AttributeError(name)
