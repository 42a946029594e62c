"""Who is asking: principals, their roles, and what each role may do.

A principal (a person or a system) holds access keys (``faceledger keys``); every request is
authenticated to one principal, and its roles decide which operations it may call. Operations
are named as Rekognition names them; the native API and the CLI use the same names, so one
table governs every surface. Duties are separated: no role does everything.

| role     | may call                                                                          |
|----------|-----------------------------------------------------------------------------------|
| `admin`  | collections (create, delete, describe, list, tags), access keys, policies;         |
|          | stream processors (create, update, delete, describe, list); ledger checkpoints;    |
|          | the key that signs job notifications (``GetNotificationKey``)                      |
| `enrol`  | index, list and delete faces; create, list and delete users; (dis)associate faces  |
| `search` | detect faces, labels and text; compare, search faces and users; describe and   |
|          | list collections; stored-video jobs (start, get); start, stop, describe and list  |
|          | stream processors                                                                 |
| `audit`  | read, verify and export the ledger; list and read leads                            |
| `review` | list and read leads, record a decision on a lead's candidates (``admin`` does not |
|          | imply it; nobody reviews their own search); view enrolled faces' crops        |
|          | (``GetFaceCrop``) and leads' searched faces (``GetLeadProbeCrop``; ``search`` may |
|          | too)                                                                              |
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES: tuple[str, ...] = ("admin", "enrol", "search", "audit", "review")

_COLLECTION_READS = frozenset({"DescribeCollection", "ListCollections"})
_PROCESSOR_READS = frozenset({"DescribeStreamProcessor", "ListStreamProcessors"})
_LEAD_READS = frozenset({"ListLeads", "GetLead"})

ROLE_OPERATIONS: dict[str, frozenset[str]] = {
    "admin": _COLLECTION_READS
    | {
        "CreateCollection",
        "DeleteCollection",
        "TagResource",
        "UntagResource",
        "ListTagsForResource",
        "CreateKey",
        "ListKeys",
        "RevokeKey",
        "PutCollectionPolicy",
        "CreateStreamProcessor",
        "UpdateStreamProcessor",
        "DeleteStreamProcessor",
        "CheckpointLedger",
        "RotateLedgerKey",
        "GetNotificationKey",
    }
    | _PROCESSOR_READS,
    "enrol": _COLLECTION_READS
    | {
        "IndexFaces",
        "ListFaces",
        "DeleteFaces",
        "CreateUser",
        "ListUsers",
        "DeleteUser",
        "AssociateFaces",
        "DisassociateFaces",
    },
    "search": _COLLECTION_READS
    | {
        "DetectFaces",
        "CompareFaces",
        "DetectLabels",
        "DetectText",
        "SearchFaces",
        "SearchFacesByImage",
        "SearchUsers",
        "SearchUsersByImage",
        "StartFaceDetection",
        "GetFaceDetection",
        "StartFaceSearch",
        "GetFaceSearch",
        "StartPersonTracking",
        "GetPersonTracking",
        "StartLabelDetection",
        "GetLabelDetection",
        "StartStreamProcessor",
        "StopStreamProcessor",
        "GetStreamEvents",
        "GetFaceCrop",
        "GetLeadProbeCrop",
    }
    | _PROCESSOR_READS,
    "audit": frozenset({"ReadLedger", "VerifyLedger", "ExportLedger"}) | _LEAD_READS,
    "review": _LEAD_READS | {"ReviewLead", "GetFaceCrop", "GetLeadProbeCrop"},
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its name, roles and the access key it used."""

    name: str
    roles: tuple[str, ...]
    key_id: str

    def may(self, operation: str) -> bool:
        """Whether any of the principal's roles allows ``operation`` (a Rekognition name)."""
        return any(operation in ROLE_OPERATIONS.get(role, frozenset()) for role in self.roles)


# The principal of the explicit development mode that accepts any signature (never by default).
INSECURE_DEV_PRINCIPAL = Principal("insecure-dev-mode", ("admin", "enrol", "search"), "NONE")
