"""User mistakes around the cluster and the files are one clear line with the README's exit
code, for `zen-flow run` and `zen-flow approve` run as subprocesses (issue 13, item 8).

Covers, each asserting the whole of stderr and the exit code:
- kubeconfig files that cannot be used (exit 2, nothing contacted): binary, a directory, tabs
  in its YAML, an empty file, an unknown --context; no kubeconfig at all (HOME without
  ~/.kube/config, KUBECONFIG unset, or naming only missing files) says to pass --kubeconfig or
  set KUBECONFIG;
- a cluster that cannot be used (exit 1): a plain-HTTP server behind an https:// URL, an
  HTTPS server behind an http:// URL, a wrong token (401 is "credentials not accepted", never
  403's "not allowed");
- `-n` naming a namespace that does not exist: rejected, exit 2, nothing applied;
- tabs in a flow's YAML: "YAML does not allow tabs for indentation (line N); use spaces"
  (run: exit 2; validate: exit 1, the file is invalid).
"""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fixtures.embedded import (
    CLI_TIMEOUT,
    EXAMPLES,
    REPO,
    ZEN_FLOW,
    EmbeddedServer,
    cli_env,
    cluster_line,
)

DEMO = str(EXAMPLES / "demo.yaml")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ZEN_FLOW, *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        cwd=REPO,
        env={**cli_env(), **(env or {})},
        check=False,
    )


def kubeconfig_for(server: str, *, token: str = "t") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        }
    )


# -- kubeconfig files: exit 2 --------------------------------------------------------------------
def test_binary_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_bytes(bytes(range(256)))
    result = run("run", DEMO, "--kubeconfig", str(path))
    assert (result.returncode, result.stderr) == (
        2,
        f"zen-flow run: --kubeconfig {path}: not a kubeconfig (not UTF-8 text: a binary file?); "
        "pass the kubeconfig file kubectl uses\n",
    )


def test_kubeconfig_that_is_a_directory(tmp_path: Path) -> None:
    result = run("run", DEMO, "--kubeconfig", str(tmp_path))
    assert (result.returncode, result.stderr) == (
        2,
        f"zen-flow run: --kubeconfig {tmp_path}: is a directory, not a kubeconfig file; pass "
        f"the file (such as {tmp_path / 'config'})\n",
    )


def test_tabs_in_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text("apiVersion: v1\nkind: Config\n\tcurrent-context: c\n")
    result = run("approve", "demo", "gate", "--kubeconfig", str(path))
    assert (result.returncode, result.stderr) == (
        2,
        f"zen-flow approve: --kubeconfig {path}: YAML does not allow tabs for indentation "
        "(line 3); use spaces\n",
    )


def test_empty_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text("")
    result = run("run", DEMO, "--kubeconfig", str(path))
    assert (result.returncode, result.stderr) == (
        2,
        f"zen-flow run: --kubeconfig {path}: not a kubeconfig (no clusters, users and contexts "
        "in it); pass the kubeconfig file kubectl uses\n",
    )


