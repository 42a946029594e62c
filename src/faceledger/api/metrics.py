"""Prometheus metrics (``prometheus-client``), one registry per app; see ``Settings.metrics``.

What is exported (never biometric data, never face, collection, user or processor ids, never
principals — labels are operation names, outcomes, stages, states and size buckets only):

| metric | type | labels |
|---|---|---|
| ``faceledger_requests_total`` | counter | operation, outcome (ok/client_error/server_error) |
| ``faceledger_request_duration_seconds`` | histogram | operation |
| ``faceledger_inference_stage_seconds`` | histogram | stage (decode, detect, embed) |
| ``faceledger_search_seconds`` | histogram | collection_size (bucket) |
| ``faceledger_inference_queue_depth`` / ``faceledger_inference_running`` | gauge | — |
| ``faceledger_ledger_records_total`` | counter | — (the head seq: rate() = appends/s) |
| ``faceledger_ledger_checkpoint_age_seconds`` | gauge | — |
| ``faceledger_ledger_unsigned_tail_records`` | gauge | — |
| ``faceledger_ledger_ok`` | gauge | — (0 when the ledger refuses appends) |
| ``faceledger_stream_processors`` | gauge | state |
| ``faceledger_stream_frames_total`` | counter | kind (read, dropped, analysed) |
| ``faceledger_stream_reconnects_total`` | counter | — |
| ``faceledger_video_jobs`` | gauge | state (IN_PROGRESS, SUCCEEDED, FAILED) |
| ``process_resident_memory_bytes`` … | gauge | (prometheus-client's process collector) |

The operation of a request is its Rekognition operation (``X-Amz-Target``, only names the
dispatch table knows) or its route template (``/v1/collections/{collection_id}/search``), so
no id from a path or header becomes a label.
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faceledger.services.lifecycle import ledger_state, video_state

if TYPE_CHECKING:
    from fastapi import FastAPI

    from faceledger.services.gateway import Gateway

logger = logging.getLogger("faceledger.api.metrics")

_SIZE_BUCKETS = ((1_000, "<1k"), (10_000, "1k-10k"), (100_000, "10k-100k"), (1_000_000, "100k-1M"))
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_TARGET = re.compile(r"RekognitionService\.([A-Za-z]{1,64})")


def size_bucket(faces: int | None) -> str:
    if faces is None:
        return "unknown"  # searched in the database (FACELEDGER_VECTOR_SEARCH=database)
    for limit, name in _SIZE_BUCKETS:
        if faces < limit:
            return name
    return ">=1M"


def outcome_of(status: int) -> str:
    return "ok" if status < 400 else "client_error" if status < 500 else "server_error"


async def observe_request(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    done: Callable[[int, float], None],
) -> None:
    """Run ``app`` for one HTTP request, then call ``done(status, seconds)`` however it ended
    (status 500 when no response was started). Shared by the metrics and the access log."""
    started = time.perf_counter()
    status = 500

    async def send_status(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        await send(message)

    try:
        await app(scope, receive, send_status)
    finally:
        done(status, time.perf_counter() - started)


@functools.cache
def _operations() -> frozenset[str]:
    from faceledger.api.rekognition.router import OPERATIONS

    return frozenset(OPERATIONS)


def operation_of(scope: Scope) -> str:
    """A bounded name for the request: a known Rekognition operation or a route template
    (never a raw path, whose ids would make unbounded labels)."""
    if scope.get("path") == "/" and scope.get("method") == "POST":
        match = _TARGET.fullmatch(Headers(scope=scope).get("x-amz-target", ""))
        name = match.group(1) if match else ""
        return name if name in _operations() else "rekognition:unknown"
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if isinstance(path, str) else "unmatched"


class _StateCollector(Collector):
    """Read at scrape time: queue depth, ledger, streams, jobs (from the app's state)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[Any]:
        state = self.app.state
        limiter = getattr(state, "engine_limiter", None)
        if limiter is not None:
            stats = limiter.statistics()
            yield GaugeMetricFamily(
                "faceledger_inference_queue_depth",
                "Requests waiting for an inference slot.",
                value=stats.tasks_waiting,
            )
            yield GaugeMetricFamily(
                "faceledger_inference_running",
                "Requests holding an inference slot.",
                value=stats.borrowed_tokens,
            )
        gate: Gateway | None = getattr(state, "gateway", None)
        if gate is None:
            return
        yield from self._ledger(gate)
        yield from self._video(gate)

    @staticmethod
    def _ledger(gate: Gateway) -> Iterator[Any]:
        state = ledger_state(gate)
        yield GaugeMetricFamily(
            "faceledger_ledger_ok",
            "1 if the ledger is readable and accepts appends.",
            int(state.ok),
        )
        yield CounterMetricFamily(
            "faceledger_ledger_records",
            "Records in the ledger (its head seq).",
            value=state.head_seq,
        )
        yield GaugeMetricFamily(
            "faceledger_ledger_checkpoint_age_seconds",
            "Seconds since the last signed checkpoint.",
            value=state.checkpoint_age_s,
        )
        yield GaugeMetricFamily(
            "faceledger_ledger_unsigned_tail_records",
            "Records after the last signed checkpoint.",
            value=state.unsigned_tail,
        )

    @staticmethod
    def _video(gate: Gateway) -> Iterator[Any]:
        state = video_state(gate)
        if state is None:
            return
        states = GaugeMetricFamily(
            "faceledger_stream_processors", "Stream processors by state.", labels=["state"]
        )
        for status, count in sorted(state.processors_by_state.items()):
            states.add_metric([status], count)
        yield states
        family = CounterMetricFamily(
            "faceledger_stream_frames",
            "Frames of running stream processors (since each started).",
            labels=["kind"],
        )
        for kind, count in state.frames.items():
            family.add_metric([kind], count)
        yield family
        yield CounterMetricFamily(
            "faceledger_stream_reconnects",
            "Reconnects of running stream processors.",
            state.reconnects,
        )
        jobs_family = GaugeMetricFamily(
            "faceledger_video_jobs", "Stored-video jobs by state.", labels=["state"]
        )
        for status in ("IN_PROGRESS", "SUCCEEDED", "FAILED"):  # always present, 0 included
            jobs_family.add_metric([status], state.jobs_by_state.get(status, 0))
        yield jobs_family


class Metrics:
    """The app's registry and instruments."""

    def __init__(self, app: FastAPI) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "faceledger_requests",
            "Requests by operation and outcome.",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "faceledger_request_duration_seconds",
            "Request latency by operation.",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stages = Histogram(
            "faceledger_inference_stage_seconds",
            "Time per pipeline stage.",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.search = Histogram(
            "faceledger_search_seconds",
            "Vector search time by collection size.",
            ["collection_size"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        self.registry.register(_StateCollector(app))

    def observe_stage(self, stage: str, seconds: float, size: int | None) -> None:
        """A ``StageObserver`` (``faceledger.inference.timing``)."""
        if stage == "search":
            self.search.labels(size_bucket(size)).observe(seconds)
        else:
            self.stages.labels(stage).observe(seconds)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts and times every HTTP request (``/metrics`` itself excluded)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == "/metrics":
            await self.app(scope, receive, send)
            return

        def count(status: int, seconds: float) -> None:
            operation = operation_of(scope)
            self.metrics.requests.labels(operation, outcome_of(status)).inc()
            self.metrics.latency.labels(operation).observe(seconds)

        await observe_request(self.app, scope, receive, send, count)


def key_allows(authorization: str | None, key: str) -> bool:
    """Whether ``Authorization`` is ``Bearer <key>`` (constant-time comparison)."""
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def install_metrics(app: FastAPI, mode: str, key: str | None) -> Metrics | None:
    """Add the instruments to ``app`` (``mode`` "off": nothing). With "key", ``GET /metrics``
    answers only ``Authorization: Bearer <key>`` (401 otherwise); with "port" the lifespan
    serves the registry on its own port (``serve_port``)."""
    if mode == "off":
        return None
    metrics = Metrics(app)
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if mode == "key":
        assert key is not None

        async def metrics_endpoint(request: Any) -> Response:
            if not key_allows(request.headers.get("authorization"), key):
                from faceledger.api.app import error_response

                return error_response(
                    "UnrecognizedClientException",
                    "GET /metrics needs Authorization: Bearer <FACELEDGER_METRICS_KEY>",
                    401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return metrics.render()

        app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    return metrics


def serve_port(metrics: Metrics, host: str, port: int) -> Any:
    """Serve the registry at ``http://host:port/metrics`` in a thread; returns the server
    (``shutdown()`` it when stopping)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    logger.info("metrics on http://%s:%s/metrics", host, port)
    return server
