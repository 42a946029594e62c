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

import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceledger.audit.key_files import (
    KeyFileKind,
    load_key_file,
    load_or_create_key_file,
    outside_data_dir,
)
from faceledger.audit.signing import beside_ledger_key
from faceledger.config import Settings
from faceledger.domain.errors import CropKeyError

CROP_KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's 96-bit nonce, random per crop
CROP_KEY_NAME = "crops.key"
CROP_KEY = KeyFileKind(
    label="crop key",
    size_bytes=CROP_KEY_BYTES,
    error=CropKeyError,
    env="FACELEDGER_CROP_KEY_FILE",
    why_outside="a copy of the data folder could open the crops",
    created_label="face-crop key",
    logger=__name__,
    size_note=": it is not a FaceLedger crop key",
)


def crop_key_file(settings: Settings) -> Path:
    """The crop key file of ``settings``; refused (``CropKeyError``) inside ``data_dir``."""
    path = beside_ledger_key(settings.crop_key_file, settings.ledger_key_file, CROP_KEY_NAME)
    return outside_data_dir(path, settings.data_dir, CROP_KEY)


def load_crop_key(path: Path) -> bytes | None:
    """The key in ``path``, or None when the file does not exist."""
    return load_key_file(path, CROP_KEY)


def load_or_create_crop_key(path: Path) -> bytes:
    """The key in ``path``, created (random, 0600, folder 0700) if absent; never overwritten
    (``audit.key_files.create_key_file``)."""
    return load_or_create_key_file(path, CROP_KEY)


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
