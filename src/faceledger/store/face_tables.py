"""The half of the face store that both backends run alike, written once over ``Sql``.

Users (associations, deletion, idempotent creation), request tokens, tags, policies and the
listing of faces are the same statements on SQLite and PostgreSQL but for the column that names
the collection (``collection_id`` / the surrogate ``collection_pk``), how an id list is passed,
the row locks PostgreSQL takes and the collation of text order. ``FaceTables`` runs them;
``SQLiteStore`` and ``PostgresStore`` (its subclasses) supply those differences as hooks and
keep what really differs: collections, enrolment, vectors and the change log.

**Users own faces** through ``faces.user_id`` (a face belongs to at most one user); associating,
disassociating and deleting a user are one transaction each, which locks the user's row and
the faces it reads on PostgreSQL, so concurrent calls from several processes cannot take a
user past its limit or give a face two users. Each of these transactions that changes something
under an intent record (``domain.audit.CURRENT_INTENT``) also logs what it did in
``user_changes``, so that an intent left open is reconciled as applied or not
(``user_intent_changes``); the maintenance pass prunes the rows of settled intents
(``prune_user_changes``). The log never names the user (the intent record does), so a
deleted user leaves no trace in the store. **Request tokens** (``request_tokens``) remember
a ClientRequestToken's parameters and response for ``REQUEST_TOKEN_TTL_S`` so a retried call
is answered once; on PostgreSQL an advisory lock per token serialises calls with one token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from faceledger.domain.audit import CURRENT_INTENT
from faceledger.domain.collections import Collection, User
from faceledger.store import rules
from faceledger.store.records import (
    FaceRow,
    RequestRecord,
    UserChange,
    UserChangeKind,
    UserFacesChange,
)
from faceledger.store.rules import FACE_COLUMNS
from faceledger.store.sql import Connection, Sql


class FaceTables:
    """Users, request tokens, tags, policies and face listing for a backend's hooks below."""

    _sql: Sql
    #: The column naming the collection in every table but ``collections``.
    KEY = "collection_id"
    #: Appended to a text column in ``ORDER BY`` / comparisons (byte order on both backends).
    COLLATE = ""
    #: Row locks appended to a read the transaction depends on (PostgreSQL only).
    LOCK_USER = ""
    LOCK_FACES = ""

    # -- hooks ------------------------------------------------------------------------------
    def _key(self, conn: Connection, collection_id: str, *, lock: bool = False) -> Any:
        """The collection's key (``KEY``'s value); ``ResourceNotFoundError`` if absent.
        ``lock``: hold the collection's row until the transaction ends (where supported)."""
        raise NotImplementedError

    def _fmv_key(self, conn: Connection, collection_id: str) -> tuple[Any, str]:
        """(the collection's key, its FaceModelVersion); ``ResourceNotFoundError`` if absent."""
        raise NotImplementedError

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values``: the SQL and its parameters."""
        raise NotImplementedError

    def _lock_token(self, conn: Connection, key: Any, operation: str, token: str) -> None:
        """Serialise calls with the same token until the transaction ends (any process)."""

    def _count_users(self, conn: Connection, key: Any, delta: int) -> None:
        """Keep a maintained user count current (PostgreSQL); SQLite counts on read."""

    def _forget_user(self, key: Any) -> None:
        """After a user's deletion: make the deleted rows unreadable in the files."""

    def _insert_collection(
        self, conn: Connection, collection_id: str, fmv: str, dim: int, now: float
    ) -> Any:
        """Insert the collection (and whatever the backend keeps per collection); its key.
        A taken id raises the backend's ``unique_violation``."""
        raise NotImplementedError

    # -- collections ------------------------------------------------------------------------
    def create_collection(
        self,
        collection_id: str,
        face_model_version: str,
        dim: int,
        tags: Mapping[str, str] | None = None,
    ) -> Collection:
        """A new collection with its tags (one transaction); ResourceAlreadyExistsError when
        the id is taken."""
        now = time.time()
        try:
            with self._sql.transaction() as conn:
                key = self._insert_collection(conn, collection_id, face_model_version, dim, now)
                for name, value in (tags or {}).items():
                    conn.execute(
                        f"INSERT INTO tags ({self.KEY}, key, value) VALUES (%s, %s, %s)",
                        (key, name, value),
                    )
        except self._sql.unique_violation:
            raise rules.collection_exists(collection_id) from None
        return Collection(collection_id, face_model_version, now)

    # -- request tokens ---------------------------------------------------------------------
    def _request_record(
        self, conn: Connection, key: Any, operation: str, token: str
    ) -> RequestRecord | None:
        row = conn.execute(
            f"SELECT params, response FROM request_tokens WHERE {self.KEY} = %s AND "
            "operation = %s AND token = %s AND created_at >= %s",
            (key, operation, token, rules.token_cutoff(time.time())),
        ).fetchone()
        return None if row is None else RequestRecord(row[0], row[1])

    def _remember(
        self, conn: Connection, key: Any, call: tuple[str, str], params: str, response: str
    ) -> None:
        """Record ``call`` (operation, token) with its parameters and response (and forget
        tokens past their time)."""
        now = time.time()
        conn.execute("DELETE FROM request_tokens WHERE created_at < %s", (rules.token_cutoff(now),))
        conn.execute(
            f"INSERT INTO request_tokens ({self.KEY}, operation, token, params, response, "
            f"created_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT ({self.KEY}, operation, "
            "token) DO UPDATE SET params = excluded.params, response = excluded.response, "
            "created_at = excluded.created_at",
            (key, *call, params, response, now),
        )

    def _earlier(
        self, conn: Connection, key: Any, operation: str, token: str | None
    ) -> RequestRecord | None:
        """The record of ``token``'s earlier use for ``operation`` (locked), if any."""
        if token is None:
            return None
        self._lock_token(conn, key, operation, token)
        return self._request_record(conn, key, operation, token)

    def request_record(
        self, collection_id: str, operation: str, token: str
    ) -> RequestRecord | None:
        """The record of an earlier call with this ClientRequestToken, if remembered."""
        with self._sql.transaction() as conn:
            key = self._key(conn, collection_id)
            return self._request_record(conn, key, operation, token)

    def record_request(
        self, collection_id: str, operation: str, token: str, params: str, response: str
    ) -> None:
        """Remember a call's parameters and response under its ClientRequestToken."""
        with self._sql.transaction() as conn:
            key = self._key(conn, collection_id)
            self._remember(conn, key, (operation, token), params, response)

    # -- tags and policies ------------------------------------------------------------------
    def tags(self, collection_id: str) -> dict[str, str]:
        with self._sql.reading() as conn:
            key = self._key(conn, collection_id)
            rows = conn.execute(
                f"SELECT key, value FROM tags WHERE {self.KEY} = %s ORDER BY key{self.COLLATE}",
                (key,),
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def set_tags(self, collection_id: str, tags: Mapping[str, str], max_tags: int) -> None:
        """Add or overwrite tags; refuses (changing nothing) when the total would exceed
        ``max_tags``."""
        with self._sql.transaction() as conn:
            key = self._key(conn, collection_id, lock=True)
            for name, value in tags.items():
                conn.execute(
                    f"INSERT INTO tags ({self.KEY}, key, value) VALUES (%s, %s, %s) "
                    f"ON CONFLICT ({self.KEY}, key) DO UPDATE SET value = excluded.value",
                    (key, name, value),
                )
            row = conn.execute(f"SELECT COUNT(*) FROM tags WHERE {self.KEY} = %s", (key,))
            rules.check_tag_count(collection_id, int(row.fetchone()[0]), max_tags)

    def remove_tags(self, collection_id: str, keys: list[str]) -> None:
        with self._sql.transaction() as conn:
            key = self._key(conn, collection_id, lock=True)
            which, values = self._in("key", keys)
            conn.execute(f"DELETE FROM tags WHERE {self.KEY} = %s AND {which}", (key, *values))

    def policy(self, collection_id: str) -> str | None:
        """The collection's policy document (JSON), None when it has none of its own."""
        with self._sql.reading() as conn:
            key = self._key(conn, collection_id)
            row = conn.execute(
                f"SELECT policy FROM policies WHERE {self.KEY} = %s", (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    def set_policy(self, collection_id: str, policy: str) -> None:
        with self._sql.transaction() as conn:
            key = self._key(conn, collection_id, lock=True)
            conn.execute(
                f"INSERT INTO policies ({self.KEY}, policy, updated_at) VALUES (%s, %s, %s) "
                f"ON CONFLICT ({self.KEY}) DO UPDATE SET policy = excluded.policy, "
                "updated_at = excluded.updated_at",
                (key, policy, time.time()),
            )

    # -- faces ------------------------------------------------------------------------------
    def list_faces(
        self,
        collection_id: str,
        *,
        after_row: int,
        limit: int,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> list[FaceRow]:
        """The collection's faces after ``after_row`` in enrolment order, of ``user_id`` and
        among ``face_ids`` when given."""
        sql = f"SELECT {FACE_COLUMNS} FROM faces WHERE {self.KEY} = %s AND row_id > %s"
        with self._sql.reading() as conn:
            key, fmv = self._fmv_key(conn, collection_id)
            args: list[Any] = [key, after_row]
            if user_id is not None:
                sql += " AND user_id = %s"
                args.append(user_id)
            if face_ids is not None:
                which, values = self._in("face_id", face_ids)
                sql += f" AND {which}"
                args.extend(values)
            rows = conn.execute(sql + " ORDER BY row_id LIMIT %s", (*args, limit)).fetchall()
        return [rules.face_row(r, fmv) for r in rows]

    # -- users ------------------------------------------------------------------------------
    def _insert_user(self, conn: Connection, key: Any, user_id: str) -> None:
        conn.execute(
            f"INSERT INTO users ({self.KEY}, user_id, created_at) VALUES (%s, %s, %s)",
            (key, user_id, time.time()),
        )

    def create_user(self, collection_id: str, user_id: str) -> None:
        try:
            with self._sql.transaction() as conn:
                key = self._key(conn, collection_id)
                self._insert_user(conn, key, user_id)
                self._count_users(conn, key, 1)  # row-locks the collection: last
        except self._sql.unique_violation:
            raise rules.user_exists(collection_id, user_id) from None

    def create_user_once(
        self, collection_id: str, user_id: str, *, request_token: str, params: str
    ) -> RequestRecord | None:
        """CreateUser with an idempotency token, remembered in the same transaction.

        Returns None when the user was created now; the earlier record (nothing written) when
        the token was already used for CreateUser in this collection. ResourceAlreadyExistsError
        when the user exists and the token is new.
        """
        try:
            with self._sql.transaction() as conn:
                key = self._key(conn, collection_id)
                earlier = self._earlier(conn, key, "CreateUser", request_token)
                if earlier is not None:
                    return earlier
                self._insert_user(conn, key, user_id)
                self._remember(conn, key, ("CreateUser", request_token), params, "{}")
                self._count_users(conn, key, 1)
        except self._sql.unique_violation:
            raise rules.user_exists(collection_id, user_id) from None
        return None

    def list_users(self, collection_id: str, *, after: str | None, limit: int) -> list[User]:
        with self._sql.reading() as conn:
            key = self._key(conn, collection_id)
            rows = conn.execute(
                f"SELECT user_id FROM users WHERE {self.KEY} = %s AND user_id{self.COLLATE} > %s"
                f" ORDER BY user_id{self.COLLATE} LIMIT %s",
                (key, after or "", limit),
            ).fetchall()
        return [User(r[0]) for r in rows]

    def user_exists(self, collection_id: str, user_id: str) -> bool:
        """Whether the user exists; ResourceNotFoundError when the collection does not."""
        with self._sql.reading() as conn:
            key = self._key(conn, collection_id)
            row = conn.execute(
                f"SELECT 1 FROM users WHERE {self.KEY} = %s AND user_id = %s", (key, user_id)
            ).fetchone()
        return row is not None

    def user_face_ids(self, collection_id: str, user_id: str) -> list[str]:
        """The FaceIds associated with the user, in enrolment order."""
        with self._sql.reading() as conn:
            key = self._key(conn, collection_id)
            rows = conn.execute(
                f"SELECT face_id FROM faces WHERE {self.KEY} = %s AND user_id = %s ORDER BY row_id",
                (key, user_id),
            ).fetchall()
        return [r[0] for r in rows]

    def user_face_counts(self, collection_id: str, user_ids: Sequence[str]) -> dict[str, int]:
        """How many faces each of ``user_ids`` has (users without faces are left out)."""
        with self._sql.reading() as conn:
            key = self._key(conn, collection_id)
            which, values = self._in("user_id", user_ids)
            rows = conn.execute(
                f"SELECT user_id, COUNT(*) FROM faces WHERE {self.KEY} = %s AND {which} "
                "GROUP BY user_id",
                (key, *values),
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def _lock_user(self, conn: Connection, key: Any, collection_id: str, user_id: str) -> None:
        """Hold the user's row until the transaction ends; ResourceNotFoundError if absent."""
        row = conn.execute(
            f"SELECT 1 FROM users WHERE {self.KEY} = %s AND user_id = %s{self.LOCK_USER}",
            (key, user_id),
        ).fetchone()
        if row is None:
            raise rules.no_user(collection_id, user_id)

    def _owners(self, conn: Connection, key: Any, face_ids: Sequence[str]) -> dict[str, Any]:
        """FaceId → its user_id (None when unassociated) for the faces that exist (locked)."""
        which, values = self._in("face_id", face_ids)
        rows = conn.execute(
            f"SELECT face_id, user_id FROM faces WHERE {self.KEY} = %s AND {which}"
            + self.LOCK_FACES,
            (key, *values),
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def _face_count(self, conn: Connection, key: Any, user_id: str) -> int:
        row = conn.execute(
            f"SELECT COUNT(*) FROM faces WHERE {self.KEY} = %s AND user_id = %s", (key, user_id)
        ).fetchone()
        return int(row[0]) if row else 0

    def _log_user_change(
        self, conn: Connection, collection_id: str, kind: UserChangeKind, face_ids: Sequence[str]
    ) -> None:
        """Log the change under the current intent, in its transaction (no intent: no row)."""
        intent_id = CURRENT_INTENT.get()
        if intent_id is None:
            return
        conn.execute(
            "INSERT INTO user_changes (intent, collection_id, kind, face_ids, at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (intent_id, collection_id, kind, json.dumps(list(face_ids)), time.time()),
        )

    def user_intent_changes(self, intent_id: str) -> list[UserChange]:
        """The association changes committed under the intent record ``intent_id``, in
        commit order (none: nothing was committed under it)."""
        with self._sql.reading() as conn:
            rows = conn.execute(
                "SELECT collection_id, kind, face_ids FROM user_changes"
                " WHERE intent = %s ORDER BY seq",
                (intent_id,),
            ).fetchall()
        return [UserChange(r[0], r[1], tuple(json.loads(r[2]))) for r in rows]

    def prune_user_changes(self, before: float, keep: Sequence[str]) -> int:
        """Delete the log rows written before ``before`` (epoch seconds) except those of the
        intents in ``keep`` (the open ones); how many went. A row is written after its intent
        record, so one older than a snapshot of the open intents not in it was settled."""
        spared = ", ".join(["%s"] * len(keep))
        unless = f" AND intent NOT IN ({spared})" if keep else ""
        with self._sql.transaction() as conn:
            cur = conn.execute(f"DELETE FROM user_changes WHERE at < %s{unless}", (before, *keep))
            return int(cur.rowcount)

    def associate(
        self,
        collection_id: str,
        user_id: str,
        face_ids: Sequence[str],
        *,
        max_faces_per_user: int | None = None,
    ) -> UserFacesChange:
        """Associate unowned faces with the user, in one transaction.

        A face can belong to one user only: faces of another user are reported, never moved.
        When the user would end up with more than ``max_faces_per_user`` faces nothing is
        written and ``limit_exceeded`` is set. ResourceNotFoundError for an unknown collection
        or user.
        """
        wanted = rules.unique(face_ids)
        with self._sql.transaction() as conn:
            key = self._key(conn, collection_id)
            self._lock_user(conn, key, collection_id, user_id)
            owners = self._owners(conn, key, wanted)
            count = self._face_count(conn, key, user_id)
            plan = rules.plan_association(
                wanted, owners, user_id, face_count=count, max_faces_per_user=max_faces_per_user
            )
            if plan.change:
                which, values = self._in("face_id", plan.change)
                conn.execute(
                    f"UPDATE faces SET user_id = %s WHERE {self.KEY} = %s AND {which} "
                    "AND user_id IS NULL",
                    (user_id, key, *values),
                )
                self._log_user_change(conn, collection_id, "associate", plan.change)
        return plan.outcome(count + len(plan.change))

    def disassociate(
        self, collection_id: str, user_id: str, face_ids: Sequence[str]
    ) -> UserFacesChange:
        """Remove the user's association from its faces among ``face_ids`` (one transaction).

        Faces of another user are reported, never changed; unassociated faces are ignored.
        ResourceNotFoundError for an unknown collection or user.
        """
        wanted = rules.unique(face_ids)
        with self._sql.transaction() as conn:
            key = self._key(conn, collection_id)
            self._lock_user(conn, key, collection_id, user_id)
            plan = rules.plan_disassociation(wanted, self._owners(conn, key, wanted), user_id)
            if plan.change:
                which, values = self._in("face_id", plan.change)
                conn.execute(
                    f"UPDATE faces SET user_id = NULL WHERE {self.KEY} = %s AND {which}",
                    (key, *values),
                )
                self._log_user_change(conn, collection_id, "disassociate", plan.change)
            count = self._face_count(conn, key, user_id)
        return plan.outcome(count)

    def delete_user(
        self,
        collection_id: str,
        user_id: str,
        *,
        request_token: str | None = None,
        params: str = "",
    ) -> RequestRecord | None:
        """Delete a user; its faces stay in the collection, disassociated (one transaction),
        and the deleted row is then made unreadable in the files (``_forget_user``).

        With ``request_token``, the token is remembered in the same transaction; when that
        token was already used for DeleteUser, nothing happens and its record is returned
        (the caller compares parameters). ResourceNotFoundError for an unknown collection or
        user.
        """
        with self._sql.transaction() as conn:
            key = self._key(conn, collection_id)
            earlier = self._earlier(conn, key, "DeleteUser", request_token)
            if earlier is not None:
                return earlier
            self._lock_user(conn, key, collection_id, user_id)
            where = f"WHERE {self.KEY} = %s AND user_id = %s"
            if CURRENT_INTENT.get() is not None:  # the faces it lets go, for the log
                rows = conn.execute(f"SELECT face_id FROM faces {where}", (key, user_id))
                faces = [r[0] for r in rows.fetchall()]
                self._log_user_change(conn, collection_id, "delete_user", faces)
            conn.execute(f"UPDATE faces SET user_id = NULL {where}", (key, user_id))
            conn.execute(f"DELETE FROM users {where}", (key, user_id))
            self._count_users(conn, key, -1)
            if request_token is not None:
                self._remember(conn, key, ("DeleteUser", request_token), params, "{}")
        self._forget_user(key)
        return None
