"""The field web app (``/app``) end to end: a real server, Debian's Chromium through Playwright.

Each test drives one flow as a person would and asserts on what the page shows. Screenshots
of every page go to ``tests/artifacts/`` (not committed). Tests that need real faces use the
LFW development split and the ``photos/`` of ``../shared/data`` and skip without them.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

from faceledger.config import Settings
from faceledger.services.keys import KeyService
from helpers.data import lfw_people
from helpers.live import start_live_server

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

from helpers.browser import chromium  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
NOTICE = "A match is a lead for human review, not an identification."
# Waiting for a page (model work on a busy 2-core machine), never a speed assertion.
expect.set_options(timeout=60_000)

KEYS = {
    "admin": ("desk-admin", ["admin", "enrol", "search"]),
    "search": ("field-officer", ["search"]),
    "audit": ("auditor", ["audit"]),
}


@dataclass
class Web:
    url: str
    keys: dict[str, tuple[str, str]]
    api: httpx.Client  # the native API as the admin (set-up through the gateway)
    videos: Path  # the server's FACELEDGER_VIDEO_DIRS


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    videos = tmp_path_factory.mktemp("web-videos")
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("web-data"),
        default_threshold_floor=80,
        video_dirs=[videos],
    )
    service = KeyService(settings)
    try:
        keys = {}
        for name, (principal, roles) in KEYS.items():
            key, secret = service.create(principal, roles)
            keys[name] = (key.key_id, secret)
    finally:
        service.close()
    with start_live_server(settings) as url:
        key_id, secret = keys["admin"]
        headers = {"Authorization": f"Bearer {key_id}:{secret}"}
        # No kept-alive connections: uvicorn closes idle ones after 5 s, and a request sent on
        # one it is closing at that moment fails with "Server disconnected".
        no_keepalive = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=url, headers=headers, timeout=120, limits=no_keepalive) as api:
            yield Web(url, keys, api, videos)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    yield context.new_page()
    context.close()


# -- helpers ---------------------------------------------------------------------------------
def shot(page: Page, name: str, *, blurred: bool = False) -> None:
    """Save the page as ``tests/artifacts/web-<name>.png``; with ``blurred``, also a copy
    whose photos are blurred beyond recognition (``web-<name>-blurred.png``), fit for the
    docs: the test photos themselves must not be copied into the project."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"web-{name}.png"), full_page=True)
    if blurred:
        page.evaluate(
            "() => document.querySelectorAll('svg.photo image, #events img')"
            ".forEach(i => { i.style.filter = 'blur(48px)'; })"
        )
        page.screenshot(path=str(ARTIFACTS / f"web-{name}-blurred.png"), full_page=True)
        page.evaluate(
            "() => document.querySelectorAll('svg.photo image, #events img')"
            ".forEach(i => { i.style.filter = ''; })"
        )


