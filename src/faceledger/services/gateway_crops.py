"""The gateway's verbs on kept face crops: ``GetFaceCrop`` (docs/REVIEW.md, "Face crops") and
``GetLeadProbeCrop`` (a lead's searched face, docs/FACE_CROPS.md).

Roles ``search`` and ``review`` may view a crop; every view is one ledger record naming the
collection and the FaceId. A searcher views a crop as a search: when the collection's policy
requires a purpose and a case reference, the call must carry them. A reviewer (the ``review``
role) views it to decide about a lead, which is its purpose. A lead's searched face is shown
on the same terms (the lead's collection's policy), and its record names the lead.
"""

from __future__ import annotations

from faceledger.domain.audit import Caller
from faceledger.domain.collections import COLLECTION_ID_RE, FACE_ID_RE, check_id
from faceledger.domain.errors import ResourceNotFoundError
from faceledger.domain.leads import check_lead_id
from faceledger.services.gateway_policy import PolicyVerbs

REVIEW_ROLE = "review"


class CropVerbs(PolicyVerbs):
    """Viewing the encrypted crop a collection keeps of an enrolled face."""

    def check_crop_key(self) -> None:
        """Raise ``CropKeyError`` when crops (enrolled faces' or leads' searched faces) are
        stored but their key is missing or unreadable (a server calls this at start and refuses
        to serve; nothing is read or recorded)."""
        self._crops.check_key(probes_kept=self._leads.store.has_sealed_probes())

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

    def get_lead_probe_crop(self, caller: Caller, lead_id: str) -> bytes:
        """The JPEG of a lead's searched face: the photo's face crop kept for the lead, or
        the searched enrolled face's own kept crop (``ResourceNotFoundError`` when none)."""
        reviewer = REVIEW_ROLE in caller.principal.roles
        seen: dict[str, str | None] = {"collection": None, "face_id": None}

        def work() -> bytes:
            check_lead_id(lead_id)
            lead = self._leads.lead(lead_id)
            seen["collection"] = lead.collection_id
            if not reviewer:
                self._search_policy(caller, lead.collection_id)
            probe = self._leads.store.lead_probe(lead_id)
            if probe is not None and probe.sealed is not None:
                return self._crops.view_probe(lead_id, probe.sealed)
            if probe is not None and probe.face_id is not None:
                seen["face_id"] = probe.face_id
                return self._crops.view(lead.collection_id, probe.face_id)
            raise ResourceNotFoundError(
                f"lead {lead_id} kept no searched face (its collection did not keep face "
                "crops, it searched by UserId or a video, or the crop was deleted)"
            )

        return self._run(
            caller,
            "GetLeadProbeCrop",
            work,
            summary=lambda jpeg: {
                "lead_id": lead_id,
                "lead_collection_id": seen["collection"],
                "as": REVIEW_ROLE if reviewer else "search",
                "searched_face_id": seen["face_id"],
                "crop_bytes": len(jpeg),
            },
        )
