"""The `zen-flow certs` and `zen-flow serve` commands as real processes.

Covers: `certs` writes ca.crt/tls.crt/tls.key (key 0600) and bad input is one line with exit 2;
`serve` starts from flags, logs JSON lines when stderr is not a TTY (incl. the ports it bound),
answers an AdmissionReview over TLS trusted via the written ca.crt, reports ready, and on SIGTERM
shuts down gracefully with exit 0; a bad setting or a missing certificate is one line on stderr.
With the controller (against kubesim): /readyz includes the controller's readiness, and SIGTERM
stops the controller (Lease released) before the servers close.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.webhook import jobflow, review, step
from tests.waiting import eventually

ZEN_FLOW = str(Path(sys.executable).parent / "zen-flow")


def run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ZEN_FLOW, *args], capture_output=True, text=True, timeout=60, check=False, **kwargs
    )


def write_certs(tmp_path: Path) -> Path:
    """A CA and a serving certificate for 127.0.0.1, written by `zen-flow certs`."""
    certs = tmp_path / "certs"
    assert run("certs", "--out", str(certs), "--ip", "127.0.0.1").returncode == 0
    return certs


def serve_command(certs: Path, *options: str) -> list[str]:
    """`zen-flow serve` on loopback with ephemeral ports (tests run in parallel)."""
    return [
        ZEN_FLOW,
        "serve",
        *options,
        "--cert-dir",
        str(certs),
        "--webhook-host",
        "127.0.0.1",
        "--webhook-port",
        "0",
        "--metrics-host",
        "127.0.0.1",
        "--metrics-port",
        "0",
    ]


def wait_serving(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The "serving" log entry (it names the bound ports), read from serve's JSON stderr."""
    assert proc.stderr is not None
    while True:  # readline blocks until the process logs; the test timeout bounds it
        line = proc.stderr.readline()
        assert line, f"serve exited early: {proc.wait()}"
        entry: dict[str, Any] = json.loads(line)  # JSON logs: stderr is a pipe, not a TTY
        if entry["msg"] == "serving":
            return entry


def test_certs_command(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    result = run(
        "certs", "--out", str(out), "--dns", "localhost", "zen.example.svc", "--ip", "127.0.0.1"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote ")
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    assert stat.S_IMODE((out / "tls.key").stat().st_mode) == 0o600

    bad = run("certs", "--out", str(out), "--dns", "not_a_name")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0
    assert "zen-flow certs: --dns 'not_a_name' is not a DNS name" in bad.stderr


def test_serve_answers_over_tls_and_stops_on_sigterm(tmp_path: Path) -> None:
    certs = write_certs(tmp_path)
    env = {**os.environ, "ZEN_FLOW_LOG_LEVEL": "INFO"}
    command = serve_command(certs, "--webhook-only")
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            ports = wait_serving(proc)
            assert proc.stderr is not None
            verify = ssl.create_default_context(cafile=str(certs / "ca.crt"))
            with httpx.Client(verify=verify, timeout=5) as client:
                flow = jobflow("cycle", [step("a", "b"), step("b", "a")])
                answer = client.post(
                    f"https://127.0.0.1:{ports['webhook_port']}/validate",
                    json=review(flow, uid="e2e"),
                )
            assert answer.json()["response"]["uid"] == "e2e"
            assert answer.json()["response"]["allowed"] is False
            ops = f"http://127.0.0.1:{ports['metrics_port']}"
            eventually(lambda: httpx.get(f"{ops}/readyz").status_code == 200, timeout=10)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
            rest = [json.loads(line) for line in proc.stderr.read().splitlines() if line.strip()]
            assert [entry["msg"] for entry in rest][-1] == "stopped"
        finally:
            if proc.poll() is None:  # an assertion failed: do not leave the server running
                proc.kill()


def test_serve_bad_setting_is_one_line(tmp_path: Path) -> None:
    result = run("serve", "--webhook-only", "--workers", "0")
    assert result.returncode == 2
    assert result.stderr == "zen-flow serve: --workers '0': must be greater than or equal to 1\n"
    missing = run(
        "serve",
        "--webhook-only",
        "--cert-dir",
        str(tmp_path),
        "--webhook-port",
        "0",
        "--metrics-port",
        "0",
        "--log-format",
        "text",
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("zen-flow serve: cannot load TLS pair")
    assert missing.stderr.count("\n") == 1


def test_unusable_kubeconfig_is_one_line_for_serve_and_the_controller(tmp_path: Path) -> None:
    # A kubeconfig the client's loader refuses (no current-context) is a user's mistake: one
    # line naming the file, never "internal error" or a traceback.
    config = tmp_path / "kubeconfig"
    config.write_text("apiVersion: v1\nkind: Config\n")
    served = run(
        "serve",
        "--kubeconfig",
        str(config),
        "--cert-dir",
        str(tmp_path),
        "--webhook-port",
        "0",
        "--metrics-port",
        "0",
    )
    assert served.returncode == 1
    assert served.stderr.startswith(f"zen-flow serve: cannot use kubeconfig {config}: ")
    assert served.stderr.count("\n") == 1
    alone = subprocess.run(
        [sys.executable, "-m", "controller", "--kubeconfig", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert alone.returncode == 2
    assert alone.stderr.startswith(f"python -m controller: cannot use kubeconfig {config}: ")
    assert alone.stderr.count("\n") == 1


def test_serve_runs_the_controller_and_stops_it_first(
    tmp_path: Path, kubesim_server: Any, kubectl_cache: Path
) -> None:
    """`zen-flow serve` (no --webhook-only) against kubesim: /readyz waits for the controller,
    SIGTERM stops the controller (Lease released) before the servers close."""
    from tests.fixtures.kubesim import kubectl

    crd = kubectl(
        kubesim_server,
        "apply",
        "-f",
        str(Path(__file__).parents[2] / "crds" / "jobflows.yaml"),
        cache_dir=kubectl_cache,
    )
    assert crd.returncode == 0, crd.stderr
    certs = write_certs(tmp_path)
    command = serve_command(certs, "--kubeconfig", str(kubesim_server.kubeconfig))
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as proc:
        try:
            entry = wait_serving(proc)
            assert proc.stderr is not None
            assert entry["controller"] is True
            ops = f"http://127.0.0.1:{entry['metrics_port']}"
            checks = eventually(
                lambda: httpx.get(f"{ops}/readyz").json()["checks"].get("controller"), timeout=20
            )
            assert checks is True
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
            messages = [json.loads(x)["msg"] for x in proc.stderr.read().splitlines() if x.strip()]
            assert messages.index("controller stopped") < messages.index("Shutting down")
            assert messages[-1] == "stopped"
        finally:
            if proc.poll() is None:
                proc.kill()
