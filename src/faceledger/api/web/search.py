"""Search and Compare pages: a photo (camera or file) in, candidates or similarities out.

Search needs a collection, a purpose and a case reference (sent to the gateway in the
``Caller``, so the ledger records why). The probe's faces are detected first (DetectFaces,
ledgered); with JavaScript the page shows them before the search and lets the officer choose
one (``POST /app/search/faces``); face 1 (the largest) is searched in the whole photo, any
other in a crop around it (see ``probe``). Candidates are cards: a placeholder (FaceLedger keeps
no enrolled photos), ExternalImageId, UserId, FaceId, Similarity and the false-match rate it
stands for, under the notice that a match is a lead for human review.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import FormData

from faceledger.api import run_blocking
from faceledger.api.native.auth import GatewayDep
from faceledger.api.web.probe import (
    Box,
    crop_around,
    face_boxes,
    preview_data_url,
    ratio_to_photo,
)
from faceledger.api.web.views import (
    SECURITY_HEADERS,
    Problem,
    WebUser,
    describe_error,
    error_status,
    false_match_text,
    for_page,
    number_field,
    problem_of,
    read_form,
    read_image,
    render,
    sessions,
    text_field,
    uploads,
)
from faceledger.domain.audit import Caller
from faceledger.domain.errors import FaceLedgerError, InvalidParameterError
from faceledger.domain.faces import Faces, Image
from faceledger.domain.policy import MAX_CASE_CHARS, MAX_PURPOSE_CHARS
from faceledger.services.collections import DEFAULT_FACE_MATCH_THRESHOLD
from faceledger.services.gateway import Gateway

router = APIRouter()

SearchUser = Annotated[WebUser, Depends(for_page("search"))]
CompareUser = Annotated[WebUser, Depends(for_page("compare"))]
MAX_CANDIDATES = 20


async def collection_ids(request: Request, gate: Gateway, user: WebUser) -> list[str]:
    """The collections to choose from (ListCollections through the gateway; [] if refused)."""
    try:
        page, _ = await run_blocking(request, gate.list_collections, user.caller())
    except FaceLedgerError:
        return []
    return [c.collection_id for c in page]


def _box(box: Box) -> dict[str, float]:
    return {
        "left": round(box.left, 1),
        "top": round(box.top, 1),
        "width": round(box.width, 1),
        "height": round(box.height, 1),
    }


def _search_values(
    form: FormData | None, request: Request, last_collection: str = ""
) -> dict[str, Any]:
    """The form's fields as the page shows them again. A new visit pre-selects the collection
    this user searched last; the threshold stays empty unless the user sets one."""
    if form is None:
        return {
            "collection": request.query_params.get("collection", "") or last_collection,
            "purpose": "",
            "case_reference": "",
            "threshold": "",
        }
    return {
        "collection": text_field(form, "collection", max_chars=255),
        "purpose": text_field(form, "purpose", max_chars=MAX_PURPOSE_CHARS),
        "case_reference": text_field(form, "case_reference", max_chars=MAX_CASE_CHARS),
        "threshold": text_field(form, "threshold", max_chars=32),
    }


@router.get("/search", response_class=HTMLResponse)
async def search_page(request: Request, user: SearchUser, gate: GatewayDep) -> HTMLResponse:
    last = await run_blocking(request, gate.preferences.last_collection, user.principal)
    return render(
        request,
        "search.html",
        user,
        active="search",
        collections=await collection_ids(request, gate, user),
        values=_search_values(None, request, last),
    )


@router.post("/search/faces")
async def probe_faces(request: Request, user: SearchUser, gate: GatewayDep) -> JSONResponse:
    """The faces of the photo about to be searched (for the page's script): pixel boxes,
    largest first. Errors come back as a title and a sentence for the page to show."""
    try:
        form = await read_form(request, user, images=1)
        files = uploads(form, "image")
        if not files:
            raise InvalidParameterError("Take or choose a photo first.")
        data = await read_image(request, files[0], "image")
        caller = user.caller(text_field(form, "purpose"), text_field(form, "case_reference"))
        analysed = await run_blocking(request, gate.detect_faces, caller, data)
    except FaceLedgerError as exc:
        problem = describe_error(exc)
        return JSONResponse(
            {"error": {"title": problem.title, "message": problem.message}},
            status_code=error_status(exc),
            headers=SECURITY_HEADERS,
        )
    return JSONResponse(
        {
            "width_px": analysed.width_px,
            "height_px": analysed.height_px,
            "faces": [_box(b) for b in face_boxes(analysed.faces)],
        },
        headers=SECURITY_HEADERS,
    )


def _missing(values: dict[str, Any], has_photo: bool) -> list[str]:
    problems = []
    if not values["collection"]:
        problems.append("Choose a collection.")
    if not values["purpose"]:
        problems.append("State the purpose of this search.")
    if not values["case_reference"]:
        problems.append("Give the case reference.")
    if not has_photo:
        problems.append("Take or choose a photo.")
    return problems


@router.post("/search", response_class=HTMLResponse)
async def search(request: Request, user: SearchUser, gate: GatewayDep) -> HTMLResponse:
    form = await read_form(request, user, images=1)
    collections = await collection_ids(request, gate, user)
    values = _search_values(form, request)
    page: dict[str, Any] = {"active": "search", "collections": collections, "values": values}
    files = uploads(form, "image")
    kept = sessions(request).kept_probe(user.session, text_field(form, "probe_token"))
    missing = _missing(values, bool(files) or kept is not None)
    if missing:
        return render(request, "search.html", user, status=400, missing=missing, **page)
    try:
        asked = number_field(
            form, "threshold", "The match threshold", default=None, low=0.0, high=100.0
        )
        threshold = DEFAULT_FACE_MATCH_THRESHOLD if asked is None else asked
        chosen_text = text_field(form, "face_index", max_chars=4)
        chosen = int(chosen_text) if chosen_text.isdigit() else 0
        data = await read_image(request, files[0], "image") if files else kept
        assert data is not None
        result = await run_blocking(
            request,
            _search,
            gate,
            user.caller(values["purpose"], values["case_reference"]),
            values["collection"],
            data,
            chosen,
            threshold,
        )
        result["requested_threshold"] = asked
    except FaceLedgerError as exc:
        return render(
            request,
            "search.html",
            user,
            **problem_of(exc),
            **page,
        )
    store = sessions(request)
    await run_blocking(
        request, gate.preferences.remember_collection, user.principal, values["collection"]
    )
    if len(result["faces"]) > 1:  # another face of this photo can be searched without a resend
        result["probe_token"] = store.keep_probe(user.session, data)
    return render(request, "search.html", user, result=result, **page)


def _search(
    gate: Gateway,
    caller: Caller,
    collection_id: str,
    data: bytes,
    chosen: int,
    threshold: float,
) -> dict[str, Any]:
    """Detect the probe's faces, search the chosen one, shape the answer (a worker thread)."""
    analysed = gate.detect_faces(caller, data)
    boxes = face_boxes(analysed.faces)
    decoded = gate.decode_image(data)  # decodes: the gateway has just accepted the same bytes
    out: dict[str, Any] = {
        "preview": preview_data_url(decoded),
        "width_px": decoded.width_px,
        "height_px": decoded.height_px,
        "faces": [_box(b) for b in boxes],
        "collection": collection_id,
    }
    if not boxes:
        out["problem"] = Problem(
            "No face found", "No face was found in the photo, so nothing was searched."
        )
        return out
    chosen = chosen if 0 <= chosen < len(boxes) else 0
    probe: Image = decoded
    crop = None
    if chosen > 0:
        crop = crop_around(decoded, boxes, chosen)
        probe = crop.image
    result = gate.search_faces_by_image(caller, collection_id, probe, threshold=threshold)
    searched = result.searched_face.box_px.to_ratio(result.image.width_px, result.image.height_px)
    calibration = gate.calibration
    out.update(
        chosen=chosen,
        cropped=crop is not None,
        searched=_box(crop.to_photo(searched) if crop else ratio_to_photo(searched, decoded)),
        threshold=result.threshold,
        scale=result.scale,
        candidates=[
            {
                "similarity": m.similarity,
                "false_match": false_match_text(calibration, m.similarity),
                "external_image_id": m.face.external_image_id,
                "user_id": m.face.user_id,
                "face_id": m.face.face_id,
            }
            for m in result.matches[:MAX_CANDIDATES]
        ],
        more=max(0, len(result.matches) - MAX_CANDIDATES),
        lead_id=result.lead_id,
    )
    return out


# -- compare ---------------------------------------------------------------------------------
@router.get("/compare", response_class=HTMLResponse)
async def compare_page(request: Request, user: CompareUser) -> HTMLResponse:
    return render(request, "compare.html", user, active="compare")


@router.post("/compare", response_class=HTMLResponse)
async def compare(request: Request, user: CompareUser, gate: GatewayDep) -> HTMLResponse:
    form = await read_form(request, user, images=2)
    sources, targets = uploads(form, "source"), uploads(form, "target")
    missing = [
        text
        for files, text in ((sources, "Choose the first photo."), (targets, "Choose the second."))
        if not files
    ]
    if missing:
        return render(request, "compare.html", user, status=400, active="compare", missing=missing)
    try:
        source = await read_image(request, sources[0], "first photo")
        target = await read_image(request, targets[0], "second photo")
        result = await run_blocking(request, _compare, gate, user.caller(), source, target)
    except FaceLedgerError as exc:
        return render(
            request,
            "compare.html",
            user,
            **problem_of(exc),
            active="compare",
        )
    return render(request, "compare.html", user, active="compare", result=result)


def _compare(gate: Gateway, caller: Caller, source: bytes, target: bytes) -> dict[str, Any]:
    source_image, target_image, compared = gate.compare_faces(caller, source, target)
    calibration = gate.calibration

    def boxes(faces: Faces) -> list[dict[str, float]]:
        return [_box(b) for b in face_boxes(faces)]

    matches = sorted(compared.matches, key=lambda m: -m.similarity)
    return {
        "best_index": matches[0].target_index if matches else -1,
        "source": {
            "preview": preview_data_url(source_image),
            "width_px": source_image.width_px,
            "height_px": source_image.height_px,
            "faces": boxes(compared.source),
        },
        "target": {
            "preview": preview_data_url(target_image),
            "width_px": target_image.width_px,
            "height_px": target_image.height_px,
            "faces": boxes(compared.targets),
        },
        "matches": [
            {
                "face": m.target_index + 1,
                "similarity": m.similarity,
                "false_match": false_match_text(calibration, m.similarity),
            }
            for m in matches
        ],
    }
