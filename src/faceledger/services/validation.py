"""Checks of numeric request parameters shared by the service verbs (InvalidParameterError)."""

from __future__ import annotations

from faceledger.domain.errors import InvalidParameterError


def check_int(value: int, low: int, high: int, name: str) -> int:
    """``value`` when it is an integer (not a bool) from ``low`` to ``high``, inclusive."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidParameterError(
            f"{name} must be an integer from {low} to {high}, got {value!r}"
        )
    return value


def check_threshold(value: float, name: str) -> float:
    """``value`` as a float when it is a Similarity threshold (0–100)."""
    if not isinstance(value, int | float) or not 0.0 <= float(value) <= 100.0:
        raise InvalidParameterError(f"{name} must be between 0 and 100, got {value!r}")
    return float(value)
