"""The gateway's verb on kept face crops: ``GetFaceCrop`` (docs/REVIEW.md, "Face crops").

Roles ``search`` and ``review`` may view a crop; every view is one ledger record naming the
collection and the FaceId. A searcher views a crop as a search: when the collection's policy
requires a purpose and a case reference, the call must carry them. A reviewer (the ``review``
role) views it to decide about a lead, which is its purpose.
"""

from __future__ import annotations

from faceledger.domain.audit import Caller
from faceledger.domain.collections import COLLECTION_ID_RE, FACE_ID_RE, check_id
from faceledger.services.gateway_policy import PolicyVerbs

REVIEW_ROLE = "review"


class CropVerbs(PolicyVerbs):
    """Viewing the encrypted crop a collection keeps of an enrolled face."""

    def check_crop_key(self) -> None:
        """Raise ``CropKeyError`` when crops are stored but their key is missing or unreadable
        (a server calls this at start and refuses to serve; nothing is read or recorded)."""
        self._crops.check_key()

    def get_face_crop(self, caller: Caller, collection_id: str, face_id: str) -> bytes:
        """The JPEG crop of ``face_id`` (``ResourceNotFoundError`` when none is kept)."""
        reviewer = REVIEW_ROLE in caller.principal.roles

        def work() -> bytes:
            check_id(collection_id, COLLECTION_ID_RE, "CollectionId")
            check_id(face_id, FACE_ID_RE, "FaceId")
            if not reviewer:
                self._search_policy(caller, collection_id)
            return self._crops.view(collection_id, face_id)

        return self._run(
            caller,
            "GetFaceCrop",
            work,
            collection_id=collection_id,
            summary=lambda jpeg: {
                "face_id": face_id,
                "as": REVIEW_ROLE if reviewer else "search",
                "crop_bytes": len(jpeg),
            },
        )
