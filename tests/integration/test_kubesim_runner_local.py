"""kubesim's Job runner in `local` mode: the first container's command runs as a local process.

Covers (real HTTPS server, official client and real kubectl):
- `sh -c 'echo hi; exit 3'` ends Failed after its backoffLimit, exit code 3 in every pod's
  terminated state, and `kubectl logs` prints `hi`;
- env from `env[].value` with $(VAR) expansion, the termination message written to
  /dev/termination-log (mapped to a per-pod file) becomes state.terminated.message;
- output is streamed into the pod log while the process runs;
- deleting the Job (or its pod) kills the running process; suspending the Job kills it and
  deletes its pod (not counted failed), resuming runs the command again;
- restartPolicy OnFailure restarts the process in the same pod (restartCount, lastState) and
  terminationMessagePolicy FallbackToLogsOnError takes the message from the log;
- stop() kills the processes and waits for their threads, which stay quiet (no error log) even
  when their output pipe outlives the kill and the work dir is gone when they finish;
- init containers run before the main container in the same work dir: a file one writes into an
  emptyDir is read by the main container through a single-file subPath mount and through a
  directory mount; a failing init container (exit 4) fails the pod and the Job without the main
  container running (initContainerStatuses, main waiting PodInitializing); deleting the Job
  during an init container kills it and starts nothing more; under OnFailure an init failure
  restarts the run (init re-runs) until backoffLimit;
- per-container logs: an init container's output is its own log (`kubectl logs -c fetch`, the
  official client's `container=`), `kubectl logs POD` and the client without `container=` give
  only the main container's, `--all-containers` both; an unknown container is a 400 BadRequest
  (`container nope is not valid for pod P`; kubectl reports it too, checking before it asks);
  a failed init container's FallbackToLogsOnError message comes from its own log; following an
  init container's log ends when it exits, while the pod runs on;
- a bare pod (no Job) runs its command: exit code and log in its status, and deleting a
  running one kills its process;
- a container that cannot start (a missing binary, by name or by path, or no command) is a
  StartError as the kubelet reports it: exit code 128 and the cause in terminated.message.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

import kubesim
from tests.waiting import eventually

NS = "default"
KUBECTL = str(Path(sys.executable).parent / "kubectl")


@pytest.fixture
def cluster() -> Iterator[Any]:
    with kubesim.start(exec_mode="local") as handle:
        yield handle


@pytest.fixture
def api(cluster: Any) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


def make_job(
    name: str, command: list[str], *, env: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox", "command": command}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
            **spec,
        },
    }


def status_of(api: client.ApiClient, name: str) -> dict[str, Any]:
    job = client.BatchV1Api(api).read_namespaced_job(name, NS)
    return api.sanitize_for_serialization(job).get("status") or {}


def finished_as(api: client.ApiClient, name: str) -> str | None:
    for cond in status_of(api, name).get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return str(cond["type"])
    return None


def pods_of(api: client.ApiClient, name: str) -> list[dict[str, Any]]:
    pods = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=f"job-name={name}")
    return [api.sanitize_for_serialization(p) for p in pods.items]


def pid_alive(pid: int) -> bool:
    """True while the process runs: a zombie (exited, not yet reaped by its new parent, which in
    a container may be a PID 1 that reaps late) counts as dead, and so does one reaped meanwhile."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def test_exit_code_and_log_reach_kubectl(
    api: client.ApiClient, cluster: Any, tmp_path: Path
) -> None:
    client.BatchV1Api(api).create_namespaced_job(
        NS, make_job("hi", ["sh", "-c", "echo hi; exit 3"], backoffLimit=1)
    )
    assert eventually(lambda: finished_as(api, "hi"), 20) == "Failed"
    status = status_of(api, "hi")
    assert status["failed"] == 2
    reasons = {c["type"]: c["reason"] for c in status["conditions"]}
    assert reasons["Failed"] == "BackoffLimitExceeded"
    pods = pods_of(api, "hi")
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (term["exitCode"], term["reason"]) == (3, "Error")
    result = subprocess.run(
        [
            KUBECTL,
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--cache-dir",
            str(tmp_path / "c"),
            "logs",
            pods[0]["metadata"]["name"],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n"


def test_env_and_termination_message(api: client.ApiClient) -> None:
    script = 'echo "$GREETING $(WHO)"; printf "all done" > /dev/termination-log'
    client.BatchV1Api(api).create_namespaced_job(
        NS, make_job("msg", ["sh", "-c", script], env={"GREETING": "hello", "WHO": "kubesim"})
    )
    assert eventually(lambda: finished_as(api, "msg"), 20) == "Complete"
    (pod,) = pods_of(api, "msg")
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["message"]) == (0, "all done")
    log = client.CoreV1Api(api).read_namespaced_pod_log(pod["metadata"]["name"], NS)
    assert log == "hello kubesim\n"


@pytest.mark.parametrize("delete", ["job", "pod"])
def test_deletion_kills_the_process(api: client.ApiClient, tmp_path: Path, delete: str) -> None:
    pid_file = tmp_path / "pid"
    # `$$` would be Kubernetes' escaped `$` in a command; `$!` is the background sleep's pid
    script = f"sleep 60 & echo $! > {pid_file}; echo started; wait"
    client.BatchV1Api(api).create_namespaced_job(
        NS, make_job("sleeper", ["sh", "-c", script], backoffLimit=0)
    )
    eventually(lambda: pid_file.exists() and pid_file.read_text().strip(), 20)
    pid = int(pid_file.read_text())
    assert pid_alive(pid)
    (pod,) = pods_of(api, "sleeper")
    name = pod["metadata"]["name"]
    # streamed while the process still runs
    eventually(lambda: client.CoreV1Api(api).read_namespaced_pod_log(name, NS) == "started\n", 5)
    if delete == "job":
        client.BatchV1Api(api).delete_namespaced_job("sleeper", NS, propagation_policy="Background")
    else:
        client.CoreV1Api(api).delete_namespaced_pod(name, NS)
    eventually(lambda: not pid_alive(pid), 5, message="process killed")
    if delete == "pod":
        # counted as a failure; backoffLimit 0 then fails the Job
        assert eventually(lambda: finished_as(api, "sleeper"), 10) == "Failed"


def test_suspending_kills_the_process_and_resuming_runs_it_again(
    api: client.ApiClient, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    pid_file = tmp_path / "pid"
    # the first run sleeps until it is killed; the run after the resume finishes at once
    script = (
        f"echo run >> {runs}; if [ -f {pid_file} ]; then exit 0; fi; "
        f"sleep 60 & echo $! > {pid_file}; wait"
    )
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(NS, make_job("pausing", ["sh", "-c", script], backoffLimit=0))
    eventually(lambda: pid_file.exists() and pid_file.read_text().strip(), 20)
    pid = int(pid_file.read_text())
    batch.patch_namespaced_job("pausing", NS, {"spec": {"suspend": True}})
    eventually(lambda: not pid_alive(pid), 5, message="process killed")
    eventually(lambda: pods_of(api, "pausing") == [], 5)
    status = eventually(lambda: (s := status_of(api, "pausing")).get("active") is None and s, 5)
    assert "failed" not in status
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Suspended", "True", "JobSuspended")
    ]
    batch.patch_namespaced_job("pausing", NS, {"spec": {"suspend": False}})
    assert eventually(lambda: finished_as(api, "pausing"), 20) == "Complete"
    assert runs.read_text() == "run\nrun\n"


def test_a_bare_pod_runs_its_command_and_deleting_it_kills_the_process(
    api: client.ApiClient, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": "once"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "c", "image": "busybox", "command": ["sh", "-c", "echo hi; exit 4"]}
                ],
            },
        },
    )
    pid_file = tmp_path / "pid"
    script = f"sleep 60 & echo $! > {pid_file}; wait"
    core.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": "server"},
            "spec": {
                "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script]}]
            },
        },
    )
    eventually(lambda: core.read_namespaced_pod("once", NS).status.phase == "Failed", 20)
    pod = api.sanitize_for_serialization(core.read_namespaced_pod("once", NS))
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 4
    assert core.read_namespaced_pod_log("once", NS) == "hi\n"
    eventually(lambda: pid_file.exists() and pid_file.read_text().strip(), 20)
    pid = int(pid_file.read_text())
    assert core.read_namespaced_pod("server", NS).status.phase == "Running"
    core.delete_namespaced_pod("server", NS)
    eventually(lambda: not pid_alive(pid), 5, message="process killed")


