"""Domain results shaped as Rekognition's JSON output members.

Units follow Rekognition: bounding boxes and landmarks are ratios of the orientation-corrected
image's width and height; Confidence, Similarity, Brightness and Sharpness are 0–100; Pose is in
degrees. FaceLedger fills the FaceDetail members it measures (BoundingBox, Confidence,
Landmarks, Pose, Quality); the attributes it does not estimate (age, emotions, glasses, …) are
left out rather than invented, whatever ``Attributes`` asks for.
"""

from __future__ import annotations

from typing import Any

from faceledger.domain.collections import (
    BoundingBox,
    Collection,
    CollectionMatch,
    StoredFace,
    User,
)
from faceledger.domain.faces import LANDMARK_NAMES, Faces, ImageInfo
from faceledger.domain.results import FaceFailure, ImageFace, UserMatch

DIGITS = 6  # ratios
SCORE_DIGITS = 4  # Similarity, Confidence, quality


def bounding_box(box: BoundingBox) -> dict[str, float]:
    """Rekognition's BoundingBox, clipped to the image (a face crossing an edge keeps only
    its visible part: every member within [0, 1], Left + Width ≤ 1)."""
    box = box.clipped()
    return {
        "Width": round(box.width, DIGITS),
        "Height": round(box.height, DIGITS),
        "Left": round(box.left, DIGITS),
        "Top": round(box.top, DIGITS),
    }


def face_box(faces: Faces, i: int, width_px: int, height_px: int) -> BoundingBox:
    return BoundingBox.from_pixels(faces.boxes_px[i], width_px, height_px)


def face_detail(faces: Faces, i: int, width_px: int, height_px: int) -> dict[str, Any]:
    """A FaceDetail (also a ComparedFace: same member names for what we fill)."""
    detail: dict[str, Any] = {
        "BoundingBox": bounding_box(face_box(faces, i, width_px, height_px)),
        "Landmarks": [
            {
                "Type": name,
                "X": round(float(x) / width_px, DIGITS),
                "Y": round(float(y) / height_px, DIGITS),
            }
            for name, (x, y) in zip(LANDMARK_NAMES, faces.landmarks_px[i], strict=True)
        ],
        "Confidence": round(float(faces.scores[i]) * 100.0, SCORE_DIGITS),
    }
    if faces.has_quality:
        assert faces.yaw_deg is not None and faces.pitch_deg is not None
        assert faces.roll_deg is not None
        assert faces.brightness is not None and faces.sharpness is not None
        detail["Pose"] = {
            "Roll": round(float(faces.roll_deg[i]), 2),
            "Yaw": round(float(faces.yaw_deg[i]), 2),
            "Pitch": round(float(faces.pitch_deg[i]), 2),
        }
        detail["Quality"] = {
            "Brightness": round(float(faces.brightness[i]), SCORE_DIGITS),
            "Sharpness": round(float(faces.sharpness[i]), SCORE_DIGITS),
        }
    return detail


def stored_face(face: StoredFace, *, with_user: bool = True) -> dict[str, Any]:
    """A Face (IndexFaces, ListFaces, search matches)."""
    out: dict[str, Any] = {
        "FaceId": face.face_id,
        "BoundingBox": bounding_box(face.bounding_box),
        "ImageId": face.image_id,
        "Confidence": round(face.confidence, SCORE_DIGITS),
    }
    if face.external_image_id is not None:
        out["ExternalImageId"] = face.external_image_id
    if face.face_model_version:
        out["IndexFacesModelVersion"] = face.face_model_version
    if with_user and face.user_id is not None:
        out["UserId"] = face.user_id
    return out


def image_face(face: ImageFace, image: ImageInfo) -> dict[str, Any]:
    """A face of a probe image as a FaceDetail with BoundingBox (ratios) and Confidence."""
    return {
        "BoundingBox": bounding_box(face.box_px.to_ratio(image.width_px, image.height_px)),
        "Confidence": round(face.confidence, SCORE_DIGITS),
    }


def face_failure(failure: FaceFailure) -> dict[str, Any]:
    """An UnsuccessfulFaceDeletion / Association / Disassociation (``Confidence``: the face's
    Similarity to the user, for LOW_MATCH_CONFIDENCE)."""
    out: dict[str, Any] = {"FaceId": failure.face_id}
    if failure.user_id is not None:
        out["UserId"] = failure.user_id
    if failure.similarity is not None:
        out["Confidence"] = round(failure.similarity, SCORE_DIGITS)
    out["Reasons"] = list(failure.reasons)
    return out


