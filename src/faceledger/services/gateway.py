"""``Gateway``: every verb, called on behalf of someone, checked and written to the ledger.

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

**No biometric change without a record.** A verb that adds or removes faces or their
associations (``BIOMETRIC_CHANGES``) first appends an *intent* record (operation, collection,
principal, purpose, image hashes; ``phase`` "intent"); if that fails, nothing changes. The store
then logs each face it adds or deletes under the intent's id (``CURRENT_INTENT``), and the
outcome record (``phase`` "outcome") closes the intent. An intent left open — the process was
killed, or the outcome could not be written — is *reconciled* (``reconcile``: at start, and by
the maintenance pass) once its process is gone: a ``phase`` "recovered" record, attributed to
the original caller, states what the store's change log shows was actually committed. Both
backends work this way (on PostgreSQL the store and the ledger are separate transactions too,
so one mechanism serves both).

One door: the inner services (store, ledger, keys, objects, video) are private attributes, and
adapters (``api/``, ``cli/``; ruff's SLF001 holds them to it) reach data only through verbs
that record: reading, verifying, exporting and checkpointing the ledger included. What they may
use without a record is stateless (decoding the caller's own upload, shaping a result, the
pack's calibration table, model health) or authentication (``authentication``).
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from faceledger.audit.core import ChainLedger
from faceledger.audit.intents import OpenIntent, owner_alive, process_owner
from faceledger.audit.ledger import LedgerEntry
from faceledger.config import Settings
from faceledger.domain.audit import CURRENT_INTENT, AuditEvent, Caller
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
    ResourceNotFoundError,
)
from faceledger.domain.faces import AnalysedImage, CompareResult, Image
from faceledger.domain.labels import LabelsResult, TextResult
from faceledger.domain.policy import (
    MAX_CASE_CHARS,
    MAX_PURPOSE_CHARS,
    CollectionPolicy,
)
from faceledger.domain.principals import ROLES, Principal
from faceledger.domain.scale import FLOOR_FROM_POLICY, FLOOR_FROM_SIZE, SearchScale
from faceledger.inference.scale import MIN_FLOOR, TARGET_FPIR
from faceledger.services.collections import (
    DEFAULT_FACE_MATCH_THRESHOLD,
    DEFAULT_SEARCH_MAX_FACES,
    SearchByImageResult,
)
from faceledger.services.faces import FaceService
from faceledger.services.keys import AccessKey, KeyService
from faceledger.services.labels import LabelFilters, Region, WordFilter
from faceledger.services.users import (
    DEFAULT_ASSOCIATE_THRESHOLD,
    DEFAULT_MAX_USERS,
    DEFAULT_USER_MATCH_THRESHOLD,
    AssociationOutcome,
    UserSearchByImageResult,
    UserSearchResult,
)
from faceledger.services.video import JobPage
from faceledger.services.wiring import Services, build_services, ledger_record
from faceledger.store.records import JobRow, ProcessorRow

if TYPE_CHECKING:
    from faceledger.audit.verify import Progress, VerifyReport
    from faceledger.inference.calibration import Calibration

R = TypeVar("R")
logger = logging.getLogger(__name__)

# Verbs that add or remove faces or their associations: an intent record precedes the change.
BIOMETRIC_CHANGES = frozenset(
    {
        "IndexFaces",
        "DeleteFaces",
        "DeleteCollection",
        "AssociateFaces",
        "DisassociateFaces",
        "DeleteUser",
        "PurgeExpiredFaces",
    }
)
# Changes whose faces the store's change log shows (the others are reconciled as "Unknown").
_LOGGED_CHANGES = frozenset({"IndexFaces", "DeleteFaces", "PurgeExpiredFaces"})
# An intent written on another host is reconciled once it is this old (its process may live).
INTENT_TIMEOUT_S = 900.0

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


def _ids(face_ids: Any) -> list[str]:
    """FaceIds as an intent record names them (strings only, at most 4,096)."""
    if not isinstance(face_ids, list | tuple):
        return []
    return [f for f in face_ids if isinstance(f, str)][:MAX_LEDGERED_MATCHES]


def _filters(filters: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in sorted(filters.items()) if value is not None}


def _matches(matches: tuple[CollectionMatch, ...]) -> list[list[Any]]:
    return [[m.face.face_id, round(m.similarity, 3)] for m in matches[:MAX_LEDGERED_MATCHES]]


def _scale_summary(scale: SearchScale | None) -> dict[str, Any]:
    """A search's scale, for its ledger record (rates rounded; no biometrics)."""
    if scale is None:
        return {}
    return {
        "face_count": scale.face_count,
        "floor": scale.floor,
        "floor_source": scale.floor_source,
        "fpir": None if scale.fpir is None else float(f"{scale.fpir:.3g}"),
        "hit_rate": None if scale.hit_rate is None else round(scale.hit_rate, 4),
        "fmr": None if scale.fmr is None else float(f"{scale.fmr:.3g}"),
        "target_reachable": scale.target_reachable,
    }


