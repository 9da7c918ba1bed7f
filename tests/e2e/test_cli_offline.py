"""The offline `zen-flow` commands, run as subprocesses of .venv/bin/zen-flow.

Covers: validate on every example (exit 0), invalid flows (every problem as `FILE: path:
message`, exit 1), multi-document YAML with a non-JobFlow document, JSON, stdin, `kind: List`,
unreadable files and usage errors (exit 2, one line, no traceback), --output json; graph in text,
mermaid and dot, and its refusal of cyclic flows; `zen-flow crd` equal to crds/jobflows.yaml and to
the generator; every example also validated in-process. Hostile files: each class of `when`
that crashed or stalled the previous CEL engine, a YAML alias bomb, 100,000 nested brackets:
each is answered in one line with exit 1, in a process that stays small.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jobflow import crd, validation

ROOT = Path(__file__).resolve().parents[2]
ZEN_FLOW = Path(sys.executable).with_name("zen-flow")
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

INVALID = """\
apiVersion: workflow.kube-zen.io/v1alpha1
kind: JobFlow
metadata:
  name: broken
spec:
  steps:
    - name: a
      dependencies: [c]
      template:
        kind: Job
        spec: {template: {spec: {restartPolicy: Always, containers: [{name: main}]}}}
    - name: b
      dependencies: [a]
      type: Manual
    - name: c
      dependencies: [b, ghost]
      type: Manual
"""

VALID = """\
apiVersion: workflow.kube-zen.io/v1alpha1
kind: JobFlow
metadata: {name: ok}
spec:
  steps:
    - name: gate
      type: Manual
    - name: after
      type: Manual
      dependencies: [gate]
