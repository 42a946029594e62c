"""The native REST API (``/v1/...``): multipart uploads in, pixel-unit JSON out."""

from faceledger.api.native.routes import router

__all__ = ["router"]
