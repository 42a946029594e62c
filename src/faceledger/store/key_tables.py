"""Access keys, written once for both backends over ``Sql`` (``store/sql.py``).

SigV4 is a symmetric scheme (the server recomputes the client's HMAC), so each key's secret is
stored retrievably. A revoked key stays listed (who had access, and until when) but never
authenticates; its secret is overwritten on revocation and the backend then makes the old
value unreadable in its files (``_forget_secret``). Creating the first admin key is one
transaction that checks no active key has the role (``add_unless_role_active``), so two
servers starting at once create one, not two.

``SQLiteKeyStore`` and ``PostgresKeyStore`` are this class over their own connections; they
differ in how a role is looked up in the JSON ``roles`` column, in the lock the first key takes
on PostgreSQL, and in how a secret is scrubbed.

The same store keeps small per-principal preferences (``principal_preferences``: the web
app's last collection), so every server process of an installation shares them, and the keys
of verified SigV4 requests until their signatures expire (``sigv4_seen``): the replay check
every server process shares (``services/replays.py``). A request is remembered by one
``INSERT … ON CONFLICT DO NOTHING`` (no row inserted: seen before); the maintenance pass deletes
expired rows and raises the *purge horizon* (``sigv4_horizon``, one row) to its cut-off, and a
key that expires at or before the horizon is never inserted: its row, if any, may be gone, so it
is refused as too old to be checked rather than accepted unchecked (a process whose clock lags
the purger's cannot take a purged request for a new one).
"""

from __future__ import annotations

from typing import Any

from faceledger.store import rules
from faceledger.store.records import AccessKey, SignatureCheck
from faceledger.store.rules import KEY_COLUMNS
from faceledger.store.sql import Connection, Sql


