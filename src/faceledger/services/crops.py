"""Kept face crops: sealing them at enrolment, opening them for a viewer (docs/REVIEW.md).

A collection whose policy has ``keep_face_crops`` keeps, for each face enrolled from then on,
a small JPEG of the face (``inference/face_crops.py``) sealed with AES-256-GCM under the crop
key (``services/crop_keys.py``). The face store writes it with the face and deletes it with
the face; ``CropService`` is what the gateway asks for a sealer (IndexFaces) and for a crop
to show (GetFaceCrop). The key is loaded once, on first use: created when the first crop is
kept, never created to read one (a missing key is an error that names the file).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from faceledger.config import Settings
from faceledger.domain.errors import CropKeyError, ResourceNotFoundError
from faceledger.services.crop_keys import (
    CropCipher,
    crop_key_file,
    load_crop_key,
    load_or_create_crop_key,
)
from faceledger.store.base import CropStore

#: Seals a face's JPEG crop for its FaceId: (face_id, jpeg) → ``nonce || ciphertext``.
CropSealer = Callable[[str, bytes], bytes]
#: Seals a lead's probe crop for the lead: (lead_id, jpeg) → ``nonce || ciphertext``.
ProbeSealer = Callable[[str, bytes], bytes]


class CropService:
    """The crop key and the crop store, for the gateway's verbs."""

    def __init__(self, settings: Settings, *, store: CropStore) -> None:
        self.settings = settings
        self._store = store
        self._cipher: CropCipher | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Nothing to release: the store is closed with the others (``Stores.close``)."""

    def _key(self, *, create: bool) -> CropCipher:
        with self._lock:
            if self._cipher is None:
                path = crop_key_file(self.settings)
                key = load_or_create_crop_key(path) if create else load_crop_key(path)
                if key is None:
                    raise CropKeyError(
                        f"the crop key file {path} is missing, so no kept face crop can be "
                        "opened: restore it (FACELEDGER_CROP_KEY_FILE), or delete the faces "
                        "whose crops it sealed"
                    )
                self._cipher = CropCipher(key, path)
            return self._cipher

    def sealer(self) -> CropSealer:
        """What IndexFaces seals a new face's crop with (the key is created on first use)."""
        return self._key(create=True).seal

    def probe_sealer(self) -> ProbeSealer:
        """What a search seals its lead's probe crop with (the key is created on first use)."""
        return self._key(create=True).seal_probe

    def view_probe(self, lead_id: str, sealed: bytes) -> bytes:
        """The JPEG of a lead's probe crop (``CropKeyError`` when it does not open)."""
        return self._key(create=False).open_probe(lead_id, sealed)

    def view(self, collection_id: str, face_id: str) -> bytes:
        """The JPEG crop of the collection's face; ``ResourceNotFoundError`` when it has
        none (no such face, or enrolled while the policy did not keep crops)."""
        sealed = self._store.crop(collection_id, face_id)
        if sealed is None:
            raise ResourceNotFoundError(
                f"face {face_id} of collection {collection_id!r} has no kept crop (no such "
                "face, or it was enrolled while the collection's policy did not keep crops)"
            )
        return self._key(create=False).open(face_id, sealed)

    def check_key(self, *, probes_kept: bool = False) -> None:
        """Refuse (``CropKeyError``) when crops (or, ``probes_kept``, leads' sealed searched
        faces) are stored but their key cannot be loaded: a server checks this before it
        serves."""
        if probes_kept or self._store.has_crops():
            self._key(create=False)
