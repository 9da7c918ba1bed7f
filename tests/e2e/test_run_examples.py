"""`zen-flow run` end to end: the real CLI in a subprocess, each run on its own embedded cluster.

Covers:
- examples/demo.yaml succeeds (exit 0) in sim and local modes: the retried step shows two
  attempts and both attempts' logs, the `when`-false step is Skipped, the summary says
  Succeeded; in local mode the steps' real output (shell commands) shows, prefixed by step name;
- every example (but those waiting for an approval) in one run per mode, sim and local: each
  flow reaches its expected phase (failing.yaml Failed, the rest Succeeded), exit 1;
- examples/failing.yaml exits 1 in sim and local modes and shows the failing step's log lines
  (both attempts) and the skipped dependant;
- -o json prints only the final JobFlows (a List for two files) and keeps the exit code;
- -n puts flows in a namespace, which the embedded cluster creates;
- an invalid flow exits 2 listing every problem with its path, and nothing is applied;
- --timeout exits 3 and says the flow did not finish; Ctrl-C (SIGINT) exits 130 and says so;
- metadata.generateName: the flow gets a fresh name, shown in the result;
- user mistakes (missing file, --exec with --kubeconfig, bad --timeout) are one line, exit 2;
  an unreachable cluster is one line, exit 1.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fixtures.embedded import EXAMPLES, REPO, ZEN_FLOW, cli_env, zen_flow
from tests.waiting import eventually

SLOW_FLOW = """
apiVersion: workflow.kube-zen.io/v1alpha1
kind: JobFlow
metadata:
  name: slow
spec:
  steps:
    - name: wait
      template:
        apiVersion: batch/v1
        kind: Job
        spec:
          template:
            metadata:
              annotations:
                kubesim.io/duration: "120"
            spec:
              restartPolicy: Never
              containers:
                - name: main
                  image: busybox:1.36
                  command: [sh, -c, "sleep 120"]
"""

INVALID_FLOW = """
apiVersion: workflow.kube-zen.io/v1alpha1
kind: JobFlow
metadata:
  name: broken
spec:
  steps:
    - name: a
      dependencies: [b]
      type: Manual
    - name: b
      dependencies: [a]
      type: Manual
    - name: c
      dependencies: [nowhere]
      type: Manual