def test_unknown_context(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text(kubeconfig_for("https://127.0.0.1:1"))
    result = run("run", DEMO, "--kubeconfig", str(path), "--context", "prod")
    assert (result.returncode, result.stderr) == (
        2,
        f"zen-flow run: --context prod: no such context in {path} (its contexts: c); list them "
        "with: kubectl config get-contexts\n",
    )


def test_no_kubeconfig_at_all(tmp_path: Path) -> None:
    result = run("approve", "demo", "gate", env={"HOME": str(tmp_path)})
    assert (result.returncode, result.stderr) == (
        2,
        f"zen-flow approve: no kubeconfig found (KUBECONFIG is not set and "
        f"{tmp_path / '.kube' / 'config'} does not exist); pass --kubeconfig PATH or set "
        "KUBECONFIG to the kubeconfig of your cluster\n",
    )


def test_kubeconfig_env_naming_missing_files(tmp_path: Path) -> None:
    missing = f"{tmp_path / 'a'}:{tmp_path / 'b'}"
    env = {"HOME": str(tmp_path), "KUBECONFIG": missing}
    result = run("run", DEMO, "--context", "c", env=env)
    assert (result.returncode, result.stderr) == (
        2,
        f"zen-flow run: no kubeconfig found (KUBECONFIG names {tmp_path / 'a'}, "
        f"{tmp_path / 'b'}, and none exists); pass --kubeconfig PATH or set KUBECONFIG to the "
        "kubeconfig of your cluster\n",
    )


# -- a cluster that cannot be used: exit 1 ---------------------------------------------------------
@pytest.fixture
def plain_http_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_plain_http_server_behind_an_https_url(tmp_path: Path, plain_http_url: str) -> None:
    path = tmp_path / "kc"
    path.write_text(kubeconfig_for(plain_http_url))
    result = run("run", DEMO, "--kubeconfig", str(path))
    assert (result.returncode, result.stderr) == (
        1,
        f"zen-flow run: cannot reach the cluster at {plain_http_url}: the server does not "
        "speak TLS (a plain-HTTP port?); check the server URL in the kubeconfig\n",
    )


def test_https_server_behind_an_http_url(tmp_path: Path, embedded_server: EmbeddedServer) -> None:
    config = yaml.safe_load(embedded_server.kubeconfig.read_text())
    https_url = config["clusters"][0]["cluster"]["server"]
    http_url = https_url.replace("https://", "http://")
    config["clusters"][0]["cluster"]["server"] = http_url
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(config))
    result = run("run", DEMO, "--kubeconfig", str(path))
    assert (result.returncode, result.stderr) == (
        1,
        f"zen-flow run: cannot reach the cluster at {http_url}: the server closed the "
        "connection without an answer (does it expect https://?); check the server URL in the "
        "kubeconfig\n",
    )


@pytest.mark.parametrize("command", ["run", "approve"])
def test_wrong_token_is_unauthorized_not_forbidden(
    tmp_path: Path, embedded_server: EmbeddedServer, command: str
) -> None:
    config = yaml.safe_load(embedded_server.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = "not-the-token"
    url = config["clusters"][0]["cluster"]["server"]
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(config))
    args = [DEMO] if command == "run" else ["demo", "gate"]
    result = run(command, *args, "--kubeconfig", str(path))
    assert (result.returncode, result.stderr) == (
        1,
        f"zen-flow {command}: the cluster at {url} did not accept the kubeconfig's credentials "
        "(401 Unauthorized: a wrong or expired token or client certificate); log in again or "
        "fix the user of the kubeconfig's context\n",
    )


# -- rejected: exit 2 --------------------------------------------------------------------------
def test_namespace_that_does_not_exist(embedded_server: EmbeddedServer) -> None:
    kubeconfig = str(embedded_server.kubeconfig)
    result = run("run", DEMO, "--kubeconfig", kubeconfig, "-n", "does-not-exist")
    assert (result.returncode, result.stderr) == (
        2,
        cluster_line(embedded_server, "run")
        + f"zen-flow run: {DEMO}: cannot create JobFlow does-not-exist/demo: namespace "
        "does-not-exist does not exist; create it first (kubectl create namespace "
        "does-not-exist) or pick another with -n\n",
    )
    assert result.stdout == ""


def test_tabs_in_a_flow(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(
        "apiVersion: workflow.kube-zen.io/v1alpha1\nkind: JobFlow\nmetadata:\n\tname: x\n"
    )
    said = f"{path}: YAML does not allow tabs for indentation (line 4); use spaces\n"

    ran = run("run", str(path))
    assert (ran.returncode, ran.stderr) == (
        2,
        said + "zen-flow run: 1 problem(s) found; nothing was applied\n",
    )
    validated = run("validate", str(path))
    assert (validated.returncode, validated.stdout, validated.stderr) == (1, said, "")
