"""The web app's parts without a browser: sessions, the chosen-face crop, wording, the streams
hook, revoked keys and error pages (the app in process, through Starlette's test client)."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from faceledger.api.app import create_app
from faceledger.api.web.manage import external_id
from faceledger.api.web.probe import MIN_CROP_SIDE_PX, Box, crop_around
from faceledger.api.web.sessions import LOGIN_CSRF_COOKIE, LoginCsrf, SessionStore, same_token
from faceledger.api.web.views import false_match_text
from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.collections import BoundingBox
from faceledger.domain.faces import Image
from faceledger.domain.principals import Principal
from faceledger.inference.calibration import Calibration
from faceledger.services.keys import KeyService


# -- sessions --------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_when_idle_and_at_their_maximum_age() -> None:
    clock = Clock()
    store = SessionStore(idle_seconds=60, max_age_seconds=300, clock=clock)
    alice = Principal("alice", ("search",), "FLAKALICE")
    session = store.create(alice)
    assert store.create(alice).session_id != session.session_id  # a new id each sign-in
    clock.now += 59
    assert store.get(session.session_id) is session  # the request restarts the idle clock
    clock.now += 59
    assert store.get(session.session_id) is session
    clock.now += 61
    assert store.get(session.session_id) is None  # idle too long
    assert store.get(session.session_id) is None

    busy = store.create(alice)
    for _ in range(6):
        clock.now += 55
        store.get(busy.session_id)
    assert store.get(busy.session_id) is None  # past the maximum age, however busy
    assert store.get(None) is None and store.get("") is None


def test_revoking_a_key_drops_its_sessions_and_tokens_compare_strictly() -> None:
    store = SessionStore()
    kept = store.create(Principal("bob", ("audit",), "FLAKBOB"))
    dropped = store.create(Principal("eve", ("search",), "FLAKEVE"))
    store.drop_key("FLAKEVE")
    assert store.get(dropped.session_id) is None
    assert store.get(kept.session_id) is kept
    assert same_token(kept.csrf_token, kept.csrf_token)
    assert not same_token(kept.csrf_token, dropped.csrf_token)
    assert not same_token("", "") and not same_token(None, kept.csrf_token)


# -- the chosen face's crop ------------------------------------------------------------------
def test_the_crop_keeps_the_chosen_face_greys_the_others_and_maps_back() -> None:
    pixels = np.full((400, 600, 3), 200, np.uint8)
    pixels[100:160, 100:150] = 10  # face 0 (largest)
    pixels[110:150, 300:340] = 60  # face 1, the chosen one
    pixels[110:150, 350:390] = 90  # face 2, its close neighbour
    image = Image(pixels, "jpeg", "ab" * 32, 1234)
    boxes = [Box(100, 100, 50, 60), Box(300, 110, 40, 40), Box(350, 110, 40, 40)]
    crop = crop_around(image, boxes, 1)
    assert crop.image.sha256 == image.sha256  # the ledger records the submitted photo
    assert min(crop.image.width_px, crop.image.height_px) >= MIN_CROP_SIDE_PX  # enlarged
    assert crop.scale > 1
    # The chosen face's box, measured on the crop, maps back onto the photo.
    w, h = crop.image.width_px, crop.image.height_px
    face_in_crop = BoundingBox(
        (300 - crop.left_px) * crop.scale / w,
        (110 - crop.top_px) * crop.scale / h,
        40 * crop.scale / w,
        40 * crop.scale / h,
    )
    back = crop.to_photo(face_in_crop)
    assert (round(back.left), round(back.top), round(back.width)) == (300, 110, 40)

    # Pixels of the chosen face stay; the neighbour inside the crop turns grey.
    def at(x: int, y: int) -> int:
        row, col = int((y - crop.top_px) * crop.scale), int((x - crop.left_px) * crop.scale)
        return int(crop.image.pixels_bgr[row, col, 0])

    assert at(320, 130) == 60
    assert at(356, 130) == 128
    assert at(290, 95) == 200  # background around the face is kept


def test_file_names_become_valid_external_image_ids() -> None:
    assert external_id("Jane Doe (2).jpg") == "Jane_Doe__2_.jpg"
    assert external_id("C:\\photos\\bob.png") == "bob.png"
    assert external_id("") == "upload"


def test_similarity_is_described_by_the_published_false_match_rate() -> None:
    published = ({"similarity": 50.0, "fmr": 1e-3}, {"similarity": 80.0, "fmr": 1e-5})
    calibration = Calibration(np.array([-1.0, 1.0]), np.array([0.0, 100.0]), published)
    assert false_match_text(calibration, 85.0) == (
        "Similarity ≥ 80: false-match rate 1.0e-05 (about 1 in 100,000 pairs of different people)"
    )
    assert "more than 1 in 1,000" in false_match_text(calibration, 40.0)
    uncalibrated = Calibration(np.array([-1.0, 1.0]), np.array([0.0, 100.0]), (), False)
    assert "no calibration" in false_match_text(uncalibrated, 90.0)


# -- the app in process: streams hook, revoked keys, error pages ---------------------------
class FakeStreams:
    """A stand-in for the video service's hook (``streams.Streams``)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def list(self, caller: Caller) -> list[Mapping[str, Any]]:
        return [{"name": "door-1", "status": "STOPPED", "collection_id": "field"}]

    def start(self, caller: Caller, name: str) -> None:
        self.calls.append(("start", name, caller.source))

    def stop(self, caller: Caller, name: str) -> None:
        self.calls.append(("stop", name, caller.source))

    async def events(self, caller: Caller, name: str) -> AsyncIterator[Mapping[str, Any]]:
        yield {"external_image_id": "jane", "similarity": 97.25, "time": "12:00:01"}