def face_match(match: CollectionMatch) -> dict[str, Any]:
    return {"Similarity": round(match.similarity, SCORE_DIGITS), "Face": stored_face(match.face)}


def user(u: User) -> dict[str, Any]:
    return {"UserId": u.user_id, "UserStatus": u.status}


def user_match(match: UserMatch) -> dict[str, Any]:
    return {"Similarity": round(match.similarity, SCORE_DIGITS), "User": user(match.user)}


def collection_arn(region: str, account_id: str, collection_id: str) -> str:
    return f"arn:aws:rekognition:{region}:{account_id}:collection/{collection_id}"


def describe_collection(c: Collection, arn: str) -> dict[str, Any]:
    return {
        "FaceCount": c.face_count,
        "FaceModelVersion": c.face_model_version,
        "CollectionARN": arn,
        "CreationTimestamp": c.created_at,
        "UserCount": c.user_count,
    }


# -- video (stored results are the domain's dataclasses as JSON: see services/video.py) --------
def video_box(d: dict[str, Any]) -> dict[str, float]:
    """A BoundingBox from a stored result's box (``left``, ``top``, ``width``, ``height``)."""
    return bounding_box(BoundingBox(d["left"], d["top"], d["width"], d["height"]))


_box = video_box


def video_face(face: dict[str, Any]) -> dict[str, Any]:
    """A FaceDetail of a face in a video frame."""
    return {
        "BoundingBox": _box(face["box"]),
        "Landmarks": [
            {"Type": m["type"], "X": round(m["x"], DIGITS), "Y": round(m["y"], DIGITS)}
            for m in face.get("landmarks", ())
        ],
        "Pose": {
            "Roll": round(face["roll_deg"], 2),
            "Yaw": round(face["yaw_deg"], 2),
            "Pitch": round(face["pitch_deg"], 2),
        },
        "Quality": {
            "Brightness": round(face["brightness"], SCORE_DIGITS),
            "Sharpness": round(face["sharpness"], SCORE_DIGITS),
        },
        "Confidence": round(face["confidence"], SCORE_DIGITS),
    }


def video_person(item: dict[str, Any]) -> dict[str, Any]:
    """A PersonDetail: Index, BoundingBox and (when measured) the Face."""
    person: dict[str, Any] = {"Index": item["index"], "BoundingBox": _box(item["box"])}
    if item.get("face") is not None:
        person["Face"] = video_face(item["face"])
    return person


def video_hit(hit: dict[str, Any]) -> dict[str, Any]:
    """A FaceMatch of GetFaceSearch: Similarity and the collection's Face."""
    face: dict[str, Any] = {"FaceId": hit["face_id"]}
    if hit.get("box") is not None:
        face["BoundingBox"] = _box(hit["box"])
    if hit.get("image_id") is not None:
        face["ImageId"] = hit["image_id"]
    if hit.get("external_image_id") is not None:
        face["ExternalImageId"] = hit["external_image_id"]
    if hit.get("confidence") is not None:
        face["Confidence"] = round(hit["confidence"], SCORE_DIGITS)
    if hit.get("user_id") is not None:
        face["UserId"] = hit["user_id"]
    return {"Similarity": round(hit["similarity"], SCORE_DIGITS), "Face": face}


def video_item(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    """One result of a stored-video job: FaceDetection, PersonDetection or PersonMatch."""
    if kind == "faces":
        return {"Timestamp": item["timestamp_ms"], "Face": video_face(item["face"])}
    out: dict[str, Any] = {"Timestamp": item["timestamp_ms"], "Person": video_person(item)}
    if kind == "search":
        out["FaceMatches"] = [video_hit(h) for h in item.get("matches", ())]
    return out


def video_metadata(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Codec": m["codec"],
        "DurationMillis": int(m["duration_ms"]),
        "Format": m["format"],
        "FrameRate": float(m["frame_rate"]),
        "FrameHeight": int(m["frame_height"]),
        "FrameWidth": int(m["frame_width"]),
    }
    if m.get("colour_range"):
        out["ColorRange"] = m["colour_range"]
    return out


def stream_processor_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:rekognition:{region}:{account_id}:streamprocessor/{name}"