def sign_in(page: Page, web: Web, who: str) -> None:
    key_id, secret = web.keys[who]
    page.goto(f"{web.url}/app/login")
    page.get_by_label("Access key id").fill(key_id)
    page.get_by_label("Secret access key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def nav_titles(page: Page) -> list[str]:
    return [t.strip() for t in page.get_by_role("navigation").get_by_role("link").all_inner_texts()]


def assert_inputs_labelled(page: Page) -> None:
    """Every visible form control has a label (or an aria-label)."""
    unlabelled = page.evaluate(
        """() => Array.from(document.querySelectorAll('input, select, textarea'))
            .filter(el => el.type !== 'hidden' && el.type !== 'submit')
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => el.id || el.name)"""
    )
    assert unlabelled == []


def assert_focus_visible(page: Page) -> None:
    """Keyboard focus shows an outline."""
    page.keyboard.press("Tab")
    style = page.evaluate(
        """() => { const s = getComputedStyle(document.activeElement);
                   return [s.outlineStyle, s.outlineWidth]; }"""
    )
    assert style[0] != "none" and style[1] not in ("0px", ""), style


def enrol(web: Web, collection: str, photo: bytes, external_id: str) -> None:
    """Enrol through the native API (the same gateway) as the admin."""
    response = web.api.post(
        f"/v1/collections/{collection}/faces",
        files={"image": ("photo.jpg", photo, "image/jpeg")},
        data={"external_image_id": external_id, "quality_filter": "NONE"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["faces"], response.text


def create_collection(web: Web, collection: str) -> None:
    response = web.api.post("/v1/collections", json={"collection_id": collection})
    assert response.status_code in (201, 400), response.text  # 400: exists (module reuse)


def no_face_png() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (320, 240), (90, 140, 200)).save(out, format="PNG")
    return out.getvalue()


def search(page: Page, collection: str, photo: Path | dict[str, object], face: int = 0) -> None:
    """Fill the search form (the script shows the faces) and submit it."""
    page.get_by_label("Collection").select_option(collection)
    page.get_by_label("Or choose a photo file").set_input_files(photo)  # type: ignore[arg-type]
    expect(page.locator("#probe-status")).to_contain_text(re.compile(r"found|usable|not"))
    if face:
        page.get_by_label(re.compile(rf"^Face {face + 1},")).check()
    page.get_by_label("Purpose of the search").fill("missing person report")
    page.get_by_label("Case reference").fill("MP-2026-0042")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#results-title, .problem").first).to_be_visible()


# -- sign-in and roles -----------------------------------------------------------------------
def test_sign_in_refuses_a_bad_key_then_admits_a_good_one(web: Web, page: Page) -> None:
    page.goto(f"{web.url}/app")
    expect(page).to_have_url(re.compile(r"/app/login"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert_inputs_labelled(page)
    assert_focus_visible(page)
    shot(page, "login")

    key_id, secret = web.keys["search"]
    page.get_by_label("Access key id").fill(key_id)
    page.get_by_label("Secret access key").fill("not-the-secret")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("were not accepted")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)

    page.get_by_label("Access key id").fill(f"{key_id}:{secret}")  # one pasted field works too
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/app/search$"))
    expect(page.get_by_text("field-officer")).to_be_visible()

    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["faceledger_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert secret not in json.dumps(page.context.storage_state())
    assert secret not in page.url and secret not in page.content()
    assert page.evaluate("() => document.cookie") == ""  # nothing readable by scripts

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You are signed out")
    page.goto(f"{web.url}/app/search")
    expect(page).to_have_url(re.compile(r"/app/login"))


def test_forms_without_the_session_token_are_refused(web: Web, page: Page) -> None:
    sign_in(page, web, "admin")
    response = page.request.post(
        f"{web.url}/app/collections", form={"collection_id": "forged", "csrf_token": "wrong"}
    )
    assert response.status == 403
    assert "This form has expired" in response.text()
    assert web.api.get("/v1/collections/forged").status_code == 400  # not created


def test_navigation_and_routes_follow_the_roles(web: Web, page: Page) -> None:
    sign_in(page, web, "search")
    assert nav_titles(page) == ["Search", "Compare", "Streams"]
    for path, title in (("/app/collections", "Collections"), ("/app/ledger", "Ledger")):
        response = page.goto(f"{web.url}{path}")
        assert response is not None and response.status == 403
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        expect(page.get_by_role("alert")).to_contain_text(f"may not use {title}")
    shot(page, "refused")
    page.goto(f"{web.url}/app/streams")
    expect(page.get_by_role("heading", name="Live matches")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, web, "audit")
    expect(page).to_have_url(re.compile(r"/app/ledger"))
    assert nav_titles(page) == ["Ledger", "Review"]  # auditors read leads, never decide
    response = page.goto(f"{web.url}/app/search")
    assert response is not None and response.status == 403


# -- search ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def field(web: Web, data_dir: Path) -> dict[str, list[Path]]:
    """Collection "field": the first photo of two LFW people; a third person is not enrolled."""
    people = lfw_people(data_dir, min_images=2, count=3)
    create_collection(web, "field")
    for name, photos in list(people.items())[:2]:
        enrol(web, "field", photos[0].read_bytes(), name)
    return people


def test_search_shows_the_enrolled_person_and_says_when_nobody_matches(
    web: Web, page: Page, field: dict[str, list[Path]]
) -> None:
    enrolled, _, stranger = list(field)
    sign_in(page, web, "search")
    assert_inputs_labelled(page)
    search(page, "field", field[enrolled][1])
    cards = page.locator("#candidates .card")
    expect(cards.first).to_be_visible()
    expect(cards.first.locator(".external-id")).to_have_text(enrolled)
    similarity = float(cards.first.locator(".similarity").inner_text())
    assert 80 <= similarity <= 100
    expect(cards.first.locator(".fmr")).to_contain_text("false-match rate")
    expect(cards.first.locator(".fpir")).to_contain_text(
        "searches for someone not in this collection returns a candidate"
    )
    expect(page.locator("#search-scale")).to_contain_text("faces searched")
    expect(page.get_by_role("note")).to_have_text(NOTICE)
    expect(page.locator("#searched-face")).to_contain_text("Searched face 1 of 1")
    shot(page, "search-results")

    search(page, "field", field[stranger][1])
    expect(page.locator("#no-match")).to_contain_text("effective threshold of 80")
    expect(page.locator("#candidates")).to_have_count(0)
    shot(page, "search-no-match")


def test_search_on_a_phone_sized_screen(
    web: Web, browser: Browser, field: dict[str, list[Path]]
) -> None:
    context = browser.new_context(
        viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True
    )
    try:
        page = context.new_page()
        sign_in(page, web, "search")
        camera = page.get_by_label("Take a photo")
        assert camera.get_attribute("capture") == "environment"
        enrolled = next(iter(field))
        search(page, "field", field[enrolled][1])
        expect(page.locator("#candidates .external-id").first).to_have_text(enrolled)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 375, f"the page is {width} px wide on a 375 px screen"
        shot(page, "search-phone", blurred=True)
    finally:
        context.close()


def test_search_with_a_chosen_face_of_a_group_photo(web: Web, page: Page, data_dir: Path) -> None:
    couple = data_dir / "photos" / "couple.jpg"
    faces = web.api.post("/v1/detect", files={"image": couple.read_bytes()}).json()["faces"]
    assert len(faces) >= 2
    # Enrol the second face alone (a crop of the photo), under its own id.
    box = faces[1]["bbox_px"]
    photo = ImageOps.exif_transpose(PILImage.open(couple)).convert("RGB")
    grow = 0.5 * max(box["width"], box["height"])
    crop = photo.crop(
        (
            max(0, box["left"] - grow),
            max(0, box["top"] - grow),
            min(photo.width, box["left"] + box["width"] + grow),
            min(photo.height, box["top"] + box["height"] + grow),
        )
    )
    out = io.BytesIO()
    crop.save(out, format="JPEG", quality=92)
    create_collection(web, "group")
    enrol(web, "group", out.getvalue(), "couple-face-2")

    sign_in(page, web, "search")
    page.get_by_label("Or choose a photo file").set_input_files(couple)
    expect(page.locator("#probe-status")).to_contain_text(f"{len(faces)} faces found")
    expect(page.locator("#probe-photo g.face")).to_have_count(len(faces))
    shot(page, "search-choose-face")
    search(page, "group", couple, face=1)
    expect(page.locator("#searched-face")).to_contain_text(f"Searched face 2 of {len(faces)}")
    expect(page.locator("#candidates .external-id").first).to_have_text("couple-face-2")
    shot(page, "search-chosen-face", blurred=True)

    search(page, "group", couple, face=0)  # the other person: not enrolled
    expect(page.locator("#searched-face")).to_contain_text(f"Searched face 1 of {len(faces)}")
    expect(page.locator("#no-match")).to_be_visible()


def test_compare_two_photos_side_by_side(
    web: Web, page: Page, field: dict[str, list[Path]]
) -> None:
    person = next(iter(field))
    sign_in(page, web, "search")
    page.get_by_role("link", name="Compare").click()
    assert_inputs_labelled(page)
    page.get_by_label("First photo").set_input_files(field[person][0])
    page.get_by_label("Second photo").set_input_files(field[person][1])
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.locator("#compare-results")).to_be_visible()
    expect(page.locator("figure svg.photo")).to_have_count(2)
    similarity = float(page.locator("#compare-results .similarity").first.inner_text())
    assert similarity >= 80
    expect(page.get_by_role("note")).to_have_text(NOTICE)
    shot(page, "compare", blurred=True)


def test_an_unusable_upload_is_a_readable_message(web: Web, page: Page) -> None:
    create_collection(web, "field-errors")
    sign_in(page, web, "search")
    text_file = {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo at all"}
    page.get_by_label("Or choose a photo file").set_input_files(text_file)  # type: ignore[arg-type]
    expect(page.locator("#probe-status")).to_contain_text("That file is not a usable image")
    search(page, "field-errors", text_file)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("That file is not a usable image")
    expect(alert).to_contain_text("InvalidImageFormatException")
    assert '{"error"' not in page.content()
    shot(page, "search-error")

    # Required fields are said in words, not refused by a JSON validator.
    page.goto(f"{web.url}/app/search")
    page.evaluate("() => document.getElementById('search-form').noValidate = true")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("State the purpose of this search.")
    expect(page.get_by_role("alert")).to_contain_text("Give the case reference.")


# -- collections -----------------------------------------------------------------------------
def test_collections_create_enrol_list_delete_and_policy(
    web: Web, page: Page, data_dir: Path
) -> None:
    people = lfw_people(data_dir, min_images=1, count=6)
    photos = [next(iter(p)) for p in list(people.values())[3:5]]
    sign_in(page, web, "admin")
    page.get_by_role("link", name="Collections").click()
    assert_inputs_labelled(page)
    page.get_by_label("New collection id").fill("desk")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", name="Collection desk")).to_be_visible()
    expect(page.locator("#face-count")).to_have_text("0")
    assert_inputs_labelled(page)

    files = [
        *({"name": p.name, "mimeType": "image/jpeg", "buffer": p.read_bytes()} for p in photos),
        {"name": "landscape.png", "mimeType": "image/png", "buffer": no_face_png()},
        {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"plain text"},
    ]
    page.get_by_label(re.compile("Photos to enrol")).set_input_files(files)  # type: ignore[arg-type]
    page.get_by_role("button", name="Enrol", exact=True).click()
    expect(page.locator("#enrol-status")).to_contain_text("Done: 4 files sent")
    results = page.locator("#enrol-results > li")
    expect(results).to_have_count(4)
    assert page.locator("#enrol-progress").evaluate("p => p.value") == 1
    for index, photo in enumerate(photos):
        expect(results.nth(index)).to_contain_text(f"{photo.name}")
        expect(results.nth(index)).to_contain_text("1 face enrolled")
    expect(results.nth(2)).to_contain_text("no face found")
    expect(results.nth(3)).to_contain_text("That file is not a usable image")
    shot(page, "collection-enrol")

    # Dropped files take the same path: the first photo again is a duplicate, nothing added.
    dropped = [{"name": photos[0].name, "b64": base64.b64encode(photos[0].read_bytes()).decode()}]
    page.evaluate(
        """(files) => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, { type: "image/jpeg" }));
            }
            const drop = new DragEvent("drop", { dataTransfer: dt, bubbles: true });
            document.getElementById("dropzone").dispatchEvent(drop);
        }""",
        dropped,
    )
    expect(page.locator("#enrol-status")).to_contain_text("Done: 1 file sent")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("already enrolled (1 face); nothing added")

    page.goto(f"{web.url}/app/collections/desk?size=1")  # faces a page at a time
    expect(page.locator("#face-count")).to_have_text("2")
    first = page.locator("#faces .face-id").inner_text()
    page.get_by_role("link", name="Next page").click()
    expect(page.locator("#faces tbody tr")).to_have_count(1)
    assert page.locator("#faces .face-id").inner_text() != first
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    page.get_by_role("link", name="First page").click()
    expect(page.locator("#faces .face-id")).to_have_text(first)

    assert web.api.post("/v1/collections/desk/users", json={"user_id": "jane"}).status_code == 201
    page.goto(f"{web.url}/app/collections/desk")
    page.get_by_role("button", name="Delete user jane").click()
    expect(page.get_by_role("status").first).to_contain_text("Deleted user jane")
    expect(page.get_by_role("button", name="Delete user jane")).to_have_count(0)

    rows = page.locator("#faces tbody tr")
    expect(rows).to_have_count(2)
    rows.first.get_by_role("checkbox").check()
    page.get_by_role("button", name="Delete the ticked faces").click()
    expect(page.get_by_role("status").first).to_contain_text("Deleted 1 face.")
    expect(page.locator("#face-count")).to_have_text("1")
    expect(page.locator("#faces tbody tr")).to_have_count(1)

    page.get_by_label(re.compile("Searches must state a purpose")).check()
    page.get_by_label(re.compile("Threshold floor")).fill("92.5")
    page.get_by_label(re.compile("Retention in days")).fill("30")
    page.get_by_label(re.compile("Keep an encrypted crop")).check()
    page.get_by_role("button", name="Save policy").click()
    expect(page).to_have_url(re.compile(r"/app/collections/desk\?done=policy$"))
    expect(page.get_by_role("status").first).to_have_text("Policy saved.")
    policy = web.api.get("/v1/collections/desk/policy").json()
    assert policy == {
        "collection_id": "desk",
        "require_purpose": True,
        "threshold_floor": 92.5,
        "retention_days": 30,
        "keep_face_crops": True,
    }
    page.reload()  # the save redirected to the collection's page: a reload repeats nothing
    expect(page.get_by_label(re.compile("Threshold floor"))).to_have_value("92.5")
    page.evaluate("() => document.getElementById('policy-form').noValidate = true")
    page.get_by_label(re.compile("Threshold floor")).fill("120")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("alert")).to_contain_text("The threshold floor must be from 0 to 100")
    shot(page, "collection")
    # an empty floor unpins it: the floor follows the collection's size again
    page.get_by_label(re.compile("Threshold floor")).fill("")
    page.get_by_role("button", name="Save policy").click()
    expect(page).to_have_url(re.compile(r"/app/collections/desk\?done=policy$"))
    assert web.api.get("/v1/collections/desk/policy").json()["threshold_floor"] is None
    expect(page.get_by_label(re.compile("Threshold floor"))).to_have_value("")


# -- ledger ----------------------------------------------------------------------------------
def test_bulk_enrolment_enrols_the_subject_unless_every_face_is_asked_for(
    web: Web, page: Page, data_dir: Path
) -> None:
    couple = (data_dir / "photos" / "couple.jpg").read_bytes()
    create_collection(web, "subjects")
    sign_in(page, web, "admin")
    page.goto(f"{web.url}/app/collections/subjects")
    results = page.locator("#enrol-results > li")

    def drop(name: str) -> None:
        page.evaluate(
            """(f) => {
                const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], f.name, { type: "image/jpeg" }));
                const drop = new DragEvent("drop", { dataTransfer: dt, bubbles: true });
                document.getElementById("dropzone").dispatchEvent(drop);
            }""",
            {"name": name, "b64": base64.b64encode(couple).decode()},
        )
        expect(page.locator("#enrol-status")).to_contain_text("Done: 1 file sent")

    drop("couple.jpg")
    expect(results.first).to_contain_text("1 face enrolled")
    expect(results.first).to_contain_text("Face 2 not enrolled: not the photo's subject")
    expect(results.first).to_contain_text("NOT_THE_SUBJECT")
    page.get_by_label(re.compile("Enrol every face of each photo")).check()
    drop("couple-all.jpg")
    expect(results.first).to_contain_text("2 faces enrolled")
    faces = web.api.get("/v1/collections/subjects/faces").json()["faces"]
    assert sorted(f["external_image_id"] for f in faces) == [
        "couple-all.jpg",
        "couple-all.jpg",
        "couple.jpg",
    ]


def test_ledger_filters_chain_status_and_export(web: Web, browser: Browser, page: Page) -> None:
    officer = browser.new_context()
    try:  # a web call by the field officer, to find in the ledger
        officer_page = officer.new_page()
        sign_in(officer_page, web, "search")
    finally:
        officer.close()
    create_collection(web, "audited")

    sign_in(page, web, "audit")
    expect(page.locator("#ledger tbody tr").first).to_be_visible()
    assert_inputs_labelled(page)
    page.get_by_label("Principal").fill("field-officer")
    page.get_by_label("Operation").fill("ListCollections")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#ledger tbody tr")
    expect(rows.first).to_be_visible()
    for text in rows.all_inner_texts():
        assert "field-officer" in text and "ListCollections" in text and "web" in text

    page.get_by_label("Principal").fill("desk-admin")
    page.get_by_label("Operation").fill("CreateCollection")
    page.get_by_label("Collection").fill("audited")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("native")

    page.get_by_label("From (UTC)").fill("2000-01-01T00:00:00")
    page.get_by_label("Until (UTC)").fill("2000-01-02T00:00:00")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No records match.")).to_be_visible()
    page.get_by_label("From (UTC)").fill("")
    page.get_by_label("Until (UTC)").fill("")
    page.get_by_role("button", name="Filter").click()

    page.get_by_role("link", name="Verify the chain now").click()
    expect(page.locator("#chain-status")).to_contain_text("Chain intact")
    shot(page, "ledger")

    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile("Export matching records")).click()
    download = download_info.value
    assert download.suggested_filename.endswith(".jsonl")
    records = [json.loads(line) for line in Path(download.path()).read_text().splitlines()]
    assert len(records) == 1
    assert records[0]["operation"] == "CreateCollection"
    assert records[0]["collection_id"] == "audited"
    assert records[0]["principal"] == "desk-admin"


def test_streams_start_watch_live_matches_and_stop(web: Web, page: Page, data_dir: Path) -> None:
    """A processor over a file source (played at its frame rate, like a camera): started from
    the page with a purpose, watched with a purpose (watching is a search), its matches from
    then on appear live as cards with the best-shot crop."""
    from helpers.videos import Actor, make_video

    name, photos = next(iter(lfw_people(data_dir, 2, 1).items()))
    clip = web.videos / "door.mp4"
    # the person comes at 9 s and again at 16 s: a watch shows matches from the moment it
    # opens (no replay), so they must come after the page is open
    make_video(
        clip,
        [
            Actor(name, photos[0], 9.0, 14.0, (60, 80), (380, 120)),
            Actor(name, photos[0], 16.0, 22.0, (380, 120), (60, 80)),
        ],
        duration_s=22,
    )
    assert web.api.post("/v1/collections", json={"collection_id": "door"}).status_code == 201
    enrolled = web.api.post(
        "/v1/collections/door/faces",
        files={"image": ("w.jpg", photos[1].read_bytes(), "image/jpeg")},
        data={"external_image_id": "wanted-at-door"},
    )
    assert enrolled.status_code == 200, enrolled.text
    created = web.api.post(
        "/v1/stream-processors",
        json={"name": "door-cam", "source": f"file://{clip}", "collection_id": "door"},
    )
    assert created.status_code == 201, created.text

    sign_in(page, web, "search")
    page.goto(f"{web.url}/app/streams")
    row = page.locator("#processors tr", has_text="door-cam")
    expect(row.locator(".status")).to_contain_text("STOPPED")
    row.get_by_label("Purpose").fill("missing person report")
    row.get_by_label("Case reference").fill("MP-9")
    row.get_by_role("button", name="Start door-cam").click()
    expect(page.get_by_role("status").first).to_contain_text("Stream processor door-cam started.")

    def state() -> str:
        return str(web.api.get("/v1/stream-processors/door-cam").json()["live"].get("state"))

    deadline = time.monotonic() + 60  # the reader may still be connecting on a busy machine
    while state() != "RUNNING":
        assert time.monotonic() < deadline, f"the processor stayed {state()}"
        time.sleep(0.2)
    page.goto(f"{web.url}/app/streams")  # (not a reload: that would post the start again)
    row = page.locator("#processors tr", has_text="door-cam")
    expect(row.locator(".status")).to_contain_text("RUNNING")
    row.get_by_role("button", name="Watch door-cam").click()  # watching is a search:
    expect(page.locator("#events-status")).to_contain_text("purpose and a case reference")
    row.get_by_label("Purpose").fill("missing person report")
    row.get_by_label("Case reference").fill("MP-9")
    row.get_by_role("button", name="Watch door-cam").click()
    card = page.locator("#events li").first
    expect(card).to_contain_text("wanted-at-door")
    expect(card.locator("img")).to_have_attribute("src", re.compile(r"^data:image/jpeg;base64,"))
    shot(page, "streams", blurred=True)
    row.get_by_role("button", name="Stop door-cam").click()
    row = page.locator("#processors tr", has_text="door-cam")
    expect(row.locator(".status")).to_contain_text("STOPPED")
    assert web.api.get("/v1/stream-processors/door-cam").json()["status"] == "STOPPED"
