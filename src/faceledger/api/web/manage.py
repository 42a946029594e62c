"""Collections pages (admin and enrol roles): create, describe, enrol, list, delete, policy.

Each action is one gateway verb with the signed-in ``Caller`` (source "web"); the page shows
what the signed-in roles may do and the gateway refuses anything else. Enrolment takes many
photos: without JavaScript the form sends them together and the page lists a result per file;
with it, ``app.js`` sends them one by one (``?fragment=1``) with a progress bar and inserts
each file's result as it comes. A file's ExternalImageId is its name, with characters outside
Rekognition's pattern replaced by ``_`` (as ``faceledger index`` does).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from faceledger.api import run_blocking
from faceledger.api.native.auth import GatewayDep
from faceledger.api.web.images import jpeg_answer
from faceledger.api.web.views import (
    SECURITY_HEADERS,
    Problem,
    UserDep,
    WebUser,
    describe_error,
    error_status,
    for_page,
    number_field,
    problem_of,
    read_form,
    read_image,
    render,
    templates,
    text_field,
    uploads,
)
from faceledger.domain.collections import FACE_ID_RE, QUALITY_FILTERS, USER_ID_RE
from faceledger.domain.errors import FaceLedgerError, InvalidParameterError
from faceledger.domain.policy import CollectionPolicy
from faceledger.services.gateway import Gateway

router = APIRouter()

ManageUser = Annotated[WebUser, Depends(for_page("collections"))]

FACES_PER_PAGE = 25
USERS_PER_PAGE = 100
MAX_ENROL_FILES = 20
_UNSAFE = re.compile(r"[^a-zA-Z0-9_.\-:]")

UNINDEXED_REASONS = {
    "EXCEEDS_MAX_FACES": "more faces than the limit",
    "EXTREME_POSE": "turned too far from the camera",
    "LOW_BRIGHTNESS": "too dark or too bright",
    "LOW_SHARPNESS": "blurred",
    "LOW_CONFIDENCE": "not clearly a face",
    "SMALL_BOUNDING_BOX": "too small",
    "LOW_FACE_QUALITY": "poor quality",
    "NOT_THE_SUBJECT": "not the photo's subject (another face is larger or more central)",
}


def _done(collection_id: str, **params: str) -> RedirectResponse:
    """After a change: back to the collection's page (a reload does not repeat the change),
    which says what was done (``DONE_MESSAGES``)."""
    return RedirectResponse(
        f"/app/collections/{collection_id}?{urlencode(params)}", status_code=303
    )


def _done_message(request: Request) -> str:
    query = request.query_params
    done = query.get("done", "")
    if done == "faces-deleted" and query.get("n", "").isdigit():
        n = int(query["n"])
        return f"Deleted {n} face{'s' if n != 1 else ''}."
    if done == "user-deleted" and USER_ID_RE.fullmatch(query.get("user", "")):
        return f"Deleted user {query['user']}; its faces stay in the collection, unlinked."
    return DONE_MESSAGES.get(done, "")


DONE_MESSAGES = {"policy": "Policy saved.", "created": "Collection created."}


def external_id(filename: str) -> str:
    """ExternalImageId from an uploaded file's name (``Jane Doe.jpg`` → ``Jane_Doe.jpg``)."""
    name = PurePosixPath(filename.replace("\\", "/")).name or "upload"
    return _UNSAFE.sub("_", name)[-255:]


# -- list and create -------------------------------------------------------------------------
async def _list_page(
    request: Request,
    gate: Gateway,
    user: WebUser,
    *,
    status: int = 200,
    problem: Problem | None = None,
    message: str = "",
    new_id: str = "",
) -> HTMLResponse:
    collections: list[Any] = []
    try:
        collections, _ = await run_blocking(request, gate.list_collections, user.caller())
    except FaceLedgerError as exc:
        problem = problem or describe_error(exc)
    return render(
        request,
        "collections.html",
        user,
        status=status,
        active="collections",
        collections=collections,
        problem=problem,
        message=message,
        new_id=new_id,
    )


@router.get("/collections", response_class=HTMLResponse)
async def collections_page(request: Request, user: ManageUser, gate: GatewayDep) -> HTMLResponse:
    return await _list_page(request, gate, user)


@router.post("/collections", response_model=None)
async def create_collection(
    request: Request, user: ManageUser, gate: GatewayDep
) -> HTMLResponse | RedirectResponse:
    form = await read_form(request, user)
    collection_id = text_field(form, "collection_id", max_chars=255)
    try:
        if not collection_id:
            raise InvalidParameterError("Give the new collection an id.")
        await run_blocking(request, gate.create_collection, user.caller(), collection_id)
    except FaceLedgerError as exc:
        return await _list_page(
            request, gate, user, status=400, problem=describe_error(exc), new_id=collection_id
        )
    return _done(collection_id, done="created")


