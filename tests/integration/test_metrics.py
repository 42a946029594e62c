"""``/metrics`` (Prometheus text) on a real server: behind a key, on its own port, or off.

After real enrolments and searches the scrape holds requests by operation and outcome with
latency, the pipeline's stage times, search time by collection-size bucket, the ledger's
head / checkpoint age / unsigned tail, stream and job gauges and process memory — and none
of the face ids, the collection id, the external image ids or the principal.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from faceledger.config import Settings
from helpers.data import lfw_people
from helpers.live import create_key, start_live_server

METRICS_KEY = "m" * 12 + "etrics-key-for-tests"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _settings(tmp_path: Path, **extra: object) -> tuple[Settings, dict[str, str]]:
    settings = Settings(
        data_dir=tmp_path / "data",
        ledger_key_file=tmp_path / "keys" / "ledger.key",
        default_threshold_floor=80,
        **extra,  # type: ignore[arg-type]
    )
    key_id, secret = create_key(settings, "metrics-principal", ["admin", "enrol", "search"])
    return settings, {"Authorization": f"Bearer {key_id}:{secret}"}


def test_metrics_behind_a_key_carry_no_ids(tmp_path: Path, data_dir: Path) -> None:
    settings, headers = _settings(tmp_path, metrics="key", metrics_key=METRICS_KEY)
    people = lfw_people(data_dir, 2, 2)
    face_ids: list[str] = []
    with start_live_server(settings) as url, httpx.Client(base_url=url, timeout=120) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        collection = "secret-collection-name"
        assert (
            client.post(
                "/v1/collections", json={"collection_id": collection}, headers=headers
            ).status_code
            == 201
        )
        for name, photos in people.items():
            answer = client.post(
                f"/v1/collections/{collection}/faces",
                files={"image": ("a.jpg", photos[0].read_bytes(), "image/jpeg")},
                data={"external_image_id": f"ext-{name}"},
                headers=headers,
            )
            assert answer.status_code == 200, answer.text
            face_ids += [f["face_id"] for f in answer.json()["faces"]]
            search = client.post(
                f"/v1/collections/{collection}/search",
                files={"image": ("b.jpg", photos[1].read_bytes(), "image/jpeg")},
                headers=headers,
            )
            assert search.status_code == 200, search.text
        assert client.get(f"/v1/collections/{collection}", headers={}).status_code == 401
        scrape = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"})
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    text = scrape.text
    for secret in [*face_ids, collection, "metrics-principal", *(f"ext-{n}" for n in people)]:
        assert secret not in text
    samples = _samples(text)
    search_route = "/v1/collections/{collection_id}/search"
    assert _value(samples, "faceledger_requests_total", operation=search_route, outcome="ok") == 2
    assert (
        _value(
            samples,
            "faceledger_requests_total",
            operation="/v1/collections/{collection_id}",
            outcome="client_error",
        )
        == 1
    )
    assert _value(samples, "faceledger_request_duration_seconds_count", operation=search_route) == 2
    for stage in ("decode", "detect", "embed"):
        assert _value(samples, "faceledger_inference_stage_seconds_count", stage=stage) >= 4
    assert _value(samples, "faceledger_search_seconds_count", collection_size="<1k") == 2
    assert _value(samples, "faceledger_ledger_records_total") > 0
    assert _value(samples, "faceledger_ledger_ok") == 1
    assert _value(samples, "faceledger_ledger_unsigned_tail_records") >= 0
    assert _value(samples, "faceledger_ledger_checkpoint_age_seconds") >= 0
    assert _value(samples, "faceledger_inference_queue_depth") == 0
    assert _value(samples, "faceledger_video_jobs", state="IN_PROGRESS") == 0
    assert _value(samples, "faceledger_video_jobs", state="SUCCEEDED") == 0
    assert _value(samples, "process_resident_memory_bytes") > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("mode", ["port", "off"])
def test_metrics_on_their_own_port_or_off(tmp_path: Path, mode: str) -> None:
    port = _free_port()
    settings, headers = _settings(tmp_path, metrics=mode, metrics_port=port)
    with start_live_server(settings) as url:
        assert httpx.get(f"{url}/metrics").status_code == 404  # never on the API port
        httpx.get(f"{url}/v1/collections", headers=headers)
        if mode == "port":
            samples = _samples(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
            assert (
                _value(
                    samples, "faceledger_requests_total", operation="/v1/collections", outcome="ok"
                )
                == 1
            )
        else:
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{port}/metrics")


def test_key_mode_needs_a_key() -> None:
    with pytest.raises(ValueError, match="FACELEDGER_METRICS_KEY"):
        Settings(metrics="key")
