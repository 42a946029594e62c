"""Signed completion notifications: the signature covers the exact body bytes, the key and the
timestamp; a receiver's ``verify_notification`` refuses a changed body, another key, a stale or
far-future timestamp and missing headers. The notification key file is made like the other
key files (0600 in a 0700 folder, outside the data folder, never overwritten) and its id
follows the key, so a rotation is visible to receivers."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from faceledger.config import Settings
from faceledger.domain.errors import NotificationKeyError
from faceledger.domain.notification_signatures import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    NotificationRejected,
    key_id_of,
    sign_notification,
    verify_notification,
)
from faceledger.services.video.notification_keys import NotificationSigner, notification_key_file

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
NOW = 1_800_000_000.0
BODY = json.dumps(
    {"Type": "Notification", "Message": '{"JobId":"j1","Status":"SUCCEEDED"}'}
).encode()


def _signed(body: bytes = BODY, key: bytes = KEY, at: float = NOW) -> dict[str, str]:
    return sign_notification(body, key, now_s=at)


def test_a_signed_body_verifies_with_its_key_in_any_header_case() -> None:
    headers = _signed()
    assert headers[KEY_ID_HEADER] == key_id_of(KEY)
    assert headers[SIGNATURE_HEADER].startswith("v1=")
    verify_notification(BODY, headers, KEY, now_s=NOW + 10)
    lower = {k.lower(): v for k, v in headers.items()}
    verify_notification(BODY, lower, KEY, now_s=NOW)
    # a rotation: the receiver holds both keys and picks the one the message names
    both = {key_id_of(OTHER_KEY): OTHER_KEY, key_id_of(KEY): KEY}
    verify_notification(BODY, headers, both, now_s=NOW)


@pytest.mark.parametrize(
    "changed",
    [
        BODY.replace(b"SUCCEEDED", b"FAILED\x00\x00\x00"),
        BODY + b" ",  # the same JSON, other bytes: the signature is over the bytes
        json.dumps(json.loads(BODY), indent=1).encode(),
        b"",
    ],
)
def test_a_changed_body_is_refused(changed: bytes) -> None:
    with pytest.raises(NotificationRejected, match="does not match the body"):
        verify_notification(changed, _signed(), KEY, now_s=NOW)


def test_another_key_is_refused() -> None:
    with pytest.raises(NotificationRejected, match="not with the key given"):
        verify_notification(BODY, _signed(key=OTHER_KEY), KEY, now_s=NOW)
    with pytest.raises(NotificationRejected, match="not among the keys given"):
        verify_notification(BODY, _signed(key=OTHER_KEY), {key_id_of(KEY): KEY}, now_s=NOW)
    # a forger who names the receiver's key id still cannot sign with it
    forged = _signed(key=OTHER_KEY)
    forged[KEY_ID_HEADER] = key_id_of(KEY)
    with pytest.raises(NotificationRejected, match="does not match"):
        verify_notification(BODY, forged, KEY, now_s=NOW)


def test_a_stale_or_future_timestamp_is_refused_and_the_timestamp_is_signed() -> None:
    headers = _signed()
    verify_notification(BODY, headers, KEY, now_s=NOW + 300)
    with pytest.raises(NotificationRejected, match="stale replay"):
        verify_notification(BODY, headers, KEY, now_s=NOW + 301)
    with pytest.raises(NotificationRejected, match="stale replay"):
        verify_notification(BODY, headers, KEY, now_s=NOW - 301)
    with pytest.raises(NotificationRejected, match="stale replay"):
        verify_notification(BODY, headers, KEY, now_s=NOW + 90, max_age_s=60)
    # a replayed message with a fresh timestamp written in: the MAC covers the timestamp
    moved = {**headers, TIMESTAMP_HEADER: str(int(NOW + 3600))}
    with pytest.raises(NotificationRejected, match="does not match"):
        verify_notification(BODY, moved, KEY, now_s=NOW + 3600)


@pytest.mark.parametrize("header", [TIMESTAMP_HEADER, KEY_ID_HEADER, SIGNATURE_HEADER])
def test_a_missing_header_is_refused(header: str) -> None:
    headers = {k: v for k, v in _signed().items() if k != header}
    with pytest.raises(NotificationRejected, match="missing"):
        verify_notification(BODY, headers, KEY, now_s=NOW)


def test_an_unknown_scheme_or_a_bad_timestamp_is_refused() -> None:
    headers = _signed()
    with pytest.raises(NotificationRejected, match="scheme"):
        verify_notification(
            BODY, {**headers, SIGNATURE_HEADER: "v0=" + headers[SIGNATURE_HEADER][3:]}, KEY
        )
    with pytest.raises(NotificationRejected, match="epoch seconds"):
        verify_notification(BODY, {**headers, TIMESTAMP_HEADER: "-5"}, KEY, now_s=NOW)


def test_the_key_file_is_private_kept_and_outside_the_data_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", ledger_key_file=tmp_path / "keys" / "l.key")
    path = notification_key_file(settings)
    assert path == tmp_path / "keys" / "notifications.key"
    signer = NotificationSigner(settings)
    key = signer.key()
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert NotificationSigner(settings).key() == key  # kept, never overwritten
    verify_notification(BODY, signer.headers(BODY), key)

    path.unlink()  # a rotation: a new file, a new id; the running signer follows it
    path.write_bytes(OTHER_KEY)
    assert signer.key_id() == key_id_of(OTHER_KEY) != key_id_of(key)

    inside = Settings(data_dir=tmp_path / "data", notification_key_file=tmp_path / "data" / "k")
    with pytest.raises(NotificationKeyError, match="inside the data directory"):
        NotificationSigner(inside).key()
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 5)
    with pytest.raises(NotificationKeyError, match="not 32 bytes"):
        NotificationSigner(Settings(data_dir=tmp_path / "data", notification_key_file=short)).key()