# -- one collection --------------------------------------------------------------------------
async def _failed(
    request: Request, gate: Gateway, user: WebUser, collection_id: str, exc: FaceLedgerError
) -> HTMLResponse:
    """The collection's page again, with the refusal or error as a readable message."""
    return await _detail(request, gate, user, collection_id, **problem_of(exc))


async def _detail(
    request: Request,
    gate: Gateway,
    user: WebUser,
    collection_id: str,
    *,
    status: int = 200,
    problem: Problem | None = None,
    message: str = "",
    enrol_results: list[dict[str, Any]] | None = None,
) -> HTMLResponse:
    faces_token = request.query_params.get("faces") or None
    size_text = request.query_params.get("size", "")
    page_size = int(size_text) if size_text.isdigit() and 0 < int(size_text) <= 100 else 0

    def load() -> dict[str, Any]:
        caller = user.caller()
        out: dict[str, Any] = {
            "collection": gate.describe_collection(caller, collection_id),
            "policy": gate.get_policy(caller, collection_id),
            "faces": None,
            "users": None,
            "faces_next": None,
        }
        if user.may("ListFaces"):
            page = gate.list_faces(
                caller,
                collection_id,
                next_token=faces_token,
                max_results=page_size or FACES_PER_PAGE,
            )
            out["faces"], out["faces_next"] = page.faces, page.next_token
        if user.may("ListUsers"):
            out["users"], _ = gate.list_users(caller, collection_id, max_results=USERS_PER_PAGE)
        return out

    try:
        data = await run_blocking(request, load)
    except FaceLedgerError as exc:
        return await _list_page(request, gate, user, **problem_of(exc))
    return render(
        request,
        "collection.html",
        user,
        status=status,
        active="collections",
        problem=problem,
        message=message or _done_message(request),
        enrol_results=enrol_results,
        quality_filters=QUALITY_FILTERS,
        faces_token=faces_token,
        page_size=page_size,
        max_files=MAX_ENROL_FILES,
        **data,
    )


@router.get("/collections/{collection_id}", response_class=HTMLResponse)
async def collection_page(
    request: Request, collection_id: str, user: ManageUser, gate: GatewayDep
) -> HTMLResponse:
    return await _detail(request, gate, user, collection_id)


async def _enrol_one(
    request: Request,
    gate: Gateway,
    user: WebUser,
    collection_id: str,
    upload: UploadFile,
    quality_filter: str,
    *,
    subject_only: bool = True,
) -> dict[str, Any]:
    name = upload.filename or "upload"
    out: dict[str, Any] = {"name": name, "external_image_id": external_id(name)}
    try:
        data = await read_image(request, upload, name)
        result = await run_blocking(
            request,
            gate.index_faces,
            user.caller(),
            collection_id,
            data,
            external_image_id=out["external_image_id"],
            quality_filter=quality_filter,
            subject_only=subject_only,
        )
    except FaceLedgerError as exc:
        out["problem"] = describe_error(exc)
        return out
    out["duplicate"] = result.duplicate
    out["indexed"] = [face.face_id for face, _ in result.face_records]
    out["unindexed"] = [
        {
            "face": u.face_index + 1,
            "reasons": [UNINDEXED_REASONS.get(r, r) for r in u.reasons],
            "codes": list(u.reasons),
        }
        for u in result.unindexed
    ]
    return out


@router.post("/collections/{collection_id}/enrol", response_class=HTMLResponse)
async def enrol(
    request: Request, collection_id: str, user: ManageUser, gate: GatewayDep
) -> HTMLResponse:
    fragment = request.query_params.get("fragment") == "1"
    try:
        form = await read_form(request, user, images=1 if fragment else MAX_ENROL_FILES)
        files = uploads(form, "images")
        if not files:
            raise InvalidParameterError("Choose one or more photos to enrol.")
        quality = text_field(form, "quality_filter", max_chars=8) or "AUTO"
        if quality not in QUALITY_FILTERS:
            raise InvalidParameterError(f"Unknown quality filter {quality!r}.")
        all_faces = text_field(form, "all_faces", max_chars=8) in ("1", "on", "true")
    except FaceLedgerError as exc:
        if fragment:
            results = [{"name": "", "problem": describe_error(exc)}]
            return _fragment(results, status=error_status(exc))
        return await _failed(request, gate, user, collection_id, exc)
    results = [
        await _enrol_one(
            request, gate, user, collection_id, upload, quality, subject_only=not all_faces
        )
        for upload in files
    ]
    if fragment:
        return _fragment(results)
    return await _detail(request, gate, user, collection_id, enrol_results=results)


