"""kubesim raises the cyclic collector's thresholds of the process it serves in (see
kubesim/gcsettings.py): to its own from CPython's defaults, never below what the host set, and
not at all when the host turned automatic collection off. Each case in a fresh interpreter (the
thresholds are the whole process's)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def thresholds_after_start(host: str) -> str:
    code = (
        "import gc, kubesim\n"
        f"{host}\n"
        "h = kubesim.start(runner=False)\n"
        "print(gc.get_threshold())\n"
        "h.stop()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("pass", "(10000, 20, 20)"),
        ("gc.set_threshold(50000, 5, 100)", "(50000, 20, 100)"),
        ("gc.set_threshold(0, 10, 10)", "(0, 10, 10)"),
    ],
)
def test_thresholds_are_raised_never_lowered(host: str, expected: str) -> None:
    assert thresholds_after_start(host) == expected
