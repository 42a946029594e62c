"""Every page of the web app fits a phone and a desktop, in every state, and passes axe-core.

A real server and Debian's Chromium (Playwright). Each *state* below brings one page into one
condition a user meets (empty, with results, with an error); for each, at 375×812 (a phone,
touch) and at 1440×900, the test asserts:

- no horizontal overflow: the page is no wider than the screen, no scrolling region inside it
  scrolls sideways, and no visible element sticks out past the right edge;
- on the phone, every control a thumb presses (buttons, fields, check boxes with their labels,
  the navigation links) is at least 44 px tall;
- axe-core (bundled by ``axe-playwright-python``, no network) finds no serious or critical
  violation.

Full-page screenshots of every state go to ``tests/artifacts/fit-<state>-<width>.png``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image as PILImage

from faceledger.config import Settings
from faceledger.services.keys import KeyService
from helpers.data import lfw_people
from helpers.live import start_live_server

playwright_api = pytest.importorskip("playwright.sync_api")
axe_api = pytest.importorskip("axe_playwright_python.sync_playwright")
from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, Page, expect  # noqa: E402

from helpers.browser import chromium  # noqa: E402

ARTIFACTS = Path(__file__).parent / "artifacts"
VIEWPORTS = {"phone": (375, 812), "desktop": (1440, 900)}
MIN_TOUCH_PX = 44
expect.set_options(timeout=60_000)  # waiting for model work on a busy machine, not a speed test

ROLES = {
    "admin": ("fit-admin", ["admin", "enrol", "search", "audit"]),
    "search": ("fit-officer", ["search"]),
    "review": ("fit-reviewer", ["review"]),
}


@dataclass
class Site:
    url: str
    keys: dict[str, tuple[str, str]]
    photos: dict[str, Path]  # "enrolled" (another photo of an enrolled person), "stranger"
    settings: Settings


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Site]:
    videos = tmp_path_factory.mktemp("fit-videos")
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("fit-data"),
        default_threshold_floor=80,
        video_dirs=[videos],
    )
    service = KeyService(settings)
    try:
        keys = {}
        for name, (principal, roles) in ROLES.items():
            key, secret = service.create(principal, roles)
            keys[name] = (key.key_id, secret)
    finally:
        service.close()
    people = list(lfw_people(data_dir, min_images=2, count=4).items())
    with start_live_server(settings) as url:
        key_id, secret = keys["admin"]
        auth = {"Authorization": f"Bearer {key_id}:{secret}"}
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=url, headers=auth, timeout=120, limits=limits) as api:
            assert api.post("/v1/collections", json={"collection_id": "fit"}).status_code == 201
            for name, photos in people[:3]:
                enrolled = api.post(
                    "/v1/collections/fit/faces",
                    files={"image": ("p.jpg", photos[0].read_bytes(), "image/jpeg")},
                    data={"external_image_id": name, "quality_filter": "NONE"},
                )
                assert enrolled.status_code == 200, enrolled.text
            clip = videos / "door.mp4"
            clip.write_bytes(b"")  # the processor is never started by these tests
            made = api.post(
                "/v1/stream-processors",
                json={
                    "name": "front-door-camera",
                    "source": f"file://{clip}",
                    "collection_id": "fit",
                },
            )
            assert made.status_code == 201, made.text
            # a collection that keeps face crops: a lead shows both faces on request
            assert api.post("/v1/collections", json={"collection_id": "fit-crops"}).is_success
            policy = api.put(
                "/v1/collections/fit-crops/policy",
                json={"require_purpose": True, "keep_face_crops": True},
            )
            assert policy.status_code == 200, policy.text
            enrolled = api.post(
                "/v1/collections/fit-crops/faces",
                files={"image": ("p.jpg", people[0][1][0].read_bytes(), "image/jpeg")},
                data={"external_image_id": people[0][0], "quality_filter": "NONE"},
            )
            assert enrolled.status_code == 200, enrolled.text
        photos = {"enrolled": people[0][1][1], "stranger": people[3][1][1]}
        yield Site(url, keys, photos, settings)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


# -- the states ------------------------------------------------------------------------------
def sign_in(page: Page, site: Site, who: str) -> None:
    key_id, secret = site.keys[who]
    page.context.clear_cookies()  # signed out first (the sign-in page sends a signed-in user on)
    page.goto(f"{site.url}/app/login")
    page.get_by_label("Access key id").fill(key_id)
    page.get_by_label("Secret access key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def search_for(
    page: Page, site: Site, photo: Path | dict[str, object], collection: str = "fit"
) -> None:
    sign_in(page, site, "search")
    page.goto(f"{site.url}/app/search")
    page.get_by_label("Collection").select_option(collection)
    page.get_by_label("Choose a photo file").set_input_files(photo)  # type: ignore[arg-type]
    expect(page.locator("#probe-status")).to_contain_text(re.compile(r"found|usable|not"))
    page.get_by_label("Purpose of the search").fill("missing person report")
    page.get_by_label("Case reference").fill("MP-2026-0042")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#results-title, .problem").first).to_be_visible()


def login_empty(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/app/login")


def login_refused(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/app/login")
    page.get_by_label("Access key id").fill(site.keys["search"][0])
    page.get_by_label("Secret access key").fill("not-the-secret")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()


def search_empty(page: Page, site: Site) -> None:
    sign_in(page, site, "search")
    page.goto(f"{site.url}/app/search")


def search_match(page: Page, site: Site) -> None:
    search_for(page, site, site.photos["enrolled"])
    expect(page.locator("#candidates .card").first).to_be_visible()


def search_no_match(page: Page, site: Site) -> None:
    search_for(page, site, site.photos["stranger"])
    expect(page.locator("#no-match")).to_be_visible()


def search_bad_file(page: Page, site: Site) -> None:
    search_for(page, site, {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"text"})
    expect(page.get_by_role("alert")).to_be_visible()


def compare_empty(page: Page, site: Site) -> None:
    sign_in(page, site, "search")
    page.goto(f"{site.url}/app/compare")


def compare_results(page: Page, site: Site) -> None:
    compare_empty(page, site)
    page.get_by_label("First photo").set_input_files(site.photos["enrolled"])
    page.get_by_label("Second photo").set_input_files(site.photos["stranger"])
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.locator("#compare-results")).to_be_visible()


def collections_list(page: Page, site: Site) -> None:
    sign_in(page, site, "admin")
    page.goto(f"{site.url}/app/collections")


def collection_page(page: Page, site: Site) -> None:
    sign_in(page, site, "admin")
    page.goto(f"{site.url}/app/collections/fit")
    expect(page.locator("#faces")).to_be_visible()


def collection_enrol_errors(page: Page, site: Site) -> None:
    collection_page(page, site)
    blank = io.BytesIO()
    PILImage.new("RGB", (320, 240), (90, 140, 200)).save(blank, format="PNG")
    files = [
        {"name": "landscape.png", "mimeType": "image/png", "buffer": blank.getvalue()},
        {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"plain text"},
        {"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": b"\xff" * (6 << 20)},
    ]
    page.get_by_label(re.compile("Photos to enrol")).set_input_files(files)  # type: ignore[arg-type]
    page.get_by_role("button", name="Enrol", exact=True).click()
    expect(page.locator("#enrol-status")).to_contain_text("Done: 3 files sent")


def streams_page(page: Page, site: Site) -> None:
    sign_in(page, site, "search")
    page.goto(f"{site.url}/app/streams")
    expect(page.locator("#processors")).to_be_visible()


def streams_start_refused(page: Page, site: Site) -> None:
    streams_page(page, site)
    page.evaluate("() => document.querySelectorAll('form').forEach(f => f.noValidate = true)")
    page.get_by_role("button", name=re.compile("^Start")).first.click()
    expect(page.get_by_role("alert")).to_be_visible()


def ledger_page(page: Page, site: Site) -> None:
    sign_in(page, site, "admin")
    page.goto(f"{site.url}/app/ledger?verify=1")
    expect(page.locator("#ledger")).to_be_visible()


def review_queue(page: Page, site: Site) -> None:
    search_match(page, site)  # a search with a candidate: a lead
    sign_in(page, site, "review")
    page.goto(f"{site.url}/app/review")
    expect(page.locator("#leads .lead").first).to_be_visible()


def review_refused(page: Page, site: Site) -> None:
    review_queue(page, site)
    page.evaluate("() => document.querySelectorAll('form').forEach(f => f.noValidate = true)")
    page.locator("#leads form.decision").first.get_by_role("button").click()
    expect(page.get_by_role("alert")).to_be_visible()


def review_faces_shown(page: Page, site: Site) -> None:
    """A lead of a collection that keeps crops, its searched and enrolled faces shown."""
    search_for(page, site, site.photos["enrolled"], collection="fit-crops")
    lead_id = page.locator("#lead-id code").inner_text()
    sign_in(page, site, "review")
    page.goto(f"{site.url}/app/review")
    card = page.locator(f"#lead-{lead_id} .candidate").first
    card.get_by_role("link", name="Show the faces").click()
    for image in (card.locator("img").first, card.locator("img").nth(1)):
        expect(image).to_have_attribute("src", re.compile(r"^blob:"))


def refused_page(page: Page, site: Site) -> None:
    sign_in(page, site, "search")
    page.goto(f"{site.url}/app/ledger")
    expect(page.get_by_role("alert")).to_be_visible()


STATES: dict[str, Callable[[Page, Site], None]] = {
    f.__name__: f
    for f in (
        login_empty,
        login_refused,
        search_empty,
        search_match,
        search_no_match,
        search_bad_file,
        compare_empty,
        compare_results,
        collections_list,
        collection_page,
        collection_enrol_errors,
        streams_page,
        streams_start_refused,
        ledger_page,
        review_queue,
        review_refused,
        review_faces_shown,
        refused_page,
    )
}

# -- the checks ------------------------------------------------------------------------------
OVERFLOW_JS = """() => {
  const vw = document.documentElement.clientWidth;
  const out = [];
  const name = (el) => {
    const cls = typeof el.className === 'string' ? el.className.trim().split(/\\s+/) : [];
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
      + (cls.length && cls[0] ? '.' + cls.join('.') : '');
  };
  if (document.documentElement.scrollWidth > vw)
    out.push(`the page is ${document.documentElement.scrollWidth} px wide in ${vw}`);
  for (const el of document.body.querySelectorAll('*')) {
    const s = getComputedStyle(el);
    if (s.display === 'none' || s.visibility === 'hidden') continue;
    if (['auto', 'scroll'].includes(s.overflowX) && el.scrollWidth > el.clientWidth + 1)
      out.push(`${name(el)} scrolls sideways (${el.scrollWidth} px in ${el.clientWidth})`);
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.height > 0 && r.left >= 0 && r.right > vw + 1 && !el.closest('svg'))
      out.push(`${name(el)} sticks out to ${Math.round(r.right)} px`);
  }
  return out;
}"""

TOUCH_JS = """(minimum) => {
  const out = [];
  const targets = document.querySelectorAll(
    'button, select, input:not([type=hidden]), a.button, nav a, summary');
  for (const el of targets) {
    const s = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    if (s.display === 'none' || s.visibility === 'hidden' || r.width === 0) continue;
    let h = r.height;
    if (['checkbox', 'radio', 'file'].includes(el.type) && el.labels && el.labels.length) {
      // the label is part of the target: measure the box that holds both
      const l = el.labels[0].getBoundingClientRect();
      h = Math.max(h, Math.max(r.bottom, l.bottom) - Math.min(r.top, l.top));
    }
    const text = (el.innerText || el.value || '').slice(0, 30);
    if (h + 0.5 < minimum)
      out.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}`
        + `${el.name ? '[name=' + el.name + ']' : ''} "${text}" is ${h.toFixed(0)} px`);
  }
  return out;
}"""


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("state", list(STATES))
def test_every_page_fits_and_passes_axe(
    site: Site, browser: Browser, state: str, viewport: str
) -> None:
    width, height = VIEWPORTS[viewport]
    phone = viewport == "phone"
    context = browser.new_context(
        viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone
    )
    try:
        page = context.new_page()
        STATES[state](page, site)
        page.wait_for_load_state("networkidle")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"fit-{state}-{width}.png"), full_page=True)
        assert page.evaluate(OVERFLOW_JS) == []
        if phone:
            assert page.evaluate(TOUCH_JS, MIN_TOUCH_PX) == []
        results = Axe().run(page)
        serious = [
            f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(n["target"][0] for n in v["nodes"][:3])
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert serious == []
    finally:
        context.close()


# -- the behaviours the fitted pages promise ---------------------------------------------------
@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 375, "height": 812}, is_mobile=True)
    yield context.new_page()
    context.close()


def test_the_outcome_comes_first_and_the_lead_notice_only_with_candidates(
    site: Site, page: Page
) -> None:
    search_for(page, site, site.photos["stranger"])
    no_match = page.locator("#no-match")
    expect(no_match).to_be_in_viewport()  # the outcome is on the first phone screen
    expect(page.get_by_role("note")).to_have_count(0)  # no "a match is a lead" without a match
    expect(page.locator("#searched-face")).not_to_contain_text("you asked for")  # none was set
    search_for(page, site, site.photos["enrolled"])
    expect(page.locator("#candidates .card").first).to_be_in_viewport()
    expect(page.get_by_role("note")).to_have_count(1)
    # plain labels, with the API's names in a tooltip
    label = page.locator("#candidates .card dt abbr").first
    expect(label).to_have_text("Enrolled as")
    expect(label).to_have_attribute("title", "ExternalImageId")


def test_the_last_collection_is_remembered_and_a_threshold_is_quoted_only_when_set(
    site: Site, page: Page
) -> None:
    search_for(page, site, site.photos["enrolled"])
    page.goto(f"{site.url}/app/search")
    expect(page.get_by_label("Collection")).to_have_value("fit")
    page.get_by_label("Choose a photo file").set_input_files(site.photos["enrolled"])
    page.get_by_label("Purpose of the search").fill("missing person report")
    page.get_by_label("Case reference").fill("MP-7")
    page.locator("summary", has_text="Match threshold").click()
    page.get_by_label(re.compile("Lowest Similarity")).fill("50")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#searched-face")).to_contain_text("you asked for 50")


def test_another_face_of_the_same_photo_is_searched_without_sending_it_again(
    site: Site, page: Page, data_dir: Path
) -> None:
    couple = data_dir / "photos" / "couple.jpg"
    search_for(page, site, couple)
    expect(page.locator("#searched-face")).to_contain_text("Searched face 1 of")
    requests: list[int] = []
    page.on("request", lambda r: requests.append(len(r.post_data_buffer or b"")))
    page.get_by_role("button", name="Search face 2").click()
    expect(page.locator("#searched-face")).to_contain_text("Searched face 2 of")
    assert requests and max(requests) < 4096, requests  # the photo was not sent again
    # the kept photo belongs to the session: a forged token is a missing photo, not a search
    token = page.locator("input[name=probe_token]").get_attribute("value")
    assert token
    form = {
        "csrf_token": page.locator("input[name=csrf_token]").first.get_attribute("value") or "",
        "probe_token": token[:-2] + "xx",
        "collection": "fit",
        "purpose": "p",
        "case_reference": "c",
    }
    response = page.request.post(f"{site.url}/app/search", form=form)
    assert response.status == 400
    assert "Take or choose a photo." in response.text()


def test_an_oversize_photo_is_refused_in_the_form_with_its_own_size(site: Site, page: Page) -> None:
    search_empty(page, site)
    page.get_by_label("Purpose of the search").fill("missing person report")
    big = {"name": "big.jpg", "mimeType": "image/jpeg", "buffer": b"\xff" * (6 << 20)}
    page.get_by_label("Choose a photo file").set_input_files(big)  # type: ignore[arg-type]
    problem = page.locator("#size-problem")
    expect(problem).to_contain_text("big.jpg is 6.0 MiB")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page).to_have_url(f"{site.url}/app/search")  # not sent: no error page
    expect(page.get_by_label("Purpose of the search")).to_have_value("missing person report")


def test_a_refused_sign_in_keeps_the_key_id(site: Site, page: Page) -> None:
    login_refused(page, site)
    expect(page.get_by_label("Access key id")).to_have_value(site.keys["search"][0])
    expect(page.get_by_label("Secret access key")).to_have_value("")


def test_starting_a_stream_needs_a_purpose_and_a_case_and_the_refusal_is_recorded(
    site: Site, page: Page
) -> None:
    streams_start_refused(page, site)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("State the purpose of running front-door-camera.")
    expect(alert).to_contain_text("Give the case reference for front-door-camera.")
    sign_in(page, site, "admin")
    page.goto(f"{site.url}/app/ledger?operation=StartStreamProcessor&outcome=AccessDeniedException")
    expect(page.locator("#ledger tbody tr").first).to_contain_text("fit-officer")


def test_the_chain_status_stays_while_the_ledger_is_filtered(site: Site, page: Page) -> None:
    ledger_page(page, site)
    expect(page.locator("#chain-status")).to_contain_text("Chain intact")
    page.goto(f"{site.url}/app/ledger?operation=ListCollections")
    expect(page.locator("#chain-status")).to_contain_text(re.compile(r"Verified at .*Chain intact"))


def test_compare_shows_the_best_face_first_and_boxes_it(
    site: Site, page: Page, data_dir: Path
) -> None:
    compare_empty(page, site)
    page.get_by_label("First photo").set_input_files(site.photos["enrolled"])
    page.get_by_label("Second photo").set_input_files(data_dir / "photos" / "couple.jpg")
    page.get_by_role("button", name="Compare", exact=True).click()
    best = page.locator("#compare-results tr.best")
    expect(best).to_have_count(1)
    expect(best).to_be_in_viewport()  # the result comes before the two photos on a phone
    face = int(best.locator("td").first.inner_text().split()[0])
    chosen = page.locator("figure").nth(1).locator("g.face")
    expect(chosen.nth(face - 1)).to_have_class(re.compile(r"\bchosen\b"))


def test_a_review_round_trip_search_lead_decision_ledger_report(
    site: Site, page: Page, tmp_path: Path
) -> None:
    """An officer's search makes a lead; a reviewer rejects its candidate with a note; the
    decision is in the ledger, linked to the search, and in the decisions report."""
    search_for(page, site, site.photos["enrolled"])
    lead_id = page.locator("#lead-id code").inner_text()
    assert re.fullmatch(r"[0-9a-f-]{36}", lead_id)
    sign_in(page, site, "review")
    page.goto(f"{site.url}/app/review")
    card = page.locator(f"#lead-{lead_id}")
    expect(card).to_contain_text("fit-officer")
    expect(card).to_contain_text("MP-2026-0042")
    # confirming needs a note: refused in place, nothing recorded as a decision
    form = card.locator("form.decision").first
    form.get_by_label("Confirmed").check()
    page.evaluate("() => document.querySelectorAll('form').forEach(f => f.noValidate = true)")
    form.get_by_role("button", name="Save the decision").click()
    expect(page.get_by_role("alert")).to_contain_text("needs a note")
    form = page.locator(f"#lead-{lead_id} form.decision").first
    form.get_by_label("Rejected").check()
    form.get_by_label(re.compile("^Note")).fill("different person: ear shape")
    form.get_by_role("button", name="Save the decision").click()
    expect(page.get_by_role("status").first).to_contain_text("Decision saved: rejected.")
    expect(page.locator(f"#lead-{lead_id}")).to_have_count(0)  # decided: out of the queue

    from faceledger.audit.ledger import Ledger

    with Ledger.from_settings(site.settings) as ledger:
        events = [e.event for e in ledger.entries() if e.event is not None]
    search = next(
        e
        for e in events
        if e.operation == "SearchFacesByImage" and (e.result or {}).get("lead_id") == lead_id
    )
    review = next(
        e
        for e in events
        if e.operation == "ReviewLead" and e.outcome == "ok" and e.result["lead_id"] == lead_id
    )
    assert review.principal == "fit-reviewer" and review.source == "web"
    assert review.result["decision"] == "rejected"
    assert review.result["search_request_id"] == search.request_id
    refused = [
        e
        for e in events
        if e.operation == "ReviewLead" and e.outcome != "ok" and e.principal == "fit-reviewer"
    ]
    assert refused, "the refused decision (no note) is recorded too"

    from helpers.cli import run

    report = run("audit", "decisions", "--json", cwd=tmp_path,
                 FACELEDGER_DATA_DIR=str(site.settings.data_dir))  # fmt: skip
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)
    fit = [r for r in rows if r["collection_id"] == "fit"]
    assert sum(r["rejected"] for r in fit) >= 1


def test_a_reviewer_sees_both_faces_only_on_request_and_each_view_is_recorded(
    site: Site, page: Page, data_dir: Path
) -> None:
    photos = next(iter(lfw_people(data_dir, min_images=2, count=1).values()))
    key_id, secret = site.keys["admin"]
    auth = {"Authorization": f"Bearer {key_id}:{secret}"}
    with httpx.Client(base_url=site.url, headers=auth, timeout=120) as api:
        assert api.post("/v1/collections", json={"collection_id": "crops"}).status_code == 201
        policy = api.put(
            "/v1/collections/crops/policy",
            json={"require_purpose": True, "keep_face_crops": True},
        )
        assert policy.status_code == 200, policy.text
        enrolled = api.post(
            "/v1/collections/crops/faces",
            files={"image": ("p.jpg", photos[0].read_bytes(), "image/jpeg")},
            data={"external_image_id": "crop-person", "quality_filter": "NONE"},
        )
        assert enrolled.status_code == 200, enrolled.text
    sign_in(page, site, "search")
    page.goto(f"{site.url}/app/search")
    page.get_by_label("Collection").select_option("crops")
    page.get_by_label("Choose a photo file").set_input_files(photos[1])
    page.get_by_label("Purpose of the search").fill("missing person report")
    page.get_by_label("Case reference").fill("MP-CROP")
    page.get_by_role("button", name="Search", exact=True).click()
    lead_id = page.locator("#lead-id code").inner_text()

    sign_in(page, site, "review")
    page.goto(f"{site.url}/app/review")
    card = page.locator(f"#lead-{lead_id}")
    searched, enrolled = card.locator("img").first, card.locator("img").nth(1)
    for image in (searched, enrolled):  # not by default
        expect(image).to_have_attribute("src", "/app/static/face-placeholder.svg")
    expect(card.locator("figcaption")).to_have_text(["Searched", "Enrolled"])
    card.get_by_role("link", name="Show the faces").click()  # one tap: side by side
    for image in (searched, enrolled):
        expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    expect(card).to_contain_text("each view is recorded")

    from faceledger.audit.ledger import Ledger

    with Ledger.from_settings(site.settings) as ledger:
        views = [
            e.event
            for e in ledger.entries()
            if e.event is not None and e.event.operation in ("GetFaceCrop", "GetLeadProbeCrop")
        ]
    seen = {(v.operation, v.principal, v.outcome) for v in views}
    assert ("GetFaceCrop", "fit-reviewer", "ok") in seen
    assert ("GetLeadProbeCrop", "fit-reviewer", "ok") in seen
    [probe] = [
        v
        for v in views
        if v.operation == "GetLeadProbeCrop"
        and v.principal == "fit-reviewer"
        and v.result["lead_id"] == lead_id
    ]
    assert probe.result["as"] == "review"