@dataclass(frozen=True)
class FacePage:
    """A page of ListFaces: the faces, the next page's token, the collection's FaceModelVersion."""

    faces: list[StoredFace]
    next_token: str | None
    face_model_version: str


@dataclass(frozen=True)
class FaceSearch:
    """SearchFaces: the matches, the effective (floored) threshold, the FaceModelVersion."""

    matches: tuple[CollectionMatch, ...]
    threshold: float
    face_model_version: str
    scale: SearchScale | None = None  # what a candidate means at the collection's size


class Authentication:
    """What adapters may ask of the key store: who signed a request, and whether that key is
    within its rate. Creating, listing and revoking keys are gateway verbs."""

    def __init__(self, keys: KeyService) -> None:
        self._keys = keys

    def credentials(self, key_id: str) -> tuple[Principal, str]:
        """The principal and secret of an active key, for SigV4 verification."""
        return self._keys.credentials(key_id)

    def admit(self, key_id: str) -> None:
        """Spend one of the key's tokens (ThrottlingError when over its rate)."""
        self._keys.admit(key_id)

    def authenticate_bearer(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer <key_id>:<secret>`` header."""
        return self._keys.authenticate_bearer(authorization)


class Gateway:
    """The accountable service: every verb, authorised, policy-checked and ledgered."""

    def __init__(
        self,
        settings: Settings,
        *,
        faces: FaceService | None = None,
        ledger: ChainLedger | None = None,
        services: Services | None = None,
    ) -> None:
        """The gateway over ``services`` (``services/container.py``: ``build_gateway``);
        without them it builds its own with the same builders (``faces``, ``ledger``: parts
        to share instead of building them)."""
        self.settings = settings
        parts = services or build_services(settings, faces=faces, ledger=ledger)
        self._services = parts
        self._faces = parts.faces
        self._labels = parts.labels
        self._collections = parts.collections
        self._users = parts.users
        self._keys = parts.keys
        self._objects = parts.objects
        self._ledger = parts.ledger
        self._video = parts.video
        # Ledgers what happens after the call that caused it, for the caller who started it.
        self._record = ledger_record(self._ledger)
        self._in_flight: set[str] = set()  # this process's intents whose call still runs
        self._in_flight_lock = threading.Lock()
        try:
            self.reconcile()
        except FaceLedgerError as exc:  # e.g. a bent ledger: `audit verify` must still run
            logger.error("could not reconcile open intents: %s", exc.message)

    def close(self) -> None:
        """Stop the services and close the backends (stores, ledger, the shared pool)."""
        self._services.close()

    def open_ledger(self) -> None:
        """Load the ledger key and verify the ledger since its last signed checkpoint; a
        server calls it at start and refuses to serve a bent ledger (``LedgerTamperedError``
        saying why)."""
        self._ledger.open()

    # -- intents ---------------------------------------------------------------------------
    def _announce(
        self,
        caller: Caller,
        operation: str,
        collection_id: str | None,
        probes: tuple[str, ...],
        about: dict[str, Any] | None = None,
    ) -> str:
        """Append the intent record of a biometric change (``about``: the FaceIds or user it
        names) and return its id; ``LedgerError``
        (then nothing may change). The caller calls ``_settled`` once the outcome is written
        (or could not be)."""
        intent_id = uuid.uuid4().hex
        with self._in_flight_lock:
            self._in_flight.add(intent_id)
        try:
            self._ledger.append(
                AuditEvent.of(
                    caller,
                    operation,
                    outcome="pending",
                    collection_id=collection_id,
                    probe_sha256=probes,
                    result=about,
                    phase="intent",
                    intent_id=intent_id,
                )
            )
        except BaseException:
            self._settled(intent_id)
            raise
        return intent_id

    def _settled(self, intent_id: str) -> None:
        with self._in_flight_lock:
            self._in_flight.discard(intent_id)

    def reconcile(self) -> list[str]:
        """Record what was committed under every intent left without an outcome whose call
        is over (its process is gone, or it is ours and no longer running; intents of another
        host once ``INTENT_TIMEOUT_S`` old). Returns the intent ids reconciled."""
        done = []
        me = process_owner()
        for intent in self._ledger.open_intents():
            with self._in_flight_lock:
                running = intent.intent_id in self._in_flight
            if intent.owner == me:
                if running:
                    continue
            else:
                alive = owner_alive(intent.owner)
                if alive or (alive is None and time.time() - intent.time < INTENT_TIMEOUT_S):
                    continue
            self._recover(intent)
            done.append(intent.intent_id)
        return done

    def _recover(self, intent: OpenIntent) -> None:
        entry = self._ledger.entry_at(intent.seq)
        announced = entry.event if entry is not None else None
        if announced is None or announced.intent_id != intent.intent_id:
            logger.error("open intent %s names record %s, which is not it", intent, intent.seq)
            return
        store = self._collections.store
        changes = store.intent_changes(intent.intent_id)
        deleted: list[str] = []
        named = [f for f in announced.result.get("face_ids", []) if isinstance(f, str)]
        if any(c.deleted for c in changes) and announced.collection_id is not None:
            # the change log keeps no id of a deleted face: the intent named them
            try:
                present: Any = store.faces_by_id(announced.collection_id, named)
            except ResourceNotFoundError:  # the collection went since
                present = {}
            deleted = [f for f in named if f not in present]
        result: dict[str, Any] = {
            "recovered": True,
            "intent_seq": intent.seq,
            "indexed": [c.face_id for c in changes if not c.deleted and c.face_id],
            "deleted": deleted,
        }
        operation = announced.operation
        if operation in _LOGGED_CHANGES:
            outcome = "ok" if changes else "NoChange"
        elif operation == "DeleteCollection" and announced.collection_id is not None:
            try:
                self._collections.store.face_model_version(announced.collection_id)
                outcome = "NoChange"
            except ResourceNotFoundError:
                outcome = "ok"
        else:
            outcome = "Unknown"  # association changes are not in the change log
        self._ledger.append(
            AuditEvent(
                **{
                    **announced.__dict__,
                    "outcome": outcome,
                    "result": result,
                    "phase": "recovered",
                }
            )
        )
        logger.warning(
            "recovered %s (intent record %s) of %s: %s",
            operation,
            intent.seq,
            announced.principal,
            outcome,
        )

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
        intent: dict[str, Any] | None = None,
    ) -> R:
        """Authorise, run ``work`` and ledger its outcome (see the module docstring);
        ``intent``: what a biometric change's intent record says it is about to do."""
        intent_id: str | None = None

        def record(outcome: str, result: dict[str, Any]) -> None:
            event = AuditEvent.of(
                caller,
                operation,
                outcome=outcome,
                collection_id=collection_id,
                probe_sha256=probes,
                result=result,
                phase="outcome" if intent_id else None,
                intent_id=intent_id,
            )
            self._ledger.append(event)

        self.authorise(caller, operation, collection_id=collection_id, probes=probes)
        try:
            try:
                check_purpose(caller.purpose, caller.case_reference)
                if operation in BIOMETRIC_CHANGES:
                    intent_id = self._announce(caller, operation, collection_id, probes, intent)
                    token = CURRENT_INTENT.set(intent_id)
                    try:
                        value = work()
                    finally:
                        CURRENT_INTENT.reset(token)
                else:
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
        finally:
            if intent_id is not None:  # outcome written, or left for ``reconcile``
                self._settled(intent_id)

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
        self._ledger.append(
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

    def record_refusal(
        self,
        caller: Caller,
        operation: str,
        collection_id: str | None,
        code: str,
        message: str,
    ) -> None:
        """Ledger a call refused before any verb ran: the adapter rejected the request itself
        (a body or parameters that fail validation, an unknown operation) once it knew who
        asked. ``code`` is the error code answered, ``message`` its text (cut)."""
        self._ledger.append(
            AuditEvent.of(
                caller,
                operation,
                outcome=code,
                collection_id=collection_id,
                result={"message": message[:300]},
            )
        )

    @staticmethod
    def _sha(*images: bytes | Image | AnalysedImage) -> tuple[str, ...]:
        out = []
        for image in images:
            if isinstance(image, Image | AnalysedImage):
                out.append(image.sha256)
            else:
                out.append(hashlib.sha256(image).hexdigest())
        return tuple(out)

    # -- what adapters may use without a record (stateless, or authentication) --------------
    @property
    def authentication(self) -> Authentication:
        return Authentication(self._keys)

    @property
    def calibration(self) -> Calibration:
        """The pack's published Similarity ↔ false-match-rate table."""
        return self._faces.engine.calibration

    def health(self) -> dict[str, Any]:
        """Pack name, FaceModelVersion and whether the models are loaded (never loads)."""
        return self._faces.health()

    def load_models(self) -> None:
        """Verify and load the default pack now (the first request is then fast)."""
        self._faces.load()

    def close_models(self) -> None:
        self._faces.close()

    def decode_image(self, data: bytes) -> Image:
        """Decode image bytes the caller sent (with this installation's limits), e.g. to draw
        the boxes of a verb that has just accepted the same bytes."""
        return self._faces.image(data)

    def read_image_file(self, path: os.PathLike[str]) -> bytes:
        """A local image file's bytes, refused over the size limit (the CLI's photos)."""
        return self._faces.read_file(path)

    def detect_result(self, analysed: AnalysedImage, *, max_faces: int) -> dict[str, Any]:
        """The native JSON of a DetectFaces result."""
        return self._faces.detect_result(analysed, max_faces=max_faces)

    def compare_result(
        self, source: Image, target: Image, result: CompareResult, **options: Any
    ) -> dict[str, Any]:
        """The native JSON of a CompareFaces result."""
        return self._faces.compare_result(source, target, result, **options)

    def analyse_files(self, paths: Iterable[Path]) -> Generator[tuple[Path, Any], None, None]:
        """Analyse local image files on worker processes for a bulk enrolment: yields each
        path with its ``AnalysedImage`` or ``FaceLedgerError``. Nothing is stored or ledgered
        until a result is passed to ``index_faces``."""
        from faceledger.inference.imaging import load_image

        engine = self._faces.engine
        try:
            yield from engine.analyse_many(list(paths), loader=load_image)
        finally:
            engine.close()

    def read_image_object(
        self,
        caller: Caller,
        operation: str,
        bucket: str,
        name: str,
        version: str | None = None,
        *,
        collection_id: str | None = None,
    ) -> bytes:
        """An ``Image.S3Object``'s bytes for ``operation``. The verb that receives them records
        their SHA-256; a failure to read them is recorded here (the verb never runs)."""
        try:
            return self._objects.read(bucket, name, version)
        except FaceLedgerError as exc:
            self.record_refusal(caller, operation, collection_id, exc.code, exc.message)
            raise

    def run_video_job(self, job_id: str) -> None:
        """Run a queued stored-video job in this process now (the CLI); its start was ledgered
        by ``start_video_job`` and its end is ledgered by the video service."""
        self._video.run_now(job_id)

    def start_video_workers(self) -> None:
        """Start the job workers (and re-queue jobs a previous run left unfinished)."""
        self._video.start_workers()

    # -- the ledger itself ---------------------------------------------------------------------
    @property
    def ledger_location(self) -> str:
        return str(self._ledger.location)

    @property
    def ledger_witness_file(self) -> Path:
        return self._ledger.witness_file

    def read_ledger(
        self,
        caller: Caller,
        *,
        limit: int | None = None,
        newest_first: bool = False,
        **filters: Any,
    ) -> list[LedgerEntry]:
        """Records matching ``filters`` (those of ``Ledger.entries``). The read is itself
        ledgered (ReadLedger, with its filters and count) after it."""
        return self._run(
            caller,
            "ReadLedger",
            lambda: list(self._ledger.entries(limit=limit, newest_first=newest_first, **filters)),
            collection_id=filters.get("collection_id"),
            summary=lambda rows: {"filters": _filters(filters), "count": len(rows)},
        )

    def export_ledger(self, caller: Caller, out: TextIO, fmt: str = "jsonl", **filters: Any) -> int:
        """Write every matching record, oldest first, to ``out`` as ``fmt`` (jsonl, csv);
        returns how many. Ledgered as ExportLedger."""
        from faceledger.audit.export import write

        return self._run(
            caller,
            "ExportLedger",
            lambda: write(self._ledger.entries(**filters), out, fmt),
            collection_id=filters.get("collection_id"),
            summary=lambda count: {"filters": _filters(filters), "format": fmt, "count": count},
        )

    def verify_ledger(self, caller: Caller, *, progress: Progress | None = None) -> VerifyReport:
        """Check the chain, the checkpoints' signatures and the witness; ledgered as
        VerifyLedger with the verdict. When the ledger is broken and refuses even that record,
        the report is still returned: the operator must learn why."""
        reports: list[VerifyReport] = []

        def work() -> VerifyReport:
            reports.append(self._ledger.verify(progress=progress))
            return reports[0]

        try:
            return self._run(
                caller,
                "VerifyLedger",
                work,
                summary=lambda r: {
                    "intact": r.ok,
                    "records": r.records,
                    "first_bad_seq": r.first_bad_seq,
                },
            )
        except LedgerError:
            if reports and not reports[0].ok:
                return reports[0]
            raise

    def checkpoint_ledger(self, caller: Caller) -> LedgerEntry:
        """Append a signed checkpoint now and move the witness; ledgered as CheckpointLedger."""
        return self._run(
            caller,
            "CheckpointLedger",
            self._ledger.checkpoint,
            summary=lambda entry: {"checkpoint_seq": entry.seq},
        )

    def rotate_ledger_key(self, caller: Caller) -> str:
        """Rotate the ledger key (``ChainLedger.rotate_key``); returns the new key id. Ledgered
        as RotateLedgerKey (the rotation record itself follows it)."""
        return self._run(
            caller,
            "RotateLedgerKey",
            lambda: self._ledger.rotate_key(caller.principal.name),
            summary=lambda new_id: {"new_key_id": new_id},
        )

    @property
    def ledger_key_file(self) -> Path:
        return self._ledger.key_file

    # -- policy ----------------------------------------------------------------------------
    def _policy_of(self, collection_id: str) -> CollectionPolicy:
        """The collection's policy, or the installation's default when it has none."""
        stored = self._collections.store.policy(collection_id)
        if stored is not None:
            return CollectionPolicy.from_json(stored)
        return CollectionPolicy(
            require_purpose=self.settings.require_purpose,
            threshold_floor=self.settings.default_threshold_floor,
        )

    def size_floor(self, collection_id: str) -> tuple[float, bool, int]:
        """(the floor the collection's size calls for, whether it keeps FPIR within the
        target, the face count); 80 and unknown reach when the pack has no open-set table."""
        faces = self._collections.indexes.face_count(collection_id)
        table = self._collections.faces.engine.scale
        if table is None:
            return MIN_FLOOR, True, faces
        floor, reachable = table.floor(faces)
        return floor, reachable, faces

    def search_scale(
        self, collection_id: str, policy: CollectionPolicy, requested: float
    ) -> SearchScale:
        """The effective threshold of a search and what a candidate means at that threshold
        and the collection's current size."""
        size_floor, reachable, faces = self.size_floor(collection_id)
        engine = self._collections.faces.engine
        table = engine.scale
        floor = policy.floor(size_floor)
        threshold = max(float(requested), floor)
        estimate = table.estimate(threshold, faces) if table is not None else None
        return SearchScale(
            face_count=faces,
            threshold=threshold,
            floor=floor,
            floor_source=FLOOR_FROM_POLICY if policy.floor_pinned else FLOOR_FROM_SIZE,
            target_fpir=table.target_fpir if table is not None else TARGET_FPIR,
            target_reachable=reachable,
            fpir=None if estimate is None else estimate.fpir,
            fpir_upper=None if estimate is None else estimate.fpir_upper,
            hit_rate=None if estimate is None else estimate.hit_rate,
            fmr=engine.calibration.false_match_rate(threshold),
        )

    def _effective(self, policy: CollectionPolicy, collection_id: str, requested: float) -> float:
        if policy.floor_pinned:
            return policy.effective_threshold(requested)
        return policy.effective_threshold(requested, self.size_floor(collection_id)[0])

    def _search_policy(self, caller: Caller, collection_id: str) -> CollectionPolicy:
        policy = self._policy_of(collection_id)
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
            lambda: self._policy_of(collection_id),
            collection_id=collection_id,
            summary=lambda p: {"policy": p.to_json()},
        )

    def put_policy(
        self, caller: Caller, collection_id: str, policy: CollectionPolicy
    ) -> CollectionPolicy:
        def work() -> CollectionPolicy:
            self._collections.describe_collection(collection_id)
            self._collections.store.set_policy(collection_id, policy.to_json())
            return policy

        return self._run(
            caller,
            "PutCollectionPolicy",
            work,
            collection_id=collection_id,
            summary=lambda p: {"policy": p.to_json()},
        )

    # -- images without a collection -----------------------------------------------------
    def detect_faces(self, caller: Caller, image: bytes | Image) -> AnalysedImage:
        return self._run(
            caller,
            "DetectFaces",
            lambda: self._faces.detect_faces(image),
            probes=self._sha(image),
            summary=lambda a: {"faces": len(a.faces)},
        )

    def compare_faces(
        self, caller: Caller, source: bytes | Image, target: bytes | Image
    ) -> tuple[Image, Image, CompareResult]:
        def summary(out: tuple[Image, Image, CompareResult]) -> dict[str, Any]:
            return {
                "target_faces": len(out[2].targets),
                "similarities": [round(m.similarity, 3) for m in out[2].matches],
            }

        return self._run(
            caller,
            "CompareFaces",
            lambda: self._faces.compare_faces(source, target),
            probes=self._sha(source, target),
            summary=summary,
        )

    # -- objects and text (no collection; the ledger keeps counts and names, never the
    # -- text read) ------------------------------------------------------------------------
    def detect_labels(
        self,
        caller: Caller,
        image: bytes | Image,
        *,
        max_labels: int | None = None,
        min_confidence_pct: float | None = None,
        features: tuple[str, ...] = ("GENERAL_LABELS",),
        filters: LabelFilters | None = None,
        max_dominant_colours: int | None = None,
    ) -> LabelsResult:
        options: dict[str, Any] = {"features": features, "filters": filters}
        if max_labels is not None:
            options["max_labels"] = max_labels
        if min_confidence_pct is not None:
            options["min_confidence_pct"] = min_confidence_pct
        if max_dominant_colours is not None:
            options["max_dominant_colours"] = max_dominant_colours

        def summary(out: LabelsResult) -> dict[str, Any]:
            return {
                "labels": [label.name for label in out.labels][:100],
                "instances": sum(len(label.instances) for label in out.labels),
                "label_model_version": out.label_model_version,
            }

        return self._run(
            caller,
            "DetectLabels",
            lambda: self._labels.detect_labels(image, **options),
            probes=self._sha(image),
            summary=summary,
        )

    def detect_text(
        self,
        caller: Caller,
        image: bytes | Image,
        *,
        word_filter: WordFilter | None = None,
        regions: tuple[Region, ...] = (),
    ) -> TextResult:
        def summary(out: TextResult) -> dict[str, Any]:
            kinds = [item.kind for item in out.items]
            return {"lines": kinds.count("LINE"), "words": kinds.count("WORD")}

        return self._run(
            caller,
            "DetectText",
            lambda: self._labels.detect_text(image, word_filter=word_filter, regions=regions),
            probes=self._sha(image),
            summary=summary,
        )

    # -- collections -----------------------------------------------------------------------
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
        **options: Any,
    ) -> IndexFacesResult:
        """IndexFaces of image bytes, or of an image already analysed (bulk enrolment)."""

        def work() -> IndexFacesResult:
            if isinstance(image, AnalysedImage):
                return self._collections.enrol(collection_id, image, **options)
            return self._collections.index_faces(collection_id, image, **options)

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
    ) -> tuple[list[str], list[dict[str, Any]]]:
        return self._run(
            caller,
            "DeleteFaces",
            lambda: self._collections.delete_faces(collection_id, face_ids),
            collection_id=collection_id,
            summary=lambda out: {"deleted": out[0], "unsuccessful": len(out[1])},
            intent={"face_ids": _ids(face_ids)},
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
    ) -> FaceSearch:
        """Matches of an enrolled face, the effective (floored) threshold, and the scale."""

        def work() -> FaceSearch:
            policy = self._search_policy(caller, collection_id)
            scale = self.search_scale(collection_id, policy, threshold)
            found = self._collections.search_faces(
                collection_id, face_id, max_faces=max_faces, threshold=scale.threshold
            )
            version = self._collections.store.face_model_version(collection_id)
            return FaceSearch(found, scale.threshold, version, scale)

        return self._run(
            caller,
            "SearchFaces",
            work,
            collection_id=collection_id,
            summary=lambda out: {
                "searched_face_id": face_id,
                "requested_threshold": threshold,
                "threshold": out.threshold,
                "matches": _matches(out.matches),
                "scale": _scale_summary(out.scale),
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
            policy = self._search_policy(caller, collection_id)
            scale = self.search_scale(collection_id, policy, threshold)
            result = self._collections.search_faces_by_image(
                collection_id,
                image,
                max_faces=max_faces,
                threshold=scale.threshold,
                quality_filter=quality_filter,
            )
            return replace(result, scale=scale)

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
                "scale": _scale_summary(r.scale),
            },
        )

    # -- users -------------------------------------------------------------------------------
    def create_user(
        self, caller: Caller, collection_id: str, user_id: str, token: str | None = None
    ) -> None:
        self._run(
            caller,
            "CreateUser",
            lambda: self._users.create_user(collection_id, user_id, token),
            collection_id=collection_id,
            summary=lambda _: {"user_id": user_id},
        )

    def delete_user(
        self, caller: Caller, collection_id: str, user_id: str, token: str | None = None
    ) -> None:
        self._run(
            caller,
            "DeleteUser",
            lambda: self._users.delete_user(collection_id, user_id, token),
            collection_id=collection_id,
            summary=lambda _: {"user_id": user_id},
            intent={"user_id": user_id},
        )

    def list_users(
        self, caller: Caller, collection_id: str, **options: Any
    ) -> tuple[list[User], str | None]:
        return self._run(
            caller,
            "ListUsers",
            lambda: self._users.list_users(collection_id, **options),
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
            lambda: self._users.associate_faces(
                collection_id, user_id, face_ids, user_match_threshold, client_request_token
            ),
            collection_id=collection_id,
            intent={"user_id": user_id, "face_ids": _ids(face_ids)},
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
            lambda: self._users.disassociate_faces(
                collection_id, user_id, face_ids, client_request_token
            ),
            collection_id=collection_id,
            intent={"user_id": user_id, "face_ids": _ids(face_ids)},
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
            return self._users.search_users(
                collection_id,
                user_id=user_id,
                face_id=face_id,
                user_match_threshold=self._effective(policy, collection_id, user_match_threshold),
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
            return self._users.search_users_by_image(
                collection_id,
                image,
                user_match_threshold=self._effective(policy, collection_id, user_match_threshold),
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
                effective = self._effective(policy, collection_id, requested)
            return self._video.start_job(
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
            kind = self._video.kind_of(job_id)
        operation = {"faces": "GetFaceDetection", "search": "GetFaceSearch"}.get(
            kind, "GetPersonTracking"
        )
        return self._run(
            caller,
            operation,
            lambda: self._video.get_job(job_id, kind, **options),
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
            lambda: self._video.create_processor(
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
            lambda: self._video.describe_processor(name),
            summary=lambda out: {"name": name, "status": out[0].status},
        )

    def list_stream_processors(
        self, caller: Caller, *, next_token: str | None = None, max_results: int = 1000
    ) -> tuple[list[ProcessorRow], str | None]:
        return self._run(
            caller,
            "ListStreamProcessors",
            lambda: self._video.list_processors(next_token=next_token, max_results=max_results),
            summary=lambda out: {"count": len(out[0])},
        )

    def update_stream_processor(self, caller: Caller, name: str, **changes: Any) -> ProcessorRow:
        return self._run(
            caller,
            "UpdateStreamProcessor",
            lambda: self._video.update_processor(name, **changes),
            summary=lambda row: {"name": name, "threshold": row.settings.get("threshold")},
        )

    def delete_stream_processor(self, caller: Caller, name: str) -> None:
        self._run(
            caller,
            "DeleteStreamProcessor",
            lambda: self._video.delete_processor(name),
            summary=lambda _: {"name": name},
        )

    def start_stream_processor(self, caller: Caller, name: str) -> str:
        """Start watching; the collection's policy applies (purpose, threshold floor), and
        every match is ledgered with this caller, purpose and case reference."""
        collection: list[str] = []

        def work() -> str:
            row = self._video.store.processor(name)
            collection_id = row.settings["collection_id"]
            collection.append(collection_id)
            policy = self._search_policy(caller, collection_id)
            effective = self._effective(policy, collection_id, float(row.settings["threshold"]))
            return self._video.start_processor(caller, name, threshold=effective)

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
                collection.append(self._video.store.processor(name).settings["collection_id"])
            if not (caller.purpose and caller.case_reference):
                raise AccessDeniedError(
                    "watching stream matches is a search: state a purpose and a case reference "
                    "(the headers X-FaceLedger-Purpose and X-FaceLedger-Case, the query "
                    "parameters purpose and case_reference, or --purpose and --case)"
                )
            return self._video.hub.subscribe(name or None)

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
            lambda: self._video.stop_processor(name),
            summary=lambda _: {"name": name},
        )

    # -- maintenance (the server runs it periodically; `faceledger maintain` by hand) ----------
    def maintain(self) -> dict[str, Any]:
        """Purge faces past each collection's retention (one ledger record per collection that
        lost faces, by the ``system`` principal) and save changed index snapshots."""
        self._video.requeue_unclaimed()  # jobs of a server process that died
        self.reconcile()  # intents whose outcome could not be written
        system = Caller(Principal("system:retention", (), "SYSTEM"), source="system", request_id="")
        purged: dict[str, int] = {}
        token: str | None = None
        while True:
            page, token = self._collections.list_collections(next_token=token, max_results=1000)
            for collection in page:
                cid = collection.collection_id
                days = self._policy_of(cid).retention_days
                if days is None:
                    continue
                expiring: list[str] = []
                with contextlib.suppress(FaceLedgerError, TypeError, ValueError):
                    cutoff = time.time() - float(days) * 86400.0
                    expiring = self._collections.store.faces_older_than(cid, cutoff)
                    if not expiring:
                        continue  # nothing expired: no change, no record
                about = {"face_ids": _ids(expiring)}
                intent_id = self._announce(system, "PurgeExpiredFaces", cid, (), about)
                token_var = CURRENT_INTENT.set(intent_id)
                outcome, result = "ok", dict[str, Any](retention_days=days)
                try:
                    deleted = self._collections.purge_expired(cid, days)
                    result["deleted"] = deleted
                    if deleted:
                        purged[cid] = len(deleted)
                except FaceLedgerError as exc:
                    outcome, result["message"] = exc.code, exc.message[:300]
                finally:
                    CURRENT_INTENT.reset(token_var)
                try:
                    self._ledger.append(
                        AuditEvent.of(
                            system,
                            "PurgeExpiredFaces",
                            outcome=outcome,
                            collection_id=cid,
                            result=result,
                            phase="outcome",
                            intent_id=intent_id,
                        )
                    )
                finally:
                    self._settled(intent_id)
            if not token:
                break
        self._collections.indexes.refresh_all()  # other replicas' deletions leave this one too
        self._collections.indexes.save_all(only_if_changed=True)
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
            lambda: self._keys.create(
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

    def ensure_admin_key(self) -> tuple[AccessKey, str] | None:
        """Create the first admin key when none is active (``serve`` at start-up); its creation
        is ledgered as a CreateKey by the ``system:bootstrap`` principal."""
        created = self._keys.ensure_admin_key()
        if created is not None:
            system = Caller(
                Principal("system:bootstrap", (), "SYSTEM"), source="system", request_id=""
            )
            self._record(
                system,
                "CreateKey",
                None,
                {
                    "key_id": created[0].key_id,
                    "principal": created[0].principal,
                    "roles": list(created[0].roles),
                },
                "ok",
            )
        return created

    def list_keys(self, caller: Caller, include_revoked: bool = False) -> list[AccessKey]:
        return self._run(
            caller,
            "ListKeys",
            lambda: self._keys.list(include_revoked=include_revoked),
            summary=lambda keys: {"count": len(keys)},
        )

    def revoke_key(self, caller: Caller, key_id: str) -> AccessKey:
        return self._run(
            caller,
            "RevokeKey",
            lambda: self._keys.revoke(key_id),
            summary=lambda key: {"key_id": key.key_id, "principal": key.principal},
        )