"""


def _assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


@pytest.mark.parametrize("mode", ["sim", "local"])
def test_demo_succeeds_with_retry_when_and_logs(mode: str) -> None:
    result = zen_flow("run", str(EXAMPLES / "demo.yaml"), "--exec", mode)

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # one line per transition (stdout is a pipe; polling may not catch the short backoff
    # between the attempts), the retry visible as its own attempt
    assert re.search(r"demo/fetch-deps: Succeeded \(attempt 2/3\)", out)
    assert "demo/notify-failure: Skipped: when condition is false" in out
    # the logs of both attempts, prefixed by step name (and attempt for the retry)
    assert re.search(r"^fetch-deps +\| resolving 3 packages", out, re.M)
    assert re.search(r"^fetch-deps#2 +\| resolving 3 packages", out, re.M)
    assert re.search(r"^test +\| test 3/3 ok$", out, re.M)
    assert "JobFlow demo Succeeded" in out.splitlines()[-1]
    _assert_no_traceback(result)
    if mode == "local":
        _assert_real_output(out)


def _assert_real_output(out: str) -> None:
    # text only a real process prints: its pod name from $HOSTNAME, uname, stderr merged
    assert re.search(r"^checkout +\| checked out zen-flow@main in pod demo-checkout-0-", out, re.M)
    assert re.search(r"^checkout +\| building on \S+ \S+, \d+ cores$", out, re.M)
    assert re.search(r"^fetch-deps +\| mirror timed out after 2s", out, re.M)
    assert re.search(r"^fetch-deps#2 +\|   fetched rich$", out, re.M)
    assert re.search(r"^publish +\| published demo-0\.1\.0\.tar\.gz at \d\d:\d\d:\d\dZ$", out, re.M)


@pytest.mark.parametrize("mode", ["sim", "local"])
def test_failing_flow_exits_1_and_shows_the_failed_steps_log(mode: str) -> None:
    result = zen_flow("run", str(EXAMPLES / "failing.yaml"), "--exec", mode)

    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"^compile +\| main\.c:3: error: expected ';' before '}'$", out, re.M)
    assert re.search(r"^compile#2 +\| main\.c:3: error", out, re.M)
    assert re.search(r"failing/compile: Failed \(attempt 2/2\)", out)
    assert "failing/package: Skipped" in out
    assert "failing/docs: Succeeded" in out
    assert out.splitlines()[-1].startswith("JobFlow failing Failed")
    _assert_no_traceback(result)


def test_json_output_is_only_the_final_flows() -> None:
    result = zen_flow(
        "run", str(EXAMPLES / "demo.yaml"), str(EXAMPLES / "failing.yaml"), "-o", "json"
    )

    assert result.returncode == 1, result.stderr  # one of the two failed
    listed = json.loads(result.stdout)  # the whole stdout is one JSON document
    assert listed["kind"] == "List"
    phases = {i["metadata"]["name"]: i["status"]["phase"] for i in listed["items"]}
    assert phases == {"demo": "Succeeded", "failing": "Failed"}
    demo = next(i for i in listed["items"] if i["metadata"]["name"] == "demo")
    fetch = next(s for s in demo["status"]["steps"] if s["name"] == "fetch-deps")
    assert fetch["attempts"] == 2


def test_json_output_of_one_flow_is_the_object(tmp_path: Path) -> None:
    result = zen_flow(
        "run", str(EXAMPLES / "approval.yaml"), "-o", "json", "--timeout", "2", "-n", "team-a"
    )

    assert result.returncode == 3  # nobody approves: still Paused when the timeout hits
    flow = json.loads(result.stdout)
    assert flow["kind"] == "JobFlow"
    assert flow["metadata"]["namespace"] == "team-a"  # created in the embedded cluster
    assert flow["status"]["phase"] == "Paused"


def test_invalid_flow_exits_2_with_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(INVALID_FLOW)

    result = zen_flow("run", str(path))

    assert result.returncode == 2
    assert result.stdout == ""
    err = result.stderr
    assert "a -> b -> a" in err or "b -> a -> b" in err  # the cycle, named whole
    assert "spec.steps[2].dependencies[0]" in err  # the unknown dependency, with its path
    assert "nothing was applied" in err
    _assert_no_traceback(result)


def test_timeout_exits_3_and_says_the_flow_did_not_finish(tmp_path: Path) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW_FLOW)

    result = zen_flow("run", str(path), "--timeout", "1")

    assert result.returncode == 3, result.stdout + result.stderr
    assert "--timeout 1s reached; JobFlow slow (Running) did not finish" in result.stderr
    assert "slow/wait: Running" in result.stdout


def test_ctrl_c_stops_cleanly_and_says_the_flow_did_not_finish(tmp_path: Path) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW_FLOW)
    out_file = tmp_path / "out.txt"
    with out_file.open("w") as out:
        proc = subprocess.Popen(
            [ZEN_FLOW, "run", str(path), "--exec", "local"],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=cli_env(),
        )
        try:
            eventually(
                lambda: "slow/wait: Running" in out_file.read_text(), 60, message="step running"
            )
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    assert proc.returncode == 130
    assert "interrupted; JobFlow default/slow did not finish" in err
    assert "Traceback" not in err


def test_generate_name_gets_a_fresh_name_per_run(tmp_path: Path) -> None:
    path = tmp_path / "generated.yaml"
    text = (EXAMPLES / "failing.yaml").read_text()
    path.write_text(text.replace("  name: failing\n", "  generateName: failing-\n"))

    result = zen_flow("run", str(path), "-o", "json")

    assert result.returncode == 1, result.stderr
    flow = json.loads(result.stdout)
    assert re.fullmatch(r"failing-[a-z0-9]{5}", flow["metadata"]["name"])
    assert flow["status"]["phase"] == "Failed"


def test_unreachable_cluster_is_one_line_exit_1(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        "clusters: [{name: dead, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: dead, context: {cluster: dead, user: u}}]\n"
    )

    result = zen_flow("run", str(EXAMPLES / "demo.yaml"), "--kubeconfig", str(kubeconfig))

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "zen-flow run: cannot reach the cluster at https://127.0.0.1:1: "
        "[Errno 111] Connection refused"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no-such-file.yaml"], "no-such-file.yaml: no such file"),
        (
            ["run", "examples/demo.yaml", "--kubeconfig", "kc", "--exec", "local"],
            "--exec applies to the embedded cluster only",
        ),
        (["run", "examples/demo.yaml", "--timeout", "0"], "--timeout 0: must be a positive"),
        (["run", "examples/demo.yaml", "--kubeconfig", "missing-kc"], "no such file"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(args: list[str], message: str) -> None:
    result = zen_flow(*args)

    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    _assert_no_traceback(result)


def _examples() -> dict[Path, dict[str, object]]:
    """Every example flow (one JobFlow per file) by path."""
    return {path: yaml.safe_load(path.read_text()) for path in sorted(EXAMPLES.glob("*.yaml"))}


def _waits_for_a_person(flow: dict[str, object]) -> bool:
    steps = flow["spec"]["steps"]  # type: ignore[index]
    return any(step.get("type") == "Manual" for step in steps)


@pytest.mark.parametrize("mode", ["sim", "local"])
def test_every_example_runs_to_its_outcome(mode: str) -> None:
    """All examples at once (one process per mode keeps this fast); flows that wait for an
    approval are covered by the approval tests and the timeout test."""
    runnable = {p: f for p, f in _examples().items() if not _waits_for_a_person(f)}
    assert len(runnable) >= 3, "the examples directory lost its flows"

    result = zen_flow("run", *map(str, runnable), "--exec", mode, "--timeout", "60")

    verdicts = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^JobFlow (\S+) (Succeeded|Failed) ", result.stdout, re.M)
    }
    expected = {
        f["metadata"]["name"]: "Failed" if p.name == "failing.yaml" else "Succeeded"  # type: ignore[index]
        for p, f in runnable.items()
    }
    assert verdicts == expected, result.stdout[-3000:] + result.stderr
    assert result.returncode == (1 if "Failed" in expected.values() else 0)
    # with several flows, log lines carry flow/step
    assert re.search(r"^demo/fetch-deps#2 +\| ", result.stdout, re.M)
    # a fan-out's items are prefixed step[i] (examples/fan-out-finally.yaml)
    if mode == "local":
        assert re.search(
            r"^fan-out-finally/process\[1\] +\| shard 1: us has 5 rows", result.stdout, re.M
        )
    else:
        assert "fan-out-finally/process: Succeeded (3/3 items)" in result.stdout
