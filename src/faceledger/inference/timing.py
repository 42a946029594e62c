"""``StageClock``: where the pipeline reports how long each stage took (for metrics).

The engine reports ``detect`` and ``embed``; the face service ``decode``; the collection
service ``search`` (with the collection's size). Nothing is reported unless an observer is
set (the server's metrics set one), so the default costs one attribute check per stage.
"""

from __future__ import annotations

from collections.abc import Callable

# observer(stage, seconds, collection size or None)
StageObserver = Callable[[str, float, int | None], None]


class StageClock:
    """Holds the observer; ``enabled`` lets callers skip work done only for it."""

    def __init__(self) -> None:
        self.observer: StageObserver | None = None

    @property
    def enabled(self) -> bool:
        return self.observer is not None

    def record(self, stage: str, seconds: float, size: int | None = None) -> None:
        observer = self.observer
        if observer is not None:
            observer(stage, seconds, size)