def _fragment(results: list[dict[str, Any]], status: int = 200) -> HTMLResponse:
    html = templates().get_template("_enrol_results.html").render(enrol_results=results)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


@router.post("/collections/{collection_id}/faces/delete", response_model=None)
async def delete_faces(
    request: Request, collection_id: str, user: ManageUser, gate: GatewayDep
) -> HTMLResponse | RedirectResponse:
    form = await read_form(request, user)
    face_ids = [
        f for f in form.getlist("face_id") if isinstance(f, str) and FACE_ID_RE.fullmatch(f)
    ]
    if not face_ids:
        problem = Problem("Nothing selected", "Tick the faces to delete first.")
        return await _detail(request, gate, user, collection_id, status=400, problem=problem)
    try:
        deleted, unsuccessful = await run_blocking(
            request, gate.delete_faces, user.caller(), collection_id, face_ids
        )
    except FaceLedgerError as exc:
        return await _failed(request, gate, user, collection_id, exc)
    if not unsuccessful:
        return _done(collection_id, done="faces-deleted", n=str(len(deleted)))
    message = f"Deleted {len(deleted)} face{'s' if len(deleted) != 1 else ''}."
    for item in unsuccessful:
        reasons = ", ".join(item.reasons)
        message += f" Not deleted: {item.face_id} ({reasons})."
    return await _detail(request, gate, user, collection_id, message=message)


@router.post("/collections/{collection_id}/users/delete", response_model=None)
async def delete_user(
    request: Request, collection_id: str, user: ManageUser, gate: GatewayDep
) -> HTMLResponse | RedirectResponse:
    form = await read_form(request, user)
    user_id = text_field(form, "user_id", max_chars=128)
    try:
        await run_blocking(request, gate.delete_user, user.caller(), collection_id, user_id)
    except FaceLedgerError as exc:
        return await _failed(request, gate, user, collection_id, exc)
    return _done(collection_id, done="user-deleted", user=user_id)


@router.get("/collections/{collection_id}/faces/{face_id}/crop", response_model=None)
async def face_crop(
    request: Request,
    collection_id: str,
    face_id: str,
    user: UserDep,
    gate: GatewayDep,
    purpose: str = "",
    case: str = "",
) -> Response:
    """A kept face crop as ``image/jpeg`` (an ``<img>`` on a review or search page): any
    signed-in user, the gateway decides (roles search and review; each view ledgered; a
    searcher sends ``purpose`` and ``case`` when the collection's policy requires them). A
    refusal is a short plain-text answer with the error's status."""
    caller = user.caller(purpose, case)
    return await jpeg_answer(request, lambda: gate.get_face_crop(caller, collection_id, face_id))


@router.post("/collections/{collection_id}/policy", response_model=None)
async def put_policy(
    request: Request, collection_id: str, user: ManageUser, gate: GatewayDep
) -> HTMLResponse | RedirectResponse:
    form = await read_form(request, user)
    try:
        floor = number_field(
            form, "threshold_floor", "The threshold floor", default=None, low=0.0, high=100.0
        )
        days = number_field(
            form, "retention_days", "The retention", default=None, low=1, high=36_500
        )
        if days is not None and days != int(days):
            raise InvalidParameterError("The retention must be a whole number of days.")
        policy = CollectionPolicy(
            require_purpose=form.get("require_purpose") == "on",
            threshold_floor=floor,
            retention_days=int(days) if days is not None else None,
            keep_face_crops=form.get("keep_face_crops") == "on",
        )
        await run_blocking(request, gate.put_policy, user.caller(), collection_id, policy)
    except FaceLedgerError as exc:
        return await _failed(request, gate, user, collection_id, exc)
    return _done(collection_id, done="policy")


@router.post("/collections/{collection_id}/delete", response_model=None)
async def delete_collection(
    request: Request, collection_id: str, user: ManageUser, gate: GatewayDep
) -> HTMLResponse | RedirectResponse:
    form = await read_form(request, user)
    if text_field(form, "confirm", max_chars=255) != collection_id:
        problem = Problem(
            "Not deleted", f"Type the collection's id ({collection_id}) to confirm the deletion."
        )
        return await _detail(request, gate, user, collection_id, status=400, problem=problem)
    try:
        await run_blocking(request, gate.delete_collection, user.caller(), collection_id)
    except FaceLedgerError as exc:
        return await _failed(request, gate, user, collection_id, exc)
    return await _list_page(
        request, gate, user, message=f"Deleted collection {collection_id} and all its faces."
    )
