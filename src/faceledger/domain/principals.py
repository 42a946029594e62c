"""Who is asking: principals, their roles, and what each role may do.

A principal (a person or a system) holds access keys (``faceledger keys``); every request is
authenticated to one principal, and its roles decide which operations it may call. Operations
are named as Rekognition names them; the native API and the CLI use the same names, so one
table governs every surface.

| role       | may call                                                                  |
|------------|---------------------------------------------------------------------------|
| `admin`    | everything, including key and policy management                            |
| `operator` | collection, face and user changes, and everything a `searcher` may call    |
| `searcher` | detect, compare, searches, and reading collections, faces and users        |
| `auditor`  | reading collections, faces and users (and, with the ledger, the audit log) |
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES: tuple[str, ...] = ("admin", "operator", "searcher", "auditor")

READ_OPERATIONS = frozenset(
    {
        "DescribeCollection",
        "ListCollections",
        "ListFaces",
        "ListUsers",
        "ListTagsForResource",
    }
)
SEARCH_OPERATIONS = frozenset(
    {
        "DetectFaces",
        "CompareFaces",
        "SearchFaces",
        "SearchFacesByImage",
        "SearchUsers",
        "SearchUsersByImage",
    }
)
WRITE_OPERATIONS = frozenset(
    {
        "CreateCollection",
        "DeleteCollection",
        "IndexFaces",
        "DeleteFaces",
        "CreateUser",
        "DeleteUser",
        "AssociateFaces",
        "DisassociateFaces",
        "TagResource",
        "UntagResource",
    }
)
ADMIN_OPERATIONS = frozenset({"CreateKey", "ListKeys", "RevokeKey"})

_ALLOWED: dict[str, frozenset[str]] = {
    "admin": READ_OPERATIONS | SEARCH_OPERATIONS | WRITE_OPERATIONS | ADMIN_OPERATIONS,
    "operator": READ_OPERATIONS | SEARCH_OPERATIONS | WRITE_OPERATIONS,
    "searcher": READ_OPERATIONS | SEARCH_OPERATIONS,
    "auditor": READ_OPERATIONS,
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its name, roles and the access key it used."""

    name: str
    roles: tuple[str, ...]
    key_id: str

    def may(self, operation: str) -> bool:
        """Whether any of the principal's roles allows ``operation`` (a Rekognition name)."""
        return any(operation in _ALLOWED.get(role, frozenset()) for role in self.roles)


# The principal of the explicit development mode that accepts any signature (never by default).
INSECURE_DEV_PRINCIPAL = Principal("insecure-dev-mode", ("admin",), "NONE")