"""


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ZEN_FLOW), *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"linear.yaml", "dag.yaml", "manual-approval.yaml", "retries-timeout-when.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_is_valid_in_process(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        assert validation.validate(doc) == []


def test_validate_examples_exit_0() -> None:
    result = run("validate", *map(str, EXAMPLES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok (JobFlow ") == len(EXAMPLES)


def test_validate_names_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(INVALID)
    result = run("validate", str(bad))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    expected = [
        f"{bad}: spec.steps[2].dependencies[1]: ",
        f"{bad}: spec.steps[0].dependencies: dependency cycle: a -> c -> b -> a",
        f"{bad}: spec.steps[0].template.spec.template.spec.restartPolicy: ",
        f"{bad}: spec.steps[0].template.spec.template.spec.containers[0].image: ",
    ]
    for prefix in expected:
        assert any(line.startswith(prefix) for line in lines), (prefix, lines)
    assert "Traceback" not in result.stderr


def test_multi_document_and_non_jobflow(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(VALID + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    result = run("validate", str(path))
    assert result.returncode == 1
    assert f"{path}#1: ok (JobFlow ok, 2 steps)" in result.stdout
    assert f"{path}#2: not a JobFlow: kind 'ConfigMap'" in result.stdout


def test_json_stdin_and_list(tmp_path: Path) -> None:
    doc = yaml.safe_load(VALID)
    as_json = tmp_path / "flow.json"
    as_json.write_text(json.dumps(doc))
    assert run("validate", str(as_json)).returncode == 0
    assert run("validate", "-", stdin=json.dumps(doc)).returncode == 0
    listing = {"apiVersion": "v1", "kind": "List", "items": [doc, doc]}
    result = run("validate", "-", stdin=yaml.safe_dump(listing))
    assert result.returncode == 0
    assert result.stdout.count("<stdin>#") == 2


def test_output_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(INVALID)
    result = run("validate", "--output", "json", str(bad))
    assert result.returncode == 1
    (report,) = json.loads(result.stdout)
    assert report["valid"] is False and report["name"] == "broken"
    codes = {p["code"] for p in report["problems"]}
    assert {"dependency-cycle", "unknown-dependency", "invalid-restart-policy"} <= codes


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("validate", "/nonexistent/flow.yaml"), "no such file"),
        (("validate", "/"), "is a directory"),
        (("validate", "-", "-"), "only once"),
        (("validate",), "the following arguments are required"),
        (("graph", "x.yaml", "--format", "png"), "invalid choice"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_usage_errors_exit_2_in_one_line(args: tuple[str, ...], fragment: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_not_yaml_is_invalid_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("spec: [unclosed\n")
    result = run("validate", str(path))
    assert result.returncode == 1
    assert "not valid YAML/JSON: line" in result.stdout
    assert "Traceback" not in result.stderr


def _flow_with_when(when: str) -> dict[str, object]:
    return {
        "apiVersion": "workflow.kube-zen.io/v1alpha1",
        "kind": "JobFlow",
        "metadata": {"name": "hostile"},
        "spec": {
            "steps": [
                {"name": "a", "type": "Manual"},
                {"name": "b", "type": "Manual", "dependencies": ["a"], "when": when},
            ]
        },
    }


BILLION_LAUGHS = "\n".join(
    [
        "apiVersion: workflow.kube-zen.io/v1alpha1",
        "kind: JobFlow",
        "metadata: {name: bomb}",
        'x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)),
        "spec: {steps: [{name: a, type: Manual}]}",
    ]
)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (json.dumps(_flow_with_when("flow" + ".a" * 20000 + " == 1")), "over the limit of 4096"),
        (json.dumps(_flow_with_when("x-" * 50000 + "x")), "over the limit of 4096"),
        (json.dumps(_flow_with_when("true && " + " " * 70000 + "(")), "over the limit of 4096"),
        (json.dumps(_flow_with_when("é" * 20000)), "over the limit of 4096"),
        (json.dumps(_flow_with_when("é" * 2000)), "not a valid CEL expression"),
        (
            json.dumps(_flow_with_when("size(" + "[1,2,3,4,5,6,7,8,9].map(a, " * 6 + "1)))))))>0")),
            "evaluation cost",
        ),
        (json.dumps(_flow_with_when("env() == 1")), "unknown function(s) env()"),
        (BILLION_LAUGHS, "YAML aliases"),
        ("a: " + "[" * 100_000 + "]" * 100_000, "nesting depth"),
    ],
    ids=[
        "member-chain",
        "minus-chain",
        "panic-column",
        "non-ascii",
        "non-ascii-short",
        "nested-map",
        "env",
        "billion-laughs",
        "deep-yaml",
    ],
)
def test_hostile_files_get_one_line_and_exit_1(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(content)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            # VmHWM is this process's own peak: ru_maxrss would carry over the peak of the
            # (large) test worker that forked it, across exec.
            "import re, sys; from app.cli import main;"
            " code = main(['validate', sys.argv[1]]);"
            " status = open('/proc/self/status').read();"
            " print(re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr);"
            " sys.exit(code)",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stdout[:2000]
    peak_kib = int(result.stderr.strip().splitlines()[-1])
    assert peak_kib < 300 * 1024, f"validate peaked at {peak_kib // 1024} MiB"


def test_graph_formats() -> None:
    dag_file = str(ROOT / "examples" / "dag.yaml")
    text = run("graph", dag_file)
    assert text.returncode == 0
    assert "level 1:" in text.stdout and "unit-tests  <- prepare" in text.stdout
    mermaid = run("graph", dag_file, "--format", "mermaid")
    assert mermaid.stdout.startswith("flowchart TD") and "s0 --> s1" in mermaid.stdout
    dot = run("graph", dag_file, "--format", "dot")
    assert dot.stdout.startswith('digraph "build-dag" {') and '"prepare" -> "lint";' in dot.stdout
    manual = run("graph", str(ROOT / "examples" / "manual-approval.yaml"), "-f", "mermaid")
    assert '{{"approve [manual]"}}' in manual.stdout


def test_graph_refuses_a_cycle(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(INVALID)
    result = run("graph", str(bad))
    assert result.returncode == 1
    assert "a -> c -> b -> a" in result.stdout


def test_crd_matches_the_repository_and_the_generator() -> None:
    result = run("crd")
    assert result.returncode == 0
    committed = (ROOT / "crds" / "jobflows.yaml").read_text()
    assert result.stdout == crd.crd_yaml()
    assert committed == crd.crd_yaml(), (
        "crds/jobflows.yaml is stale: run `zen-flow crd > crds/jobflows.yaml`"
    )
