"""`zen-flow --version`, and `validate` and `graph` over several files and directories (a
directory stands for its .yaml, .yml and .json files, sorted, as `kubectl apply -f DIR`), run as
subprocesses: exact output; an empty directory is one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ZEN_FLOW = Path(sys.executable).with_name("zen-flow")
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ZEN_FLOW), *args], capture_output=True, text=True, timeout=60, check=False
    )


def flow(name: str, *steps: str) -> str:
    lines = [
        "apiVersion: workflow.kube-zen.io/v1alpha1",
        "kind: JobFlow",
        f"metadata: {{name: {name}}}",
        "spec:",
        "  steps:",
    ]
    previous = None
    for step in steps:
        lines.append(f"    - name: {step}")
        lines.append("      type: Manual")
        if previous:
            lines.append(f"      dependencies: [{previous}]")
        previous = step
    return "\n".join(lines) + "\n"


def test_version() -> None:
    result = run("--version")
    assert (result.returncode, result.stdout) == (0, "zen-flow 0.1.0\n")


def test_validate_and_graph_over_files_and_directories(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "b.yaml").write_text(flow("second", "x"))
    (folder / "a.yml").write_text(flow("first", "p", "q"))
    (folder / "notes.txt").write_text("not a manifest")
    single = tmp_path / "third.yaml"
    single.write_text(flow("third", "z"))
    result = run("validate", str(folder), str(single))
    assert (result.returncode, result.stdout) == (
        0,
        f"{folder / 'a.yml'}: ok (JobFlow first, 2 steps)\n"
        f"{folder / 'b.yaml'}: ok (JobFlow second, 1 steps)\n"
        f"{single}: ok (JobFlow third, 1 steps)\n",
    )
    graph = run("graph", str(folder), str(single))
    assert (graph.returncode, graph.stdout) == (
        0,
        "JobFlow first: 2 steps, 2 levels\nlevel 0:\n  p [manual]\nlevel 1:\n  q [manual]  <- p\n"
        "\n"
        "JobFlow second: 1 steps, 1 levels\nlevel 0:\n  x [manual]\n"
        "\n"
        "JobFlow third: 1 steps, 1 levels\nlevel 0:\n  z [manual]\n",
    )


def test_an_empty_directory_is_one_line(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path))
    assert (result.returncode, result.stderr) == (
        2,
        f"zen-flow validate: {tmp_path}: a directory without .yaml, .yml or .json files\n",
    )
