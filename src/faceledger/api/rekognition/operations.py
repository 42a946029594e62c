"""The handlers of Rekognition's image and collection operations (faces, users, collections).

Each ``@operation`` function takes the request ``Context`` and the validated parameters (blobs
already decoded to bytes) and returns the operation's output members as JSON-ready values
(``dispatch.py``; the router builds the table from this module, ``labels.py`` and
``video.py``). Handlers are blocking (engine, SQLite, index) and run in a worker thread.
Defaults are Rekognition's (``../shared/DESIGN.md``, "Protocol facts"), read where the service
model does not state them.
"""

from __future__ import annotations

from typing import Any

from faceledger.api.rekognition import shapes
from faceledger.api.rekognition.dispatch import Context, operation
from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.faces import AnalysedImage
from faceledger.services.collections import (
    DEFAULT_FACE_MATCH_THRESHOLD,
    DEFAULT_SEARCH_MAX_FACES,
    quality_reasons,
)

DEFAULT_LIST_FACES = 1000
DEFAULT_LIST_COLLECTIONS = 1000


def _kwargs(params: dict[str, Any], **names: str) -> dict[str, Any]:
    """Service keyword arguments for the request members present (``kwarg="Member"``)."""
    return {kwarg: params[member] for kwarg, member in names.items() if member in params}


