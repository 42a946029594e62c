"""Stopping on SIGTERM with exit status 0.

uvicorn handles SIGTERM gracefully — it closes the listening sockets at once, lets in-flight
requests finish within ``timeout_graceful_shutdown`` (``FACELEDGER_SHUTDOWN_GRACE_SECONDS``),
then runs the app's lifespan shutdown (the ``ServerShutdown`` record, streams stopped, index
snapshots, a final ledger checkpoint) — and afterwards re-raises the signal so that the
process ends "killed by SIGTERM" (status 143) under the default handler. A service manager
reads that as a failure; ``exit_zero_after_sigterm`` installs a handler that turns the
re-raised signal into a normal exit instead.
"""

from __future__ import annotations

import signal
from types import FrameType


def _exit_zero(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def exit_zero_after_sigterm() -> None:
    """Make SIGTERM end the process with status 0 once uvicorn has shut down (call in the
    main thread before ``uvicorn.run``; uvicorn replaces it while serving, then restores it)."""
    signal.signal(signal.SIGTERM, _exit_zero)
