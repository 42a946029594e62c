"""The web app remembers each user's last collection in the store (issue 18), not in one
server process: a second server on the same data folder pre-selects it, and so does a
restarted one; another user's choice is their own. Two real uvicorn servers, a real search."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx

from faceledger.config import Settings
from helpers.live import create_key, start_live_server

SELECTED = re.compile(r'<option value="([^"]+)" selected>')


@contextlib.contextmanager
def _signed_in(url: str, key: tuple[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=120) as web:
        form = web.get("/app/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        done = web.post(
            "/app/login", data={"key_id": key[0], "secret": key[1], "csrf_token": token.group(1)}
        )
        assert done.status_code in (200, 303), done.text[:300]
        yield web


def _preselected(web: httpx.Client) -> list[str]:
    page = web.get("/app/search")
    assert page.status_code == 200, page.text[:300]
    return SELECTED.findall(page.text)


def test_the_last_collection_is_shared_by_servers_and_survives_a_restart(
    tmp_path: Path, data_dir: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", workers=1)
    admin = create_key(settings, "admin", ["admin"])
    officer = create_key(settings, "officer", ["search"])
    other = create_key(settings, "other-officer", ["search"])
    photo = (data_dir / "photos" / "couple.jpg").read_bytes()
    with start_live_server(settings) as first, start_live_server(settings) as second:
        with httpx.Client(
            base_url=first, headers={"Authorization": f"Bearer {admin[0]}:{admin[1]}"}
        ) as api:
            for name in ("alpha", "beta"):
                assert api.post("/v1/collections", json={"collection_id": name}).is_success
        with _signed_in(first, officer) as web:
            assert _preselected(web) == []  # nothing searched yet
            page = web.get("/app/search")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token is not None
            searched = web.post(
                "/app/search",
                data={
                    "csrf_token": token.group(1),
                    "collection": "beta",
                    "purpose": "missing person report",
                    "case_reference": "MP-1",
                },
                files={"image": ("p.jpg", photo, "image/jpeg")},
            )
            assert searched.status_code == 200, searched.text[:500]
            assert _preselected(web) == ["beta"]
        with _signed_in(second, officer) as web:
            assert _preselected(web) == ["beta"]  # another server process
        with _signed_in(second, other) as web:
            assert _preselected(web) == []  # per user
    with start_live_server(settings) as restarted, _signed_in(restarted, officer) as web:
        assert _preselected(web) == ["beta"]  # a restart
