"""The Streams page shows the current run's matches only: an earlier run's cards go.

Session 5 marked an earlier run's match cards "Earlier run"; issue 18 replaced the marking by
removing them (``static/app.js``, ``setupStreams``: a match of another session id clears the
list, and so does opening a new watch). A real server, a stream processor over a file source
played at its frame rate, and Debian's Chromium (Playwright): run 1's match card is tagged in
the page, the processor is stopped and started again (a new run, a new session id) while the
same watch stays open, and run 2's match must replace the tagged card, not join it. Watching
again empties the list at once (no replay).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from faceledger.config import Settings
from helpers.data import lfw_people
from helpers.live import create_key, start_live_server

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

from helpers.browser import chromium  # noqa: E402

expect.set_options(timeout=90_000)  # waiting for frames and model work, never a speed check
PURPOSE = {"purpose": "missing person report", "case_reference": "MP-31"}


@dataclass
class Site:
    url: str
    officer: tuple[str, str]  # a search key: the page's user
    api: httpx.Client  # the native API as the admin
    videos: Path  # the server's FACELEDGER_VIDEO_DIRS


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    videos = tmp_path_factory.mktemp("runs-videos")
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("runs-data"),
        default_threshold_floor=80,
        video_dirs=[videos],
    )
    admin = create_key(settings, "runs-admin", ["admin", "enrol", "search"])
    officer = create_key(settings, "runs-officer", ["search"])
    with start_live_server(settings) as url:
        headers = {"Authorization": f"Bearer {admin[0]}:{admin[1]}"}
        no_keepalive = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=url, headers=headers, timeout=120, limits=no_keepalive) as api:
            yield Site(url, officer, api, videos)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def _status(site: Site, name: str) -> str:
    answer = site.api.get(f"/v1/stream-processors/{name}").json()
    return str(answer.get("live", {}).get("state") or answer["status"])


def _wait_status(site: Site, name: str, wanted: str) -> None:
    deadline = time.monotonic() + 90  # the reader may still be connecting on a busy machine
    while _status(site, name) != wanted:
        assert time.monotonic() < deadline, f"{name} stayed {_status(site, name)}"
        time.sleep(0.2)


def test_a_new_run_replaces_the_earlier_runs_cards_and_a_new_watch_starts_empty(
    site: Site, page: Page, data_dir: Path
) -> None:
    from helpers.videos import Actor, make_video

    name, photos = next(iter(lfw_people(data_dir, 2, 1).items()))
    clip = site.videos / "gate.mp4"
    # the person comes at 8 s: after the watch has opened (nothing is replayed)
    make_video(clip, [Actor(name, photos[0], 8.0, 14.0, (60, 80), (380, 120))], duration_s=15)
    assert site.api.post("/v1/collections", json={"collection_id": "runs"}).status_code == 201
    enrolled = site.api.post(
        "/v1/collections/runs/faces",
        files={"image": ("w.jpg", photos[1].read_bytes(), "image/jpeg")},
        data={"external_image_id": "wanted-at-gate"},
    )
    assert enrolled.status_code == 200, enrolled.text
    created = site.api.post(
        "/v1/stream-processors",
        json={"name": "gate-cam", "source": f"file://{clip}", "collection_id": "runs"},
    )
    assert created.status_code == 201, created.text

    # run 1, watched from the page by the officer
    first = site.api.post("/v1/stream-processors/gate-cam/start", json=PURPOSE)
    assert first.status_code == 200, first.text
    _wait_status(site, "gate-cam", "RUNNING")
    page.goto(f"{site.url}/app/login")
    page.get_by_label("Access key id").fill(site.officer[0])
    page.get_by_label("Secret access key").fill(site.officer[1])
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{site.url}/app/streams")
    row = page.locator("#processors tr", has_text="gate-cam")
    row.get_by_label("Purpose").fill(PURPOSE["purpose"])
    row.get_by_label("Case reference").fill(PURPOSE["case_reference"])
    row.get_by_role("button", name="Watch gate-cam").click()
    cards = page.locator("#events li")
    expect(cards.first).to_contain_text("wanted-at-gate")
    page.evaluate("() => document.querySelectorAll('#events li').forEach(li => li.dataset.run = 1)")
    earlier = page.locator("#events li[data-run='1']")
    expect(earlier).not_to_have_count(0)

    # run 2: a new session id on the same open watch
    assert site.api.post("/v1/stream-processors/gate-cam/stop").status_code == 200
    _wait_status(site, "gate-cam", "STOPPED")
    second = site.api.post("/v1/stream-processors/gate-cam/start", json=PURPOSE)
    assert second.status_code == 200, second.text
    assert second.json()["session_id"] != first.json()["session_id"]
    expect(earlier).to_have_count(0)  # run 2's first match cleared run 1's cards …
    expect(cards.first).to_contain_text("wanted-at-gate")  # … and shows its own
    assert page.locator("#events li:not([data-run])").count() == cards.count()

    # watching again starts from an empty list: nothing of before is shown or replayed
    row.get_by_role("button", name="Watch gate-cam").click()
    expect(cards).to_have_count(0)
    expect(page.locator("#events-status")).to_contain_text("from now on")
    assert site.api.post("/v1/stream-processors/gate-cam/stop").status_code == 200
