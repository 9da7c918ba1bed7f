"""Data between steps in kubesim's ``local`` mode (real processes) with the real controller.

Covers: examples/parameters.yaml runs: compute's termination-message file becomes its outputs
in status, deploy's log shows the real value through the command placeholder and through its
env var, the ``when`` on an output runs big-batch; a value with quotes, ``$(HOME)`` and a
newline, written as JSON, reaches the next process exactly (command and env);
examples/artifacts.yaml runs: a file written by one step is read by the next through the
workspace claim (a host directory per claim in local mode); the runner's mapping itself: a claim
and an emptyDir become directories (subPath below, created), other volumes are not mapped, and
mount paths are rewritten only as whole path components, longest first; an ``http`` input
artifact is downloaded by the controller's init container (real curl, from an http.server in
the test) and the step reads the file at its path (a single-file subPath mount).
"""

from __future__ import annotations

import http.server
import json
import shlex
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import kubesim
from controller.kube import PODS
from kubesim.runner import local_command, local_mounts
from tests.fixtures.controller import NAMESPACE, flow

WORKSPACE = {
    "volumeClaimTemplate": {
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }
}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def kubesim_server() -> Iterator[Any]:
    """This module's cluster runs Job containers as local processes."""
    handle = kubesim.start(exec_mode="local")
    try:
        yield handle
    finally:
        handle.stop()


def example(name: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return body


def step_log(cluster: Any, flow_name: str, step: str) -> str:
    (job,) = cluster.step_jobs(flow_name, step)
    selector = f"job-name={job['metadata']['name']}"
    pods = cluster.kube.list_all(PODS, NAMESPACE, label_selector=selector)["items"]
    return "".join(cluster.kube.pod_log(NAMESPACE, p["metadata"]["name"]) for p in pods)


def test_parameters_example(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(example("parameters.yaml"))
    status = cluster.wait_phase("parameters-demo", "Succeeded", timeout=30)
    steps = {s["name"]: s for s in status["steps"]}
    assert steps["compute"]["outputs"] == {"parameters": {"version": "1.4.2", "rows": "42"}}
    assert steps["big-batch"]["phase"] == "Succeeded"
    log = step_log(cluster, "parameters-demo", "deploy")
    assert "deploying version 1.4.2\n" in log
    assert "env VERSION=1.4.2\n" in log
    assert 'hello "release" {1.4}\n' in log


def test_awkward_value_reaches_the_next_process_exactly(cluster, start_controller) -> None:
    start_controller()
    value = 'costs $(HOME) "quoted" {x}\nsecond line $$'
    message = json.dumps({"note": value})
    container = {"name": "main", "image": "busybox", "command": ["sh", "-c"]}
    produce = {
        "name": "produce",
        "outputs": {"parameters": [{"name": "note"}]},
        "template": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                **container,
                                "command": [
                                    "sh",
                                    "-c",
                                    # $$: the kubelet's $(VAR) expansion of commands
                                    f"printf '%s' {shlex.quote(message)} > /dev/termination-log".replace(
                                        "$", "$$"
                                    ),
                                ],
                            }
                        ],
                    }
                }
            },
        },
    }
    ref = {"stepOutputRef": {"step": "produce", "parameter": "note"}}
    consume = {
        "name": "consume",
        "dependencies": ["produce"],
        "inputs": {"parameters": [{"name": "note", "valueFrom": ref}]},
        "template": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                **container,
                                # argv[2] is the value itself: printed between markers, then $NOTE
                                "command": [
                                    "sh",
                                    "-c",
                                    'printf "[%s]\\n[%s]\\n" "$1" "$NOTE"',
                                    "sh",
                                    "{{ parameters.note }}",
                                ],
                            }
                        ],
                    }
                }
            },
        },
    }
    cluster.create_flow(flow("awkward", [produce, consume]))
    status = cluster.wait_phase("awkward", "Succeeded", timeout=30)
    assert status["steps"][0]["outputs"] == {"parameters": {"note": value}}
    assert step_log(cluster, "awkward", "consume") == f"[{value}]\n[{value}]\n"


