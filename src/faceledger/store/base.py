"""The store contracts: what the services may ask of a backend, as ``typing.Protocol``s.

``FaceStore`` (collections, faces, users, tags, policies, request tokens, the change log),
``KeyStore`` (access keys), ``VideoStore`` (stored-video jobs, stream processors),
``LeadStore`` (leads, their candidates and the reviewers' decisions), ``CropStore`` (the
sealed face crops a collection's policy keeps; written and deleted by the ``FaceStore`` with
their faces) and ``LedgerStore`` (the storage under the hash-chained ledger). Each has two
implementations,
embedded (``store/sqlite/``, ``audit/ledger.py``) and server (``store/postgres/``,
``audit/postgres.py``); the functions under ``TYPE_CHECKING`` at the end make mypy check every
one of them against its protocol. Services and the gateway are typed with the protocols only;
which class stands behind one is decided in ``store/factory.py`` and wired in
``services/container.py``. The values they take and return are in ``store/records.py``, the
rules both backends share in ``store/rules.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from faceledger.domain.collections import Collection, User
from faceledger.domain.leads import Lead, LeadDecision
from faceledger.store.records import (
    AccessKey,
    ChangePosition,
    FaceChanges,
    FaceRow,
    IntentChange,
    JobRow,
    LeadProbe,
    NewFace,
    OutboxRow,
    ProcessorRow,
    RequestRecord,
    SignatureCheck,
    UserChange,
    UserFacesChange,
)

if TYPE_CHECKING:  # the ledger's vocabulary, for checking only (audit is a later layer)
    from faceledger.audit.core import EntryQuery, LedgerWrite, VerifySnapshot
    from faceledger.audit.intents import OpenIntent


class DatabaseVectors(Protocol):
    """Vector search that the database itself answers (services' ``VectorSearch`` seam)."""

    def search(
        self, collection_id: str, query: NDArray[np.float32], *, k: int, min_cosine: float
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]: ...

    def face_count(self, collection_id: str) -> int: ...

    def purge_deleted(self, collection_id: str) -> None: ...

    def drop(self, collection_id: str) -> None: ...

    def refresh_all(self) -> None: ...

    def save_all(self, *, only_if_changed: bool = False) -> None: ...


class FaceStore(Protocol):
    """Collections, faces with their embeddings, users, tags, policies, request tokens and the
    change log. Every method raises ``ResourceNotFoundError`` for an unknown collection."""

    # -- life cycle and capabilities --------------------------------------------------------
    def close(self) -> None: ...

    def shared_secret(self, name: str, size: int = 32) -> bytes | None:
        """A random secret shared by every process on this database (created on first use);
        None when the backend has none to share (the caller keeps its own)."""
        ...

    def database_vectors(self) -> DatabaseVectors | None:
        """Vector search in the database itself; None when the backend has none."""
        ...

    # -- collections ------------------------------------------------------------------------
    def create_collection(
        self,
        collection_id: str,
        face_model_version: str,
        dim: int,
        tags: Mapping[str, str] | None = None,
    ) -> Collection: ...

    def collection(self, collection_id: str) -> Collection: ...

    def face_model_version(self, collection_id: str) -> str: ...

    def embedding_dim(self, collection_id: str) -> int: ...

    def list_collections(self, *, after: str | None, limit: int) -> list[Collection]: ...

    def delete_collection(self, collection_id: str) -> None: ...

    def tags(self, collection_id: str) -> dict[str, str]: ...

    def set_tags(self, collection_id: str, tags: Mapping[str, str], max_tags: int) -> None: ...

    def remove_tags(self, collection_id: str, keys: list[str]) -> None: ...

    def policy(self, collection_id: str) -> str | None: ...

    def set_policy(self, collection_id: str, policy: str) -> None: ...

    # -- faces ------------------------------------------------------------------------------
    def faces_of_image(
        self, collection_id: str, image_sha256: str, external_image_id: str | None
    ) -> list[FaceRow]: ...

    def add_faces(self, collection_id: str, faces: Sequence[NewFace]) -> list[FaceRow]: ...

    def external_image_ids(self, collection_id: str) -> set[str]: ...

    def faces_by_id(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, FaceRow]: ...

    def faces_by_row(self, collection_id: str, row_ids: Sequence[int]) -> dict[int, FaceRow]: ...

    def embedding(self, collection_id: str, face_id: str) -> tuple[int, NDArray[np.float32]]: ...

    def list_faces(
        self,
        collection_id: str,
        *,
        after_row: int,
        limit: int,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> list[FaceRow]: ...

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[str]: ...

    def faces_older_than(self, collection_id: str, cutoff_epoch: float) -> list[str]: ...

    # -- vectors and the change log ---------------------------------------------------------
    def all_embeddings(
        self, collection_id: str, *, batch: int = 100_000
    ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]: ...

    def change_position(self, collection_id: str) -> ChangePosition: ...

    def changes_since(self, collection_id: str, seq: int) -> FaceChanges: ...

    def intent_changes(self, intent_id: str) -> list[IntentChange]: ...

    def user_intent_changes(self, intent_id: str) -> list[UserChange]: ...

    def prune_user_changes(self, before: float, keep: Sequence[str]) -> int: ...

    # -- users ------------------------------------------------------------------------------
    def create_user(self, collection_id: str, user_id: str) -> None: ...

    def create_user_once(
        self, collection_id: str, user_id: str, *, request_token: str, params: str
    ) -> RequestRecord | None: ...

    def list_users(self, collection_id: str, *, after: str | None, limit: int) -> list[User]: ...

    def user_exists(self, collection_id: str, user_id: str) -> bool: ...

    def user_face_counts(self, collection_id: str, user_ids: Sequence[str]) -> dict[str, int]: ...

    def user_embeddings(
        self, collection_id: str, user_ids: Sequence[str]
    ) -> dict[str, NDArray[np.float32]]: ...

    def face_embeddings(
        self, collection_id: str, face_ids: Sequence[str]
    ) -> dict[str, NDArray[np.float32]]: ...

    def associate(
        self,
        collection_id: str,
        user_id: str,
        face_ids: Sequence[str],
        *,
        max_faces_per_user: int | None = None,
    ) -> UserFacesChange: ...

    def disassociate(
        self, collection_id: str, user_id: str, face_ids: Sequence[str]
    ) -> UserFacesChange: ...

    def delete_user(
        self,
        collection_id: str,
        user_id: str,
        *,
        request_token: str | None = None,
        params: str = "",
    ) -> RequestRecord | None: ...

    # -- request tokens ---------------------------------------------------------------------
    def request_record(
        self, collection_id: str, operation: str, token: str
    ) -> RequestRecord | None: ...

    def record_request(
        self, collection_id: str, operation: str, token: str, params: str, response: str
    ) -> None: ...


class KeyStore(Protocol):
    """Access keys with their secrets (retrievable: SigV4 needs them); per-principal
    preferences; the keys of verified SigV4 requests until they expire (the replay check every
    server process shares)."""

    def close(self) -> None: ...

    def add(self, key: AccessKey, secret: str) -> bool: ...

    def add_unless_role_active(self, role: str, key: AccessKey, secret: str) -> bool: ...

    def has_active_role(self, role: str) -> bool: ...

    def get(self, key_id: str) -> tuple[AccessKey, str] | None: ...

    def list(self, *, include_revoked: bool) -> list[AccessKey]: ...

    def revoke(self, key_id: str, at: float) -> AccessKey | None: ...

    def preference(self, principal: str, name: str) -> str | None: ...

    def set_preference(self, principal: str, name: str, value: str, at: float) -> None: ...

    def remember_signature(self, key_sha256: bytes, expires_at: float) -> SignatureCheck: ...

    def purge_signatures(self, before: float) -> int: ...


class VideoStore(Protocol):
    """Stored-video jobs (claimed with a lease by one worker), stream processors, and the
    outbox of jobs' completion notifications."""

    def close(self) -> None: ...

    def create_job(self, job: JobRow) -> JobRow: ...

    def job(self, job_id: str) -> JobRow: ...

    def job_counts(self) -> dict[str, int]: ...

    def unfinished_jobs(self) -> list[JobRow]: ...

    def claim_job(
        self, job_id: str, owner: str, lease_s: float, *, take_from: str | None = None
    ) -> bool: ...

    def renew_claim(self, job_id: str, owner: str) -> None: ...

    def release_claim(self, job_id: str, owner: str) -> bool: ...

    def finish_job(
        self,
        job_id: str,
        *,
        status: str,
        message: str = "",
        metadata: dict[str, Any] | None = None,
        results: list[Any] | None = None,
    ) -> None: ...

    def job_results(self, job_id: str) -> list[Any]: ...

    # the notification outbox (``store/outbox.py``)
    def add_notification(self, row: OutboxRow) -> None: ...

    def notifications(self, *, status: str | None = None) -> list[OutboxRow]: ...

    def due_notifications(self, now_s: float, lease_s: float, limit: int) -> list[OutboxRow]: ...

    def next_notification_at(self) -> float | None: ...

    def claim_notification(
        self, message_id: str, owner: str, now_s: float, lease_s: float
    ) -> bool: ...

    def notification_delivered(self, message_id: str) -> None: ...

    def notification_attempt_failed(
        self, message_id: str, *, attempts: int, next_attempt_at: float | None, error: str
    ) -> None: ...

    def release_notifications(self, owner: str) -> int: ...

    def create_processor(self, processor: ProcessorRow) -> None: ...

    def processor(self, name: str) -> ProcessorRow: ...

    def list_processors(self, *, after: str | None, limit: int) -> list[ProcessorRow]: ...

    def update_processor(self, name: str, **changes: Any) -> ProcessorRow: ...

    def delete_processor(self, name: str) -> None: ...


class LeadStore(Protocol):
    """Leads (searches with candidates), their candidates and the decisions on them
    (append-only); ``add_decision`` sets the lead's state in the same transaction."""

    def close(self) -> None: ...

    def add_lead(self, lead: Lead, probe: LeadProbe | None = None) -> None: ...

    def lead(self, lead_id: str) -> Lead: ...

    def list_leads(
        self,
        *,
        state: str | None = None,
        collection_id: str | None = None,
        newest_first: bool = False,
        after: str | None = None,
        limit: int = 100,
        recorded: bool | None = None,
    ) -> list[Lead]: ...

    def add_decision(self, decision: LeadDecision) -> Lead: ...

    def delete_leads(
        self, collection_id: str, *, created_before: float | None = None
    ) -> list[str]: ...

    def mark_recorded(self, lead_id: str) -> None:
        """The lead's search record landed: it joins the review queue."""
        ...

    def lead_probe(self, lead_id: str) -> LeadProbe | None: ...

    def has_sealed_probes(self) -> bool: ...

    def delete_probes(self, collection_id: str) -> int:
        """Delete the searched faces kept for a collection's leads (the leads stay)."""
        ...


class CropStore(Protocol):
    """Sealed face crops (``nonce || ciphertext``; the key never reaches the store). The face
    store writes a crop in the transaction that adds its face (``NewFace.sealed_crop``) and
    deletes it with the face; this reads them."""

    def close(self) -> None: ...

    def crop(self, collection_id: str, face_id: str) -> bytes | None:
        """The sealed crop of the collection's face; None when it has none."""
        ...

    def has_crops(self) -> bool:
        """Whether any collection holds a crop."""
        ...


class LedgerStore(Protocol):
    """The storage under the hash-chained ledger: what ``audit.core.ChainLedger`` asks of a
    backend (group commit, checkpoints, reading and verifying are written once there)."""

    def _writing(self) -> AbstractContextManager[LedgerWrite]:
        """One write transaction that orders every writer (every process) into one chain."""
        ...

    def _checkpoint_state(self) -> tuple[int, float]: ...

    def last_seq(self) -> int: ...

    def _select(self, query: EntryQuery) -> Iterator[tuple[int, bytes, bytes]]: ...

    def _snapshot(self) -> AbstractContextManager[VerifySnapshot]: ...

    def _open_intents(self) -> list[OpenIntent]: ...

    def _row_at(self, seq: int) -> tuple[int, bytes, bytes] | None: ...

    def _close_storage(self) -> None: ...


if TYPE_CHECKING:  # mypy checks each backend against its contract (nothing runs)
    from faceledger.audit.ledger import Ledger
    from faceledger.audit.postgres import PostgresLedger
    from faceledger.store.postgres.crops import PostgresCropStore
    from faceledger.store.postgres.faces import PostgresStore
    from faceledger.store.postgres.keys import PostgresKeyStore
    from faceledger.store.postgres.leads import PostgresLeadStore
    from faceledger.store.postgres.video import PostgresVideoStore
    from faceledger.store.sqlite.crops import SQLiteCropStore
    from faceledger.store.sqlite.faces import SQLiteStore
    from faceledger.store.sqlite.keys import SQLiteKeyStore
    from faceledger.store.sqlite.leads import SQLiteLeadStore
    from faceledger.store.sqlite.video import SQLiteVideoStore

    def _sqlite_faces(store: SQLiteStore) -> FaceStore:
        return store

    def _postgres_faces(store: PostgresStore) -> FaceStore:
        return store

    def _sqlite_keys(store: SQLiteKeyStore) -> KeyStore:
        return store

    def _postgres_keys(store: PostgresKeyStore) -> KeyStore:
        return store

    def _sqlite_video(store: SQLiteVideoStore) -> VideoStore:
        return store

    def _postgres_video(store: PostgresVideoStore) -> VideoStore:
        return store

    def _sqlite_leads(store: SQLiteLeadStore) -> LeadStore:
        return store

    def _postgres_leads(store: PostgresLeadStore) -> LeadStore:
        return store

    def _sqlite_crops(store: SQLiteCropStore) -> CropStore:
        return store

    def _postgres_crops(store: PostgresCropStore) -> CropStore:
        return store

    def _sqlite_ledger(ledger: Ledger) -> LedgerStore:
        return ledger

    def _postgres_ledger(ledger: PostgresLedger) -> LedgerStore:
        return ledger
