"""Delivering the notification outbox: signed posts, retried with back-off, across restarts.

``NotificationOutbox.add`` keeps a notification in the video store (``store/outbox.py``) and
wakes one sender thread per process, which posts every due row with fresh signature headers
(``NotificationSigner``). A failed attempt is counted in the row and the next is due after
``Settings.notification_retry_first_s`` seconds, doubling up to ``notification_retry_max_s``
(``video.sinks.retry_delay_s``, the rule of every webhook), until
``Settings.notification_attempts`` attempts have failed; the row is then ``GIVEN_UP``, a
warning is logged and ``on_give_up`` is called (the job service ledgers it). At shutdown the
thread stops between attempts and the process's claims are handed back; what is still pending
is delivered by whichever server runs next on the same store, at its due time.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
from collections.abc import Callable
from dataclasses import replace

from faceledger.config import Settings
from faceledger.domain.errors import NotificationKeyError
from faceledger.services.video.notification_keys import NotificationSigner
from faceledger.store.base import VideoStore
from faceledger.store.records import OutboxRow
from faceledger.video.sinks import post_json, retry_delay_s

logger = logging.getLogger(__name__)

# A sender holds a row only while it posts it; a claim older than this is a dead sender's.
CLAIM_LEASE_S = 60.0
# Rows handed back by other processes are looked for at least this often.
POLL_S = 30.0
BATCH = 20
POST_TIMEOUT_S = 5.0
SNS_HEADERS = {"x-amz-sns-message-type": "Notification"}


class NotificationOutbox:
    """One process's sender of the store's pending notifications (``owner``: this process)."""

    def __init__(
        self,
        settings: Settings,
        store: VideoStore,
        *,
        owner: str,
        signer: NotificationSigner,
        on_give_up: Callable[[OutboxRow], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.owner = owner
        self.signer = signer
        self.on_give_up = on_give_up
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the sender thread (once); it first sends what is due from earlier runs."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name="notification-outbox", daemon=True
            )
            self._thread.start()

    def add(self, row: OutboxRow) -> None:
        """Keep ``row`` in the store, then wake the sender (started if it was not)."""
        self.store.add_notification(row)
        self.start()
        self._wake.set()

    def close(self) -> None:
        """Stop between attempts and hand this process's claims back; pending rows stay."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            thread = self._thread
        if thread is None:
            return  # never sent anything: holds no claim
        thread.join(timeout=POST_TIMEOUT_S + 5)
        try:
            self.store.release_notifications(self.owner)
        except Exception:  # stopping goes on; the claims' leases run out instead
            logger.exception("notification outbox: claims not handed back")

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.send_due()
                wait_s = self._wait_s()
            except Exception:  # the store is unreachable for now: try again later
                logger.exception("notification outbox: sending failed (will retry)")
                wait_s = POLL_S
            self._wake.wait(wait_s)

    def _wait_s(self) -> float:
        """Until the next row is due; a row due already is another sender's for now (its
        claim runs out within ``CLAIM_LEASE_S``): look again in a second."""
        due = self.store.next_notification_at()
        if due is None:
            return POLL_S
        wait_s = due - time.time()
        return 1.0 if wait_s <= 0 else min(wait_s, POLL_S)

    def send_due(self) -> int:
        """Attempt every row due now that no other sender holds, a batch at a time; how many
        were delivered."""
        delivered = 0
        while not self._stop.is_set():
            rows = self.store.due_notifications(time.time(), CLAIM_LEASE_S, BATCH)
            claimed = 0
            for row in rows:
                if self._stop.is_set():
                    break
                if self.store.claim_notification(
                    row.message_id, self.owner, time.time(), CLAIM_LEASE_S
                ):
                    claimed += 1
                    delivered += self._attempt(row)
            if len(rows) < BATCH or claimed == 0:
                break
        return delivered

    def _attempt(self, row: OutboxRow) -> int:
        body = row.body.encode("utf-8")
        try:
            headers = {**SNS_HEADERS, **self.signer.headers(body)}
            post_json(row.url, body, headers, POST_TIMEOUT_S)
        except (OSError, urllib.error.URLError, ValueError, NotificationKeyError) as exc:
            self._failed(row, str(getattr(exc, "message", None) or exc))
            return 0
        self.store.notification_delivered(row.message_id)
        return 1

    def _failed(self, row: OutboxRow, error: str) -> None:
        attempts = row.attempts + 1
        settings = self.settings
        if attempts < settings.notification_attempts:
            delay_s = retry_delay_s(
                attempts, settings.notification_retry_first_s, settings.notification_retry_max_s
            )
            next_at = time.time() + delay_s
            self.store.notification_attempt_failed(
                row.message_id, attempts=attempts, next_attempt_at=next_at, error=error
            )
            return
        self.store.notification_attempt_failed(
            row.message_id, attempts=attempts, next_attempt_at=None, error=error
        )
        logger.warning(
            "notification %s of job %s to %s: giving up after %d attempts (%s)",
            row.message_id,
            row.job_id,
            row.url,
            attempts,
            error,
        )
        if self.on_give_up is not None:
            try:
                self.on_give_up(replace(row, attempts=attempts, last_error=error))
            except Exception:
                logger.exception("notification %s: the give-up was not recorded", row.message_id)
