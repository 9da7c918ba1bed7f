"""The value grammars a JobFlow shares with Kubernetes: Go durations and resource quantities.

One grammar each, used by validation (which refuses what does not parse) and by everything that
reads a valid spec (backoff delays, spec.read), so admission and the controller cannot disagree
on what ``"10"`` means (it is not a Go duration: ``time.ParseDuration("10")`` says "missing
unit", and so do we).
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal
from typing import Final

_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT_SECONDS: Final = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "μs": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
_QUANTITY = re.compile(
    r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][-+]?\d+)?"
)
_MAX_QUANTITY_EXPONENT: Final = 30
_QUANTITY_SUFFIX: Final = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY_CACHE_SIZE: Final = 1024  # distinct quantity strings remembered
# Longer strings are not quantities: a real one is a few characters (Kubernetes' own are int64
# based), and a cache keyed by megabyte strings from hostile reviews would keep them for good.
MAX_QUANTITY_LENGTH: Final = 64


def parse_duration(text: str) -> Decimal | None:
    """Seconds in a Go duration (``1m30s``, ``-1.5h``, ``0``), None when it is not one."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return Decimal(0)
    position = 0
    total = Decimal(0)
    while position < len(body):
        match = _GO_DURATION_PART.match(body, position)
        if match is None:
            return None
        total += Decimal(match.group(1)) * _GO_UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not body:
        return None
    return -total if text.startswith("-") else total


def parse_quantity(value: object) -> Decimal | None:
    """A Kubernetes resource quantity (``500m``, ``1Gi``, ``2``, ``1e3``) as a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = Decimal(str(value))
        return number if number.is_finite() else None
    if not isinstance(value, str):
        return None
    if len(value) > MAX_QUANTITY_LENGTH:
        return None
    return _parse_quantity_text(value)


@functools.lru_cache(maxsize=_QUANTITY_CACHE_SIZE)
def _parse_quantity_text(value: str) -> Decimal | None:
    # Flows repeat the same few quantities ("500m", "1Gi") in every step: caching them keeps
    # the webhook's per-review cost down (this was the largest single cost of validate()).
    match = _QUANTITY.fullmatch(value)
    if match is None:
        return None
    try:
        number = Decimal(match.group(1))
        suffix = match.group(2) or ""
        if suffix[:1] in ("e", "E"):
            exponent = int(suffix[1:])
            # Kubernetes quantities stop near 2^63; a wild exponent is not a quantity.
            if abs(exponent) > _MAX_QUANTITY_EXPONENT:
                return None
            return number * Decimal(10) ** exponent
        return number * _QUANTITY_SUFFIX[suffix]
    except ArithmeticError:  # InvalidOperation, Overflow
        return None
