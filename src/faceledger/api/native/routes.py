"""``/v1/detect`` and ``/v1/compare``: thin adapters over the gateway.

Both need an API key (``Authorization: Bearer <key_id>:<secret>``) whose roles allow
DetectFaces / CompareFaces. Each calls one ``Gateway`` verb (which checks the roles and
writes the call to the audit ledger) and shapes its result with ``FaceService``
(see ``faceledger.api.native.auth``).

Uploads are multipart files. Each is read with a cap of ``settings.max_image_bytes`` (the
whole request body was already capped by the app's ``BodySizeLimitMiddleware``, using
``IMAGES_PER_REQUEST``), decoded once by the service, and the engine runs in a worker thread.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel

from faceledger.api import run_blocking
from faceledger.api.native.auth import CallerDep, GatewayDep
from faceledger.domain.errors import ImageTooLargeError
from faceledger.inference.engine import MAX_FACES_PER_IMAGE

# How many images each multipart route's request body may carry, by path template (a
# ``{name}`` matches one path segment); the body cap is this × the image limit. Every route
# that takes an upload must be listed (``tests/test_native_collections.py`` checks the spec).
IMAGES_PER_REQUEST: dict[str, int] = {
    "/v1/detect": 1,
    "/v1/compare": 2,
    "/v1/labels": 1,  # DetectLabels (api/native/labels.py)
    "/v1/text": 1,  # DetectText
    "/v1/collections/{collection_id}/faces": 1,  # IndexFaces (POST; GET lists faces)
    "/v1/collections/{collection_id}/search": 1,  # SearchFacesByImage
    "/v1/collections/{collection_id}/users/search": 1,  # SearchUsersByImage
}


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


# Documented error answers shared by every native router (each adds its own 400 wording).
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorResponse,
        "description": "MissingAuthenticationTokenException (no `Authorization: Bearer` "
        "header), IncompleteSignatureException (not `<key_id>:<secret>`), "
        "UnrecognizedClientException (unknown or revoked key) or InvalidSignatureException "
        "(wrong secret).",
    },
    403: {
        "model": ErrorResponse,
        "description": "AccessDeniedException: the key's roles do not allow this operation, "
        "or the collection's policy requires a purpose and a case reference that the search "
        "did not carry.",
    },
    500: {"model": ErrorResponse, "description": "InternalServerError (see the server log)."},
}

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "InvalidParameterException (bad field, no face in the source image), "
        "InvalidImageFormatException (not a complete JPEG/PNG) or ImageTooLargeException.",
    },
    **COMMON_ERRORS,
}

router = APIRouter(prefix="/v1", tags=["faces"], responses=_ERRORS)


async def read_upload(upload: UploadFile, field: str, max_bytes: int) -> bytes:
    """The upload's bytes, reading at most ``max_bytes + 1`` of them."""
    size = upload.size
    if size is None or size <= max_bytes:
        data = await upload.read(max_bytes + 1)
        if len(data) <= max_bytes:
            return data
        size = len(data)
        shown = f"at least {size:,}"
    else:
        shown = f"{size:,}"
    raise ImageTooLargeError(
        f"The '{field}' image is {shown} bytes; the maximum is {max_bytes:,} bytes "
        f"({max_bytes / 1_048_576:.1f} MiB). Send a smaller or more compressed JPEG or PNG."
    )


@router.post("/detect", summary="Detect faces in an image")
async def detect(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    image: Annotated[UploadFile, File(description="A JPEG or PNG image, at most 5 MiB.")],
    max_faces: Annotated[
        int,
        Form(ge=1, le=MAX_FACES_PER_IMAGE, description="Return at most this many faces."),
    ] = MAX_FACES_PER_IMAGE,
) -> dict[str, Any]:
    """Faces, largest first: `bbox_px` (left, top, width, height), `confidence` (0–100),
    five `landmarks_px`, `quality` (brightness, sharpness 0–100) and `pose_deg`."""
    data = await read_upload(image, "image", gate.settings.max_image_bytes)
    analysed = await run_blocking(request, gate.detect_faces, caller, data)
    return gate.detect_result(analysed, max_faces=max_faces)


@router.post(
    "/compare",
    summary="Compare the largest face of one image with every face of another",
)
async def compare(
    request: Request,
    gate: GatewayDep,
    caller: CallerDep,
    source: Annotated[UploadFile, File(description="Image whose largest face is compared.")],
    target: Annotated[UploadFile, File(description="Image whose faces are compared with it.")],
    max_target_faces: Annotated[
        int,
        Form(ge=1, le=MAX_FACES_PER_IMAGE, description="Compare at most this many target faces."),
    ] = MAX_FACES_PER_IMAGE,
) -> dict[str, Any]:
    """`matches` are sorted by `similarity` (calibrated 0–100), highest first; `cosine` is the
    raw model score. No face in `source` → 400 InvalidParameterException."""
    max_bytes = gate.settings.max_image_bytes
    source_bytes = await read_upload(source, "source", max_bytes)
    target_bytes = await read_upload(target, "target", max_bytes)
    compared = await run_blocking(request, gate.compare_faces, caller, source_bytes, target_bytes)
    return gate.compare_result(*compared, max_target_faces=max_target_faces)
