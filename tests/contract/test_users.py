"""Users end to end on real faces: lifecycle, associations, the face limit, search, tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceledger.domain.errors import (
    IdempotentParameterMismatchError,
    InvalidPaginationTokenError,
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    ServiceQuotaExceededError,
)
from faceledger.domain.faces import AnalysedImage
from faceledger.domain.results import AssociationOutcome, FaceFailure
from faceledger.inference.imaging import load_image
from faceledger.services import users as users_module
from faceledger.services.collections import CollectionService
from faceledger.services.faces import FaceService
from faceledger.services.users import UserService, centroid
from helpers import services
from helpers.data import lfw_people

MISSING_FACE = "00000000-0000-0000-0000-000000000000"


def _parts(outcome: AssociationOutcome) -> tuple[list[str], list[FaceFailure], str]:
    """(changed FaceIds, refused faces, UserStatus) as lists, for short assertions."""
    return list(outcome.faces), list(outcome.unsuccessful), outcome.user_status


@pytest.fixture(scope="module")
def face_service() -> Iterator[FaceService]:
    with services.face_service() as faces:
        yield faces


@pytest.fixture
def collections(
    tmp_path: Path, face_service: FaceService, database_url: str | None
) -> Iterator[CollectionService]:
    """A collection service on each store backend (SQLite, PostgreSQL)."""
    with services.collection_service(tmp_path, face_service, database_url) as service:
        yield service


@pytest.fixture
def users(collections: CollectionService) -> UserService:
    return UserService(collections)


@pytest.fixture(scope="module")
def people(data_dir: Path) -> dict[str, list[Path]]:
    """Three LFW people with at least four images each."""
    return lfw_people(data_dir, 4, 3)


def _enrol(collections: CollectionService, cid: str, path: Path, ext: str) -> str:
    result = collections.index_faces(cid, path, external_image_id=ext)
    assert len(result.face_records) == 1
    return result.face_records[0][0].face_id


def test_user_lifecycle_and_paging(users: UserService, collections: CollectionService) -> None:
    collections.create_collection("c")
    for i in range(5):
        users.create_user("c", f"user-{i}")
    with pytest.raises(ResourceAlreadyExistsError) as exists:
        users.create_user("c", "user-0")
    assert exists.value.code == "ConflictException"  # what CreateUser answers in Rekognition
    for bad in ("", "has space", "slash/no", "x" * 129):
        with pytest.raises(InvalidParameterError):
            users.create_user("c", bad)
    with pytest.raises(ResourceNotFoundError):
        users.create_user("nope", "user-0")
    assert collections.describe_collection("c").user_count == 5

    page1, token = users.list_users("c", max_results=2)
    assert [u.user_id for u in page1] == ["user-0", "user-1"] and token
    assert {u.status for u in page1} == {"CREATED"}  # no faces yet
    page2, token2 = users.list_users("c", max_results=2, next_token=token)
    page3, token3 = users.list_users("c", max_results=2, next_token=token2)
    assert [u.user_id for u in page2 + page3] == ["user-2", "user-3", "user-4"]
    assert token3 is None
    with pytest.raises(InvalidPaginationTokenError):
        users.list_users("c", next_token=token[:-2] + "xx")
    collections.create_collection("other")
    with pytest.raises(InvalidPaginationTokenError):
        users.list_users("other", next_token=token)  # a token of another collection's listing
    with pytest.raises(InvalidParameterError):
        users.list_users("c", max_results=501)

    users.delete_user("c", "user-3")
    assert [u.user_id for u in users.list_users("c")[0]] == [
        "user-0",
        "user-1",
        "user-2",
        "user-4",
    ]
    with pytest.raises(ResourceNotFoundError):
        users.delete_user("c", "user-3")
    with pytest.raises(ResourceNotFoundError):
        users.list_users("nope")


def test_client_request_token_makes_retries_idempotent(
    users: UserService, collections: CollectionService
) -> None:
    collections.create_collection("t")
    users.create_user("t", "alice", client_request_token="create-1")
    users.create_user("t", "alice", client_request_token="create-1")  # a retry: no error
    with pytest.raises(ResourceAlreadyExistsError):
        users.create_user("t", "alice", client_request_token="create-2")  # another request
    with pytest.raises(IdempotentParameterMismatchError):
        users.create_user("t", "bob", client_request_token="create-1")
    with pytest.raises(InvalidParameterError):
        users.create_user("t", "bob", client_request_token="bad token!")
    users.delete_user("t", "alice", client_request_token="delete-1")
    users.delete_user("t", "alice", client_request_token="delete-1")  # a retry: no error
    with pytest.raises(ResourceNotFoundError):
        users.delete_user("t", "alice", client_request_token="delete-2")
    assert users.list_users("t")[0] == []


def test_associate_search_disassociate_and_delete(
    users: UserService,
    collections: CollectionService,
    people: dict[str, list[Path]],
    data_dir: Path,
    tmp_path: Path,
) -> None:
    collections.create_collection("g")
    (a, b, c) = list(people)
    fa = [_enrol(collections, "g", people[a][i], f"{a}-{i}") for i in range(3)]
    fb = [_enrol(collections, "g", people[b][i], f"{b}-{i}") for i in range(2)]
    fc = _enrol(collections, "g", people[c][0], f"{c}-0")
    users.create_user("g", "a")
    users.create_user("g", "b")

    # two photos of the same person: both associated
    done, failed, status = _parts(users.associate_faces("g", "a", [fa[0], fa[1]]))
    assert done == [fa[0], fa[1]] and failed == [] and status == "ACTIVE"
    # a different person: refused with its Similarity to the user
    done, failed, status = _parts(users.associate_faces("g", "a", [fb[0]]))
    assert done == [] and status == "ACTIVE"
    assert failed[0].face_id == fb[0] and failed[0].reasons == ("LOW_MATCH_CONFIDENCE",)
    similarity = failed[0].similarity
    assert similarity is not None and 0 <= similarity < 75 and failed[0].user_id == "a"
    # ... unless the caller lowers the threshold
    assert list(users.associate_faces("g", "b", fb, user_match_threshold=75).faces) == fb
    # a face of another user, an unknown face, and a face already this user's (ignored)
    done, failed, _ = _parts(users.associate_faces("g", "b", [fa[0], MISSING_FACE, fb[0]]))
    assert done == []
    assert failed == [
        FaceFailure(fa[0], ("ASSOCIATED_TO_A_DIFFERENT_USER",), "a"),
        FaceFailure(MISSING_FACE, ("FACE_NOT_FOUND",)),
    ]
    with pytest.raises(ResourceNotFoundError):
        users.associate_faces("g", "nobody", [fa[2]])
    with pytest.raises(InvalidParameterError):
        users.associate_faces("g", "a", [])
    with pytest.raises(InvalidParameterError):
        users.associate_faces("g", "a", ["not-a-face-id"])
    listed, _ = collections.list_faces("g", user_id="a")
    assert [f.face_id for f in listed] == fa[:2]
    assert {u.user_id: u.status for u in users.list_users("g")[0]} == {
        "a": "ACTIVE",
        "b": "ACTIVE",
    }

    # SearchUsers by FaceId (unassociated face of a), by UserId, by image
    by_face = users.search_users("g", face_id=fa[2])
    assert [m.user.user_id for m in by_face.matches] == ["a"]
    assert by_face.matches[0].similarity >= 80 and by_face.searched_face_id == fa[2]
    by_user = users.search_users("g", user_id="a", user_match_threshold=0)
    assert [m.user.user_id for m in by_user.matches] == ["b"]  # never the user itself
    assert by_user.searched_user_id == "a"
    assert users.search_users("g", user_id="a").matches == ()
    by_image = users.search_users_by_image("g", people[a][3], user_match_threshold=0)
    assert [m.user.user_id for m in by_image.matches] == ["a", "b"]
    sims = [m.similarity for m in by_image.matches]
    assert sims == sorted(sims, reverse=True) and sims[0] >= 80
    assert by_image.searched_face is not None and by_image.unsearched == ()
    # the user's score is its centroid's calibrated Similarity
    engine = collections.faces.engine
    probe = engine.analyse(load_image(people[a][3]), max_faces=1).embeddings
    assert probe is not None
    vectors = collections.store.user_embeddings("g", ["a"])["a"]
    expected = float(engine.calibration.similarity(centroid(vectors) @ probe[0]))
    assert by_image.matches[0].similarity == pytest.approx(expected, abs=1e-3)
    assert users.search_users_by_image("g", people[c][1]).matches == ()
    with pytest.raises(InvalidParameterError):
        users.search_users("g")
    with pytest.raises(InvalidParameterError):
        users.search_users("g", user_id="a", face_id=fa[2])
    with pytest.raises(ResourceNotFoundError):
        users.search_users("g", user_id="nobody")

    # no face → empty list, not an error; other faces are reported as not searched
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 127, np.uint8))
    empty = users.search_users_by_image("g", blank)
    assert empty.matches == () and empty.searched_face is None and empty.unsearched == ()
    couple = users.search_users_by_image("g", data_dir / "photos" / "couple.jpg")
    assert couple.searched_face is not None
    assert [u.reasons for u in couple.unsearched] == [("FACE_NOT_LARGEST",)]

    # DeleteFaces refuses a face that belongs to a user
    deleted, refused = collections.delete_faces("g", [fa[0], fc])
    assert deleted == [fc]
    assert refused == [FaceFailure(fa[0], ("ASSOCIATED_TO_AN_EXISTING_USER",), "a")]

    # DisassociateFaces
    done, failed, status = _parts(users.disassociate_faces("g", "a", [fa[1], fb[0], MISSING_FACE]))
    assert done == [fa[1]] and status == "ACTIVE"
    assert failed == [
        FaceFailure(fb[0], ("ASSOCIATED_TO_A_DIFFERENT_USER",), "b"),
        FaceFailure(MISSING_FACE, ("FACE_NOT_FOUND",)),
    ]
    assert _parts(users.disassociate_faces("g", "a", [fa[1]])) == ([], [], "ACTIVE")  # ignored
    assert users.disassociate_faces("g", "a", [fa[0]]).user_status == "CREATED"

    # DeleteUser keeps the faces, disassociated
    before = collections.describe_collection("g").face_count
    users.delete_user("g", "b")
    assert collections.describe_collection("g").face_count == before
    assert collections.describe_collection("g").user_count == 1
    assert collections.list_faces("g", user_id="b")[0] == []
    assert collections.delete_faces("g", [fb[0]]) == ([fb[0]], [])


def test_first_faces_of_a_user_are_checked_against_each_other(
    users: UserService, collections: CollectionService, people: dict[str, list[Path]]
) -> None:
    collections.create_collection("s")
    (a, b, _) = list(people)
    other = _enrol(collections, "s", people[b][0], "b0")
    mine = [_enrol(collections, "s", people[a][i], f"a{i}") for i in range(3)]
    users.create_user("s", "a")
    # the odd face comes first, yet the three faces of one person win
    done, failed, status = _parts(users.associate_faces("s", "a", [other, *mine]))
    assert done == mine and status == "ACTIVE"
    assert [f.face_id for f in failed] == [other]
    assert failed[0].reasons == ("LOW_MATCH_CONFIDENCE",)


def test_a_user_holds_at_most_100_faces(
    users: UserService, collections: CollectionService, people: dict[str, list[Path]]
) -> None:
    collections.create_collection("m")
    engine = collections.faces.engine
    image = load_image(next(iter(people.values()))[0])
    analysed = AnalysedImage.of(image, engine.analyse(image))
    # one photo enrolled under 102 ExternalImageIds: 102 faces of one person, analysed once
    faces = [
        collections.enrol("m", analysed, external_image_id=f"copy-{i}").face_records[0][0].face_id
        for i in range(102)
    ]
    users.create_user("m", "u")
    done, failed, status = _parts(users.associate_faces("m", "u", faces[:100]))
    assert len(done) == 100 and failed == [] and status == "ACTIVE"
    with pytest.raises(ServiceQuotaExceededError, match="already has 100") as quota:
        users.associate_faces("m", "u", [faces[100]])
    assert quota.value.code == "ServiceQuotaExceededException"
    # a call that would overflow is refused whole
    users.disassociate_faces("m", "u", faces[:2])
    with pytest.raises(ServiceQuotaExceededError, match="has 98 and this call would add 3"):
        users.associate_faces("m", "u", [*faces[99:102], faces[0]])
    assert len(collections.list_faces("m", user_id="u")[0]) == 98
    # the limit is a module constant (Rekognition's quota)
    assert users_module.MAX_FACES_PER_USER == 100


def test_associate_with_a_token_replays_its_first_response(
    users: UserService, collections: CollectionService, people: dict[str, list[Path]]
) -> None:
    collections.create_collection("r")
    (a, _, _) = list(people)
    faces = [_enrol(collections, "r", people[a][i], f"a{i}") for i in range(2)]
    users.create_user("r", "a")
    first = users.associate_faces("r", "a", faces, client_request_token="assoc-1")
    assert list(first.faces) == faces
    again = users.associate_faces("r", "a", faces, client_request_token="assoc-1")
    assert again == first  # the same response, not "nothing new associated"
    assert users.associate_faces("r", "a", faces).faces == ()  # a new request: ignored faces
    with pytest.raises(IdempotentParameterMismatchError):
        users.associate_faces("r", "a", faces[:1], client_request_token="assoc-1")
    gone = users.disassociate_faces("r", "a", faces, client_request_token="dis-1")
    assert users.disassociate_faces("r", "a", faces, client_request_token="dis-1") == gone
    assert list(gone.faces) == faces and gone.user_status == "CREATED"
