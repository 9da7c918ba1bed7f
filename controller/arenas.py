"""How many malloc arenas the controller's process may use (glibc).

glibc gives each thread that allocates its own arena, up to 8 per core: the controller's ~20
threads (workers, the create pool, informers, the event writer) each left one behind, a heap of
pages that stays resident once touched. Python's own allocator (pymalloc) serves small objects
from arenas shared by all threads; only larger blocks (decoded JSON strings, orjson's buffers)
go to malloc, and they are made with the GIL held, so threads sharing two arenas barely wait on
each other. bench/controller.py: a fresh controller with 100 active flows grew by ~6.5 MB with
the default, ~5.5 MB with two arenas.

An explicit ``MALLOC_ARENA_MAX`` in the environment (read by glibc at start) is left alone; on
a C library without ``mallopt`` (musl, macOS) nothing happens.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from typing import Final

log = logging.getLogger(__name__)

M_ARENA_MAX: Final = -8  # glibc's mallopt parameter number (malloc.h)
CONTROLLER_ARENAS: Final = 2


def limit(count: int = CONTROLLER_ARENAS) -> bool:
    """Cap the arenas of threads started from now on; True when the C library took it."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    taken = bool(mallopt(M_ARENA_MAX, count))
    log.debug("malloc arenas capped", extra={"arenas": count, "taken": taken})
    return taken
