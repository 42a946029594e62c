"""The notification key: HMAC-SHA256 signing of completion notifications, under a key file
outside the data folder (``audit/key_files.py``: 32 random bytes, 0600 in a 0700 folder,
created on first use, never overwritten).

``FACELEDGER_NOTIFICATION_KEY_FILE`` moves it; the default is ``notifications.key`` beside the
ledger key. A receiver gets it from ``faceledger video notification-key`` (an admin verb,
ledgered as ``GetNotificationKey``). To rotate it, point the setting at a new file (or move the
old one away): each message names its key by id (``domain/notification_signatures.py``), so a
receiver holding both keys accepts either while the change rolls out.
"""

from __future__ import annotations

import threading
from pathlib import Path

from faceledger.audit.key_files import KeyFileKind, load_or_create_key_file, outside_data_dir
from faceledger.audit.signing import beside_ledger_key
from faceledger.config import Settings
from faceledger.domain.errors import NotificationKeyError
from faceledger.domain.notification_signatures import key_id_of, sign_notification

NOTIFICATION_KEY_BYTES = 32
NOTIFICATION_KEY_NAME = "notifications.key"
NOTIFICATION_KEY = KeyFileKind(
    label="notification key",
    size_bytes=NOTIFICATION_KEY_BYTES,
    error=NotificationKeyError,
    env="FACELEDGER_NOTIFICATION_KEY_FILE",
    why_outside="a copy of the data folder could forge notifications",
    created_label="notification signing key",
    logger=__name__,
    size_note=": it is not a FaceLedger notification key",
)


def notification_key_file(settings: Settings) -> Path:
    """The notification key file of ``settings``; refused (``NotificationKeyError``) inside
    ``data_dir``."""
    path = beside_ledger_key(
        settings.notification_key_file, settings.ledger_key_file, NOTIFICATION_KEY_NAME
    )
    return outside_data_dir(path, settings.data_dir, NOTIFICATION_KEY)


class NotificationSigner:
    """Signs notification bodies with the installation's key, read (or created) on first use
    and re-read when the file changes (a rotation takes effect without a restart)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._loaded: tuple[Path, int, bytes] | None = None  # path, mtime_ns, key

    def key(self) -> bytes:
        """The current key (created 0600 if absent); ``NotificationKeyError`` if unusable."""
        path = notification_key_file(self.settings)
        with self._lock:
            try:
                mtime_ns = path.stat().st_mtime_ns
            except OSError:
                mtime_ns = -1
            if self._loaded is None or self._loaded[:2] != (path, mtime_ns):
                key = load_or_create_key_file(path, NOTIFICATION_KEY)
                self._loaded = (path, path.stat().st_mtime_ns, key)
            return self._loaded[2]

    def key_id(self) -> str:
        return key_id_of(self.key())

    def headers(self, body: bytes) -> dict[str, str]:
        """The signature headers of ``body`` now (``sign_notification``)."""
        return sign_notification(body, self.key())
