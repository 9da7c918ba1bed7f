"""Shared pytest configuration. Fixture modules live in tests/fixtures/ (one per area) and are
registered here so every test directory can use them."""

from __future__ import annotations

import pathlib

_FIXTURES = pathlib.Path(__file__).parent / "fixtures"

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}" for p in _FIXTURES.glob("*.py") if p.stem != "__init__"
)
