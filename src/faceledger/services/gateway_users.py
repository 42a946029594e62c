"""The gateway's verbs on users: creating and deleting them, listing them, and associating
faces with them (a biometric change: an intent record first)."""

from __future__ import annotations

from typing import Any

from faceledger.domain.audit import Caller
from faceledger.domain.collections import User
from faceledger.domain.results import AssociationOutcome
from faceledger.services.gateway_base import GatewayParts, ledgered_ids
from faceledger.services.users import DEFAULT_ASSOCIATE_THRESHOLD


class UserVerbs(GatewayParts):
    """Users and their faces."""

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
            intent={"user_id": user_id, "face_ids": ledgered_ids(face_ids)},
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
            intent={"user_id": user_id, "face_ids": ledgered_ids(face_ids)},
            summary=lambda o: {
                "user_id": user_id,
                "disassociated": o.faces,
                "unsuccessful": len(o.unsuccessful),
            },
        )
