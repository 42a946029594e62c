"""Where a stream processor's events go: JSONL files, webhooks, and live subscribers (SSE).

An event is a JSON-ready ``dict`` (the service builds it from a ``MatchEvent`` or a status
change). Sinks never block the processing thread for long:

* ``JsonlSink`` appends one line per event and flushes it to disk (``fsync``) before returning:
  a match written there survives a crash of the server.
* ``WebhookSink`` posts each event from its own thread and retries failures with exponential
  back-off (1 s, 2 s, 4 s … up to ``max_delay``, ``attempts`` times). Its queue is bounded; when
  the receiver is down for long, the oldest undelivered events are dropped and counted.
* ``EventHub`` fans events out to live subscribers (the web app's server-sent events); a slow
  subscriber loses its oldest events, never blocks the others. It keeps no events: watching is
  a search (the gateway ledgers who opened it, why and for which case), so a subscriber gets
  only the matches made from the moment it subscribed, never an earlier run's.

The ledger is not a sink here: the service appends each match to it through the accountable
gateway, so a match the ledger cannot record is not reported anywhere else either.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol, TypeVar

logger = logging.getLogger(__name__)

E = TypeVar("E")  # an event of a video processor (``MatchEvent``, ``PersonEvent``)


def hand_out(
    events: Sequence[E],
    on_event: Callable[[E], None] | None,
    name: Callable[[E], object],
    log: logging.Logger,
) -> None:
    """Give each event to ``on_event`` in turn; a failing callback is logged on ``log``
    (``on_event failed for <name(event)>``) and the next event still goes: a sink's failure
    must not stop the video."""
    if on_event is None:
        return
    for event in events:
        try:
            on_event(event)
        except Exception:
            log.exception("on_event failed for %s", name(event))


def put_dropping_oldest(q: queue.Queue[Any], item: Any) -> int:
    """Put ``item`` without blocking, dropping the oldest items while the queue is full; the
    number dropped."""
    dropped = 0
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            with suppress(queue.Empty):
                q.get_nowait()
                dropped += 1


def post_json(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> None:
    """POST ``body`` (JSON bytes, sent as they are) to ``url`` with ``headers``; an
    ``OSError`` / ``URLError`` unless the answer is 2xx."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "faceledger-webhook",
            **headers,
        },
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        if response.status >= 300:
            raise urllib.error.HTTPError(
                url, response.status, "not a 2xx answer", response.headers, None
            )


def retry_delay_s(failed_attempts: int, first_s: float, max_s: float) -> float:
    """The wait after the ``failed_attempts``-th failure in a row: ``first_s``, doubling each
    time, at most ``max_s`` (1 s, 2 s, 4 s … 30 s by default)."""
    return float(min(first_s * 2 ** max(failed_attempts - 1, 0), max_s))


class Sink(Protocol):
    def send(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """Appends events to a JSON Lines file, durably (flush + fsync per event)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = self.path.open("a", encoding="utf-8")

    def send(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n"
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            self._file.close()


class WebhookSink:
    """POSTs each event as JSON to a URL from a background thread, retrying with back-off
    (``headers`` are added to every request)."""

    def __init__(
        self,
        url: str,
        *,
        attempts: int = 8,
        first_delay: float = 1.0,
        max_delay: float = 30.0,
        timeout: float = 5.0,
        queue_size: int = 1000,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("a webhook URL must start with http:// or https://")
        self.url = url
        self.headers = dict(headers or {})
        self.attempts = attempts
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.delivered = 0
        self.failed = 0  # events given up after every attempt
        self.dropped = 0  # events dropped from a full queue
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-sink", daemon=True)
        self._thread.start()

    def send(self, event: dict[str, Any]) -> None:
        self.dropped += put_dropping_oldest(self._queue, event)

    def _post(self, body: bytes) -> None:
        post_json(self.url, body, self.headers, self.timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            event = self._queue.get()
            if event is None:
                return
            body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
            for attempt in range(1, self.attempts + 1):
                try:
                    self._post(body)
                    self.delivered += 1
                    break
                except (OSError, urllib.error.URLError, ValueError) as exc:
                    if attempt == self.attempts:
                        self.failed += 1
                        logger.warning(
                            "webhook %s: giving up on an event after %d attempts (%s)",
                            self.url,
                            attempt,
                            exc,
                        )
                        break
                    if self._stop.wait(retry_delay_s(attempt, self.first_delay, self.max_delay)):
                        return

    def close(self) -> None:
        self._stop.set()
        with suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout=self.timeout + 1)


class Subscription:
    """One live subscriber's queue of events (bounded; the oldest are dropped when full)."""

    def __init__(self, size: int) -> None:
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=size)
        self.dropped = 0

    def put(self, event: dict[str, Any]) -> None:
        self.dropped += put_dropping_oldest(self._queue, event)

    def get(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None


class EventHub:
    """Fans events out to live subscribers, each optionally filtered by processor name."""

    def __init__(self, queue_size: int = 256) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[Subscription, str | None] = {}
        self._queue_size = queue_size

    def publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            targets = [
                s
                for s, only in self._subscribers.items()
                if only is None or only == event.get("processor")
            ]
        for subscription in targets:
            subscription.put(event)

    @contextmanager
    def subscribe(self, processor: str | None = None) -> Iterator[Subscription]:
        """A subscription to ``processor``'s events (None: every processor's) from now on."""
        subscription = Subscription(self._queue_size)
        with self._lock:
            self._subscribers[subscription] = processor
        try:
            yield subscription
        finally:
            with self._lock:
                self._subscribers.pop(subscription, None)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)
