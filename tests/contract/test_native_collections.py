"""Collections, faces and users over the native REST API, against the real server (httpx).

Every request carries the session's admin key (the ``api`` client). Each test makes its own
collection (the server is shared by the session). LFW people are picked as in
``test_collections.py`` (six with at least two photos) and ``test_users.py`` (three with at
least four photos).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

from faceledger.api.native.routes import IMAGES_PER_REQUEST
from helpers.backends import BOTH_BACKENDS
from helpers.data import lfw_people
from helpers.native import assert_error, enrol, index, ok, search

MAX_IMAGE_BYTES = 5_242_880
MISSING_FACE = "00000000-0000-0000-0000-000000000000"


# --- helpers -----------------------------------------------------------------------------------


def _gray_png(side: int = 200) -> bytes:
    ok_, buf = cv2.imencode(".png", np.full((side, side, 3), 128, np.uint8))
    assert ok_
    return buf.tobytes()


def _size(data: bytes) -> tuple[int, int]:
    return ImageOps.exif_transpose(PILImage.open(io.BytesIO(data))).size


def search_users(api: httpx.Client, collection: str, data: bytes, **form: Any) -> httpx.Response:
    return api.post(
        f"/v1/collections/{collection}/users/search",
        files={"image": ("probe.jpg", data, "image/jpeg")},
        data={k: str(v) for k, v in form.items()},
    )


def set_floor(api: httpx.Client, collection: str, floor: float) -> None:
    """Give ``collection`` a policy with this threshold floor (no purpose required)."""
    policy = {"require_purpose": False, "threshold_floor": floor}
    ok(api.put(f"/v1/collections/{collection}/policy", json=policy))


@pytest.fixture
def collection(api: httpx.Client) -> Iterator[str]:
    """A fresh collection, deleted afterwards (if the test left it)."""
    collection_id = f"test-{uuid.uuid4().hex[:12]}"
    ok(api.post("/v1/collections", json={"collection_id": collection_id}), 201)
    yield collection_id
    api.delete(f"/v1/collections/{collection_id}")


@pytest.fixture(scope="module")
def gallery_people(data_dir: Path) -> dict[str, list[Path]]:
    return lfw_people(data_dir, min_images=2, count=6)


@pytest.fixture(scope="module")
def user_people(data_dir: Path) -> dict[str, list[Path]]:
    return lfw_people(data_dir, min_images=4, count=3)


# --- the spec --------------------------------------------------------------------------------


def test_openapi_documents_every_route(live_server: str) -> None:
    spec = httpx.get(f"{live_server}/openapi.json", timeout=10).json()
    c = "/v1/collections/{collection_id}"
    expected = {
        ("post", "/v1/collections"),
        ("get", "/v1/collections"),
        ("get", c),
        ("delete", c),
        ("post", f"{c}/faces"),
        ("get", f"{c}/faces"),
        ("post", f"{c}/faces/delete"),
        ("post", f"{c}/search"),
        ("get", f"{c}/faces/{{face_id}}/matches"),
        ("get", f"{c}/faces/{{face_id}}/user_matches"),
        ("post", f"{c}/users"),
        ("get", f"{c}/users"),
        ("delete", f"{c}/users/{{user_id}}"),
        ("post", f"{c}/users/{{user_id}}/faces"),
        ("post", f"{c}/users/{{user_id}}/faces/delete"),
        ("get", f"{c}/users/{{user_id}}/matches"),
        ("post", f"{c}/users/search"),
        ("get", f"{c}/policy"),
        ("put", f"{c}/policy"),
    }
    served = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert expected <= served
    # every multipart route's body is capped by the size-limit middleware
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            if "multipart/form-data" in content:
                assert path in IMAGES_PER_REQUEST, path
    pattern = spec["paths"][c]["get"]["parameters"][0]["schema"]["pattern"]
    assert pattern.startswith("^") and pattern.endswith("$")


# --- collections and faces ---------------------------------------------------------------------


@BOTH_BACKENDS
def test_collection_lifecycle_and_paging(api: httpx.Client) -> None:
    prefix = f"life-{uuid.uuid4().hex[:8]}"
    ids = [f"{prefix}-{i}" for i in range(3)]
    for collection_id in ids:
        created = ok(api.post("/v1/collections", json={"collection_id": collection_id}), 201)
        assert created["collection_id"] == collection_id
        assert created["face_model_version"].startswith("yunet-sface")
        assert (created["face_count"], created["user_count"]) == (0, 0)
        assert created["created_at"] > 1.6e9  # epoch seconds
    again = api.post("/v1/collections", json={"collection_id": ids[0]})
    assert_error(again, 400, "ResourceAlreadyExistsException")
    assert ok(api.get(f"/v1/collections/{ids[1]}"))["collection_id"] == ids[1]

    seen: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"max_results": 2}
        if token:
            params["next_token"] = token
        page = ok(api.get("/v1/collections", params=params))
        assert len(page["collections"]) <= 2
        seen += [c["collection_id"] for c in page["collections"]]
        token = page["next_token"]
        if token is None:
            break
    assert [s for s in seen if s.startswith(prefix)] == ids
    assert seen == sorted(seen)

    for collection_id in ids:
        assert api.delete(f"/v1/collections/{collection_id}").status_code == 204
    gone = api.get(f"/v1/collections/{ids[0]}")
    assert ids[0] in assert_error(gone, 400, "ResourceNotFoundException")["message"]


@BOTH_BACKENDS
def test_index_list_search_and_delete_faces(
    api: httpx.Client, collection: str, gallery_people: dict[str, list[Path]]
) -> None:
    names = list(gallery_people)
    set_floor(api, collection, 0)  # searches below Rekognition's 80 rank every candidate
    enrolled: dict[str, str] = {}
    for name in names[:4]:
        data = gallery_people[name][0].read_bytes()
        body = ok(index(api, collection, data, external_image_id=name))
        width, height = _size(data)
        assert (body["image"]["width_px"], body["image"]["height_px"]) == (width, height)
        assert body["duplicate"] is False
        [face] = body["faces"]  # LFW photos may hold small background faces, refused:
        assert all(u["face_index"] != face["face_index"] for u in body["unindexed_faces"])
        assert face["external_image_id"] == name and isinstance(face["face_index"], int)
        assert face["confidence"] > 60 and face["user_id"] is None
        # the pixel box is the ratio box in pixels of the upload, and the box /v1/detect finds
        px, ratio = face["bbox_px"], face["bounding_box_ratio"]
        assert px["width"] == pytest.approx(ratio["width"] * width, abs=0.06)
        assert px["top"] == pytest.approx(ratio["top"] * height, abs=0.06)
        assert 0 <= ratio["left"] < 1 and 0 < ratio["width"] <= 1
        detected = ok(api.post("/v1/detect", files={"image": data}))["faces"][0]["bbox_px"]
        for side in ("left", "top", "width", "height"):
            assert px[side] == pytest.approx(detected[side], abs=0.2)
        enrolled[name] = face["face_id"]

    again = ok(
        index(api, collection, gallery_people[names[0]][0].read_bytes(), external_image_id=names[0])
    )
    # a repeat names the detected face it matches (the full detail, as the first time)
    assert again["duplicate"] is True and again["faces"][0]["face_index"] == 0
    assert again["faces"][0]["face_id"] == enrolled[names[0]]
    assert ok(api.get(f"/v1/collections/{collection}"))["face_count"] == 4

    # listing: every face, in pages, or only the ones asked for
    listed = ok(api.get(f"/v1/collections/{collection}/faces"))
    assert [f["face_id"] for f in listed["faces"]] == list(enrolled.values())
    assert listed["next_token"] is None
    first = ok(api.get(f"/v1/collections/{collection}/faces", params={"max_results": 3}))
    rest = ok(
        api.get(
            f"/v1/collections/{collection}/faces",
            params={"max_results": 3, "next_token": first["next_token"]},
        )
    )
    assert [f["face_id"] for f in first["faces"] + rest["faces"]] == list(enrolled.values())
    wanted = [enrolled[names[1]], enrolled[names[3]]]
    only = ok(api.get(f"/v1/collections/{collection}/faces", params={"face_id": wanted}))
    assert [f["face_id"] for f in only["faces"]] == wanted

    # a second photo of an enrolled person finds them first; an unknown person finds no one
    probe = gallery_people[names[1]][1].read_bytes()
    hit = ok(search(api, collection, probe))
    assert hit["threshold"] == hit["requested_threshold"] == 80
    assert hit["face_model_version"].startswith("yunet-sface")
    assert hit["matches"][0]["face"]["external_image_id"] == names[1]
    assert hit["matches"][0]["similarity"] >= 80
    assert all(m["similarity"] >= 80 for m in hit["matches"])
    scale = hit["scale"]  # what a candidate means at this collection's size
    assert scale["face_count"] == 4 and scale["floor_source"] == "policy"
    assert scale["fpir"] is not None and scale["one_in"] == round(1 / scale["fpir"])
    assert "searches for someone not in this collection" in scale["statement"]
    width, height = _size(probe)
    box = hit["searched_face"]["bbox_px"]
    assert box["width"] > 20 and box["left"] + box["width"] <= width + 0.1
    assert box["top"] + box["height"] <= height + 0.1
    miss = ok(search(api, collection, gallery_people[names[5]][0].read_bytes()))
    assert miss["matches"] == []
    low = ok(
        search(api, collection, gallery_people[names[5]][0].read_bytes(), threshold=0, max_faces=3)
    )
    sims = [m["similarity"] for m in low["matches"]]
    assert len(sims) == 3 and sims == sorted(sims, reverse=True)
    assert low["threshold"] == low["requested_threshold"] == 0

    # search by FaceId never returns the face itself
    by_id = ok(
        api.get(
            f"/v1/collections/{collection}/faces/{enrolled[names[2]]}/matches",
            params={"threshold": 0, "max_faces": 10},
        )
    )
    assert by_id["searched_face_id"] == enrolled[names[2]]
    assert by_id["threshold"] == by_id["requested_threshold"] == 0
    assert by_id["scale"]["face_count"] == scale["face_count"]
    assert len(by_id["matches"]) == 3
    assert enrolled[names[2]] not in {m["face"]["face_id"] for m in by_id["matches"]}

    # delete: known faces go, unknown ones are reported
    deleted = ok(
        api.post(
            f"/v1/collections/{collection}/faces/delete",
            json={"face_ids": [enrolled[names[1]], MISSING_FACE]},
        )
    )
    assert deleted == {
        "deleted_face_ids": [enrolled[names[1]]],
        "unsuccessful": [
            {
                "face_id": MISSING_FACE,
                "user_id": None,
                "confidence": None,
                "reasons": ["FACE_NOT_FOUND"],
            }
        ],
    }
    after = ok(search(api, collection, probe, threshold=0, max_faces=10))
    assert enrolled[names[1]] not in {m["face"]["face_id"] for m in after["matches"]}

    assert api.delete(f"/v1/collections/{collection}").status_code == 204
    assert_error(api.get(f"/v1/collections/{collection}"), 400, "ResourceNotFoundException")


def test_index_reports_unindexed_faces(api: httpx.Client, collection: str, data_dir: Path) -> None:
    couple = (data_dir / "photos" / "couple.jpg").read_bytes()
    body = ok(index(api, collection, couple, max_faces=1, quality_filter="NONE"))
    [face] = body["faces"]  # the face of best quality (confidence), then the largest
    [refused] = body["unindexed_faces"]
    assert refused["reasons"] == ["EXCEEDS_MAX_FACES"]
    assert {face["face_index"], refused["face_index"]} == {0, 1}
    # a refused face has its pixel box and confidence too: /v1/detect's face at its index
    detected = ok(api.post("/v1/detect", files={"image": couple}))["faces"]
    for item in (face, refused):
        expected = detected[item["face_index"]]
        for side in ("left", "top", "width", "height"):
            assert item["bbox_px"][side] == pytest.approx(expected["bbox_px"][side], abs=0.2)
        assert item["confidence"] == pytest.approx(expected["confidence"], abs=0.01)
    width, height = _size(couple)
    box = refused["bbox_px"]
    assert box["width"] > 20 and box["height"] > 20
    assert box["left"] >= 0 and box["left"] + box["width"] <= width + 0.1
    assert box["top"] >= 0 and box["top"] + box["height"] <= height + 0.1
    assert box != face["bbox_px"]
    # the same upload again is a duplicate: its faces come back, nothing is refused
    again = ok(index(api, collection, couple, max_faces=1, quality_filter="NONE"))
    assert again["duplicate"] is True and again["unindexed_faces"] == []


# --- users ---------------------------------------------------------------------------------


@BOTH_BACKENDS
def test_user_round_trip(
    api: httpx.Client, collection: str, user_people: dict[str, list[Path]], data_dir: Path
) -> None:
    base = f"/v1/collections/{collection}"
    set_floor(api, collection, 0)  # searches below Rekognition's 80 rank every user
    a, b, _ = list(user_people)
    fa = [enrol(api, collection, user_people[a][i], f"{a}-{i}") for i in range(3)]
    fb = enrol(api, collection, user_people[b][0], f"{b}-0")

    created = ok(api.post(f"{base}/users", json={"user_id": "alice"}), 201)
    assert created == {"collection_id": collection, "user_id": "alice"}
    assert_error(api.post(f"{base}/users", json={"user_id": "alice"}), 400, "ConflictException")
    token = {"user_id": "bob", "client_request_token": "create-bob-1"}
    ok(api.post(f"{base}/users", json=token), 201)
    ok(api.post(f"{base}/users", json=token), 201)  # a retry with the same token: no conflict
    users = ok(api.get(f"{base}/users"))
    assert users == {
        "users": [
            {"user_id": "alice", "status": "CREATED"},
            {"user_id": "bob", "status": "CREATED"},
        ],
        "next_token": None,
    }

    # associate: the same person joins; another person is refused with its Similarity
    done = ok(api.post(f"{base}/users/alice/faces", json={"face_ids": fa[:2]}))
    assert done == {"associated_face_ids": fa[:2], "unsuccessful": [], "user_status": "ACTIVE"}
    refused = ok(api.post(f"{base}/users/alice/faces", json={"face_ids": [fb]}))
    assert refused["associated_face_ids"] == []
    [failure] = refused["unsuccessful"]
    assert failure["face_id"] == fb and failure["reasons"] == ["LOW_MATCH_CONFIDENCE"]
    assert failure["user_id"] == "alice" and 0 <= failure["confidence"] < 75
    ok(api.post(f"{base}/users/bob/faces", json={"face_ids": [fb]}))
    mine = ok(api.get(f"{base}/faces", params={"user_id": "alice"}))
    assert [f["face_id"] for f in mine["faces"]] == fa[:2]
    assert all(f["user_id"] == "alice" for f in mine["faces"])

    # search users by image, by face and by user
    by_image = ok(search_users(api, collection, user_people[a][3].read_bytes(), threshold=0))
    assert [m["user"]["user_id"] for m in by_image["matches"]] == ["alice", "bob"]
    assert by_image["matches"][0]["similarity"] >= 80
    assert by_image["matches"][0]["user"]["status"] == "ACTIVE"
    assert by_image["searched_face"]["bbox_px"]["width"] > 20
    assert by_image["unsearched_faces"] == []
    assert by_image["threshold"] == by_image["requested_threshold"] == 0
    assert by_image["scale"]["face_count"] >= 4 and by_image["scale"]["floor_source"]
    by_face = ok(api.get(f"{base}/faces/{fa[2]}/user_matches"))
    assert by_face["threshold"] == by_face["requested_threshold"] == 80
    assert by_face["scale"]["fpir"] is not None and by_face["scale"]["one_in"] >= 1
    assert [m["user"]["user_id"] for m in by_face["matches"]] == ["alice"]
    assert by_face["searched_face_id"] == fa[2] and by_face["searched_user_id"] is None
    by_user = ok(api.get(f"{base}/users/alice/matches", params={"threshold": 0}))
    assert [m["user"]["user_id"] for m in by_user["matches"]] == ["bob"]
    assert by_user["searched_user_id"] == "alice"
    couple = ok(search_users(api, collection, (data_dir / "photos" / "couple.jpg").read_bytes()))
    assert couple["searched_face"] is not None
    assert [u["reasons"] for u in couple["unsearched_faces"]] == [["FACE_NOT_LARGEST"]]
    blank = ok(search_users(api, collection, _gray_png()))
    assert blank["searched_face"] is None and blank["matches"] == []

    # a user's face cannot be deleted; disassociate it first
    refused_delete = ok(api.post(f"{base}/faces/delete", json={"face_ids": [fa[0]]}))
    assert refused_delete["deleted_face_ids"] == []
    assert refused_delete["unsuccessful"][0]["reasons"] == ["ASSOCIATED_TO_AN_EXISTING_USER"]
    assert refused_delete["unsuccessful"][0]["user_id"] == "alice"
    undone = ok(api.post(f"{base}/users/alice/faces/delete", json={"face_ids": [fa[0]]}))
    assert undone == {
        "disassociated_face_ids": [fa[0]],
        "unsuccessful": [],
        "user_status": "ACTIVE",
    }
    gone = ok(api.post(f"{base}/faces/delete", json={"face_ids": [fa[0]]}))
    assert gone["deleted_face_ids"] == [fa[0]]

    # deleting a user keeps its faces, disassociated
    assert api.delete(f"{base}/users/alice").status_code == 204
    assert_error(api.delete(f"{base}/users/alice"), 400, "ResourceNotFoundException")
    assert [u["user_id"] for u in ok(api.get(f"{base}/users"))["users"]] == ["bob"]
    kept = ok(api.get(f"{base}/faces", params={"face_id": fa[1]}))["faces"]
    assert kept[0]["user_id"] is None
    assert api.delete(f"/v1/collections/{collection}").status_code == 204


# --- errors ----------------------------------------------------------------------------------


@BOTH_BACKENDS
def test_unknown_collection_is_resource_not_found(api: httpx.Client, data_dir: Path) -> None:
    photo = (data_dir / "photos" / "img1.jpg").read_bytes()
    for response in (
        api.get("/v1/collections/no-such-collection"),
        api.get("/v1/collections/no-such-collection/faces"),
        api.get("/v1/collections/no-such-collection/users"),
        index(api, "no-such-collection", photo),
        search(api, "no-such-collection", photo),
        api.post("/v1/collections/no-such-collection/users", json={"user_id": "u"}),
    ):
        error = assert_error(response, 400, "ResourceNotFoundException")
        assert "no-such-collection" in error["message"]


@pytest.mark.parametrize(
    "request_args",
    [
        ("post", "/v1/collections", {"json": {"collection_id": "has space"}}),
        ("post", "/v1/collections", {"json": {"collection_id": "x" * 256}}),
        ("get", "/v1/collections/has%20space", {}),
        ("get", "/v1/collections/bad!id/faces", {}),
        ("delete", "/v1/collections/bad!id", {}),
    ],
    ids=["create-space", "create-too-long", "describe-space", "list-faces", "delete"],
)
def test_bad_collection_id_is_invalid_parameter(
    api: httpx.Client, request_args: tuple[str, str, dict[str, Any]]
) -> None:
    method, path, kwargs = request_args
    error = assert_error(api.request(method, path, **kwargs), 400, "InvalidParameterException")
    assert "CollectionId" in error["message"]


def test_bad_ids_and_values_are_invalid_parameter(api: httpx.Client, collection: str) -> None:
    base = f"/v1/collections/{collection}"
    cases = [
        api.get(f"{base}/faces/not-a-face-id/matches"),
        api.get(f"{base}/faces", params={"face_id": "nope"}),
        api.get(f"{base}/faces", params={"max_results": 0}),
        api.get(f"{base}/faces/{MISSING_FACE}/matches", params={"threshold": 101}),
        api.post(f"{base}/faces/delete", json={"face_ids": []}),
        api.post(f"{base}/faces/delete", json={"face_ids": "not-a-list"}),
        api.post(f"{base}/users", json={"user_id": "has space"}),
        api.post(f"{base}/users", json={"user_id": "u", "client_request_token": "bad token"}),
        api.post(
            "/v1/collections", content=b"{not json", headers={"content-type": "application/json"}
        ),
        api.post("/v1/collections"),
        index(api, collection, _gray_png(), quality_filter="SUPERB"),
        index(api, collection, _gray_png(), external_image_id="has space"),
    ]
    for response in cases:
        assert_error(response, 400, "InvalidParameterException")


@BOTH_BACKENDS
def test_unknown_face_and_user_are_resource_not_found(api: httpx.Client, collection: str) -> None:
    base = f"/v1/collections/{collection}"
    for response in (
        api.get(f"{base}/faces/{MISSING_FACE}/matches"),
        api.post(f"{base}/users/nobody/faces", json={"face_ids": [MISSING_FACE]}),
        api.delete(f"{base}/users/nobody"),
        api.get(f"{base}/users/nobody/matches"),
    ):
        assert_error(response, 400, "ResourceNotFoundException")


@pytest.mark.parametrize("route", ["faces", "search", "users/search"])
def test_non_image_upload_is_invalid_image_format(
    api: httpx.Client, collection: str, route: str
) -> None:
    response = api.post(
        f"/v1/collections/{collection}/{route}",
        files={"image": ("notes.jpg", b"this is not a photo\n" * 20, "image/jpeg")},
    )
    assert_error(response, 400, "InvalidImageFormatException")


@BOTH_BACKENDS
def test_forged_next_token_is_invalid_pagination_token(api: httpx.Client, collection: str) -> None:
    for path in (
        "/v1/collections",
        f"/v1/collections/{collection}/faces",
        f"/v1/collections/{collection}/users",
    ):
        response = api.get(path, params={"next_token": "forged-token"})
        assert_error(response, 400, "InvalidPaginationTokenException")


def test_search_with_no_face_is_invalid_parameter(api: httpx.Client, collection: str) -> None:
    error = assert_error(search(api, collection, _gray_png()), 400, "InvalidParameterException")
    assert "no face" in error["message"]


@pytest.mark.parametrize("route", ["faces", "search", "users/search"])
@pytest.mark.parametrize(
    ("size", "fragment"),
    [(6_000_000, "request body"), (MAX_IMAGE_BYTES + 1, "'image' image")],
    ids=["over-the-body-cap", "just-over-5-MiB"],
)
def test_oversize_upload_is_image_too_large(
    api: httpx.Client, collection: str, route: str, size: int, fragment: str
) -> None:
    data = b"\xff\xd8\xff" + bytes(size - 3)
    response = api.post(
        f"/v1/collections/{collection}/{route}", files={"image": ("big.jpg", data, "image/jpeg")}
    )
    assert fragment in assert_error(response, 400, "ImageTooLargeException")["message"]


def test_chunked_oversize_upload_to_a_templated_path_is_refused(
    api: httpx.Client, collection: str
) -> None:
    boundary = "faceledger-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    body = head + b"\xff\xd8\xff" + bytes(6_000_000) + f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = api.post(
        f"/v1/collections/{collection}/faces",
        content=chunks(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "request body" in assert_error(response, 400, "ImageTooLargeException")["message"]


def test_wrong_method_is_a_json_error(api: httpx.Client) -> None:
    assert_error(api.put("/v1/collections"), 405, "MethodNotAllowed")


def test_collection_routes_need_a_key(live_server: str) -> None:
    response = httpx.get(f"{live_server}/v1/collections", timeout=10)
    assert_error(response, 401, "MissingAuthenticationTokenException")
    assert response.headers["www-authenticate"] == "Bearer"
