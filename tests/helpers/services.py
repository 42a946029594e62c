"""Services built for tests: the face service a test module shares (its models load once) and
a collection service over it in a test's folder, on the test's store backend."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from faceledger.config import Settings
from faceledger.services.collections import CollectionService
from faceledger.services.faces import FaceService


@contextmanager
def face_service() -> Iterator[FaceService]:
    """The default pack's face service with one worker, closed after."""
    service = FaceService(Settings(workers=1))
    try:
        yield service
    finally:
        service.close()


@contextmanager
def collection_service(
    data_dir: Path, faces: FaceService, database_url: str | None
) -> Iterator[CollectionService]:
    """A collection service in ``data_dir`` over ``faces``; its store in PostgreSQL at
    ``database_url``, or SQLite when that is None. Closed after."""
    settings = Settings(data_dir=data_dir, workers=1, database_url=database_url)
    service = CollectionService(settings, faces=faces)
    try:
        yield service
    finally:
        service.close()
