"""What stored-video jobs and stream processors share: the caller a later record is written
for, results as JSON, the searcher a video search uses, server-side video paths, and which
process holds a job or a processor."""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.collections import CollectionMatch
from faceledger.domain.errors import InvalidParameterError
from faceledger.domain.principals import Principal
from faceledger.domain.video import Hit
from faceledger.services.collections import CollectionService

MAX_RESULTS = 1000
# The Rekognition operation that starts each kind of stored-video job.
KINDS: dict[str, str] = {
    "faces": "StartFaceDetection",
    "search": "StartFaceSearch",
    "persons": "StartPersonTracking",
    "labels": "StartLabelDetection",
}

# Appends a ledger event later, for the caller who started the work: (caller, operation,
# collection id, result, outcome).
Record = Callable[[Caller, str, str | None, dict[str, Any], str], None]
Searcher = Callable[[np.ndarray], list[list[Hit]]]


def caller_to_json(caller: Caller) -> dict[str, Any]:
    return {
        "principal": caller.principal.name,
        "roles": list(caller.principal.roles),
        "key_id": caller.principal.key_id,
        "source": caller.source,
        "request_id": caller.request_id,
        "purpose": caller.purpose,
        "case_reference": caller.case_reference,
    }


def caller_from_json(data: dict[str, Any], *, source: str = "video") -> Caller:
    return Caller(
        Principal(data["principal"], tuple(data["roles"]), data["key_id"]),
        source=source,
        request_id=data.get("request_id", ""),
        purpose=data.get("purpose"),
        case_reference=data.get("case_reference"),
    )


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON values (dataclasses as dicts, numpy as numbers; bytes dropped)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return None  # crops stay out of stored results
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def hit_of(match: CollectionMatch) -> Hit:
    face = match.face
    return Hit(
        face_id=face.face_id,
        similarity=match.similarity,
        external_image_id=face.external_image_id,
        image_id=face.image_id,
        box=face.bounding_box,
        confidence=face.confidence,
        user_id=face.user_id,
    )


def collection_searcher(
    collections: CollectionService, collection_id: str, threshold: float
) -> Searcher:
    """The five best matches in ``collection_id`` of each embedding, at ``threshold``."""

    def search(embeddings: np.ndarray) -> list[list[Hit]]:
        out = []
        for vector in embeddings:
            matches = collections.search_embedding(
                collection_id, vector, max_faces=5, threshold=threshold
            )
            out.append([hit_of(m) for m in matches])
        return out

    return search


def local_video(settings: Settings, path: str) -> Path:
    """A server-side video path, which must lie inside one of ``Settings.video_dirs``."""
    candidate = Path(path)
    roots = [Path(d).resolve() for d in settings.video_dirs]
    if not roots:
        raise InvalidParameterError(
            "server-side video paths are not enabled: set FACELEDGER_VIDEO_DIRS to the "
            "folders videos may be read from"
        )
    resolved = candidate.resolve() if candidate.is_absolute() else None
    for root in roots:
        target = resolved if resolved is not None else (root / candidate).resolve()
        if target.is_relative_to(root) and target != root:
            if not target.is_file():
                raise InvalidParameterError(f"no video file at {path!r}")
            return target
    raise InvalidParameterError(f"{path!r} is not inside a folder listed in FACELEDGER_VIDEO_DIRS")


def new_owner() -> str:
    """This process's name as the owner of a job or a processor: ``host:pid:nonce``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_gone(owner: str | None, me: str) -> bool:
    """Whether ``owner`` (a job's or a processor's process) is surely gone: none, or a
    process of this host that no longer exists (other hosts' processes time out); ``me`` is
    this process's own name."""
    if owner is None:
        return True
    if owner == me:
        return False
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
