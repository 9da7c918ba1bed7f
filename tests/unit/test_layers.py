"""The import-linter contracts in pyproject.toml catch what they promise (ARCHITECTURE.md, Layers).

Covers: the real tree keeps every contract; a scratch module that breaks one rule makes
`lint-imports` fail and name exactly the contracts meant to catch it: controller/ (also a new
subpackage) importing kubernetes, jobflow/ importing kubesim or fastapi, app/ outside
app.embedded importing kubesim, webhook/ importing controller, controller/ importing webhook,
kubesim/ importing jobflow, certs/ importing jobflow, and an import cycle inside kubesim/ closed
by a function-level import. Each case runs `lint-imports` on a copy of the packages' .py files
with the scratch module added, so the real tree is never touched; what the scratch module breaks
is compared with what the tree breaks without it, so work in progress elsewhere in the tree
fails only the real-tree test.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
LINT_IMPORTS: Final = Path(sys.executable).with_name("lint-imports")
# Generous: one run takes well under a second; the bound only turns a hang into a failure.
LINT_TIMEOUT: Final = 60.0

LAYERS: Final = "Layers: app -> controller | webhook -> jobflow"
JOBFLOW_PURE: Final = "jobflow is pure: no client, web framework, kubesim or other package of ours"
WEBHOOK: Final = "webhook imports neither the kubernetes client nor controller nor kubesim"
CONTROLLER: Final = "controller imports neither webhook nor app"
KUBESIM_ALONE: Final = "kubesim imports nothing of ours"
CERTS_ALONE: Final = "certs imports nothing of ours"
ONLY_KUBE: Final = "Only controller.kube imports kubernetes"
ONLY_EMBEDDED: Final = "Only app.embedded imports kubesim"
ACYCLIC: Final = "No import cycles inside a package"


def _importlinter_config() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        config: dict[str, Any] = tomllib.load(f)["tool"]["importlinter"]
    return config


def _lint(cwd: Path) -> tuple[int, str, set[str]]:
    """(exit code, output, names of the broken contracts) of `lint-imports` run in ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=LINT_TIMEOUT,
        check=False,
    )
    output = done.stdout + done.stderr
    broken = {
        line.removesuffix(" BROKEN") for line in output.splitlines() if line.endswith(" BROKEN")
    }
    return done.returncode, output, broken


@functools.cache
def _broken_in_the_real_tree() -> frozenset[str]:
    return frozenset(_lint(ROOT)[2])


def _copy_tree(dest: Path) -> None:
    """The root packages' .py files and pyproject.toml, as lint-imports reads them."""

    def not_python(directory: str, names: list[str]) -> set[str]:
        return {
            n
            for n in names
            if n == "__pycache__" or (not n.endswith(".py") and not (Path(directory) / n).is_dir())
        }

    for package in _importlinter_config()["root_packages"]:
        shutil.copytree(ROOT / package, dest / package, ignore=not_python)
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def test_every_contract_is_tested() -> None:
    named = {c["name"] for c in _importlinter_config()["contracts"]}
    assert named == {
        LAYERS,
        JOBFLOW_PURE,
        WEBHOOK,
        CONTROLLER,
        KUBESIM_ALONE,
        CERTS_ALONE,
        ONLY_KUBE,
        ONLY_EMBEDDED,
        ACYCLIC,
    }


def test_the_real_tree_keeps_every_contract() -> None:
    code, output, broken = _lint(ROOT)
    assert (code, broken) == (0, set()), output


@pytest.mark.parametrize(
    ("scratch", "expected"),
    [
        pytest.param(
            {"controller/scratch.py": "import kubernetes\n"},
            {ONLY_KUBE},
            id="controller-kubernetes",
        ),
        pytest.param(
            {
                "controller/scratch_pkg/__init__.py": "",
                "controller/scratch_pkg/deep.py": "from kubernetes import client\n",
            },
            {ONLY_KUBE},
            id="controller-subpackage-kubernetes",
        ),
        pytest.param(
            {"jobflow/scratch.py": "import kubesim\n"},
            {JOBFLOW_PURE, ONLY_EMBEDDED},
            id="jobflow-kubesim",
        ),
        pytest.param(
            {"jobflow/scratch.py": "import fastapi\n"}, {JOBFLOW_PURE}, id="jobflow-fastapi"
        ),
        pytest.param({"app/scratch.py": "import kubesim\n"}, {ONLY_EMBEDDED}, id="app-kubesim"),
        pytest.param(
            {"webhook/scratch.py": "from controller import queue\n"},
            {LAYERS, WEBHOOK},
            id="webhook-controller",
        ),
        pytest.param(
            {"controller/scratch.py": "from webhook import review\n"},
            {LAYERS, CONTROLLER},
            id="controller-webhook",
        ),
        pytest.param(
            {"kubesim/scratch.py": "from jobflow import names\n"},
            {KUBESIM_ALONE},
            id="kubesim-jobflow",
        ),
        pytest.param(
            {"certs/scratch.py": "from jobflow import names\n"}, {CERTS_ALONE}, id="certs-jobflow"
        ),
        pytest.param(
            {
                "kubesim/scratch_a.py": "from kubesim import scratch_b\n",
                "kubesim/scratch_b.py": "def later():\n    from kubesim import scratch_a\n",
            },
            {ACYCLIC},
            id="kubesim-cycle",
        ),
    ],
)
def test_a_scratch_module_breaking_a_rule_fails_its_contract(
    tmp_path: Path, scratch: dict[str, str], expected: set[str]
) -> None:
    already = _broken_in_the_real_tree()
    assert not expected & already, f"broken without a scratch module: {sorted(expected & already)}"
    _copy_tree(tmp_path)
    for relative, source in scratch.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(source)
    code, output, broken = _lint(tmp_path)
    assert code != 0, output
    assert broken - already == expected, output
