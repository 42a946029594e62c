"""The gateway's maintenance pass (the server runs it periodically; ``faceledger maintain`` by
hand): jobs of dead processes queued again, open intents reconciled, faces and leads past their
collection's retention purged on the record, index snapshots saved, the replay keys of expired
signatures forgotten."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from faceledger.domain.audit import CURRENT_INTENT, AuditEvent, Caller
from faceledger.domain.errors import FaceLedgerError
from faceledger.domain.principals import Principal
from faceledger.services.gateway_base import ledgered_ids
from faceledger.services.gateway_policy import PolicyVerbs

#: Association log rows younger than this are kept by the prune (their intent may be newer
#: than the snapshot of open intents on a host whose clock runs ahead).
USER_CHANGES_MARGIN_S = 60.0


class MaintenanceVerbs(PolicyVerbs):
    """The maintenance pass."""

    def maintain(self) -> dict[str, Any]:
        """Purge faces past each collection's retention (one ledger record per collection that
        lost faces, by the ``system`` principal) and save changed index snapshots."""
        self._video.jobs.requeue_unclaimed()  # jobs of a server process that died
        self.reconcile()  # intents whose outcome could not be written
        self._prune_user_changes()
        system = Caller(Principal("system:retention", (), "SYSTEM"), source="system", request_id="")
        purged: dict[str, int] = {}
        token: str | None = None
        while True:
            page, token = self._collections.list_collections(next_token=token, max_results=1000)
            for collection in page:
                deleted = self._purge_expired(system, collection.collection_id)
                if deleted:
                    purged[collection.collection_id] = deleted
                self._purge_expired_leads(system, collection.collection_id)
            if not token:
                break
        self._collections.indexes.refresh_all()  # other replicas' deletions leave this one too
        self._collections.indexes.save_all(only_if_changed=True)
        self._keys.purge_signatures()  # replay keys of expired signatures
        return {"purged": purged}

    def _prune_user_changes(self) -> None:
        """Forget the association log rows of settled intents (written before a snapshot of
        the open ones, less a minute for clocks of other hosts)."""
        before = time.time() - USER_CHANGES_MARGIN_S
        keep = [intent.intent_id for intent in self._ledger.open_intents()]
        self._collections.store.prune_user_changes(before, keep)

    def _purge_expired_leads(self, system: Caller, cid: str) -> list[str]:
        """Delete the collection's leads (with their decisions) made before its retention
        window; one ``PurgeExpiredLeads`` record naming them when any went."""
        days = self._policy_of(cid).retention_days
        if days is None:
            return []
        cutoff = time.time() - float(days) * 86400.0
        deleted = self._leads.store.delete_leads(cid, created_before=cutoff)
        if deleted:
            self._ledger.append(
                AuditEvent.of(
                    system,
                    "PurgeExpiredLeads",
                    collection_id=cid,
                    result={"retention_days": days, "lead_ids": ledgered_ids(deleted)},
                )
            )
        return deleted

    def _purge_expired(self, system: Caller, cid: str) -> int:
        """Delete the collection's faces past its retention, between an intent and an outcome
        record; returns how many went (nothing expired, or no retention: no record)."""
        days = self._policy_of(cid).retention_days
        if days is None:
            return 0
        expiring: list[str] = []
        with contextlib.suppress(FaceLedgerError, TypeError, ValueError):
            cutoff = time.time() - float(days) * 86400.0
            expiring = self._collections.store.faces_older_than(cid, cutoff)
            if not expiring:
                return 0  # nothing expired: no change, no record
        about = {"face_ids": ledgered_ids(expiring)}
        intent_id = self._announce(system, "PurgeExpiredFaces", cid, (), about)
        token_var = CURRENT_INTENT.set(intent_id)
        outcome, result = "ok", dict[str, Any](retention_days=days)
        purged = 0
        try:
            deleted = self._collections.purge_expired(cid, days)
            result["deleted"] = deleted
            purged = len(deleted)
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
        return purged
