"""What the two face-crop benches share (``face_crops.py``, ``lead_probes.py``): a gateway in a
temporary folder with a collection whose policy keeps face crops (``kept``) beside one whose
does not (``plain``), and one verb timed on both, item by item, so both see the same machine
load."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.policy import CollectionPolicy
from faceledger.domain.principals import ROLES, Principal
from faceledger.services.gateway import Gateway

COLLECTIONS = ("plain", "kept")
CALLER = Caller(
    Principal("bench", ROLES, "BENCH"), "cli", "bench", purpose="bench", case_reference="B"
)

Item = TypeVar("Item")
Result = TypeVar("Result")


@contextmanager
def plain_and_kept() -> Iterator[Gateway]:
    """A gateway (embedded store, one worker, its keys in the same temporary folder) with the
    collections ``plain`` and ``kept``; closed, and its folder removed, after."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            ledger_key_file=Path(tmp) / "keys" / "ledger.key",
            crop_key_file=Path(tmp) / "keys" / "crops.key",
            workers=1,
        )
        gate = Gateway(settings)
        try:
            for name in COLLECTIONS:
                gate.create_collection(CALLER, name)
            gate.put_policy(CALLER, "kept", CollectionPolicy(keep_face_crops=True))
            yield gate
        finally:
            gate.close()


def timed_ms(call: Callable[[], Result]) -> tuple[Result, float]:
    """``call()``'s result and how long it took, in milliseconds."""
    start = time.perf_counter()
    result = call()
    return result, (time.perf_counter() - start) * 1000


def alternately(
    items: Sequence[Item], call: Callable[[str, Item], Result]
) -> tuple[dict[str, list[float]], list[Result]]:
    """``call(collection, item)`` on ``plain`` then on ``kept``, item after item: each call's
    milliseconds by collection, and the results on ``kept`` in item order."""
    times_ms: dict[str, list[float]] = {name: [] for name in COLLECTIONS}
    kept: list[Result] = []
    for item in items:
        for name in COLLECTIONS:
            result, took_ms = timed_ms(partial(call, name, item))
            times_ms[name].append(took_ms)
            if name == "kept":
                kept.append(result)
    return times_ms, kept
