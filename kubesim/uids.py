"""Object uids: random-looking version-4 UUID strings, made cheaply.

Every create needs one; ``str(uuid.uuid4())`` reads the OS random source and builds a UUID
object each time. kubesim takes 64 random bits once per process and a counter for the rest:
uids stay unique (within a process by the counter, across processes and restarts by the
random half, as a persisted store keeps its objects' uids) and have the RFC 4122 version-4
layout clients may check.
"""

from __future__ import annotations

import itertools
import secrets

_PREFIX = secrets.randbits(64)
_COUNTER = itertools.count(secrets.randbits(48))  # next() is atomic under the GIL


def new_uid() -> str:
    """A fresh uid: ``xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`` (y in 8..b, the RFC variant)."""
    high = _PREFIX
    low = next(_COUNTER) & 0xFFFF_FFFF_FFFF_FFFF
    text = f"{high:016x}{low:016x}"
    variant = "89ab"[int(text[16], 16) & 3]
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-{variant}{text[17:20]}-{text[20:32]}"
