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
then logs each face it adds or deletes, and each association change (``user_changes``: faces
associated or disassociated, a user deleted), under the intent's id (``CURRENT_INTENT``), and
the outcome record (``phase`` "outcome") closes the intent. An intent left open — the process was
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

This module holds what every verb shares: the inner services (``Gateway.__init__``), ``_run``,
the intent and refusal records. The verbs themselves live in one module per area
(``gateway_collections``, ``gateway_crops``, ``gateway_search``, ``gateway_users``,
``gateway_images``, ``gateway_video``, ``gateway_ledger``, ``gateway_policy``, ``gateway_keys``,
``gateway_leads``, ``gateway_upkeep``; see ``gateway_base`` and ``docs/SERVICES.md``).
"""

from __future__ import annotations

import getpass
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from faceledger.audit.core import ChainLedger
from faceledger.audit.intents import OpenIntent, owner_alive, process_owner
from faceledger.config import Settings
from faceledger.domain.audit import CURRENT_INTENT, AuditEvent, Caller
from faceledger.domain.errors import (
    AccessDeniedError,
    FaceLedgerError,
    InvalidParameterError,
    LedgerError,
    ResourceNotFoundError,
)
from faceledger.domain.policy import MAX_CASE_CHARS, MAX_PURPOSE_CHARS
from faceledger.domain.principals import ROLES, Principal
from faceledger.services.faces import FaceService
from faceledger.services.gateway_collections import CollectionVerbs
from faceledger.services.gateway_crops import CropVerbs
from faceledger.services.gateway_images import ImageVerbs
from faceledger.services.gateway_keys import KeyVerbs
from faceledger.services.gateway_leads import LeadVerbs
from faceledger.services.gateway_ledger import LedgerVerbs
from faceledger.services.gateway_search import SearchVerbs
from faceledger.services.gateway_upkeep import MaintenanceVerbs
from faceledger.services.gateway_users import UserVerbs
from faceledger.services.gateway_video import VideoVerbs
from faceledger.services.wiring import Services, build_services, ledger_record

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
# Changes whose faces the store's change log shows.
_LOGGED_CHANGES = frozenset({"IndexFaces", "DeleteFaces", "PurgeExpiredFaces"})
# Changes of users' faces, which the store logs in ``user_changes`` (``user_intent_changes``).
_USER_CHANGES = frozenset({"AssociateFaces", "DisassociateFaces", "DeleteUser"})
# An intent written on another host is reconciled once it is this old (its process may live).
INTENT_TIMEOUT_S = 900.0

_TEXT_RE = re.compile(r"[^\x00-\x1f\x7f]*")


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


class Gateway(
    CollectionVerbs,
    CropVerbs,
    SearchVerbs,
    UserVerbs,
    ImageVerbs,
    VideoVerbs,
    LedgerVerbs,
    KeyVerbs,
    LeadVerbs,
    MaintenanceVerbs,
):
    """The accountable service: every verb, authorised, policy-checked and ledgered. The verbs
    live in one mixin per area (``services/gateway_*.py``, see ``gateway_base``); this class
    builds the inner services and holds the one wrapper every verb goes through (``_run``)
    with its intent and refusal records."""

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
        self._leads = parts.leads
        self._crops = parts.crops
        # Ledgers what happens after the call that caused it, for the caller who started it.
        self._record = ledger_record(self._ledger, self._leads)
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
        elif operation in _USER_CHANGES:
            outcome = self._recovered_user_change(intent.intent_id, result)
        elif operation == "DeleteCollection" and announced.collection_id is not None:
            try:
                self._collections.store.face_model_version(announced.collection_id)
                outcome = "NoChange"
            except ResourceNotFoundError:
                outcome = "ok"
        else:
            outcome = "Unknown"  # a change the stores keep no log of
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

    def _recovered_user_change(self, intent_id: str, result: dict[str, Any]) -> str:
        """The outcome of an association change left open ("ok": committed, "NoChange": not),
        from the store's ``user_changes``; what it changed is added to ``result``."""
        logged = self._collections.store.user_intent_changes(intent_id)
        result["associated"] = [f for c in logged if c.kind == "associate" for f in c.face_ids]
        result["disassociated"] = [f for c in logged if c.kind != "associate" for f in c.face_ids]
        result["user_deleted"] = any(c.kind == "delete_user" for c in logged)
        return "ok" if logged else "NoChange"

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
            result = summary(value) if summary is not None else {}
            record("ok", result)
            self._leads.recorded(operation, result)  # a lead it names joins the queue
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
