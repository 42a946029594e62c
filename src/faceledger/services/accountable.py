"""``FaceLedger``: every verb, called on behalf of someone, checked and written to the ledger.

This is the composition root that the HTTP adapters and the CLI use. Each verb takes a
``Caller`` (principal, source, request id, purpose, case reference) and:

1. checks the principal's roles (``domain/principals.py``); a refusal is ledgered too;
2. applies the collection's policy: searches of a collection that requires a purpose must carry
   a purpose and a case reference, and the match threshold is raised to the collection's floor;
3. runs the service verb;
4. appends one ``AuditEvent`` (outcome "ok" or the error code; matched FaceIds with Similarity,
   or counts; the effective threshold; the SHA-256 of each probe image — never the image or an
   embedding) and returns only once the record is durable. If the ledger cannot be written the
   call fails with ``LedgerError`` and nothing is returned.
"""

from __future__ import annotations

import getpass
import hashlib
import re
from collections.abc import Callable
from typing import Any, TypeVar

from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from faceledger.domain.audit import AuditEvent, Caller
from faceledger.domain.collections import (
    Collection,
    CollectionMatch,
    IndexFacesResult,
    StoredFace,
    User,
)
from faceledger.domain.errors import (
    AccessDeniedError,
    FaceLedgerError,
    InvalidParameterError,
    LedgerError,
)
from faceledger.domain.faces import AnalysedImage, CompareResult, Image
from faceledger.domain.policy import (
    MAX_CASE_CHARS,
    MAX_PURPOSE_CHARS,
    CollectionPolicy,
)
from faceledger.domain.principals import ROLES, Principal
from faceledger.services.collections import (
    DEFAULT_FACE_MATCH_THRESHOLD,
    DEFAULT_SEARCH_MAX_FACES,
    CollectionService,
    SearchByImageResult,
)
from faceledger.services.faces import FaceService
from faceledger.services.keys import AccessKey, KeyService
from faceledger.services.objects import ImageObjects
from faceledger.services.users import (
    DEFAULT_ASSOCIATE_THRESHOLD,
    DEFAULT_MAX_USERS,
    DEFAULT_USER_MATCH_THRESHOLD,
    AssociationOutcome,
    UserSearchByImageResult,
    UserSearchResult,
    UserService,
)
from faceledger.services.video import JobPage, VideoService
from faceledger.store.video import JobRow, ProcessorRow

R = TypeVar("R")

_TEXT_RE = re.compile(r"[^\x00-\x1f\x7f]*")
MAX_LEDGERED_MATCHES = 4096


