"""controller.arenas: the malloc arena cap is taken by glibc, and an explicit
MALLOC_ARENA_MAX in the environment is left to glibc. Each case runs in a fresh interpreter:
the cap is process-wide."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = "from controller import arenas; print(arenas.limit())"


def run(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", CHECK],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_cap_is_taken_on_linux() -> None:
    assert run() == "True"


def test_an_explicit_environment_setting_is_left_alone() -> None:
    assert run(MALLOC_ARENA_MAX="4") == "False"
