"""How deeply a JSON body nests, measured on its bytes before anything parses it.

`MAX_DEPTH` (100) is the deepest nesting of arrays and objects a review body may have. A
JobFlow nests about 20 levels at its deepest (review > request > object > spec > steps[] >
template > spec > template > spec > affinity > ... > values[]); 100 leaves five times that. The
API server decodes JSON with Go's encoding/json rules (sigs.k8s.io/json), which stop at 10,000
levels; Python cannot follow that far: json.loads gives up near 1,000 levels (the recursion
limit), and everything after it (pydantic, `jobflow.validation`, the lone-surrogate check)
walks the object recursively on the same stack. 100 keeps every one of those far from its
limit, so depth is refused once, here, with a clear message, and never surfaces later as a
RecursionError (or, in a C extension without a guard, a crashed process).

`too_deep(body, limit)` is linear, copies the body at most three times, and has no Python-level
loop over its bytes (a pure-Python scan of a 3 MiB body takes ~0.3 s):
1. escaped backslashes and escaped quotes are dropped (only they can hide a string's end);
2. one `bytes.translate` keeps only quotes and brackets, as 0x00, +1 and -1 (signed bytes);
3. when every quote pairs with the next one ("" adjacent), no string holds a bracket and the
   quotes are dropped; otherwise the text between pairs of quotes (strings) is cut out;
4. chunk by chunk (128 bytes), the depth at a chunk's start plus its opening brackets bound
   every depth inside it; when that bound stays within the limit everywhere (a flow: mostly
   shallow pairs), the body is not too deep;
5. otherwise layers of empty pairs `[]` are peeled with `bytes.replace` while that shrinks the
   text fast (each peel removes exactly one level) and until what is left is too short to nest
   past the limit; anything else is summed with `itertools.accumulate`.
Measured (bench/webhook.py's bodies, one core): ~12 us for the 12 KB review of a 20-step flow,
~8 ms for a 3 MiB review, <= 70 ms for the worst 3 MiB shapes; json.loads alone takes 0.1 ms
and 38 ms for the first two.

A malformed body may be measured wrongly here (its brackets need not balance); json.loads
refuses it anyway. `where_too_deep` finds the byte offset for the message, with a tokenizer
that only runs once a body is already refused.
"""

from __future__ import annotations

import itertools
import re
from typing import Final

MAX_DEPTH: Final = 100

_OPEN, _CLOSE, _QUOTE = b"\x01", b"\xff", b"\x00"  # +1, -1, 0 as signed bytes
_STRUCTURE: Final = bytes.maketrans(b'[{]}"', _OPEN * 2 + _CLOSE * 2 + _QUOTE)
_NOT_STRUCTURE: Final = bytes(c for c in range(256) if c not in b'[]{}"')
_EMPTY_PAIR: Final = _OPEN + _CLOSE
# A peel that removes less than this fraction of what is left is not worth another pass: the
# rest (e.g. many 99-deep towers) is summed in one go instead.
_PEEL_WORTH: Final = 8
_CHUNK: Final = 128  # bytes of marks per step of ``_shallow``
# A string (escapes and an unterminated tail included, possessive: never backtracks) or a
# bracket; used only for the offset of a refused body.
_TOKEN: Final = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\Z)|[\[\]{}]', re.DOTALL)


def _structure(body: bytes) -> bytes:
    """The body's brackets outside strings, as signed bytes +1 (open) and -1 (close)."""
    if b"\\" in body:
        # In JSON a backslash only occurs inside strings, where it escapes the next character;
        # `\\` pairs go first, so the `\"` that remain are exactly the escaped quotes.
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = body.translate(_STRUCTURE, _NOT_STRUCTURE)
    brackets = marks.translate(None, _QUOTE)
    quotes = len(marks) - len(brackets)  # no count(): the deletion has counted them
    if marks.count(_QUOTE * 2) * 2 == quotes:
        # Every quote sits next to its partner (or there is none): no string contains a
        # bracket (the common case: ~1,000 strings in a 20-step review), so the quotes go.
        return brackets
    # Dropping two adjacent quotes (a string without brackets) leaves every other mark inside
    # or outside a string as it was; what remains is split, and even pieces lie outside. Few
    # quotes remain: e.g. kubectl's last-applied-configuration annotation is one string.
    return b"".join(marks.replace(_QUOTE * 2, b"").split(_QUOTE)[::2])


def too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when arrays and objects in ``body`` nest more than ``limit`` levels deep."""
    marks = _structure(body)
    if marks.count(_OPEN) <= limit:
        return False
    if _OPEN * (limit + 1) in marks:
        return True  # the usual attack, `[[[[...`, found by one substring search
    if _shallow(marks, limit):
        return False
    peeled = 0
    while marks:
        shorter = marks.replace(_EMPTY_PAIR, b"")
        removed = len(marks) - len(shorter)
        if not removed:
            break  # unbalanced: the sum below says what it can
        peeled += 1
        if peeled > limit:
            return True
        worth = removed >= len(marks) // _PEEL_WORTH
        marks = shorter
        if peeled + len(marks) // 2 <= limit:
            return False  # balanced, the rest cannot nest deeper (unbalanced is not JSON)
        if not worth:
            break
    if not marks:
        return False
    return peeled + max(itertools.accumulate(memoryview(marks).cast("b"))) > limit


def _shallow(marks: bytes, limit: int) -> bool:
    """True when chunk by chunk the depth provably stays within ``limit``: the depth at a
    chunk's start plus the opening brackets in it bound every depth inside it. False says
    nothing (a chunk could reach past the limit): the peeling decides. A flow's marks are
    mostly shallow pairs, so ~128 bytes hold ~64 opens and the bound holds at every chunk of
    a flow ~20 deep (20 steps: ~1.5 us here against ~5.5 us of peeling; 200 steps: 11 against
    63)."""
    depth = 0
    for start in range(0, len(marks), _CHUNK):
        part = marks[start : start + _CHUNK]
        opens = part.count(_OPEN)
        if depth + opens > limit:
            return False
        depth += 2 * opens - len(part)
    return True


def where_too_deep(body: bytes, limit: int = MAX_DEPTH) -> int | None:
    """The byte offset of the first bracket nested deeper than ``limit``, if there is one."""
    depth = 0
    for token in _TOKEN.finditer(body):
        first = body[token.start()]
        if first in b"[{":
            depth += 1
            if depth > limit:
                return token.start()
        elif first in b"]}":
            depth -= 1
    return None
