"""Synthetic enrolments for durability checks: analysed images with random unit embeddings, and
the enrol-and-delete loop a worker process runs until it is killed with ``kill -9``.

Shared by ``bench/ledger_integrity.py`` and the test workers under ``tests/helpers/``. It lives
in the package, not in ``tests/``, because the bench scripts run from a checkout or an
installed wheel where ``tests/`` is not importable, while both can import ``faceledger``. It
touches no store or service: the caller passes the verbs to call (``enrol``, ``delete``), so the
same loop drives a bare ``CollectionService`` or the audited ``Gateway``.

The loop's output protocol, one flushed line per event (a line is printed only after the call
returned, i.e. after the write was acknowledged, except ``DELETING``):

- ``READY`` once, before the first write;
- ``ADD <external_image_id> <face_id>`` for each face an acknowledged enrolment stored;
- ``DELETING <face_id>`` before a delete starts (its outcome is unknown until ``DEL``);
- ``DEL <face_id>`` once a delete removed the face.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn, Protocol, TextIO

import numpy as np

from faceledger.domain.audit import Caller
from faceledger.domain.faces import AnalysedImage, Faces

#: ``enrol(image, external_image_id)`` → the FaceIds the store kept.
Enrol = Callable[[AnalysedImage, str], list[str]]
#: ``delete(face_id)`` → whether the face was deleted.
Delete = Callable[[str], bool]

DELETE_PROBABILITY = 0.3


class AuditedVerbs(Protocol):
    """The two verbs of the accountable gateway (``services.gateway.Gateway``) the loop calls."""

    def index_faces(
        self, caller: Caller, collection_id: str, image: AnalysedImage, **options: Any
    ) -> Any: ...

    def delete_faces(
        self, caller: Caller, collection_id: str, face_ids: list[str]
    ) -> tuple[list[str], Any]: ...


def synthetic_image(rng: np.random.Generator, n_faces: int, dim: int) -> AnalysedImage:
    """A 640×480 JPEG's analysis with ``n_faces`` faces side by side (60 px boxes) whose
    embeddings are random unit vectors of ``dim`` dimensions, and a random SHA-256."""
    vectors = rng.normal(size=(n_faces, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    boxes = np.array([[10 + 60 * i, 10, 60 + 60 * i, 70] for i in range(n_faces)], np.float32)
    faces = Faces(
        boxes_px=boxes,
        scores=np.full(n_faces, 0.9, np.float32),
        landmarks_px=np.zeros((n_faces, 5, 2), np.float32),
        embeddings=vectors,
    )
    return AnalysedImage(rng.bytes(32).hex(), "jpeg", 640, 480, 1000, faces)


def gateway_verbs(
    gateway: AuditedVerbs, caller: Caller, collection_id: str
) -> tuple[Enrol, Delete]:
    """``enrol`` and ``delete`` through the gateway as ``caller`` (each change audited: intent,
    store change, outcome), with no quality filter (synthetic faces have no pixels)."""

    def enrol(image: AnalysedImage, external_image_id: str) -> list[str]:
        result = gateway.index_faces(
            caller,
            collection_id,
            image,
            external_image_id=external_image_id,
            quality_filter="NONE",
        )
        return [face.face_id for face, _ in result.face_records]

    def delete(face_id: str) -> bool:
        deleted, _ = gateway.delete_faces(caller, collection_id, [face_id])
        return bool(deleted)

    return enrol, delete


def enrol_and_delete_forever(
    enrol: Enrol,
    delete: Delete,
    *,
    rng: np.random.Generator,
    dim: int,
    first_image: int = 0,
    max_faces_per_image: int = 2,
    after_step: Callable[[AnalysedImage], None] | None = None,
    out: TextIO | None = None,
) -> NoReturn:
    """Enrol images ``img-<first_image>``, ``img-<first_image + 1>``… of 1 to
    ``max_faces_per_image`` synthetic faces, and after each one delete, with probability 0.3,
    one face enrolled earlier; then call ``after_step`` (searches, snapshots…). Never returns:
    the caller's process is meant to be killed. Prints the protocol above to ``out`` (stdout)."""
    stream = out if out is not None else sys.stdout
    mine: list[str] = []
    print("READY", file=stream, flush=True)
    number = first_image
    while True:
        image = synthetic_image(rng, int(rng.integers(1, max_faces_per_image + 1)), dim)
        for face_id in enrol(image, f"img-{number}"):
            print(f"ADD img-{number} {face_id}", file=stream, flush=True)
            mine.append(face_id)
        number += 1
        if mine and rng.random() < DELETE_PROBABILITY:
            victim = mine.pop(int(rng.integers(len(mine))))
            print(f"DELETING {victim}", file=stream, flush=True)  # may or may not commit
            if delete(victim):
                print(f"DEL {victim}", file=stream, flush=True)
        if after_step is not None:
            after_step(image)