class KeyTables:
    """The ``KeyStore`` protocol over ``_sql`` and the hooks below; safe to share by threads."""

    _sql: Sql
    #: The placeholder of the roles column (JSON text) in an INSERT.
    ROLES_PARAM = "%s"
    #: ``ORDER BY`` of ``list`` after the creation time (byte order of the key id).
    KEY_ORDER = "key_id"

    # -- hooks ------------------------------------------------------------------------------
    def _role_active(self, conn: Connection, role: str) -> bool:
        """Whether some unrevoked key carries ``role``."""
        raise NotImplementedError

    def _lock_first_key(self, conn: Connection) -> None:
        """Serialise "create a key unless one has the role" across processes (if needed)."""

    def _forget_secret(self) -> None:
        """After a revocation: the overwritten secret must not stay readable in the files."""

    # -- keys -------------------------------------------------------------------------------
    def _insert(self, conn: Connection, key: AccessKey, secret: str) -> None:
        conn.execute(
            "INSERT INTO access_keys (key_id, secret, principal, roles, created_at, revoked_at,"
            f" description, rate_per_second, burst) VALUES (%s, %s, %s, {self.ROLES_PARAM},"
            " %s, %s, %s, %s, %s)",
            rules.key_values(key, secret),
        )

    def _key(self, row: Any) -> AccessKey:
        return rules.access_key(row, self._sql.decode_json(row[2]))

    def add(self, key: AccessKey, secret: str) -> bool:
        """Insert a new key; False (nothing written) if its key id is already taken."""
        try:
            with self._sql.transaction() as conn:
                self._insert(conn, key, secret)
        except self._sql.unique_violation:
            return False
        return True

    def add_unless_role_active(self, role: str, key: AccessKey, secret: str) -> bool:
        """Insert ``key`` only if no active key carries ``role``, in one transaction (so two
        servers starting at once create one first admin key, not two). True if inserted."""
        with self._sql.transaction() as conn:
            self._lock_first_key(conn)
            if self._role_active(conn, role):
                return False
            self._insert(conn, key, secret)
        return True

    def has_active_role(self, role: str) -> bool:
        """Whether some unrevoked key carries ``role``."""
        with self._sql.reading() as conn:
            return self._role_active(conn, role)

    def get(self, key_id: str) -> tuple[AccessKey, str] | None:
        """The key and its secret (empty once revoked), or None if there is no such key."""
        with self._sql.reading() as conn:
            row = conn.execute(
                f"SELECT {KEY_COLUMNS}, secret FROM access_keys WHERE key_id = %s", (key_id,)
            ).fetchone()
        return None if row is None else (self._key(row), str(row[8]))

    def list(self, *, include_revoked: bool) -> list[AccessKey]:
        """Keys in creation order (then key id); revoked ones only if asked for."""
        where = "" if include_revoked else "WHERE revoked_at IS NULL "
        order = f"ORDER BY created_at, {self.KEY_ORDER}"
        with self._sql.reading() as conn:
            rows = conn.execute(f"SELECT {KEY_COLUMNS} FROM access_keys {where}{order}").fetchall()
        return [self._key(r) for r in rows]

    def revoke(self, key_id: str, at: float) -> AccessKey | None:
        """Mark the key revoked at ``at`` (kept if already revoked) and overwrite its secret.

        Returns the key as it now stands, or None if there is no such key.
        """
        with self._sql.transaction() as conn:
            cur = conn.execute(
                "UPDATE access_keys SET revoked_at = COALESCE(revoked_at, %s), secret = '' "
                "WHERE key_id = %s",
                (at, key_id),
            )
            if cur.rowcount == 0:
                return None
        self._forget_secret()
        found = self.get(key_id)
        return None if found is None else found[0]

    # -- preferences ----------------------------------------------------------------------
    def preference(self, principal: str, name: str) -> str | None:
        """The principal's preference ``name``, or None when never set."""
        with self._sql.reading() as conn:
            row = conn.execute(
                "SELECT value FROM principal_preferences WHERE principal = %s AND name = %s",
                (principal, name),
            ).fetchone()
        return None if row is None else str(row[0])

    def set_preference(self, principal: str, name: str, value: str, at: float) -> None:
        """Set (or replace) the principal's preference ``name`` (``at``: epoch seconds)."""
        with self._sql.transaction() as conn:
            conn.execute(
                "INSERT INTO principal_preferences (principal, name, value, updated_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (principal, name)"
                " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (principal, name, value, at),
            )

    # -- signatures seen (the shared SigV4 replay check) ------------------------------------
    def remember_signature(self, key_sha256: bytes, expires_at: float) -> SignatureCheck:
        """Remember a verified request's key until ``expires_at`` (epoch seconds).

        "new" when first seen (one INSERT: the request may run); otherwise why not: "replay"
        (seen before, coming back for the first time), "repeated_replay" (it came back before),
        "too_old" (it expires at or before the purge horizon). Atomic across processes: of two
        processes remembering one key at once, one gets "new".
        """
        with self._sql.transaction() as conn:
            inserted = conn.execute(
                "INSERT INTO sigv4_seen (key_sha256, expires_at, replays) SELECT %s, %s, 0"
                " WHERE %s > COALESCE((SELECT purged_before FROM sigv4_horizon), 0)"
                " ON CONFLICT (key_sha256) DO NOTHING",
                (key_sha256, expires_at, expires_at),
            ).rowcount
            if inserted == 1:
                return "new"
            row = conn.execute("SELECT purged_before FROM sigv4_horizon").fetchone()
            if row is not None and expires_at <= float(row[0]):
                return "too_old"
            counted = conn.execute(
                "UPDATE sigv4_seen SET replays = replays + 1 WHERE key_sha256 = %s"
                " RETURNING replays",
                (key_sha256,),
            ).fetchone()
        if counted is None:  # purged since the INSERT looked (PostgreSQL: another snapshot)
            return "too_old"
        return "replay" if int(counted[0]) == 1 else "repeated_replay"

    def purge_signatures(self, before: float) -> int:
        """Forget keys that expire at or before ``before`` (epoch seconds) and raise the purge
        horizon to it (never lower it); how many rows went."""
        with self._sql.transaction() as conn:
            conn.execute(
                "UPDATE sigv4_horizon SET purged_before ="
                " CASE WHEN purged_before < %s THEN %s ELSE purged_before END",
                (before, before),
            )
            return int(
                conn.execute("DELETE FROM sigv4_seen WHERE expires_at <= %s", (before,)).rowcount
            )