def local_operator() -> Caller:
    """The CLI's caller: whoever runs it on this machine (it can read the data directory, so
    it holds every role); the ledger records the operating-system user name."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Caller(Principal(f"local:{user}", ROLES, "LOCAL"), source="cli", request_id="")


def check_purpose(purpose: str | None, case_reference: str | None) -> None:
    """Purposes and case references are short printable text (they land in the ledger)."""
    for value, name, limit in (
        (purpose, "purpose", MAX_PURPOSE_CHARS),
        (case_reference, "case reference", MAX_CASE_CHARS),
    ):
        if value is not None and (len(value) > limit or not _TEXT_RE.fullmatch(value)):
            raise InvalidParameterError(f"the {name} must be at most {limit} printable characters")


def _matches(matches: tuple[CollectionMatch, ...]) -> list[list[Any]]:
    return [[m.face.face_id, round(m.similarity, 3)] for m in matches[:MAX_LEDGERED_MATCHES]]


class FaceLedger:
    """The accountable service: every verb, authorised, policy-checked and ledgered."""

    def __init__(
        self,
        settings: Settings,
        *,
        faces: FaceService | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.settings = settings
        self.faces = faces or FaceService(settings)
        self.collections = CollectionService(settings, self.faces)
        self.users = UserService(self.collections)
        self.keys = KeyService(settings)
        self.objects = ImageObjects(settings)
        self.ledger = ledger or Ledger.from_settings(settings)
        self.video = VideoService(settings, self.collections, self.objects, self._record)

    def _record(
        self,
        caller: Caller,
        operation: str,
        collection_id: str | None,
        result: dict[str, Any],
        outcome: str,
    ) -> None:
        """Ledger something that happened after the call that caused it (a video job's end, a
        stream match), on behalf of the caller who started it."""
        self.ledger.append(
            AuditEvent.of(
                caller, operation, outcome=outcome, collection_id=collection_id, result=result
            )
        )

    def close(self) -> None:
        self.video.close()
        self.collections.close()
        self.objects.close()
        self.ledger.close()
        self.keys.close()

    # -- the one wrapper ---------------------------------------------------------------------
    def _run(
        self,
        caller: Caller,
        operation: str,
        work: Callable[[], R],
        *,
        collection_id: str | None = None,
        probes: tuple[str, ...] = (),
        summary: Callable[[R], dict[str, Any]] | None = None,
    ) -> R:
        def record(outcome: str, result: dict[str, Any]) -> None:
            event = AuditEvent.of(
                caller,
                operation,
                outcome=outcome,
                collection_id=collection_id,
                probe_sha256=probes,
                result=result,
            )
            self.ledger.append(event)

        self.authorise(caller, operation, collection_id=collection_id, probes=probes)
        try:
            check_purpose(caller.purpose, caller.case_reference)
            value = work()
        except LedgerError:
            raise
        except FaceLedgerError as exc:
            record(exc.code, {"message": exc.message[:300]})
            raise
        except Exception:
            record("InternalServerError", {})
            raise
        record("ok", summary(value) if summary is not None else {})
        return value

    def authorise(
        self,
        caller: Caller,
        operation: str,
        *,
        collection_id: str | None = None,
        probes: tuple[str, ...] = (),
    ) -> None:
        """Refuse (and ledger the refusal) when the caller's roles do not allow ``operation``."""
        if caller.principal.may(operation):
            return
        denied = AccessDeniedError(
            f"principal {caller.principal.name!r} (roles: "
            f"{', '.join(caller.principal.roles) or 'none'}) may not call {operation}"
        )
        self.ledger.append(
            AuditEvent.of(
                caller,
                operation,
                outcome=denied.code,
                collection_id=collection_id,
                probe_sha256=probes,
                result={"message": denied.message},
            )
        )
        raise denied

    @staticmethod
    def _sha(*images: bytes | Image | AnalysedImage) -> tuple[str, ...]:
        out = []
        for image in images:
            if isinstance(image, Image | AnalysedImage):
                out.append(image.sha256)
            else:
                out.append(hashlib.sha256(image).hexdigest())
        return tuple(out)

    # -- policy ----------------------------------------------------------------------------
    def policy_of(self, collection_id: str) -> CollectionPolicy:
        """The collection's policy, or the installation's default when it has none."""
        stored = self.collections.store.policy(collection_id)
        if stored is not None:
            return CollectionPolicy.from_json(stored)
        return CollectionPolicy(
            require_purpose=self.settings.require_purpose,
            threshold_floor=self.settings.default_threshold_floor,
        )

    def _search_policy(self, caller: Caller, collection_id: str) -> CollectionPolicy:
        policy = self.policy_of(collection_id)
        if policy.require_purpose and not (caller.purpose and caller.case_reference):
            raise AccessDeniedError(
                f"collection {collection_id!r} requires a purpose and a case reference for "
                "searches: send the headers X-FaceLedger-Purpose and X-FaceLedger-Case (AWS "
                "SDKs), the fields purpose and case_reference (/v1), or --purpose and --case "
                "(CLI)"
            )
        return policy

    def get_policy(self, caller: Caller, collection_id: str) -> CollectionPolicy:
        return self._run(
            caller,
            "DescribeCollection",
            lambda: self.policy_of(collection_id),
            collection_id=collection_id,
            summary=lambda p: {"policy": p.to_json()},
        )

    def put_policy(
        self, caller: Caller, collection_id: str, policy: CollectionPolicy
    ) -> CollectionPolicy:
        def work() -> CollectionPolicy:
            self.collections.describe_collection(collection_id)
            self.collections.store.set_policy(collection_id, policy.to_json())
            return policy

        return self._run(
            caller,
            "PutCollectionPolicy",
            work,
            collection_id=collection_id,
            summary=lambda p: {"policy": p.to_json()},
        )

    # -- images without a collection -----------------------------------------------------
    def detect_faces(self, caller: Caller, image: bytes) -> AnalysedImage:
        return self._run(
            caller,
            "DetectFaces",
            lambda: self.faces.detect_faces(image),
            probes=self._sha(image),
            summary=lambda a: {"faces": len(a.faces)},
        )

    def compare_faces(
        self, caller: Caller, source: bytes, target: bytes
    ) -> tuple[Image, Image, CompareResult]:
        def summary(out: tuple[Image, Image, CompareResult]) -> dict[str, Any]:
            return {
                "target_faces": len(out[2].targets),
                "similarities": [round(m.similarity, 3) for m in out[2].matches],
            }

        return self._run(
            caller,
            "CompareFaces",
            lambda: self.faces.compare_faces(source, target),
            probes=self._sha(source, target),
            summary=summary,
        )

    # -- collections -----------------------------------------------------------------------
    def create_collection(
        self, caller: Caller, collection_id: str, tags: dict[str, str] | None = None
    ) -> Collection:
        return self._run(
            caller,
            "CreateCollection",
            lambda: self.collections.create_collection(collection_id, tags),
            collection_id=collection_id,
            summary=lambda c: {"face_model_version": c.face_model_version},
        )

    def describe_collection(self, caller: Caller, collection_id: str) -> Collection:
        return self._run(
            caller,
            "DescribeCollection",
            lambda: self.collections.describe_collection(collection_id),
            collection_id=collection_id,
            summary=lambda c: {"faces": c.face_count, "users": c.user_count},
        )

    def list_collections(
        self, caller: Caller, *, next_token: str | None = None, max_results: int = 1000
    ) -> tuple[list[Collection], str | None]:
        return self._run(
            caller,
            "ListCollections",
            lambda: self.collections.list_collections(
                next_token=next_token, max_results=max_results
            ),
            summary=lambda out: {"count": len(out[0])},
        )

    def delete_collection(self, caller: Caller, collection_id: str) -> None:
        def work() -> int:
            faces = self.collections.describe_collection(collection_id).face_count
            self.collections.delete_collection(collection_id)
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
            lambda: self.collections.tag_collection(collection_id, tags),
            collection_id=collection_id,
            summary=lambda _: {"keys": sorted(tags)},
        )

    def untag_collection(self, caller: Caller, collection_id: str, keys: list[str]) -> None:
        self._run(
            caller,
            "UntagResource",
            lambda: self.collections.untag_collection(collection_id, keys),
            collection_id=collection_id,
            summary=lambda _: {"keys": sorted(keys)},
        )

    def collection_tags(self, caller: Caller, collection_id: str) -> dict[str, str]:
        return self._run(
            caller,
            "ListTagsForResource",
            lambda: self.collections.collection_tags(collection_id),
            collection_id=collection_id,
            summary=lambda tags: {"count": len(tags)},
        )

    # -- faces -------------------------------------------------------------------------------
    def index_faces(
        self,
        caller: Caller,
        collection_id: str,
        image: bytes | AnalysedImage,
        **options: Any,
    ) -> IndexFacesResult:
        """IndexFaces of image bytes, or of an image already analysed (bulk enrolment)."""

        def work() -> IndexFacesResult:
            if isinstance(image, AnalysedImage):
                return self.collections.enrol(collection_id, image, **options)
            return self.collections.index_faces(collection_id, image, **options)

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
            probes=self._sha(image),
            summary=summary,
        )

    def list_faces(
        self, caller: Caller, collection_id: str, **options: Any
    ) -> tuple[list[StoredFace], str | None]:
        return self._run(
            caller,
            "ListFaces",
            lambda: self.collections.list_faces(collection_id, **options),
            collection_id=collection_id,
            summary=lambda out: {"count": len(out[0])},
        )

    def delete_faces(
        self, caller: Caller, collection_id: str, face_ids: list[str]
    ) -> tuple[list[str], list[dict[str, Any]]]:
        return self._run(
            caller,
            "DeleteFaces",
            lambda: self.collections.delete_faces(collection_id, face_ids),
            collection_id=collection_id,
            summary=lambda out: {"deleted": out[0], "unsuccessful": len(out[1])},
        )

    # -- searches ----------------------------------------------------------------------------
    def search_faces(
        self,
        caller: Caller,
        collection_id: str,
        face_id: str,
        *,
        max_faces: int = DEFAULT_SEARCH_MAX_FACES,
        threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
    ) -> tuple[tuple[CollectionMatch, ...], float]:
        """Matches of an enrolled face, and the effective (floored) threshold."""

        def work() -> tuple[tuple[CollectionMatch, ...], float]:
            effective = self._search_policy(caller, collection_id).effective_threshold(threshold)
            found = self.collections.search_faces(
                collection_id, face_id, max_faces=max_faces, threshold=effective
            )
            return found, effective

        return self._run(
            caller,
            "SearchFaces",
            work,
            collection_id=collection_id,
            summary=lambda out: {
                "searched_face_id": face_id,
                "requested_threshold": threshold,
                "threshold": out[1],
                "matches": _matches(out[0]),
            },
        )

    def search_faces_by_image(
        self,
        caller: Caller,
        collection_id: str,
        image: bytes | Image,
        *,
        max_faces: int = DEFAULT_SEARCH_MAX_FACES,
        threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
        quality_filter: str = "NONE",
    ) -> SearchByImageResult:
        """The result's ``threshold`` is the effective (floored) one."""

        def work() -> SearchByImageResult:
            effective = self._search_policy(caller, collection_id).effective_threshold(threshold)
            return self.collections.search_faces_by_image(
                collection_id,
                image,
                max_faces=max_faces,
                threshold=effective,
                quality_filter=quality_filter,
            )

        return self._run(
            caller,
            "SearchFacesByImage",
            work,
            collection_id=collection_id,
            probes=self._sha(image),
            summary=lambda r: {
                "requested_threshold": threshold,
                "threshold": r.threshold,
                "matches": _matches(r.matches),
            },
        )

    # -- users -------------------------------------------------------------------------------
    def create_user(
        self, caller: Caller, collection_id: str, user_id: str, token: str | None = None
    ) -> None:
        self._run(
            caller,
            "CreateUser",
            lambda: self.users.create_user(collection_id, user_id, token),
            collection_id=collection_id,
            summary=lambda _: {"user_id": user_id},
        )

    def delete_user(
        self, caller: Caller, collection_id: str, user_id: str, token: str | None = None
    ) -> None:
        self._run(
            caller,
            "DeleteUser",
            lambda: self.users.delete_user(collection_id, user_id, token),
            collection_id=collection_id,
            summary=lambda _: {"user_id": user_id},
        )

    def list_users(
        self, caller: Caller, collection_id: str, **options: Any
    ) -> tuple[list[User], str | None]:
        return self._run(
            caller,
            "ListUsers",
            lambda: self.users.list_users(collection_id, **options),
            collection_id=collection_id,
            summary=lambda out: {"count": len(out[0])},
        )

    def associate_faces(
        self,
        caller: Caller,
        collection_id: str,
        user_id: str,
        face_ids: list[str],
        user_match_threshold: float = DEFAULT_ASSOCIATE_THRESHOLD,
        client_request_token: str | None = None,
    ) -> AssociationOutcome:
        return self._run(
            caller,
            "AssociateFaces",
            lambda: self.users.associate_faces(
                collection_id, user_id, face_ids, user_match_threshold, client_request_token
            ),
            collection_id=collection_id,
            summary=lambda o: {
                "user_id": user_id,
                "associated": o.faces,
                "unsuccessful": len(o.unsuccessful),
            },
        )

    def disassociate_faces(
        self,
        caller: Caller,
        collection_id: str,
        user_id: str,
        face_ids: list[str],
        client_request_token: str | None = None,
    ) -> AssociationOutcome:
        return self._run(
            caller,
            "DisassociateFaces",
            lambda: self.users.disassociate_faces(
                collection_id, user_id, face_ids, client_request_token
            ),
            collection_id=collection_id,
            summary=lambda o: {
                "user_id": user_id,
                "disassociated": o.faces,
                "unsuccessful": len(o.unsuccessful),
            },
        )

    def search_users(
        self,
        caller: Caller,
        collection_id: str,
        *,
        user_id: str | None = None,
        face_id: str | None = None,
        user_match_threshold: float = DEFAULT_USER_MATCH_THRESHOLD,
        max_users: int = DEFAULT_MAX_USERS,
    ) -> UserSearchResult:
        """The result's ``threshold`` is the effective (floored) one."""

        def work() -> UserSearchResult:
            policy = self._search_policy(caller, collection_id)
            return self.users.search_users(
                collection_id,
                user_id=user_id,
                face_id=face_id,
                user_match_threshold=policy.effective_threshold(user_match_threshold),
                max_users=max_users,
            )

        return self._run(
            caller,
            "SearchUsers",
            work,
            collection_id=collection_id,
            summary=lambda r: {
                "searched_user_id": user_id,
                "searched_face_id": face_id,
                "requested_threshold": user_match_threshold,
                "threshold": r.threshold,
                "matches": [[m.user.user_id, round(m.similarity, 3)] for m in r.matches],
            },
        )

    def search_users_by_image(
        self,
        caller: Caller,
        collection_id: str,
        image: bytes | Image,
        *,
        user_match_threshold: float = DEFAULT_USER_MATCH_THRESHOLD,
        max_users: int = DEFAULT_MAX_USERS,
        quality_filter: str = "NONE",
    ) -> UserSearchByImageResult:
        """The result's ``threshold`` is the effective (floored) one."""

        def work() -> UserSearchByImageResult:
            policy = self._search_policy(caller, collection_id)
            return self.users.search_users_by_image(
                collection_id,
                image,
                user_match_threshold=policy.effective_threshold(user_match_threshold),
                max_users=max_users,
                quality_filter=quality_filter,
            )

        return self._run(
            caller,
            "SearchUsersByImage",
            work,
            collection_id=collection_id,
            probes=self._sha(image),
            summary=lambda r: {
                "requested_threshold": user_match_threshold,
                "threshold": r.threshold,
                "matches": [[m.user.user_id, round(m.similarity, 3)] for m in r.matches],
                "searched_face": r.searched_face is not None,
            },
        )

    # -- video -------------------------------------------------------------------------------
    def start_video_job(
        self,
        caller: Caller,
        kind: str,
        video: dict[str, Any],
        *,
        collection_id: str | None = None,
        threshold: float | None = None,
        job_tag: str | None = None,
        client_token: str | None = None,
        notification: dict[str, Any] | None = None,
    ) -> JobRow:
        """Queue a stored-video job (``kind``: faces, search, persons). A face search applies
        the collection's policy now: purpose required, threshold raised to the floor.
        ``notification`` is Rekognition's NotificationChannel (completion message)."""
        operation = {"faces": "StartFaceDetection", "search": "StartFaceSearch"}.get(
            kind, "StartPersonTracking"
        )

        def work() -> JobRow:
            effective = threshold
            if kind == "search" and collection_id is not None:
                policy = self._search_policy(caller, collection_id)
                requested = DEFAULT_FACE_MATCH_THRESHOLD if threshold is None else threshold
                effective = policy.effective_threshold(requested)
            return self.video.start_job(
                caller,
                kind,
                video,
                collection_id=collection_id,
                threshold=effective,
                job_tag=job_tag,
                client_token=client_token,
                notification=notification,
            )

        return self._run(
            caller,
            operation,
            work,
            collection_id=collection_id,
            summary=lambda job: {
                "job_id": job.job_id,
                "video": job.video,
                "requested_threshold": threshold,
                "threshold": job.params.get("threshold"),
            },
        )

    def get_video_job(
        self, caller: Caller, kind: str | None, job_id: str, **options: Any
    ) -> JobPage:
        """A page of a job's results; ``kind`` None (the native API) takes the job's own."""
        if kind is None:
            kind = self.video.kind_of(job_id)
        operation = {"faces": "GetFaceDetection", "search": "GetFaceSearch"}.get(
            kind, "GetPersonTracking"
        )
        return self._run(
            caller,
            operation,
            lambda: self.video.get_job(job_id, kind, **options),
            summary=lambda page: {
                "job_id": job_id,
                "status": page.job.status,
                "items": len(page.items),
            },
        )

    def create_stream_processor(
        self,
        caller: Caller,
        name: str,
        source: str,
        *,
        collection_id: str,
        threshold: float | None = None,
        outputs: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> ProcessorRow:
        return self._run(
            caller,
            "CreateStreamProcessor",
            lambda: self.video.create_processor(
                name,
                source,
                collection_id=collection_id,
                threshold=threshold,
                outputs=outputs or {},
                extra=extra,
            ),
            collection_id=collection_id,
            summary=lambda row: {
                "name": name,
                "source": row.source,
                "outputs": row.outputs,
                "threshold": row.settings["threshold"],
            },
        )

    def describe_stream_processor(
        self, caller: Caller, name: str
    ) -> tuple[ProcessorRow, dict[str, Any]]:
        return self._run(
            caller,
            "DescribeStreamProcessor",
            lambda: self.video.describe_processor(name),
            summary=lambda out: {"name": name, "status": out[0].status},
        )

    def list_stream_processors(
        self, caller: Caller, *, next_token: str | None = None, max_results: int = 1000
    ) -> tuple[list[ProcessorRow], str | None]:
        return self._run(
            caller,
            "ListStreamProcessors",
            lambda: self.video.list_processors(next_token=next_token, max_results=max_results),
            summary=lambda out: {"count": len(out[0])},
        )

    def update_stream_processor(self, caller: Caller, name: str, **changes: Any) -> ProcessorRow:
        return self._run(
            caller,
            "UpdateStreamProcessor",
            lambda: self.video.update_processor(name, **changes),
            summary=lambda row: {"name": name, "threshold": row.settings.get("threshold")},
        )

    def delete_stream_processor(self, caller: Caller, name: str) -> None:
        self._run(
            caller,
            "DeleteStreamProcessor",
            lambda: self.video.delete_processor(name),
            summary=lambda _: {"name": name},
        )

    def start_stream_processor(self, caller: Caller, name: str) -> str:
        """Start watching; the collection's policy applies (purpose, threshold floor), and
        every match is ledgered with this caller, purpose and case reference."""
        collection: list[str] = []

        def work() -> str:
            row = self.video.store.processor(name)
            collection_id = row.settings["collection_id"]
            collection.append(collection_id)
            policy = self._search_policy(caller, collection_id)
            effective = policy.effective_threshold(float(row.settings["threshold"]))
            return self.video.start_processor(caller, name, threshold=effective)

        return self._run(
            caller,
            "StartStreamProcessor",
            work,
            summary=lambda session: {
                "name": name,
                "session_id": session,
                "collection_id": collection[0] if collection else None,
            },
        )

    def stream_events(self, caller: Caller, name: str) -> Any:
        """A live subscription to a processor's matches from now on (a context manager; an
        empty name: every processor's); nothing earlier is replayed. Watching is a search:
        it needs a purpose and a case reference, and is ledgered with them."""
        collection: list[str] = []

        def work() -> Any:
            if name:
                collection.append(self.video.store.processor(name).settings["collection_id"])
            if not (caller.purpose and caller.case_reference):
                raise AccessDeniedError(
                    "watching stream matches is a search: state a purpose and a case reference "
                    "(the headers X-FaceLedger-Purpose and X-FaceLedger-Case, the query "
                    "parameters purpose and case_reference, or --purpose and --case)"
                )
            return self.video.hub.subscribe(name or None)

        return self._run(
            caller,
            "GetStreamEvents",
            work,
            summary=lambda _: {
                "name": name,
                "collection_id": collection[0] if collection else None,
            },
        )

    def stop_stream_processor(self, caller: Caller, name: str) -> None:
        self._run(
            caller,
            "StopStreamProcessor",
            lambda: self.video.stop_processor(name),
            summary=lambda _: {"name": name},
        )

    # -- maintenance (the server runs it periodically; `faceledger maintain` by hand) ----------
    def maintain(self) -> dict[str, Any]:
        """Purge faces past each collection's retention (one ledger record per collection that
        lost faces, by the ``system`` principal) and save changed index snapshots."""
        self.video.requeue_unclaimed()  # jobs of a server process that died
        system = Caller(Principal("system:retention", (), "SYSTEM"), source="system", request_id="")
        purged: dict[str, int] = {}
        token: str | None = None
        while True:
            page, token = self.collections.list_collections(next_token=token, max_results=1000)
            for collection in page:
                cid = collection.collection_id
                days = self.policy_of(cid).retention_days
                if days is None:
                    continue
                try:
                    deleted = self.collections.purge_expired(cid, days)
                except FaceLedgerError as exc:
                    self.ledger.append(
                        AuditEvent.of(
                            system,
                            "PurgeExpiredFaces",
                            outcome=exc.code,
                            collection_id=cid,
                            result={"retention_days": days, "message": exc.message[:300]},
                        )
                    )
                    continue
                if deleted:
                    purged[cid] = len(deleted)
                    self.ledger.append(
                        AuditEvent.of(
                            system,
                            "PurgeExpiredFaces",
                            collection_id=cid,
                            result={"retention_days": days, "deleted": deleted},
                        )
                    )
            if not token:
                break
        self.collections.indexes.refresh_all()  # other replicas' deletions leave this one too
        self.collections.indexes.save_all(only_if_changed=True)
        return {"purged": purged}

    # -- keys --------------------------------------------------------------------------------
    def create_key(
        self,
        caller: Caller,
        principal: str,
        roles: list[str],
        description: str = "",
        *,
        rate_per_second: float | None = None,
        burst: int | None = None,
    ) -> tuple[AccessKey, str]:
        return self._run(
            caller,
            "CreateKey",
            lambda: self.keys.create(
                principal, roles, description, rate_per_second=rate_per_second, burst=burst
            ),
            summary=lambda out: {
                "key_id": out[0].key_id,
                "principal": principal,
                "roles": list(out[0].roles),
                "rate_per_second": rate_per_second,
                "burst": burst,
            },
        )

    def list_keys(self, caller: Caller, include_revoked: bool = False) -> list[AccessKey]:
        return self._run(
            caller,
            "ListKeys",
            lambda: self.keys.list(include_revoked=include_revoked),
            summary=lambda keys: {"count": len(keys)},
        )

    def revoke_key(self, caller: Caller, key_id: str) -> AccessKey:
        return self._run(
            caller,
            "RevokeKey",
            lambda: self.keys.revoke(key_id),
            summary=lambda key: {"key_id": key.key_id, "principal": key.principal},
        )