@dataclass
class InProcess:
    client: TestClient
    settings: Settings
    officer: dict[str, str]  # search role
    clerk: dict[str, str]  # admin and enrol roles


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[InProcess]:
    settings = Settings(data_dir=tmp_path)
    keys = KeyService(settings)
    try:
        key, secret = keys.create("officer", ["search"])
        admin, admin_secret = keys.create("clerk", ["admin", "enrol"])
    finally:
        keys.close()
    with TestClient(create_app(settings)) as client:
        yield InProcess(
            client,
            settings,
            {"key_id": key.key_id, "secret": secret},
            {"key_id": admin.key_id, "secret": admin_secret},
        )


def _token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def _sign_in(client: TestClient, credentials: dict[str, str], first: str = "/app/search") -> None:
    form = client.get("/app/login")
    done = client.post(
        "/app/login", data={**credentials, "csrf_token": _token(form.text)}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == first


def test_the_streams_page_uses_the_hook_when_one_is_wired(
    app_client: InProcess,
) -> None:
    client = app_client.client
    _sign_in(client, app_client.officer)
    assert "No stream processors yet." in client.get("/app/streams").text  # the gateway's
    fake = FakeStreams()
    client.app.state.gateway.streams = fake  # type: ignore[attr-defined]
    page = client.get("/app/streams")
    assert "door-1" in page.text and "STOPPED" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    unstated = client.post("/app/streams/door-1/start", data={"csrf_token": token.group(1)})
    assert unstated.status_code == 400  # starting is searching: purpose and case first
    assert "State the purpose of running door-1." in unstated.text
    assert fake.calls == []
    started = client.post(
        "/app/streams/door-1/start",
        data={"csrf_token": token.group(1), "purpose": "missing child", "case_reference": "MC-1"},
    )
    assert "Stream processor door-1 started." in started.text
    assert fake.calls == [("start", "door-1", "web")]
    refused = client.get("/app/streams/door-1/events")  # watching is a search
    assert refused.status_code == 400 and "purpose" in refused.text
    watch = {"purpose": "missing person", "case_reference": "MP-1"}
    with client.stream("GET", "/app/streams/door-1/events", params=watch) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        body = "".join(events.iter_text())
    assert 'event: match\ndata: {"external_image_id": "jane", "similarity": 97.25' in body


def test_a_revoked_key_ends_the_session_and_errors_stay_in_their_format(
    app_client: InProcess,
) -> None:
    client, credentials = app_client.client, app_client.officer
    _sign_in(client, credentials)
    assert client.get("/app/search").status_code == 200
    missing = client.get("/app/no-such-page")
    assert missing.status_code == 404 and "There is no such page." in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in missing.headers["content-security-policy"]
    api = client.get("/v1/collections")  # the API's errors stay JSON
    assert api.status_code == 401 and api.json()["error"]["code"]

    keys = KeyService(app_client.settings)
    try:
        keys.revoke(credentials["key_id"])
    finally:
        keys.close()
    gone = client.get("/app/search", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/app/login?m=revoked"
    assert "no longer valid" in client.get(gone.headers["location"]).text


def test_enrolment_without_javascript_lists_a_result_per_file(
    app_client: InProcess,
) -> None:
    client = app_client.client
    _sign_in(client, app_client.clerk, first="/app/collections")
    page = client.post(
        "/app/collections",
        data={"collection_id": "plain", "csrf_token": _token(client.get("/app/collections").text)},
    )
    assert "Collection created." in page.text
    blank = io.BytesIO()
    PILImage.new("RGB", (200, 160), (40, 90, 160)).save(blank, format="PNG")
    done = client.post(
        "/app/collections/plain/enrol",
        data={"csrf_token": _token(page.text), "quality_filter": "AUTO"},
        files=[
            ("images", ("sky.png", blank.getvalue(), "image/png")),
            ("images", ("notes.txt", b"not a photo", "text/plain")),
        ],
    )
    assert done.status_code == 200
    results = re.findall(r'<li class="enrol-result[^>]*>(.*?)</li>', done.text, re.S)
    assert len(results) == 2
    assert "sky.png" in results[0] and "no face found" in results[0]
    assert "notes.txt" in results[1] and "not a usable image" in results[1]


def test_login_csrf_tokens_are_signed_by_the_server() -> None:
    now = [1_000_000.0]
    signer = LoginCsrf(b"k" * 32, max_age_seconds=3600, clock=lambda: now[0])
    token = signer.issue()
    assert signer.valid(token, token)
    assert not signer.valid(token, signer.issue())  # the cookie must match the field
    made_up = "attacker.1000000.0123456789abcdef"
    assert not signer.valid(made_up, made_up)  # a matching pair the server did not sign
    assert not LoginCsrf(b"x" * 32, clock=lambda: now[0]).valid(token, token)  # another server
    now[0] += 3601
    assert not signer.valid(token, token)  # too old


def test_sign_in_refuses_an_attacker_chosen_csrf_pair(app_client: InProcess) -> None:
    client = app_client.client
    client.cookies.set(LOGIN_CSRF_COOKIE, "chosen-by-attacker", path="/app")
    forged = client.post(
        "/app/login",
        data={**app_client.officer, "csrf_token": "chosen-by-attacker"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    client.cookies.clear()
    _sign_in(client, app_client.officer)  # the server's own token still works
