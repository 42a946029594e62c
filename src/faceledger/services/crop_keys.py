"""The face-crop key: AES-256-GCM sealing of crops, under a key file outside the data folder.

A crop is sealed as ``nonce (12 random bytes) || ciphertext+tag`` with the FaceId as
associated data, so a sealed crop copied onto another face's row does not open. A lead's probe
crop (the searched face) is sealed the same way with ``lead:<lead id>`` as associated data: it
opens for its own lead only, never as a face's crop or another lead's. The key file
(``FACELEDGER_CROP_KEY_FILE``; default ``crops.key`` beside the ledger key) holds 32 random
bytes, is created 0600 in a 0700 folder when the first crop is kept, and must not be inside
the data folder: whoever copies the data folder must not get the crops' key with it.
"""

from __future__ import annotations

import logging
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceledger.audit.signing import create_key_file, default_key_file
from faceledger.config import Settings
from faceledger.domain.errors import CropKeyError

logger = logging.getLogger(__name__)

CROP_KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's 96-bit nonce, random per crop
CROP_KEY_NAME = "crops.key"


def crop_key_file(settings: Settings) -> Path:
    """The crop key file of ``settings``; refused (``CropKeyError``) inside ``data_dir``."""
    if settings.crop_key_file is not None:
        path = Path(settings.crop_key_file).expanduser()
    else:
        ledger_key = Path(settings.ledger_key_file or default_key_file()).expanduser()
        path = ledger_key.parent / CROP_KEY_NAME
    resolved, data = path.resolve(), Path(settings.data_dir).expanduser().resolve()
    if resolved == data or resolved.is_relative_to(data):
        raise CropKeyError(
            f"the crop key file {path} is inside the data directory {settings.data_dir}: keep "
            "it elsewhere (FACELEDGER_CROP_KEY_FILE), or a copy of the data folder could open "
            "the crops"
        )
    return path


def load_crop_key(path: Path) -> bytes | None:
    """The key in ``path``, or None when the file does not exist."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CropKeyError(f"cannot read the crop key {path}: {exc.strerror or exc}") from None
    if len(key) != CROP_KEY_BYTES:
        raise CropKeyError(
            f"the crop key {path} is not {CROP_KEY_BYTES} bytes long ({len(key)}): it is not "
            "a FaceLedger crop key"
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning("the crop key %s is mode %o; restrict it to 0600", path, mode)
    return key


def load_or_create_crop_key(path: Path) -> bytes:
    """The key in ``path``, created (random, 0600, folder 0700) if absent. Creation never
    overwrites: a complete temporary file is hard-linked into place, so two processes that
    start at once end up with the same key."""
    key = load_crop_key(path)
    if key is not None:
        return key
    try:
        create_key_file(path, CROP_KEY_BYTES)
    except OSError as exc:
        raise CropKeyError(f"cannot create the crop key {path}: {exc.strerror or exc}") from None
    key = load_crop_key(path)
    if key is None:  # pragma: no cover - removed between link and read
        raise CropKeyError(f"the crop key {path} vanished while it was being created")
    logger.info("created the face-crop key %s", path)
    return key


LEAD_PREFIX = "lead:"


class CropCipher:
    """AES-256-GCM over crops; the FaceId (or ``lead:<lead id>``) is the associated data."""

    def __init__(self, key: bytes, key_file: Path) -> None:
        self._aead = AESGCM(key)
        self.key_file = key_file

    def seal(self, face_id: str, jpeg: bytes) -> bytes:
        """``nonce || ciphertext`` of ``jpeg``, bound to ``face_id``."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, jpeg, face_id.encode("ascii"))

    def open(self, face_id: str, sealed: bytes) -> bytes:
        """The JPEG sealed for ``face_id``; ``CropKeyError`` when this key did not seal it."""
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, body, face_id.encode("ascii"))
        except (InvalidTag, ValueError):
            raise CropKeyError(
                f"the crop of face {face_id} does not open with the crop key {self.key_file}: "
                "it was sealed under another key (FACELEDGER_CROP_KEY_FILE), or the stored "
                "crop was altered"
            ) from None

    def seal_probe(self, lead_id: str, jpeg: bytes) -> bytes:
        """``nonce || ciphertext`` of a lead's probe crop, bound to the lead."""
        return self.seal(LEAD_PREFIX + lead_id, jpeg)

    def open_probe(self, lead_id: str, sealed: bytes) -> bytes:
        """The probe crop sealed for ``lead_id``; ``CropKeyError`` otherwise."""
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, body, (LEAD_PREFIX + lead_id).encode("ascii"))
        except (InvalidTag, ValueError):
            raise CropKeyError(
                f"the searched-face crop of lead {lead_id} does not open with the crop key "
                f"{self.key_file}: it was sealed under another key, for another lead, or the "
                "stored crop was altered"
            ) from None
