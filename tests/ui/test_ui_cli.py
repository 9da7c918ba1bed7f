"""`zen-flow ui` as a user starts it: against a real cluster's kubeconfig (`zen-flow serve
--embedded` in its own process), and the one-line answers to bad flags."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import httpx
import pytest

from tests.fixtures.embedded import ZEN_FLOW, cli_env, zen_flow

pytestmark = pytest.mark.slow


def test_ui_serves_the_cluster_of_the_kubeconfig_until_sigterm(embedded_server) -> None:
    ui = subprocess.Popen(
        [ZEN_FLOW, "ui", "--kubeconfig", str(embedded_server.kubeconfig), "--no-browser"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert ui.stdout is not None
        line = ui.stdout.readline()
        found = re.fullmatch(r"zen-flow ui: open (http://127\.0\.0\.1:(\d+))/\?token=(\S+)\n", line)
        assert found, line
        base, token = found.group(1), found.group(3)
        with httpx.Client(base_url=base) as client:
            assert client.get("/api/info").status_code == 401
            assert client.get(f"/?token={token}").status_code == 303
            info = client.get("/api/info").json()
            assert info["namespace"] == "default"
            assert info["cluster"].startswith("context ")
            assert client.get("/api/flows", params={"namespace": "default"}).status_code == 200
            listed = client.get("/api/flows", params={"namespace": "default", "selector": "x=y"})
            assert listed.json() == []
        ui.send_signal(signal.SIGTERM)
        _out, err = ui.communicate(timeout=30)
        assert ui.returncode == 0, err
        assert err.startswith("zen-flow ui: cluster: context ")
    finally:
        if ui.poll() is None:
            ui.kill()
            ui.communicate()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--port", "70000"], "zen-flow ui: --port 70000: must be 0 (any free port) to 65535\n"),
        (["--kubeconfig", "/nonexistent"], "zen-flow ui: --kubeconfig /nonexistent: no such file"),
        (["--kubeconfig", "/nonexistent", "--embedded"], "zen-flow ui: --embedded runs on a"),
        (["--kubeconfig", "/x", "--exec", "local"], "zen-flow ui: --exec applies to the embedded"),
    ],
)
def test_bad_flags_are_one_line(args: list[str], said: str) -> None:
    started = time.monotonic()
    done = zen_flow("ui", *args)
    assert done.returncode == 2
    assert done.stderr.startswith(said), done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert time.monotonic() - started < 60
