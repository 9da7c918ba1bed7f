"""Operating flows from the command line, against `zen-flow serve --embedded` (kubesim, our
webhook and controller) with the real `kubectl` and `zen-flow` processes.

Covers:
- the retry request applied with `kubectl patch` works as `zen-flow retry` does: steps 2-3
  run again as new attempts (step 1's Job is not recreated), the webhook stamps who asked
  (kubesim's userInfo), the Event says what was retried and by whom; a retry naming an
  unknown step is refused at apply with the flow's steps;
- `zen-flow retry -p NAME=VALUE -w`: the step receives the new value, exit 0 on success;
  retry of a running flow (exit 1) and of an unknown step (exit 2);
- `stop -w` (the running step finishes, the flow ends Failed, Stopped; exit 1), `terminate`
  (the running Job and its pods are deleted at once);
- `logs` of a finished flow (step order, prefixed by step and attempt), of one step, `-f` on a
  running flow until it ends; `watch` of a finished flow; `list` and `get`; each with its exact
  output (times, durations, ids and column padding normalised; tests/unit/test_views.py holds
  the exact rendering with a fixed clock), and the one stderr line saying which cluster.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.embedded import ZEN_FLOW, EmbeddedServer, cli_env, cluster_line, zen_flow
from tests.fixtures.kubesim import kubectl
from tests.waiting import eventually


def flow_yaml(name: str, *, fetch_seconds: float = 0.2, fail_build: bool = True) -> str:
    def step(step: str, log: str, seconds: float, **extra: Any) -> dict[str, Any]:
        annotations = {"kubesim.io/duration": str(seconds), "kubesim.io/log": log}
        annotations.update(extra.pop("annotations", {}))
        return {
            "name": step,
            **extra,
            "template": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {
                    "template": {
                        "metadata": {"annotations": annotations},
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "main", "image": "busybox:1.36"}],
                        },
                    }
                },
            },
        }

    failing = (
        {"kubesim.io/fail-attempts": "1", "kubesim.io/attempt-key": f"{name}-build"}
        if fail_build
        else {}
    )
    body = {
        "apiVersion": "workflow.kube-zen.io/v1alpha1",
        "kind": "JobFlow",
        "metadata": {"name": name},
        "spec": {
            "parameters": [{"name": "greeting", "value": "hello"}],
            "steps": [
                step("fetch", "fetched 3 files\n", fetch_seconds),
                step(
                    "build",
                    "building\n",
                    0.2,
                    dependencies=["fetch"],
                    annotations=failing,
                    inputs={
                        "parameters": [
                            {"name": "greeting", "valueFrom": {"flowParameter": "greeting"}}
                        ]
                    },
                ),
                step("publish", "published\n", 0.2, dependencies=["build"]),
            ],
        },
    }
    return yaml.safe_dump(body)


def apply(server: EmbeddedServer, cache: Path, text: str) -> None:
    result = kubectl(server, "apply", "-f", "-", input=text, cache_dir=cache)
    assert result.returncode == 0, result.stderr


def flow(server: EmbeddedServer, cache: Path, name: str) -> dict[str, Any]:
    result = kubectl(server, "get", "jobflow", name, "-o", "json", cache_dir=cache)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def wait_phase(server: EmbeddedServer, cache: Path, name: str, phase: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        body = flow(server, cache, name)
        return body if body.get("status", {}).get("phase") == phase else None

    return eventually(reached, 30, message=f"{name} {phase}")


def jobs_of(server: EmbeddedServer, cache: Path, name: str) -> list[tuple[str, str]]:
    result = kubectl(
        server,
        "get",
        "jobs",
        "-l",
        f"workflow.kube-zen.io/flow={name}",
        "-o",
        "json",
        cache_dir=cache,
    )
    items = json.loads(result.stdout)["items"]
    return sorted(
        (
            j["metadata"]["labels"]["workflow.kube-zen.io/step"],
            j["metadata"]["labels"]["workflow.kube-zen.io/attempt"],
        )
        for j in items
    )


def merge_patch(
    server: EmbeddedServer, cache: Path, name: str, body: str
) -> subprocess.CompletedProcess[str]:
    """`kubectl patch jobflow NAME --type merge -p BODY`."""
    return kubectl(server, "patch", "jobflow", name, "--type", "merge", "-p", body, cache_dir=cache)


def cli(server: EmbeddedServer, *args: str) -> subprocess.CompletedProcess[str]:
    return zen_flow(*args, "--kubeconfig", str(server.kubeconfig))


def norm(text: str) -> list[str]:
    """Times, durations, request ids and column padding normalised, line by line."""
    text = re.sub(r"\d{8}T\d{6}\.\d{6}Z", "<ID>", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<TIME>", text)
    text = re.sub(r"^\d\d:\d\d:\d\d ", "", text, flags=re.MULTILINE)
    text = re.sub(r"(?<![\w#<])(<1s|\d+m\d+s|\d+s)(?![\w])", "<D>", text)
    return [re.sub(r" {2,}", "  ", line).rstrip() for line in text.splitlines()]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kubectl-cache")


def test_retry_with_kubectl_patch_works_the_same(embedded_server, cache) -> None:
    apply(embedded_server, cache, flow_yaml("patched"))
    wait_phase(embedded_server, cache, "patched", "Failed")
    refused = merge_patch(
        embedded_server, cache, "patched", '{"spec":{"retry":{"id":"r0","steps":["nope"]}}}'
    )
    assert refused.returncode == 1
    assert "'nope' is not a step of this flow; its steps: fetch, build, publish" in (refused.stderr)
    patched = merge_patch(embedded_server, cache, "patched", '{"spec":{"retry":{"id":"r1"}}}')
    assert patched.returncode == 0, patched.stderr
    status = wait_phase(embedded_server, cache, "patched", "Succeeded")["status"]
    assert jobs_of(embedded_server, cache, "patched") == [
        ("build", "0"),
        ("build", "1"),
        ("fetch", "0"),
        ("publish", "0"),
    ]
    retry = status["history"][-1]
    assert (retry["type"], retry["id"], retry["requestedBy"], retry["steps"]) == (
        "Retry",
        "r1",
        "kubesim-admin",
        ["build", "publish"],
    )

    def messages() -> str:
        events = kubectl(
            embedded_server,
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=patched",
            "-o",
            "json",
            cache_dir=cache,
        )
        return " ".join(e["message"] for e in json.loads(events.stdout)["items"])

    eventually(
        lambda: "retry r1 by kubesim-admin: runs again: build (attempt 2), publish" in messages(),
        10,
        message="the FlowRetried Event",
    )


def test_retry_cli_with_a_parameter(embedded_server, cache) -> None:
    apply(embedded_server, cache, flow_yaml("retried", fetch_seconds=15))
    running = cli(embedded_server, "retry", "retried")
    assert (running.returncode, running.stderr) == (
        1,
        cluster_line(embedded_server, "retry")
        + "zen-flow retry: JobFlow default/retried is Running; a retry runs a finished flow "
        "again: stop it first (zen-flow stop retried), or wait for it to end\n",
    )
    wait_phase(embedded_server, cache, "retried", "Failed")
    unknown = cli(embedded_server, "retry", "retried", "--step", "nope")
    assert (unknown.returncode, unknown.stderr) == (
        2,
        cluster_line(embedded_server, "retry")
        + "zen-flow retry: JobFlow default/retried has no step 'nope'; its steps: fetch, "
        "build, publish\n",
    )
    result = cli(embedded_server, "retry", "retried", "-p", "greeting=bonjour", "-w")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = norm(result.stdout)
    assert lines[0] == (
        "retry <ID> of JobFlow default/retried requested: runs again build (attempt 2), "
        "publish; parameters greeting=bonjour"
    )
    assert lines[-1] == "JobFlow retried Succeeded in <D>: 3 succeeded"
    assert "build#2 | building" in lines
    job = kubectl(
        embedded_server,
        "get",
        "jobs",
        "-l",
        "workflow.kube-zen.io/flow=retried,workflow.kube-zen.io/step=build,"
        "workflow.kube-zen.io/attempt=1",
        "-o",
        "json",
        cache_dir=cache,
    )
    env = json.loads(job.stdout)["items"][0]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "GREETING", "value": "bonjour"} in env


def test_stop_lets_the_running_step_finish(embedded_server, cache) -> None:
    apply(embedded_server, cache, flow_yaml("stopped", fetch_seconds=12))
    eventually(
        lambda: (
            flow(embedded_server, cache, "stopped")
            .get("status", {})
            .get("steps", [{}])[0]
            .get("phase")
            == "Running"
        ),
        20,
    )
    result = cli(embedded_server, "stop", "stopped", "-w")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = norm(result.stdout)
    assert lines[0] == (
        "stop <ID> of JobFlow default/stopped requested: nothing new starts; running steps "
        "finish first (fetch)"
    )
    assert "stopped/build: Skipped: stopped by request <ID> by kubesim-admin" in lines
    assert lines[-1] == "JobFlow stopped Failed in <D>: 1 succeeded, 2 skipped"
    assert result.stderr == cluster_line(embedded_server, "stop")
    finished = cli(embedded_server, "stop", "stopped")
    assert finished.returncode == 1
    assert finished.stderr.endswith(
        "zen-flow stop: JobFlow default/stopped already finished (Failed); nothing to stop\n"
    )


def test_terminate_deletes_the_running_job_and_its_pods(embedded_server, cache) -> None:
    apply(embedded_server, cache, flow_yaml("terminated", fetch_seconds=60))
    eventually(
        lambda: kubectl(
            embedded_server,
            "get",
            "pods",
            "-l",
            "workflow.kube-zen.io/flow=terminated",
            "-o",
            "name",
            cache_dir=cache,
        ).stdout.strip(),
        20,
    )
    result = cli(embedded_server, "terminate", "terminated")
    assert result.returncode == 0, result.stderr
    assert norm(result.stdout) == [
        "terminate <ID> of JobFlow default/terminated requested: nothing new starts; running "
        "Jobs are deleted (fetch)"
    ]
    wait_phase(embedded_server, cache, "terminated", "Failed")
    eventually(
        lambda: (
            kubectl(
                embedded_server,
                "get",
                "pods,jobs",
                "-l",
                "workflow.kube-zen.io/flow=terminated",
                "-o",
                "name",
                cache_dir=cache,
            ).stdout.strip()
            == ""
        ),
        20,
        message="the running Job and its pods are deleted",
    )
    gone = cli(embedded_server, "logs", "terminated")
    assert (gone.returncode, gone.stdout, gone.stderr) == (
        0,
        "",
        cluster_line(embedded_server, "logs")
        + "zen-flow logs: no log lines from JobFlow default/terminated: no pod has run yet, or "
        "its pods are gone with their Jobs (terminate, a step timeout, TTL)\n",
    )
    got = cli(embedded_server, "get", "terminated")
    lines = norm(got.stdout)
    assert lines[:14] == [
        "Name:  terminated",
        "Namespace:  default",
        "Phase:  Failed",
        "Reason:  Terminated",
        "Started:  <TIME>",
        "Finished:  <TIME>",
        "Duration:  <D>",
        "Progress:  3/3",
        "Parameters: greeting=hello",
        "History:  Terminate <ID> by kubesim-admin at",
        "  <TIME>: nothing new starts; running Jobs are deleted",
        "  (fetch)",
        "",
        "STEP  PHASE  ATTEMPTS  DURATION  MESSAGE",
    ]
    # the message is cut to fit 80 columns: its start is exact
    rows = [line.split("  ") for line in lines[14:]]
    assert [r[:-1] for r in rows] == [
        ["terminated", "Failed"],
        ["├─ ✖ fetch", "Failed", "1", "<D>"],
        ["├─ ○ build", "Skipped", "-"],
        ["└─ ○ publish", "Skipped", "-"],
    ]
    assert rows[0][-1] == "<D>"
    assert all(r[-1].startswith("terminated by request 2026") for r in rows[1:])
    assert max(len(line) for line in got.stdout.splitlines()) <= 80


def test_logs_of_a_finished_flow_in_step_order(embedded_server, cache) -> None:
    apply(embedded_server, cache, flow_yaml("logged"))
    wait_phase(embedded_server, cache, "logged", "Failed")
    assert cli(embedded_server, "retry", "logged").returncode == 0
    eventually(lambda: flow(embedded_server, cache, "logged")["status"].get("requests"), 20)
    wait_phase(embedded_server, cache, "logged", "Succeeded")
    result = cli(embedded_server, "logs", "logged")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "fetch   | fetched 3 files\nbuild   | building\nbuild#2 | building\npublish | published\n",
        cluster_line(embedded_server, "logs"),
    )
    one = cli(embedded_server, "logs", "logged", "build")
    assert one.stdout == "build   | building\nbuild#2 | building\n"
    bad = cli(embedded_server, "logs", "logged", "nope")
    assert (bad.returncode, bad.stderr.splitlines()[-1]) == (
        2,
        "zen-flow logs: JobFlow default/logged has no step 'nope'; its steps: fetch, build, "
        "publish",
    )


def test_logs_follow_a_running_flow_to_its_end(embedded_server, cache) -> None:
    apply(embedded_server, cache, flow_yaml("followed", fetch_seconds=1.5, fail_build=False))
    process = subprocess.run(
        [ZEN_FLOW, "logs", "followed", "-f", "--kubeconfig", str(embedded_server.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=90,
        env=cli_env(),
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout == (
        "fetch   | fetched 3 files\nbuild   | building\npublish | published\n"
    )
    assert flow(embedded_server, cache, "followed")["status"]["phase"] == "Succeeded"


def test_watch_list_and_get_of_finished_flows(embedded_server, cache) -> None:
    apply(embedded_server, cache, flow_yaml("watched", fail_build=False))
    wait_phase(embedded_server, cache, "watched", "Succeeded")
    watched = cli(embedded_server, "watch", "watched")
    assert watched.returncode == 0
    assert norm(watched.stdout) == [
        "watched/fetch: Succeeded",
        "watched/build: Succeeded",
        "watched/publish: Succeeded",
        "JobFlow watched: Succeeded",
        "fetch  | fetched 3 files",
        "build  | building",
        "publish | published",
        "",
        "STEP  PHASE  ATTEMPT  DURATION  NOTE",
        "fetch  Succeeded  1/1  <D>",
        "build  Succeeded  1/1  <D>",
        "publish  Succeeded  1/1  <D>",
        "JobFlow watched Succeeded in <D>: 3 succeeded",
    ]
    listed = cli(embedded_server, "list")
    lines = norm(listed.stdout)
    assert lines[0] == "NAME  PHASE  PROGRESS  AGE  REASON"
    assert "watched  Succeeded  3/3  <D>" in lines
    assert "stopped  Failed  3/3  <D>  Stopped" in lines or "stopped" not in listed.stdout
    assert listed.stderr == cluster_line(embedded_server, "list")
    everywhere = cli(embedded_server, "list", "-A")
    assert norm(everywhere.stdout)[0] == "NAMESPACE  NAME  PHASE  PROGRESS  AGE  REASON"
    assert "default  watched  Succeeded  3/3  <D>" in norm(everywhere.stdout)
    missing = cli(embedded_server, "get", "nope")
    assert (missing.returncode, missing.stderr.splitlines()[-1]) == (
        2,
        "zen-flow get: JobFlow default/nope not found; list them with: zen-flow list -n default",
    )


def run_with_env(*args: str, kubeconfig: str | None) -> subprocess.CompletedProcess[str]:
    env = cli_env()
    if kubeconfig is not None:
        env["KUBECONFIG"] = kubeconfig
    return subprocess.run(
        [ZEN_FLOW, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_run_takes_kubeconfig_from_the_environment_and_parameters(
    embedded_server, cache, tmp_path
) -> None:
    path = tmp_path / "param.yaml"
    path.write_text(flow_yaml("param", fail_build=False))
    result = run_with_env(
        "run",
        str(path),
        "-p",
        "greeting=salut",
        "--timeout",
        "2m",
        kubeconfig=str(embedded_server.kubeconfig),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == cluster_line(embedded_server, "run")
    job = kubectl(
        embedded_server,
        "get",
        "jobs",
        "-l",
        "workflow.kube-zen.io/flow=param,workflow.kube-zen.io/step=build",
        "-o",
        "json",
        cache_dir=cache,
    )
    env = json.loads(job.stdout)["items"][0]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "GREETING", "value": "salut"} in env
    assert flow(embedded_server, cache, "param")["status"]["parameters"] == {"greeting": "salut"}


def test_run_refuses_bad_durations_and_unknown_parameters(embedded_server, tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(flow_yaml("bad", fail_build=False))
    nan = run_with_env("run", str(path), "--timeout", "nan", kubeconfig=None)
    assert (nan.returncode, nan.stderr) == (
        2,
        "zen-flow run: --timeout nan: must be a positive duration, written as kubectl takes "
        "it: 90s, 10m, 1h30m (or a number of seconds)\n",
    )
    unknown = run_with_env("run", str(path), "-p", "nope=1", kubeconfig=None)
    assert (unknown.returncode, unknown.stderr) == (
        2,
        "-p nope: no JobFlow declares a parameter 'nope' (spec.parameters); check the name\n"
        "zen-flow run: 1 problem(s) found; nothing was applied\n",
    )


def test_run_embedded_when_asked_even_with_kubeconfig_set(embedded_server, tmp_path) -> None:
    path = tmp_path / "own.yaml"
    path.write_text(flow_yaml("own", fail_build=False))
    result = run_with_env(
        "run",
        str(path),
        "--embedded",
        "--timeout",
        "90s",
        kubeconfig=str(embedded_server.kubeconfig),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "zen-flow run: cluster: embedded, steps simulated\n"
    assert result.stdout.splitlines()[-1].startswith("JobFlow own Succeeded")


def test_run_keeps_the_logs_of_an_embedded_run(tmp_path) -> None:
    kept = tmp_path / "logs"
    failing = Path(__file__).resolve().parents[2] / "examples" / "failing.yaml"
    result = run_with_env("run", str(failing), "--logs-dir", str(kept), kubeconfig=None)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == (
        "zen-flow run: cluster: embedded, steps simulated\n"
        f"zen-flow run: kept 3 step log(s) in {kept}\n"
    )
    files = sorted(str(p.relative_to(kept)) for p in kept.rglob("*.log"))
    assert files == ["failing/compile-1.log", "failing/compile-2.log", "failing/docs-1.log"]
    assert (kept / "failing" / "compile-2.log").read_text() == (
        "compiling main.c\nmain.c:3: error: expected ';' before '}'\n"
    )


def test_stop_then_retry_runs_once_the_running_step_finished(embedded_server, cache) -> None:
    apply(embedded_server, cache, flow_yaml("again", fetch_seconds=10, fail_build=False))
    eventually(
        lambda: (
            flow(embedded_server, cache, "again")
            .get("status", {})
            .get("steps", [{}])[0]
            .get("phase")
            == "Running"
        ),
        20,
    )
    assert cli(embedded_server, "stop", "again").returncode == 0
    result = cli(embedded_server, "retry", "again", "-w")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == cluster_line(embedded_server, "retry") + (
        "zen-flow retry: JobFlow default/again is stopping; the retry runs once its running "
        "steps have finished\n"
    )
    assert norm(result.stdout)[0] == (
        "retry <ID> of JobFlow default/again requested: runs again build, publish"
    )
    assert norm(result.stdout)[-1] == "JobFlow again Succeeded in <D>: 3 succeeded"
    assert jobs_of(embedded_server, cache, "again") == [
        ("build", "0"),
        ("fetch", "0"),
        ("publish", "0"),
    ]


def test_terminate_after_stop_deletes_the_running_job_at_once(embedded_server, cache) -> None:
    # a stop winds the flow down slowly; a terminate on top of it is acted on now (it does not
    # wait for the stop to end as a retry does) and says nothing about a retry
    apply(embedded_server, cache, flow_yaml("hurried", fetch_seconds=60))
    eventually(
        lambda: (
            flow(embedded_server, cache, "hurried")
            .get("status", {})
            .get("steps", [{}])[0]
            .get("phase")
            == "Running"
        ),
        20,
    )
    assert cli(embedded_server, "stop", "hurried").returncode == 0
    result = cli(embedded_server, "terminate", "hurried", "-w", "--timeout", "30s")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == cluster_line(embedded_server, "terminate")
    lines = norm(result.stdout)
    assert "hurried/fetch: Failed: terminated by request <ID> by kubesim-admin" in lines
    assert lines[-1] == "JobFlow hurried Failed in <D>: 1 failed, 2 skipped"
    conditions = flow(embedded_server, cache, "hurried")["status"]["conditions"]
    (failed,) = [c for c in conditions if c["type"] == "Failed"]
    assert (failed["status"], failed["reason"]) == ("True", "Terminated")
