"""webhook.configuration: the one definition of the webhook registrations.

Covers: both kinds, JobFlows only (not the status subresource), CREATE and UPDATE,
failurePolicy Fail, sideEffects None, timeoutSeconds <= 5, matchPolicy Equivalent, v1 reviews,
url and service clientConfigs with the CA base64-encoded, paths that the app serves.
"""

from __future__ import annotations

import base64

import pytest
from prometheus_client import CollectorRegistry

from app import main
from tests.fixtures.webhook import AppClient, jobflow, review
from webhook import configuration


@pytest.mark.parametrize(
    "client",
    [
        {"url": "https://127.0.0.1:9443/"},
        {"service_name": "zen-flow", "service_namespace": "zen-flow"},
    ],
)
def test_configurations(client: dict[str, str]) -> None:
    mutating, validating = configuration.configurations(ca_bundle=b"PEM", **client)
    assert mutating["kind"] == "MutatingWebhookConfiguration"
    assert validating["kind"] == "ValidatingWebhookConfiguration"
    paths = set()
    for config in (mutating, validating):
        (hook,) = config["webhooks"]
        assert hook["failurePolicy"] == "Fail"
        assert hook["sideEffects"] == "None"
        assert hook["timeoutSeconds"] <= 5
        assert hook["matchPolicy"] == "Equivalent"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["rules"] == [
            {
                "apiGroups": ["workflow.kube-zen.io"],
                "apiVersions": ["v1alpha1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["jobflows"],
                "scope": "Namespaced",
            }
        ]
        cc = hook["clientConfig"]
        assert base64.b64decode(cc["caBundle"]) == b"PEM"
        if "url" in client:
            assert cc["url"].startswith("https://127.0.0.1:9443/")
            paths.add(cc["url"].removeprefix("https://127.0.0.1:9443"))
        else:
            assert cc["service"]["name"] == "zen-flow"
            assert cc["service"]["port"] == 443
            paths.add(cc["service"]["path"])
    assert mutating["webhooks"][0]["reinvocationPolicy"] == "Never"
    assert paths == {"/mutate", "/validate"}
    app = AppClient(main.create_app(registry=CollectorRegistry()))
    for path in paths:  # the registered paths are the ones the app answers on
        answer = app.post(path, json=review(jobflow()))
        assert answer.status_code == 200


def test_client_config_needs_a_target() -> None:
    with pytest.raises(ValueError, match="url or a service"):
        configuration.client_config(ca_bundle=b"x", path="/validate")
