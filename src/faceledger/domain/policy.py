"""A collection's accountability policy: purpose required, threshold floor, retention, and
whether enrolled faces keep an encrypted crop for review (``keep_face_crops``).

The floor silently raises any lower requested match threshold (as Rekognition's stream
processors raise anything below 80 to 80); responses and the ledger carry the effective value.
A floor of None follows the collection's size (the gateway looks it up in the pack's open-set
table); a number pins it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from faceledger.domain.errors import InvalidParameterError

MAX_PURPOSE_CHARS = 256
MAX_CASE_CHARS = 128


@dataclass(frozen=True)
class CollectionPolicy:
    require_purpose: bool = False
    threshold_floor: float | None = None
    retention_days: int | None = None
    # Keep a small encrypted JPEG crop of each face enrolled from now on (docs/REVIEW.md).
    keep_face_crops: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.keep_face_crops, bool):
            raise InvalidParameterError(
                f"keep_face_crops must be true or false, got {self.keep_face_crops!r}"
            )
        if self.threshold_floor is not None and not 0.0 <= float(self.threshold_floor) <= 100.0:
            raise InvalidParameterError(
                f"threshold_floor must be between 0 and 100, got {self.threshold_floor!r}"
            )
        if self.retention_days is not None and not 1 <= int(self.retention_days) <= 36_500:
            raise InvalidParameterError(
                f"retention_days must be 1 to 36500 days, got {self.retention_days!r}"
            )

    @property
    def floor_pinned(self) -> bool:
        return self.threshold_floor is not None

    def floor(self, size_floor: float) -> float:
        """The floor in force: the pinned one, else ``size_floor`` (the collection's size's)."""
        return float(self.threshold_floor) if self.threshold_floor is not None else size_floor

    def effective_threshold(self, requested: float, size_floor: float = 0.0) -> float:
        return max(float(requested), self.floor(size_floor))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CollectionPolicy:
        data: dict[str, Any] = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
