"""Every file the ui serves is package data, so an installed wheel works offline as a checkout
does (pyproject's [tool.setuptools.package-data] for app.ui)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_static_file_is_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["app.ui"]
    root = REPO / "app" / "ui"
    files = [p.relative_to(root).as_posix() for p in (root / "static").rglob("*") if p.is_file()]
    assert "static/vendor/cytoscape.min.js" in files
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert not missing
    # Each vendored library has its licence next to it.
    vendor = {p.name for p in (root / "static" / "vendor").iterdir()}
    for script in ("cytoscape", "cytoscape-dagre"):
        assert {f"{script}.min.js", f"{script}.LICENSE"} <= vendor
