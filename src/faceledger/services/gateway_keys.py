"""The gateway's verbs on access keys; ``Authentication``: what adapters may ask of the key
store without a record; ``Preferences``: a principal's small settings of the web app (the
last collection searched), kept in the key store so every server process shares them."""

from __future__ import annotations

from datetime import datetime

from faceledger.domain.audit import Caller
from faceledger.domain.collections import COLLECTION_ID_RE
from faceledger.domain.principals import Principal
from faceledger.services.gateway_base import GatewayParts
from faceledger.services.keys import AccessKey, KeyService


class Authentication:
    """What adapters may ask of the key store: who signed a request, whether that request was
    received before, and whether that key is within its rate. Creating, listing and revoking
    keys are gateway verbs."""

    def __init__(self, keys: KeyService) -> None:
        self._keys = keys

    def credentials(self, key_id: str) -> tuple[Principal, str]:
        """The principal and secret of an active key, for SigV4 verification."""
        return self._keys.credentials(key_id)

    def admit_signature(self, key: str, signed_at: datetime) -> None:
        """Accept a verified SigV4 request's replay key once, across every server process
        (``ReplayedRequestError`` for a replay; ``services/replays.py``)."""
        self._keys.admit_signature(key, signed_at)

    def admit(self, key_id: str) -> None:
        """Spend one of the key's tokens (ThrottlingError when over its rate)."""
        self._keys.admit(key_id)

    def authenticate_bearer(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer <key_id>:<secret>`` header."""
        return self._keys.authenticate_bearer(authorization)


LAST_COLLECTION = "last_collection"


class Preferences:
    """A principal's web-app preferences (no record: they change nothing the ledger tracks)."""

    def __init__(self, keys: KeyService) -> None:
        self._keys = keys

    def last_collection(self, principal: Principal) -> str:
        """The collection the principal searched last ("" when none, or not a valid id)."""
        value = self._keys.preference(principal.name, LAST_COLLECTION) or ""
        return value if COLLECTION_ID_RE.fullmatch(value) else ""

    def remember_collection(self, principal: Principal, collection_id: str) -> None:
        """Remember the collection the principal just searched (a valid id only)."""
        if COLLECTION_ID_RE.fullmatch(collection_id):
            self._keys.set_preference(principal.name, LAST_COLLECTION, collection_id)


class KeyVerbs(GatewayParts):
    """Access keys: created, listed and revoked on the record."""

    @property
    def authentication(self) -> Authentication:
        return Authentication(self._keys)

    @property
    def preferences(self) -> Preferences:
        return Preferences(self._keys)

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