def test_artifacts_example_passes_a_file(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(example("artifacts.yaml"))
    cluster.wait_phase("artifacts-demo", "Succeeded", timeout=30)
    assert step_log(cluster, "artifacts-demo", "produce") == "wrote summary.txt\n"
    assert step_log(cluster, "artifacts-demo", "consume") == "read: rows: 42\n"


def test_local_mounts_and_rewriting(tmp_path: Path) -> None:
    pod_spec = {
        "volumes": [
            {"name": "ws", "persistentVolumeClaim": {"claimName": "f-workspace"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "c"}},
        ]
    }
    container = {
        "command": ["sh", "-c", "cat /in/a/x /in/ab /in/a-b; ls /scratch/; cat /etc/conf/k"],
        "env": [{"name": "OUT", "value": "/in/a"}],
        "volumeMounts": [
            {"name": "ws", "mountPath": "/in/a", "subPath": "f/s/a", "readOnly": True},
            {"name": "ws", "mountPath": "/in", "subPath": "f/other"},
            {"name": "scratch", "mountPath": "/scratch/"},
            {"name": "conf", "mountPath": "/etc/conf"},
        ],
    }
    mounts = local_mounts(
        pod_spec, container, claim_dir=lambda claim: tmp_path / "claims" / claim, pod_dir=tmp_path
    )
    claim = tmp_path / "claims" / "f-workspace"
    assert mounts == {
        "/in/a": str(claim / "f/s/a"),
        "/in": str(claim / "f/other"),
        "/scratch": str(tmp_path / "volumes" / "scratch"),
    }
    assert all(Path(p).is_dir() for p in mounts.values())
    argv, env = local_command(
        container, termination_file=str(tmp_path / "t"), extra_env={}, mounts=mounts
    )
    a, other = claim / "f/s/a", claim / "f/other"
    scratch = tmp_path / "volumes" / "scratch"
    assert argv[2] == (f"cat {a}/x {other}/ab {other}/a-b; ls {scratch}/; cat /etc/conf/k")
    assert env["OUT"] == str(a)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the fetch init container runs curl")
@pytest.mark.parametrize("served", [True, False])
def test_http_input_artifact_is_downloaded_by_the_init_container(
    cluster, start_controller, tmp_path: Path, served: bool
) -> None:
    """Served: the step reads the file. Missing (404): curl --fail exits 22 in the init
    container, the Job fails and so does the step, whose message names the artifact, the URL
    and curl's own error (FallbackToLogsOnError on the fetch container)."""
    (tmp_path / "data.csv").write_text("id,rows\n1,42\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        name = "data.csv" if served else "missing.csv"
        url = f"http://127.0.0.1:{server.server_address[1]}/{name}"
        step = {
            "name": "read",
            "inputs": {
                "artifacts": [{"name": "data", "path": "/in/data.csv", "http": {"url": url}}]
            },
            "template": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "busybox",
                                    "command": ["sh", "-c", "cat /in/data.csv"],
                                }
                            ],
                        }
                    },
                },
            },
        }
        start_controller()
        cluster.create_flow(flow("fetched", [step], workspace=WORKSPACE))
        if served:
            cluster.wait_phase("fetched", "Succeeded", timeout=60)
            assert step_log(cluster, "fetched", "read") == "id,rows\n1,42\n"
        else:
            status = cluster.wait_phase("fetched", "Failed", timeout=60)
            read = status["steps"][0]
            assert (read["phase"], read["exitCode"]) == ("Failed", 22)
            assert f"input artifact 'data' could not be downloaded from {url}" in read["message"]
            assert "(exit code 22: curl: (22) " in read["message"]
            assert "404" in read["message"]
            assert step_log(cluster, "fetched", "read") == ""
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_file_sub_path_is_mounted_as_that_file(tmp_path: Path) -> None:
    fetched = tmp_path / "volumes" / "fetch" / "0"
    fetched.parent.mkdir(parents=True)
    fetched.write_text("x")  # what the init container downloaded
    pod_spec = {"volumes": [{"name": "fetch", "emptyDir": {}}]}
    container = {
        "command": ["cat", "/in/data.csv"],
        "volumeMounts": [
            {"name": "fetch", "mountPath": "/in/data.csv", "subPath": "0", "readOnly": True},
            {"name": "fetch", "mountPath": "/new", "subPath": "1"},
        ],
    }
    mounts = local_mounts(pod_spec, container, claim_dir=lambda c: tmp_path, pod_dir=tmp_path)
    assert mounts == {"/in/data.csv": str(fetched), "/new": str(fetched.parent / "1")}
    assert fetched.read_text() == "x" and (fetched.parent / "1").is_dir()
    argv, _ = local_command(container, termination_file="t", extra_env={}, mounts=mounts)
    assert argv == ["cat", str(fetched)]
