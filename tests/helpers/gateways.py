"""A gateway opened for a test on its store backend, synthetic faces sized for one of its
collections, and a ledger that refuses chosen records (as a full disk would)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from faceledger.config import Settings
from faceledger.domain.audit import AuditEvent, Caller
from faceledger.domain.errors import LedgerError
from faceledger.domain.faces import AnalysedImage
from faceledger.evaluation.synthetic import synthetic_image
from faceledger.services.gateway import Gateway


def gateway_settings(tmp_path: Path, database_url: str | None) -> Settings:
    """One worker, data in ``tmp_path/data``; the store in PostgreSQL at ``database_url``, or
    SQLite when that is None."""
    return Settings(data_dir=tmp_path / "data", workers=1, database_url=database_url)


@contextmanager
def opened_gateway(
    settings: Settings, caller: Caller | None = None, collection_id: str | None = None
) -> Iterator[Gateway]:
    """A gateway on ``settings``, with ``collection_id`` created by ``caller`` when both are
    given. Closed after."""
    gate = Gateway(settings)
    try:
        if caller is not None and collection_id is not None:
            gate.create_collection(caller, collection_id)
        yield gate
    finally:
        gate.close()


def synthetic_faces(gate: Gateway, collection_id: str, seed: int, faces: int = 2) -> AnalysedImage:
    """An analysed image of ``faces`` random faces whose embeddings fit ``collection_id``."""
    dim = gate._collections.store.embedding_dim(collection_id)
    return synthetic_image(np.random.default_rng(seed), faces, dim)


@contextmanager
def refused_appends(gate: Gateway, refused: Callable[[AuditEvent], bool]) -> Iterator[None]:
    """Within the block, the gateway's ledger raises ``LedgerError`` for every event that
    ``refused`` picks and appends the others; the real append is put back after."""
    real = gate._ledger.append

    def append(event: AuditEvent) -> Any:
        if refused(event):
            raise LedgerError("injected: the ledger write failed")
        return real(event)

    gate._ledger.append = append  # type: ignore[method-assign]
    try:
        yield
    finally:
        gate._ledger.append = real  # type: ignore[method-assign]
