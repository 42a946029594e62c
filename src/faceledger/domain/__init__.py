"""Layer 1: frozen value types and errors. No I/O."""

from faceledger.domain.errors import (
    FaceLedgerError,
    ImageTooLargeError,
    InvalidImageFormatError,
    InvalidParameterError,
    LicenceNotAcceptedError,
    ModelPackError,
    ResourceNotFoundError,
)
from faceledger.domain.faces import (
    LANDMARK_NAMES,
    AnalysedImage,
    CompareResult,
    FaceMatch,
    Faces,
    Image,
)

__all__ = [
    "LANDMARK_NAMES",
    "AnalysedImage",
    "CompareResult",
    "FaceLedgerError",
    "FaceMatch",
    "Faces",
    "Image",
    "ImageTooLargeError",
    "InvalidImageFormatError",
    "InvalidParameterError",
    "LicenceNotAcceptedError",
    "ModelPackError",
    "ResourceNotFoundError",
]