# -- collections ---------------------------------------------------------------------------
@operation
def create_collection(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    c = ctx.gate.create_collection(ctx.caller, p["CollectionId"], p.get("Tags"))
    return {
        "StatusCode": 200,
        "CollectionArn": ctx.arn(c.collection_id),
        "FaceModelVersion": c.face_model_version,
    }


@operation
def describe_collection(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    c = ctx.gate.describe_collection(ctx.caller, p["CollectionId"])
    return shapes.describe_collection(c, ctx.arn(c.collection_id))


@operation
def list_collections(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    page, token = ctx.gate.list_collections(
        ctx.caller,
        next_token=p.get("NextToken"),
        max_results=p.get("MaxResults", DEFAULT_LIST_COLLECTIONS),
    )
    out: dict[str, Any] = {
        "CollectionIds": [c.collection_id for c in page],
        "FaceModelVersions": [c.face_model_version for c in page],
    }
    if token:
        out["NextToken"] = token
    return out


@operation
def delete_collection(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    ctx.gate.delete_collection(ctx.caller, p["CollectionId"])
    return {"StatusCode": 200}


# -- tags ----------------------------------------------------------------------------------
@operation
def tag_resource(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    ctx.gate.tag_collection(ctx.caller, ctx.collection_of_arn(p["ResourceArn"]), p["Tags"])
    return {}


@operation
def untag_resource(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    ctx.gate.untag_collection(ctx.caller, ctx.collection_of_arn(p["ResourceArn"]), p["TagKeys"])
    return {}


@operation
def list_tags_for_resource(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    return {"Tags": ctx.gate.collection_tags(ctx.caller, ctx.collection_of_arn(p["ResourceArn"]))}


# -- faces ---------------------------------------------------------------------------------
def _detail(analysed: AnalysedImage, index: int) -> dict[str, Any]:
    return shapes.face_detail(analysed.faces, index, analysed.width_px, analysed.height_px)


@operation
def index_faces(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    result = ctx.gate.index_faces(
        ctx.caller,
        p["CollectionId"],
        ctx.image(p["Image"]),
        **_kwargs(
            p,
            external_image_id="ExternalImageId",
            max_faces="MaxFaces",
            quality_filter="QualityFilter",
        ),
    )
    analysed = result.analysed
    assert analysed is not None
    records = []
    for face, index in result.face_records:
        if index >= 0:
            detail = _detail(analysed, index)
        else:  # an earlier IndexFaces of the same image: the stored box
            detail = {
                "BoundingBox": shapes.bounding_box(face.bounding_box),
                "Confidence": round(face.confidence, shapes.SCORE_DIGITS),
            }
        records.append({"Face": shapes.stored_face(face), "FaceDetail": detail})
    return {
        "FaceRecords": records,
        "FaceModelVersion": result.face_model_version,
        "UnindexedFaces": [
            {"Reasons": list(u.reasons), "FaceDetail": _detail(analysed, u.face_index)}
            for u in result.unindexed
        ],
    }


@operation
def list_faces(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    page = ctx.gate.list_faces(
        ctx.caller,
        p["CollectionId"],
        next_token=p.get("NextToken"),
        max_results=p.get("MaxResults", DEFAULT_LIST_FACES),
        **_kwargs(p, user_id="UserId", face_ids="FaceIds"),
    )
    out: dict[str, Any] = {
        "Faces": [shapes.stored_face(f) for f in page.faces],
        "FaceModelVersion": page.face_model_version,
    }
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


@operation
def delete_faces(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    deleted, unsuccessful = ctx.gate.delete_faces(ctx.caller, p["CollectionId"], p["FaceIds"])
    return {
        "DeletedFaces": deleted,
        "UnsuccessfulFaceDeletions": [shapes.face_failure(f) for f in unsuccessful],
    }


# -- search --------------------------------------------------------------------------------
@operation
def search_faces(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    found = ctx.gate.search_faces(
        ctx.caller,
        p["CollectionId"],
        p["FaceId"],
        max_faces=p.get("MaxFaces", DEFAULT_SEARCH_MAX_FACES),
        threshold=p.get("FaceMatchThreshold", DEFAULT_FACE_MATCH_THRESHOLD),
    )
    ctx.effective_threshold(found.threshold)
    ctx.lead(found.lead_id)
    ctx.search_scale(found.scale)
    return {
        "SearchedFaceId": p["FaceId"],
        "FaceMatches": [shapes.face_match(m) for m in found.matches],
        "FaceModelVersion": found.face_model_version,
    }


@operation
def search_faces_by_image(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    result = ctx.gate.search_faces_by_image(
        ctx.caller,
        p["CollectionId"],
        ctx.image(p["Image"]),
        max_faces=p.get("MaxFaces", DEFAULT_SEARCH_MAX_FACES),
        threshold=p.get("FaceMatchThreshold", DEFAULT_FACE_MATCH_THRESHOLD),
        quality_filter=p.get("QualityFilter", "NONE"),
    )
    ctx.effective_threshold(result.threshold)
    ctx.lead(result.lead_id)
    ctx.search_scale(result.scale)
    searched = shapes.image_face(result.searched_face, result.image)
    return {
        "SearchedFaceBoundingBox": searched["BoundingBox"],
        "SearchedFaceConfidence": searched["Confidence"],
        "FaceMatches": [shapes.face_match(m) for m in result.matches],
        "FaceModelVersion": result.face_model_version,
    }


# -- images without a collection -------------------------------------------------------------
@operation
def detect_faces(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    analysed = ctx.gate.detect_faces(ctx.caller, ctx.image(p["Image"]))
    return {"FaceDetails": [_detail(analysed, i) for i in range(len(analysed.faces))]}


@operation
def compare_faces(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    threshold = float(p.get("SimilarityThreshold", DEFAULT_FACE_MATCH_THRESHOLD))
    quality_filter = p.get("QualityFilter", "NONE")
    source, target, result = ctx.gate.compare_faces(
        ctx.caller,
        ctx.image(p["SourceImage"], "SourceImage"),
        ctx.image(p["TargetImage"], "TargetImage"),
    )
    failing = quality_reasons(result.source, quality_filter)[0]
    if failing:  # the comparison is ledgered; so is this refusal of its answer
        raise ctx.refuse(
            InvalidParameterError(
                f"the source image's largest face fails QualityFilter {quality_filter}: "
                + ", ".join(failing)
            )
        )
    target_reasons = quality_reasons(result.targets, quality_filter)
    matched, unmatched = [], []
    for m in sorted(result.matches, key=lambda m: -m.similarity):
        if target_reasons[m.target_index]:
            continue  # filtered out: neither matched nor unmatched
        detail = shapes.face_detail(
            result.targets, m.target_index, target.width_px, target.height_px
        )
        if m.similarity >= threshold:
            matched.append({"Similarity": round(m.similarity, shapes.SCORE_DIGITS), "Face": detail})
        else:
            unmatched.append(detail)
    source_box = shapes.face_box(result.source, 0, source.width_px, source.height_px)
    return {
        "SourceImageFace": {
            "BoundingBox": shapes.bounding_box(source_box),
            "Confidence": round(float(result.source.scores[0]) * 100.0, shapes.SCORE_DIGITS),
        },
        "FaceMatches": matched,
        "UnmatchedFaces": unmatched,
    }


# -- users ---------------------------------------------------------------------------------
@operation
def create_user(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    ctx.gate.create_user(ctx.caller, p["CollectionId"], p["UserId"], p.get("ClientRequestToken"))
    return {}


@operation
def delete_user(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    ctx.gate.delete_user(ctx.caller, p["CollectionId"], p["UserId"], p.get("ClientRequestToken"))
    return {}


@operation
def list_users(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    users, token = ctx.gate.list_users(
        ctx.caller,
        p["CollectionId"],
        **_kwargs(p, next_token="NextToken", max_results="MaxResults"),
    )
    out: dict[str, Any] = {"Users": [shapes.user(u) for u in users]}
    if token:
        out["NextToken"] = token
    return out


@operation
def associate_faces(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    outcome = ctx.gate.associate_faces(
        ctx.caller,
        p["CollectionId"],
        p["UserId"],
        p["FaceIds"],
        **_kwargs(
            p,
            user_match_threshold="UserMatchThreshold",
            client_request_token="ClientRequestToken",
        ),
    )
    return {
        "AssociatedFaces": [{"FaceId": f} for f in outcome.faces],
        "UnsuccessfulFaceAssociations": [shapes.face_failure(f) for f in outcome.unsuccessful],
        "UserStatus": outcome.user_status,
    }


@operation
def disassociate_faces(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    outcome = ctx.gate.disassociate_faces(
        ctx.caller,
        p["CollectionId"],
        p["UserId"],
        p["FaceIds"],
        **_kwargs(p, client_request_token="ClientRequestToken"),
    )
    return {
        "DisassociatedFaces": [{"FaceId": f} for f in outcome.faces],
        "UnsuccessfulFaceDisassociations": [shapes.face_failure(f) for f in outcome.unsuccessful],
        "UserStatus": outcome.user_status,
    }


@operation
def search_users(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    result = ctx.gate.search_users(
        ctx.caller,
        p["CollectionId"],
        **_kwargs(
            p,
            user_id="UserId",
            face_id="FaceId",
            user_match_threshold="UserMatchThreshold",
            max_users="MaxUsers",
        ),
    )
    ctx.effective_threshold(result.threshold)
    ctx.lead(result.lead_id)
    ctx.search_scale(result.scale)
    out: dict[str, Any] = {
        "UserMatches": [shapes.user_match(m) for m in result.matches],
        "FaceModelVersion": result.face_model_version,
    }
    if result.searched_face_id is not None:
        out["SearchedFace"] = {"FaceId": result.searched_face_id}
    if result.searched_user_id is not None:
        out["SearchedUser"] = {"UserId": result.searched_user_id}
    return out


@operation
def search_users_by_image(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    result = ctx.gate.search_users_by_image(
        ctx.caller,
        p["CollectionId"],
        ctx.image(p["Image"]),
        **_kwargs(
            p,
            user_match_threshold="UserMatchThreshold",
            max_users="MaxUsers",
            quality_filter="QualityFilter",
        ),
    )
    ctx.effective_threshold(result.threshold)
    ctx.lead(result.lead_id)
    ctx.search_scale(result.scale)
    out: dict[str, Any] = {
        "UserMatches": [shapes.user_match(m) for m in result.matches],
        "FaceModelVersion": result.face_model_version,
        "UnsearchedFaces": [
            {"FaceDetails": shapes.image_face(u.face, result.image), "Reasons": list(u.reasons)}
            for u in result.unsearched
        ],
    }
    if result.searched_face is not None:
        out["SearchedFace"] = {"FaceDetail": shapes.image_face(result.searched_face, result.image)}
    return out
