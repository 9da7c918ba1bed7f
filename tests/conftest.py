"""Shared pytest configuration. Fixture modules live in tests/fixtures/ (one per area) and are
registered here so every test directory can use them."""

from __future__ import annotations

import os
import pathlib

from hypothesis import settings

_FIXTURES = pathlib.Path(__file__).parent / "fixtures"

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}" for p in _FIXTURES.glob("*.py") if p.stem != "__init__"
)

# Property tests explore new random examples on every run by default (that is how they find
# bugs); CI runs the same examples each time (`.ci/run` sets the profile) so that a red CI
# means a change broke something, not that today's draw was unlucky.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("ZEN_FLOW_HYPOTHESIS_PROFILE", "default"))
