"""The gateway's verbs on collections, their tags and their faces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faceledger.domain.audit import Caller
from faceledger.domain.collections import Collection, IndexFacesResult, StoredFace
from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.faces import AnalysedImage, Image
from faceledger.domain.results import FaceFailure
from faceledger.services.gateway_base import GatewayParts, ledgered_ids, probe_sha256


@dataclass(frozen=True)
class FacePage:
    """A page of ListFaces: the faces, the next page's token, the collection's FaceModelVersion."""

    faces: list[StoredFace]
    next_token: str | None
    face_model_version: str


class CollectionVerbs(GatewayParts):
    """Collections, tags and faces."""

    def create_collection(
        self, caller: Caller, collection_id: str, tags: dict[str, str] | None = None
    ) -> Collection:
        return self._run(
            caller,
            "CreateCollection",
            lambda: self._collections.create_collection(collection_id, tags),
            collection_id=collection_id,
            summary=lambda c: {"face_model_version": c.face_model_version},
        )

    def describe_collection(self, caller: Caller, collection_id: str) -> Collection:
        return self._run(
            caller,
            "DescribeCollection",
            lambda: self._collections.describe_collection(collection_id),
            collection_id=collection_id,
            summary=lambda c: {"faces": c.face_count, "users": c.user_count},
        )

    def list_collections(
        self, caller: Caller, *, next_token: str | None = None, max_results: int = 1000
    ) -> tuple[list[Collection], str | None]:
        return self._run(
            caller,
            "ListCollections",
            lambda: self._collections.list_collections(
                next_token=next_token, max_results=max_results
            ),
            summary=lambda out: {"count": len(out[0])},
        )

    def delete_collection(self, caller: Caller, collection_id: str) -> None:
        def work() -> int:
            faces = self._collections.describe_collection(collection_id).face_count
            self._collections.delete_collection(collection_id)
            self._leads.store.delete_probes(collection_id)  # the leads stay, not their probes
            return faces

        self._run(
            caller,
            "DeleteCollection",
            work,
            collection_id=collection_id,
            summary=lambda faces: {"deleted_faces": faces},
        )

    def tag_collection(self, caller: Caller, collection_id: str, tags: dict[str, str]) -> None:
        self._run(
            caller,
            "TagResource",
            lambda: self._collections.tag_collection(collection_id, tags),
            collection_id=collection_id,
            summary=lambda _: {"keys": sorted(tags)},
        )

    def untag_collection(self, caller: Caller, collection_id: str, keys: list[str]) -> None:
        self._run(
            caller,
            "UntagResource",
            lambda: self._collections.untag_collection(collection_id, keys),
            collection_id=collection_id,
            summary=lambda _: {"keys": sorted(keys)},
        )

    def collection_tags(self, caller: Caller, collection_id: str) -> dict[str, str]:
        return self._run(
            caller,
            "ListTagsForResource",
            lambda: self._collections.collection_tags(collection_id),
            collection_id=collection_id,
            summary=lambda tags: {"count": len(tags)},
        )

    # -- faces -------------------------------------------------------------------------------
    def index_faces(
        self,
        caller: Caller,
        collection_id: str,
        image: bytes | Image | AnalysedImage,
        *,
        pixels: Image | None = None,
        **options: Any,
    ) -> IndexFacesResult:
        """IndexFaces of image bytes, or of an image already analysed (bulk enrolment).

        When the collection's policy keeps face crops, each enrolled face's crop is sealed
        and stored with it. An image already analysed has lost its pixels: its crops are cut
        from ``pixels`` (the same image decoded), and without them none are kept."""

        def work() -> IndexFacesResult:
            keep = self._policy_of(collection_id).keep_face_crops
            seal_crop = self._crops.sealer() if keep else None
            if isinstance(image, AnalysedImage):
                if pixels is not None and pixels.sha256 != image.sha256:
                    raise InvalidParameterError("pixels must be the analysed image's own")
                return self._collections.enrol(
                    collection_id, image, image=pixels, seal_crop=seal_crop, **options
                )
            return self._collections.index_faces(
                collection_id, image, seal_crop=seal_crop, **options
            )

        def summary(r: IndexFacesResult) -> dict[str, Any]:
            return {
                "indexed": [f.face_id for f, _ in r.face_records],
                "unindexed": len(r.unindexed),
                "duplicate": r.duplicate,
                "external_image_id": options.get("external_image_id"),
            }

        return self._run(
            caller,
            "IndexFaces",
            work,
            collection_id=collection_id,
            probes=probe_sha256(image),
            summary=summary,
        )

    def list_faces(self, caller: Caller, collection_id: str, **options: Any) -> FacePage:
        def work() -> FacePage:
            faces, token = self._collections.list_faces(collection_id, **options)
            version = self._collections.store.face_model_version(collection_id)
            return FacePage(faces, token, version)

        return self._run(
            caller,
            "ListFaces",
            work,
            collection_id=collection_id,
            summary=lambda page: {
                "count": len(page.faces),
                "face_model_version": page.face_model_version,
            },
        )

    def external_image_ids(self, caller: Caller, collection_id: str) -> set[str]:
        """The ExternalImageIds enrolled in a collection (a bulk enrolment's resume look-up):
        ledgered as a ListFaces that returned only these ids."""
        return self._run(
            caller,
            "ListFaces",
            lambda: self._collections.store.external_image_ids(collection_id),
            collection_id=collection_id,
            summary=lambda ids: {"external_image_ids": len(ids)},
        )

    def delete_faces(
        self, caller: Caller, collection_id: str, face_ids: list[str]
    ) -> tuple[list[str], list[FaceFailure]]:
        return self._run(
            caller,
            "DeleteFaces",
            lambda: self._collections.delete_faces(collection_id, face_ids),
            collection_id=collection_id,
            summary=lambda out: {"deleted": out[0], "unsuccessful": len(out[1])},
            intent={"face_ids": ledgered_ids(face_ids)},
        )
