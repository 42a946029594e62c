"""Signed completion notifications: what signing costs, and how fast the outbox delivers.

- sign + verify of a typical completion envelope (HMAC-SHA256 over the exact body), µs each;
- the outbox (SQLite video store, one sender thread, a local HTTP receiver answering 200):
  notifications per second and the delay from ``add`` to the receiver, median and p95;
- a restart: N notifications left pending by a stopped sender, delivered by a new one
  (seconds until the last arrives).

Usage: ``python bench/notifications.py [--messages 300]``; writes
``bench/results/notifications.json``.
"""

from __future__ import annotations

import argparse
import http.server
import json
import statistics
import sys
import tempfile
import threading
import time
import timeit
import uuid
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result
from faceledger.config import Settings
from faceledger.domain.notification_signatures import (
    sign_notification,
    verify_notification,
)
from faceledger.services.video.notification_keys import NotificationSigner
from faceledger.services.video.outbox import NotificationOutbox
from faceledger.store.records import OutboxRow
from faceledger.store.sqlite.video import SQLiteVideoStore


class _Receiver(http.server.BaseHTTPRequestHandler):
    arrived: ClassVar[dict[str, float]] = {}

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).arrived[json.loads(body)["MessageId"]] = time.perf_counter()
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _envelope(message_id: str) -> str:
    message = {"JobId": uuid.uuid4().hex, "Status": "SUCCEEDED", "API": "StartFaceSearch",
               "JobTag": "door-1", "Timestamp": int(time.time() * 1000),
               "Video": {"S3ObjectName": "door.mp4", "S3Bucket": "clips"}}  # fmt: skip
    return json.dumps(
        {"Type": "Notification", "MessageId": message_id, "Message": json.dumps(message),
         "TopicArn": "arn:aws:sns:us-east-1:111122223333:done", "Subject": None,
         "Timestamp": "2026-12-06T15:00:00.000Z", "Signature": None, "SignatureVersion": None},
        separators=(",", ":"), sort_keys=True,
    )  # fmt: skip


def _signing() -> dict[str, float]:
    key, body = bytes(range(32)), _envelope("m").encode()
    headers = sign_notification(body, key)
    n = 20_000
    sign_us = min(timeit.repeat(lambda: sign_notification(body, key), number=n, repeat=3))
    verify_us = min(
        timeit.repeat(lambda: verify_notification(body, headers, key), number=n, repeat=3)
    )
    return {"body_bytes": len(body), "sign_us": sign_us / n * 1e6, "verify_us": verify_us / n * 1e6}


def _rows(url: str, count: int) -> list[OutboxRow]:
    now = time.time()
    return [
        OutboxRow(message_id=(m := uuid.uuid4().hex), job_id="job", topic_arn="arn:aws:sns:x:1:t",
                  url=url, body=_envelope(m), created_at=now, next_attempt_at=now)
        for _ in range(count)
    ]  # fmt: skip


def _wait_for(count: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while len(_Receiver.arrived) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(_Receiver.arrived)} of {count} delivered")
        time.sleep(0.005)


def _outbox(root: Path, url: str, messages: int) -> dict[str, float]:
    settings = Settings(data_dir=root / "data", notification_key_file=root / "keys" / "n.key")
    settings.data_dir.mkdir(parents=True)
    store = SQLiteVideoStore(settings.data_dir / "faceledger.sqlite3")
    signer = NotificationSigner(settings)
    try:
        outbox = NotificationOutbox(settings, store, owner="bench:1:a", signer=signer)
        _Receiver.arrived = {}
        added: dict[str, float] = {}
        start = time.perf_counter()
        for row in _rows(url, messages):
            added[row.message_id] = time.perf_counter()
            outbox.add(row)
        _wait_for(messages)
        took_s = time.perf_counter() - start
        outbox.close()
        delays_ms = sorted((_Receiver.arrived[m] - t) * 1000 for m, t in added.items())

        # a restart: rows left pending (never sent), a new sender delivers them
        _Receiver.arrived = {}
        for row in _rows(url, messages):
            store.add_notification(row)
        start = time.perf_counter()
        restarted = NotificationOutbox(settings, store, owner="bench:2:b", signer=signer)
        restarted.start()
        _wait_for(messages)
        restart_s = time.perf_counter() - start
        restarted.close()
    finally:
        store.close()
    return {
        "messages": messages,
        "delivered_per_s": messages / took_s,
        "add_to_receipt_ms_median": statistics.median(delays_ms),
        "add_to_receipt_ms_p95": delays_ms[int(0.95 * (len(delays_ms) - 1))],
        "pending_after_restart_delivered_s": restart_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        signing = _signing()
        with tempfile.TemporaryDirectory() as tmp:
            outbox = _outbox(Path(tmp), url, args.messages)
    finally:
        server.shutdown()
    print(f"sign {signing['sign_us']:.1f} µs, verify {signing['verify_us']:.1f} µs "
          f"({signing['body_bytes']} byte body)")  # fmt: skip
    print(f"outbox: {outbox['delivered_per_s']:.0f} notifications/s, add→receipt median "
          f"{outbox['add_to_receipt_ms_median']:.1f} ms, "
          f"p95 {outbox['add_to_receipt_ms_p95']:.1f} ms; "
          f"{args.messages} pending after a restart delivered in "
          f"{outbox['pending_after_restart_delivered_s']:.2f} s")  # fmt: skip
    write_result("notifications.json", {"signing": signing, "outbox": outbox, "machine": machine()})


if __name__ == "__main__":
    main()