def test_fallback_to_logs_and_on_failure_restarts(api: client.ApiClient, tmp_path: Path) -> None:
    marker = tmp_path / "ran-once"
    # the second run lingers so the restarted pod can be observed before the Job fails
    script = f"echo oops; if [ -e {marker} ]; then sleep 2; fi; touch {marker}; exit 1"
    job = make_job("crashy", ["sh", "-c", script], backoffLimit=2)
    pod_spec = job["spec"]["template"]["spec"]
    pod_spec["restartPolicy"] = "OnFailure"
    pod_spec["containers"][0]["terminationMessagePolicy"] = "FallbackToLogsOnError"
    client.BatchV1Api(api).create_namespaced_job(NS, job)

    def restarted() -> dict[str, Any] | None:
        for pod in pods_of(api, "crashy"):
            cs = pod["status"]["containerStatuses"][0]
            if cs["restartCount"] >= 1:
                return cs
        return None

    cs = eventually(restarted, 20)
    last = cs["lastState"]["terminated"]
    assert (last["exitCode"], last["message"]) == (1, "oops")
    assert eventually(lambda: finished_as(api, "crashy"), 20) == "Failed"
    assert status_of(api, "crashy")["failed"] == 1


def test_stop_waits_for_local_threads_and_keeps_them_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pid_file = tmp_path / "pid"
    # the escaped child leaves the process group, so SIGKILL of the group does not end it, and
    # it holds the output pipe open for LINGER seconds: the pod thread reads on after the kill
    # (before the fix stop() returned then, and the thread failed on the deleted work dir)
    linger = 3
    code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen(['sleep', '{linger}'], start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    caplog.set_level(logging.DEBUG, logger="kubesim")
    with kubesim.start(exec_mode="local") as handle:
        api_client = config.new_client_from_config(config_file=str(handle.kubeconfig))
        try:
            client.BatchV1Api(api_client).create_namespaced_job(
                NS, make_job("lingering", [sys.executable, "-c", code], backoffLimit=0)
            )
            eventually(lambda: pid_file.exists() and pid_file.read_text().strip(), 20)
            (pod,) = pods_of(api_client, "lingering")
            name = pod["metadata"]["name"]
            eventually(lambda: handle.store.get_pod_log(NS, name) == "started\n", 10)
        finally:
            api_client.close()
    # leaving the block ran handle.stop(): the state dir is deleted, the threads are done.
    # The kernel closes an exiting process's files (our EOF) before it marks it a zombie, so on a
    # loaded machine the escaped child may still show as running for a moment: allow a second,
    # far less than the LINGER seconds it would have had left if stop() had not waited.
    pid = int(pid_file.read_text())
    eventually(lambda: not pid_alive(pid), 1.0)
    assert [t.name for t in threading.enumerate() if t.name.startswith("kubesim-pod-")] == []
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == []


def init_job(name: str, init_script: str, main_script: str) -> dict[str, Any]:
    """A Job whose init container writes into an emptyDir the main container reads, once as a
    single-file subPath mount and once as a directory mount."""
    job = make_job(name, ["sh", "-c", main_script], backoffLimit=0)
    pod_spec = job["spec"]["template"]["spec"]
    pod_spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    pod_spec["initContainers"] = [
        {
            "name": "fetch",
            "image": "curl",
            "command": ["sh", "-c", init_script],
            "volumeMounts": [{"name": "scratch", "mountPath": "/fetch"}],
        }
    ]
    pod_spec["containers"][0]["volumeMounts"] = [
        {"name": "scratch", "mountPath": "/in/data.txt", "subPath": "0", "readOnly": True},
        {"name": "scratch", "mountPath": "/all"},
    ]
    return job


def test_init_container_fills_an_empty_dir_for_the_main_container(api: client.ApiClient) -> None:
    job = init_job(
        "init-ok",
        "printf 'payload 42' > /fetch/0; echo init-ran > /dev/termination-log",
        "cat /in/data.txt; echo; cat /all/0",
    )
    client.BatchV1Api(api).create_namespaced_job(NS, job)
    assert eventually(lambda: finished_as(api, "init-ok"), 30) == "Complete"
    (pod,) = pods_of(api, "init-ok")
    log = client.CoreV1Api(api).read_namespaced_pod_log(pod["metadata"]["name"], NS)
    assert log == "payload 42\npayload 42"
    (init,) = pod["status"]["initContainerStatuses"]
    term = init["state"]["terminated"]
    assert (init["name"], init["ready"], term["exitCode"], term["reason"]) == (
        "fetch",
        True,
        0,
        "Completed",
    )
    assert term["message"] == "init-ran\n"
    main = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert main["exitCode"] == 0
    initialized = next(c for c in pod["status"]["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "True"


def test_failing_init_container_fails_the_pod_before_main_runs(
    api: client.ApiClient, tmp_path: Path
) -> None:
    marker = tmp_path / "main-ran"
    job = init_job("init-bad", "echo broken > /dev/termination-log; exit 4", f"touch {marker}")
    client.BatchV1Api(api).create_namespaced_job(NS, job)
    assert eventually(lambda: finished_as(api, "init-bad"), 30) == "Failed"
    status = status_of(api, "init-bad")
    assert status["failed"] == 1
    assert {c["type"]: c["reason"] for c in status["conditions"]}["Failed"] == (
        "BackoffLimitExceeded"
    )
    (pod,) = pods_of(api, "init-bad")
    assert pod["status"]["phase"] == "Failed"
    (init,) = pod["status"]["initContainerStatuses"]
    term = init["state"]["terminated"]
    assert (term["exitCode"], term["reason"], term["message"]) == (4, "Error", "broken\n")
    assert init["ready"] is False
    main = pod["status"]["containerStatuses"][0]
    assert main["state"] == {"waiting": {"reason": "PodInitializing"}}
    initialized = next(c for c in pod["status"]["conditions"] if c["type"] == "Initialized")
    assert (initialized["status"], initialized["reason"]) == ("False", "ContainersNotInitialized")
    assert not marker.exists()


def test_deleting_the_job_during_an_init_container_stops_the_whole_run(
    api: client.ApiClient, tmp_path: Path
) -> None:
    pid_file, marker = tmp_path / "pid", tmp_path / "main-ran"
    job = init_job("init-slow", f"sleep 60 & echo $! > {pid_file}; wait", f"touch {marker}")
    client.BatchV1Api(api).create_namespaced_job(NS, job)
    eventually(lambda: pid_file.exists() and pid_file.read_text().strip(), 30)
    pid = int(pid_file.read_text())
    (pod,) = pods_of(api, "init-slow")
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["initContainerStatuses"][0]["state"].keys() == {"running"}
    client.BatchV1Api(api).delete_namespaced_job("init-slow", NS, propagation_policy="Background")
    eventually(lambda: not pid_alive(pid), 20, message="init process killed")
    eventually(lambda: not pods_of(api, "init-slow"), 20, message="pod deleted")
    assert not marker.exists()


def test_on_failure_a_failing_init_container_restarts_the_run(
    api: client.ApiClient, tmp_path: Path
) -> None:
    runs, marker = tmp_path / "init-runs", tmp_path / "main-ran"
    job = init_job("init-retry", f"echo run >> {runs}; exit 4", f"touch {marker}")
    job["spec"]["backoffLimit"] = 2
    job["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    client.BatchV1Api(api).create_namespaced_job(NS, job)
    assert eventually(lambda: finished_as(api, "init-retry"), 30) == "Failed"
    # restart 1 re-runs the init container; restart 2 reaches backoffLimit 2
    assert runs.read_text() == "run\nrun\n"
    assert not marker.exists()


def kubectl(cluster: Any, cache: Path, *args: str, timeout: float = 60) -> Any:
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "--cache-dir", str(cache), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_init_container_output_is_its_own_container_log(
    api: client.ApiClient, cluster: Any, tmp_path: Path
) -> None:
    job = init_job(
        "init-log",
        "echo fetching the payload; printf 'payload 42' > /fetch/0",
        "echo main starts; cat /in/data.txt; echo",  # whole lines: kubectl interleaves
    )
    client.BatchV1Api(api).create_namespaced_job(NS, job)
    assert eventually(lambda: finished_as(api, "init-log"), 30) == "Complete"
    (pod,) = pods_of(api, "init-log")
    name = pod["metadata"]["name"]
    cache = tmp_path / "c"

    init = kubectl(cluster, cache, "logs", name, "-c", "fetch")
    assert (init.returncode, init.stdout) == (0, "fetching the payload\n"), init.stderr
    main = kubectl(cluster, cache, "logs", name)  # kubectl sends container=main
    assert (main.returncode, main.stdout) == (0, "main starts\npayload 42\n"), main.stderr
    every = kubectl(cluster, cache, "logs", name, "--all-containers", "--prefix")
    assert every.returncode == 0, every.stderr
    assert sorted(every.stdout.splitlines()) == [
        f"[pod/{name}/fetch] fetching the payload",
        f"[pod/{name}/main] main starts",
        f"[pod/{name}/main] payload 42",
    ]

    core = client.CoreV1Api(api)
    assert core.read_namespaced_pod_log(name, NS, container="fetch") == "fetching the payload\n"
    assert core.read_namespaced_pod_log(name, NS, container="main") == "main starts\npayload 42\n"
    # no container: the API server takes the pod's only app container
    assert core.read_namespaced_pod_log(name, NS) == "main starts\npayload 42\n"
    assert core.read_namespaced_pod_log(name, NS, container="fetch", tail_lines=1) == (
        "fetching the payload\n"
    )


def test_unknown_container_is_a_bad_request(
    api: client.ApiClient, cluster: Any, tmp_path: Path
) -> None:
    job = init_job("init-nope", "echo fetched", "echo done")
    client.BatchV1Api(api).create_namespaced_job(NS, job)
    assert eventually(lambda: finished_as(api, "init-nope"), 30) == "Complete"
    (pod,) = pods_of(api, "init-nope")
    name = pod["metadata"]["name"]
    message = f"container nope is not valid for pod {name}"

    with pytest.raises(client.ApiException) as exc:
        client.CoreV1Api(api).read_namespaced_pod_log(name, NS, container="nope")
    assert exc.value.status == 400
    body = json.loads(exc.value.body)
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "BadRequest", 400)
    assert body["message"] == message
    # kubectl logs checks the name against the pod it fetched before asking for the log...
    logs = kubectl(cluster, tmp_path / "c", "logs", name, "-c", "nope")
    assert logs.returncode != 0
    assert f"error: {message}" in logs.stderr
    # ...and prints the server's 400 when the request is sent anyway
    raw = kubectl(
        cluster,
        tmp_path / "c",
        "get",
        "--raw",
        f"/api/v1/namespaces/{NS}/pods/{name}/log?container=nope",
    )
    assert raw.returncode != 0
    assert f"Error from server (BadRequest): {message}" in raw.stderr


def test_failed_init_container_falls_back_to_its_own_log(api: client.ApiClient) -> None:
    job = init_job("init-fallback", "echo one; echo 'curl: (22) 404 Not Found'; exit 22", "true")
    job["spec"]["template"]["spec"]["initContainers"][0]["terminationMessagePolicy"] = (
        "FallbackToLogsOnError"
    )
    client.BatchV1Api(api).create_namespaced_job(NS, job)
    assert eventually(lambda: finished_as(api, "init-fallback"), 30) == "Failed"
    (pod,) = pods_of(api, "init-fallback")
    term = pod["status"]["initContainerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["message"]) == (22, "one\ncurl: (22) 404 Not Found")
    core = client.CoreV1Api(api)
    log = core.read_namespaced_pod_log(pod["metadata"]["name"], NS, container="fetch")
    assert log == "one\ncurl: (22) 404 Not Found\n"
    assert core.read_namespaced_pod_log(pod["metadata"]["name"], NS) == ""  # main never ran


def test_following_an_init_container_ends_when_it_exits(
    api: client.ApiClient, cluster: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    # the init container prints, waits for the test, prints again and exits; the main container
    # then runs on for a minute: the follow must end with the init container, not the pod
    job = init_job(
        "init-follow",
        f"echo first; while [ ! -e {gate} ]; do sleep 0.05; done; echo second",
        "sleep 60",
    )
    client.BatchV1Api(api).create_namespaced_job(NS, job)

    def init_running() -> str | None:
        for pod in pods_of(api, "init-follow"):
            statuses = (pod.get("status") or {}).get("initContainerStatuses") or []
            if statuses and "running" in statuses[0]["state"]:
                return str(pod["metadata"]["name"])
        return None

    name = eventually(init_running, 30)
    follow = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--cache-dir",
            str(tmp_path / "c"),
            "logs",
            "-f",
            name,
            "-c",
            "fetch",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline() == "first\n"  # streamed while the init container runs
        gate.touch()
        out, err = follow.communicate(timeout=30)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.communicate()
    assert (follow.returncode, out) == (0, "second\n"), err
    (pod,) = pods_of(api, "init-follow")
    assert pod["status"]["phase"] == "Running"  # the main container still runs


@pytest.mark.parametrize(
    ("name", "command", "message"),
    [
        (
            "missing",
            ["zen-flow-no-such-binary"],
            'unable to start container process: exec: "zen-flow-no-such-binary":'
            " executable file not found in $PATH",
        ),
        (
            "missing-path",
            ["/nonexistent/run"],
            'unable to start container process: exec: "/nonexistent/run":'
            " stat /nonexistent/run: no such file or directory",
        ),
        ("no-command", [], "kubesim local mode runs the container's command and args"),
    ],
)
def test_a_container_that_cannot_start_is_a_start_error(
    api: client.ApiClient, name: str, command: list[str], message: str
) -> None:
    """As the kubelet reports a runtime error: reason StartError, exit code 128, the cause in
    terminated.message (issue 13, item 3)."""
    job = make_job(name, command, backoffLimit=0)
    if not command:
        del job["spec"]["template"]["spec"]["containers"][0]["command"]
    client.BatchV1Api(api).create_namespaced_job(NS, job)
    assert eventually(lambda: finished_as(api, name), 20) == "Failed"
    [pod] = pods_of(api, name)
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (128, "StartError")
    assert term["message"].startswith(message), term["message"]
