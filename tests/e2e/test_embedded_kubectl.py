"""`zen-flow serve --embedded` driven by the real kubectl (.venv/bin/kubectl), as a user would.

Covers:
- the process prints its kubeconfig path and writes it (mode 0600) to --kubeconfig-out;
- with --exec local the steps' commands really run: kubectl logs shows their output;
- kubectl apply -f examples/demo.yaml, then kubectl wait for phase Succeeded, kubectl get
  (printer columns Phase and Progress), kubectl describe (status and the controller's Events),
  kubectl get jobs by the flow label (one Job per attempt: the retried step has two);
- /readyz and /metrics of the same process answer (webhook and controller metrics);
- our own webhook is installed: an invalid flow applied with kubectl is denied with its problems,
  and the mutating webhook's defaults are on the stored object;
- with --data-dir the state survives a restart: after SIGTERM (exit 0) and a new process on the
  same directory, its kubeconfig sees the finished flow (same uid), and new flows are
  reviewed by the new webhook and run by the new controller.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.embedded import EXAMPLES, EmbeddedServer
from tests.fixtures.kubesim import kubectl
from tests.waiting import eventually

INVALID = """
apiVersion: workflow.kube-zen.io/v1alpha1
kind: JobFlow
metadata:
  name: loops
spec:
  steps:
    - name: a
      type: Manual
      dependencies: [a]
"""

TINY = """
apiVersion: workflow.kube-zen.io/v1alpha1
kind: JobFlow
metadata:
  name: {name}
spec:
  steps:
    - name: only
      template:
        apiVersion: batch/v1
        kind: Job
        spec:
          template:
            spec:
              restartPolicy: Never
              containers:
                - name: main
                  image: busybox:1.36
"""


def _ok(result: Any) -> str:
    assert result.returncode == 0, f"kubectl failed: {result.stderr}"
    return str(result.stdout)


def test_kubectl_apply_get_describe_wait(start_embedded: Any, tmp_path: Path) -> None:
    server: EmbeddedServer = start_embedded("--exec", "local")
    cache = tmp_path / "kube-cache"
    assert f"kubeconfig: {server.kubeconfig}" in server.output()
    assert stat.S_IMODE(server.kubeconfig.stat().st_mode) == 0o600

    assert "jobflow.workflow.kube-zen.io/demo created" in _ok(
        kubectl(server, "apply", "-f", str(EXAMPLES / "demo.yaml"), cache_dir=cache)
    )
    _ok(
        kubectl(
            server,
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            "jobflow/demo",
            "--timeout=60s",
            cache_dir=cache,
        )
    )

    table = _ok(kubectl(server, "get", "jobflows", cache_dir=cache))
    header, row = table.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "PHASE", "PROGRESS"]
    assert row.split()[:3] == ["demo", "Succeeded", "6/6"]

    def describe_with_step_events() -> str | None:
        # The controller gathers Events for up to a second before writing them (as client-go's
        # recorder aggregates), so they may land just after the status says Succeeded.
        text = _ok(kubectl(server, "describe", "jobflow", "demo", cache_dir=cache))
        return text if "fetch-deps" in text.split("Events:")[-1] else None

    described = eventually(describe_with_step_events, timeout=15)
    assert "Phase:" in described and "Succeeded" in described
    assert "Events:" in described

    jobs = json.loads(
        _ok(
            kubectl(
                server,
                "get",
                "jobs",
                "-l",
                "workflow.kube-zen.io/flow=demo,workflow.kube-zen.io/step=fetch-deps",
                "-o",
                "json",
                cache_dir=cache,
            )
        )
    )["items"]
    attempts = sorted(j["metadata"]["labels"]["workflow.kube-zen.io/attempt"] for j in jobs)
    assert attempts == ["0", "1"]  # the failed first attempt is kept, the retry is its own Job

    # --exec local: the pods ran the steps' shell commands; kubectl logs shows their output
    logs = _ok(kubectl(server, "logs", "-l", "workflow.kube-zen.io/step=publish", cache_dir=cache))
    assert logs.startswith("published demo-0.1.0.tar.gz at ")

    stored = json.loads(
        _ok(kubectl(server, "get", "jobflow", "demo", "-o", "json", cache_dir=cache))
    )
    assert stored["spec"]["executionPolicy"]["concurrencyPolicy"] == "Forbid"  # mutating webhook

    denied = kubectl(server, "apply", "-f", "-", input=INVALID, cache_dir=cache)
    assert denied.returncode != 0
    assert 'admission webhook "vjobflow.workflow.kube-zen.io" denied the request' in denied.stderr
    assert "spec.steps[0].dependencies[0]" in denied.stderr

    # the same process serves the probes and the metrics of its webhook and controller
    metrics_url = re.search(r"probes and metrics: (\S+)", server.output())
    assert metrics_url is not None, server.output()
    assert httpx.get(f"{metrics_url.group(1)}/readyz").status_code == 200
    assert "zenflow_" in httpx.get(f"{metrics_url.group(1)}/metrics").text

    assert server.stop() == 0


def test_data_dir_survives_a_restart(start_embedded: Any, tmp_path: Path) -> None:
    data = tmp_path / "state"
    cache = tmp_path / "kube-cache"
    first: EmbeddedServer = start_embedded(data_dir=data)
    _ok(kubectl(first, "apply", "-f", "-", input=TINY.format(name="kept"), cache_dir=cache))
    _ok(
        kubectl(
            first,
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            "jobflow/kept",
            "--timeout=60s",
            cache_dir=cache,
        )
    )
    uid = _ok(
        kubectl(first, "get", "jobflow", "kept", "-o", "jsonpath={.metadata.uid}", cache_dir=cache)
    )
    assert first.stop() == 0

    second: EmbeddedServer = start_embedded(data_dir=data)
    assert (
        _ok(
            kubectl(
                second,
                "get",
                "jobflow",
                "kept",
                "-o",
                "jsonpath={.metadata.uid} {.status.phase}",
                cache_dir=cache,
            )
        )
        == f"{uid} Succeeded"
    )
    # the webhook configurations now point at the new process's webhook, and its controller runs
    denied = kubectl(second, "apply", "-f", "-", input=INVALID, cache_dir=cache)
    assert "denied the request" in denied.stderr, denied.stderr
    _ok(kubectl(second, "apply", "-f", "-", input=TINY.format(name="after"), cache_dir=cache))
    _ok(
        kubectl(
            second,
            "wait",
            "--for=jsonpath={.status.phase}=Succeeded",
            "jobflow/after",
            "--timeout=60s",
            cache_dir=cache,
        )
    )
    assert second.stop() == 0
