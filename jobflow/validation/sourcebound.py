"""What the JSON text an object was decoded from proves about it, without serialising it.

``validate(obj, source=body)`` (the webhook passes the AdmissionReview body) uses two facts:

- ``fits(source, limit)``: every JSON value decoded from ``source`` (the whole text or any value
  inside it) serialises with ``pydantic_core.to_json`` to at most ``limit`` bytes, and can be
  serialised at all (no lone surrogate). Then the size budget needs no serialisation: for a
  20-step review that is ~30 us of the ~190 us validation takes.
- ``may_have_placeholders(source)``: False only when no decoded string contains ``{{`` (the
  template walk for ``{{ parameters.* }}`` is skipped, as it is when the serialised object has
  no ``{{``).

The bound, token by token (the serialisation is compact: what it writes for a value is written
for the value's own source text, and the text between tokens only shrinks):
- whitespace is dropped; ``{ } [ ] , :``, ``true``, ``false`` and ``null`` are written as read;
  a duplicate key is written once;
- a string: each character is written raw, as UTF-8, except ``"``, ``\\`` and controls, which the
  source must escape too; an escape is written no longer than the source's (``\\n`` as ``\\n``,
  ``\\u001f`` as ``\\u001f``, ``\\u00e9`` as two bytes, a surrogate pair's 12 bytes as four). So a
  string never grows. A lone surrogate (``\\udc80``, or its raw UTF-8 bytes ``ED A0..BF xx``,
  which ``json.loads`` reads from bytes) cannot be serialised: ``fits`` answers False when the
  source may hold one;
- an integer is written with the digits it was read with (``-0`` as ``0``);
- a float is written in its shortest round-trip form (ryu): decimal notation for magnitudes in
  [1e-5, 1e16), else ``d.ddde±x``. The worst case is ``1e15`` (4 bytes) written as
  ``1000000000000000.0`` (18): 4.5x. A float's source has at least three bytes (a ``.`` or an
  exponent); any output is at most 24 bytes (sign, ``0.0000`` and 17 digits), so from eight
  source bytes on the ratio is at most 3; the literals of one to seven bytes are checked
  exhaustively by tests/unit/test_validation_fast.py (``1e999`` becomes ``Infinity``: 1.6x).
So the serialised value is at most ``EXPANSION`` (4.5) times its source text, which is at most
the whole source. All of this is for UTF-8 text: UTF-16 and UTF-32 (which ``json.loads`` also
reads) hold NUL bytes, which UTF-8 JSON never does, and ``fits`` declines them.
"""

from __future__ import annotations

import re
from typing import Final

# Serialised bytes per source byte, at most (module docstring): 9/2, kept as a fraction.
EXPANSION_NUMERATOR: Final = 9
EXPANSION_DENOMINATOR: Final = 2
_SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89a-fA-F]")
_RAW_SURROGATE: Final = re.compile(rb"\xed[\xa0-\xbf]")
_BRACE_ESCAPE: Final = re.compile(rb"\\u007[bB]")
_PLACEHOLDER: Final = re.compile(rb"\{\{")


def fits(source: bytes, limit: int) -> bool:
    """True when any value decoded from ``source`` serialises to at most ``limit`` bytes (and
    without error); False says nothing (serialise to know)."""
    if len(source) * EXPANSION_NUMERATOR > limit * EXPANSION_DENOMINATOR:
        return False
    if b"\x00" in source:
        return False  # not UTF-8 (or not JSON): the scans below would not see its escapes
    # One-byte searches first (memchr, ~40x faster than a two-byte search on a 12 KB body).
    if b"\\" in source and _SURROGATE_ESCAPE.search(source) is not None:
        return False
    return b"\xed" not in source or _RAW_SURROGATE.search(source) is None


def may_have_placeholders(source: bytes) -> bool:
    """False when no string decoded from ``source`` (UTF-8 text, as ``fits`` accepts) contains
    ``{{``: each ``{`` of a string is either a raw ``{`` or the escape ``\\u007b``, so two in a
    row show as one or the other."""
    if _PLACEHOLDER.search(source) is not None:  # ~2x faster than `b"{{" in source`
        return True
    return b"\\" in source and _BRACE_ESCAPE.search(source) is not None
