"""The real `zen-flow serve` process, configured from what the chart renders.

Covers (self-signed mode, where the chart itself generates the TLS material):
- the process starts with the Deployment's environment (only host/ports/cert dir overridden for
  a test machine, and the controller off: there is no cluster here) and the chart's Secret files
  as the kubelet would project them;
- the Deployment's probe paths answer on the plain-HTTP port, /readyz turning ready;
- a client that trusts only the webhook configuration's caBundle and checks the name the API
  server dials (<service>.<namespace>.svc) completes TLS and gets AdmissionReview answers on the
  configuration's /validate and /mutate paths: valid flow allowed, a cycle denied, defaults patched.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import serve, settings
from tests.fixtures import helm
from tests.fixtures import webhook as webhook_fixtures
from tests.waiting import eventually

SERVICE_HOST = f"zen-flow.{helm.NAMESPACE}.svc"


@pytest.fixture(scope="module")
def rendered() -> helm.Rendered:
    return helm.render({"certificates": {"mode": "self-signed"}})


@pytest.fixture
def running(rendered: helm.Rendered, tmp_path: Path) -> Iterator[serve.RunningServers]:
    cert_dir = tmp_path / "webhook-tls"  # the Secret volume: one file per data key
    cert_dir.mkdir()
    for key, value in rendered.one("Secret")["data"].items():
        (cert_dir / key).write_bytes(base64.b64decode(value))
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    env = helm.env_of(pod["containers"][0])
    overrides = {
        "webhook_host": "127.0.0.1",
        "webhook_port": 0,
        "metrics_host": "127.0.0.1",
        "metrics_port": 0,
        "cert_dir": str(cert_dir),
        "webhook_only": True,
        "shutdown_timeout": 5,
    }
    servers = serve.start_in_thread(settings.load(overrides, environ=env))
    try:
        yield servers
    finally:
        servers.stop()


def _hook(rendered: helm.Rendered, kind: str) -> dict[str, Any]:
    [hook] = rendered.one(kind)["webhooks"]
    return hook


def _client_trusting(ca_bundle: str) -> httpx.Client:
    context = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode())
    return httpx.Client(verify=context, timeout=10)


def _post(client: httpx.Client, url: str, body: dict[str, Any]) -> dict[str, Any]:
    # Connect to 127.0.0.1 but present and verify the Service name, as the API server does.
    response = client.post(url, json=body, extensions={"sni_hostname": SERVICE_HOST})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()["response"]
    assert answer["uid"] == body["request"]["uid"]
    return answer


def test_probes_answer_on_the_deployments_paths(
    rendered: helm.Rendered, running: serve.RunningServers
) -> None:
    container = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    with httpx.Client(timeout=5) as client:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = container[probe]["httpGet"]["path"]
            eventually(
                lambda p=path: client.get(running.ops_url + p).status_code == 200,
                10,
                message=f"{probe} {path} ready",
            )


def test_webhook_answers_over_tls_trusting_only_the_charts_ca_bundle(
    rendered: helm.Rendered, running: serve.RunningServers
) -> None:
    validating = _hook(rendered, "ValidatingWebhookConfiguration")
    mutating = _hook(rendered, "MutatingWebhookConfiguration")
    assert validating["clientConfig"]["service"]["name"] == "zen-flow"
    with _client_trusting(validating["clientConfig"]["caBundle"]) as client:
        url = running.webhook_url + validating["clientConfig"]["service"]["path"]
        valid = webhook_fixtures.jobflow("ok")
        assert _post(client, url, webhook_fixtures.review(valid))["allowed"] is True

        cycle = webhook_fixtures.jobflow(
            "loop",
            [webhook_fixtures.step("a", "b"), webhook_fixtures.step("b", "a")],
        )
        denied = _post(client, url, webhook_fixtures.review(cycle))
        assert denied["allowed"] is False

    with _client_trusting(mutating["clientConfig"]["caBundle"]) as client:
        url = running.webhook_url + mutating["clientConfig"]["service"]["path"]
        answer = _post(client, url, webhook_fixtures.review(webhook_fixtures.jobflow("defaults")))
        assert answer["allowed"] is True and answer["patchType"] == "JSONPatch"


def test_a_client_checking_another_name_is_refused(
    rendered: helm.Rendered, running: serve.RunningServers
) -> None:
    validating = _hook(rendered, "ValidatingWebhookConfiguration")
    with (
        _client_trusting(validating["clientConfig"]["caBundle"]) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.post(
            running.webhook_url + "/validate",
            json=webhook_fixtures.review(webhook_fixtures.jobflow("x")),
            extensions={"sni_hostname": "zen-flow.elsewhere.svc"},
        )
