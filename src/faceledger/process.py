"""Process-wide tuning applied once at start-up by long-running commands (``serve``).

glibc's malloc gives each thread that allocates under contention its own arena (up to 8 per
core) and rarely returns their memory: with several video readers and inference threads the
resident size of a server crept up for as long as it ran (+23 MB in 10 minutes with 4 live
streams, ``bench/video_live.py``) although nothing leaked; capped at two arenas it stayed flat
(+0.9 MB). ``MALLOC_ARENA_MAX`` in the environment, if set, wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

logger = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter number in glibc's <malloc.h>
DEFAULT_ARENAS = 2


def limit_malloc_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Cap glibc's malloc arenas (no-op elsewhere, or when ``MALLOC_ARENA_MAX`` is set).
    True if the cap was applied."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        applied = bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc
        return False
    if applied:
        logger.debug("malloc arenas capped at %d", arenas)
    return applied
