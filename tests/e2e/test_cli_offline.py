"""The offline `zen-flow` commands, run as subprocesses of .venv/bin/zen-flow.

Covers: validate on every example (exit 0), invalid flows (every problem as `FILE: path:
message`, exit 1), multi-document YAML with a non-JobFlow document, JSON, stdin, `kind: List`,
unreadable files and usage errors (exit 2, one line, no traceback), --output json; graph in text,
mermaid and dot, and its refusal of cyclic flows; `zen-flow crd` equal to crds/jobflows.yaml and to
the generator; every example also validated in-process. Hostile files: each class of `when`
that crashed or stalled the previous CEL engine, a YAML alias bomb, 100,000 nested brackets:
each is answered in one line with exit 1, in a process that stays small. Size before building:
the issue's 50 MB manifest of 256,835 steps (YAML and JSON) gets one line and exit 1 under
250 MiB; an overlong document is named while the ones before it are validated; a List item is
measured alone; large Lists and multi-document files of valid flows are still read whole.
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
        (("graph", "/nonexistent/flows/"), "no such file"),
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
    result, peak_kib = validate_with_peak(path)
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stdout[:2000]
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


HUGE_STEPS = 256_835  # issue 13, item 4: 50 MB, 1 min 57 s and 3.8 GB before this check


def _huge_manifest(path: Path, form: str) -> None:
    """The issue's manifest: one JobFlow of 256,835 chained steps, ~50 MB."""
    head = "apiVersion: workflow.kube-zen.io/v1alpha1\nkind: JobFlow\nmetadata: {name: huge}\n"
    pod = '{"restartPolicy":"Never","containers":[{"name":"main","image":"busybox"}]}'
    with path.open("w") as out:
        if form == "json":
            out.write('{"apiVersion":"workflow.kube-zen.io/v1alpha1","kind":"JobFlow",')
            out.write('"metadata":{"name":"huge"},"spec":{"steps":[')
            for i in range(HUGE_STEPS):
                deps = f'"step-{i - 1:06d}"' if i else ""
                out.write(
                    f'{"," if i else ""}{{"name":"step-{i:06d}","dependencies":[{deps}],'
                    f'"template":{{"apiVersion":"batch/v1","kind":"Job","spec":{{"template":'
                    f'{{"spec":{pod}}}}}}}}}'
                )
            out.write("]}}")
            return
        out.write(head + "spec:\n  steps:\n")
        for i in range(HUGE_STEPS):
            deps = f"[step-{i - 1:06d}]" if i else "[]"
            out.write(
                f"  - name: step-{i:06d}\n    dependencies: {deps}\n    template:\n"
                f"      kind: Job\n      spec: {{template: {{spec: {pod}}}}}\n"
            )


def validate_with_peak(path: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """``zen-flow validate path`` in a fresh process, and that process's peak RSS in KiB."""
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
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    return result, int(result.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("form", ["yaml", "json"])
def test_a_huge_manifest_is_refused_before_it_is_built(tmp_path: Path, form: str) -> None:
    """Measured on the parser's events, not on the built graph: ~2 s and ~130 MiB (it was
    2 min and 3.5 GB in YAML, 16 s and 580 MB in JSON)."""
    path = tmp_path / f"huge.{form}"
    _huge_manifest(path, form)
    assert path.stat().st_size > 45_000_000
    result, peak_kib = validate_with_peak(path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stdout.splitlines() == [
        f"{path}: document 1 holds more than 1,000,000 values (a JobFlow at the 1.5 MiB limit"
        " holds about 200,000); split it"
    ]
    assert peak_kib < 250 * 1024, f"validate peaked at {peak_kib // 1024} MiB"


def _flow_text(name: str, steps: int) -> str:
    body = [{"name": f"s{i}", "type": "Manual"} for i in range(steps)]
    return json.dumps(
        {
            "apiVersion": "workflow.kube-zen.io/v1alpha1",
            "kind": "JobFlow",
            "metadata": {"name": name},
            "spec": {"steps": body},
        },
        indent=4,
    )


def test_large_sources_of_valid_flows_are_still_read(tmp_path: Path) -> None:
    """Over the 1 MiB where measuring starts, a List and a multi-document file of many valid
    flows (each well under the limits) are read whole."""
    flows = [json.loads(_flow_text(f"f{i}", 1000)) for i in range(40)]
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps({"apiVersion": "v1", "items": flows, "kind": "List"}, indent=4))
    several = tmp_path / "several.yaml"
    several.write_text("\n---\n".join(yaml.safe_dump(f) for f in flows))
    for path in (listed, several):
        assert path.stat().st_size > 1024 * 1024
        result = run("validate", str(path))
        assert result.returncode == 0, result.stdout[-2000:]
        assert len(result.stdout.splitlines()) == 40


def test_an_overlong_document_is_named_and_those_before_it_are_read(tmp_path: Path) -> None:
    """A document longer than any JobFlow (13 MiB of one string) is refused without being
    built; the documents before it are validated as usual; a List item is measured alone."""
    long = json.loads(_flow_text("long", 1))
    long["spec"]["steps"][0]["message"] = "x" * (13 * 1024 * 1024)
    path = tmp_path / "mixed.yaml"
    path.write_text(_flow_text("first", 2) + "\n---\n" + json.dumps(long) + "\n---\n{}\n")
    result = run("validate", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}#1: ok (JobFlow first, 2 steps)",
        f"{path}#2: document 2 is longer than 12,582,912 characters, which no JobFlow needs"
        " (the limit is 1,572,864 bytes serialised, what etcd accepts); split it or move data"
        " to ConfigMaps",
    ]
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps({"kind": "List", "items": [json.loads(_flow_text("a", 1)), long]}))
    result = run("validate", str(listed))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{listed}: document 1, item 2 is longer than 12,582,912 characters, which no JobFlow"
        " needs (the limit is 1,572,864 bytes serialised, what etcd accepts); split it or move"
        " data to ConfigMaps"
    ]
