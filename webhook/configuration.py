"""The Validating/MutatingWebhookConfiguration manifests, built in ONE place.

The embedded cluster installs these dicts directly; the Helm chart (helm/zen-flow) mirrors them
field by field, and a test compares the two. Fixed choices (issue 4):
- jobflows only (not jobflows/status: the controller writes status and must never be blocked by
  its own webhook), CREATE and UPDATE;
- failurePolicy Fail: an invalid flow must never slip in because the webhook was slow or down
  (the controller still re-validates what reaches it and defaults in memory);
- sideEffects None (so dry-run requests are reviewed too), admissionReviewVersions ["v1"],
  timeoutSeconds 5 (at most 5: kubectl's request must not wait on us for the default 10 s),
  matchPolicy Equivalent, reinvocationPolicy Never for the mutating webhook (the defaults patch
  is idempotent and nothing else mutates JobFlows).

`client_config` is either a `url` (the embedded cluster and tests: https://127.0.0.1:PORT) or a
`service` reference (in cluster); `caBundle` is the base64 PEM of the CA that signed the
serving certificate.
"""

from __future__ import annotations

import base64
from typing import Any

from jobflow import names

VALIDATING_NAME = "zen-flow-validating"
MUTATING_NAME = "zen-flow-mutating"
VALIDATING_WEBHOOK = "vjobflow.workflow.kube-zen.io"
MUTATING_WEBHOOK = "mjobflow.workflow.kube-zen.io"
VALIDATE_PATH = "/validate"
MUTATE_PATH = "/mutate"
TIMEOUT_SECONDS = 5
SERVICE_PORT = 443
API_VERSION = "admissionregistration.k8s.io/v1"


def client_config(
    *,
    ca_bundle: bytes,
    path: str,
    url: str | None = None,
    service_name: str | None = None,
    service_namespace: str | None = None,
    service_port: int = SERVICE_PORT,
) -> dict[str, Any]:
    """A clientConfig for ``url`` (its base, without path) or for a Service reference."""
    encoded = base64.b64encode(ca_bundle).decode()
    if url is not None:
        return {"url": url.rstrip("/") + path, "caBundle": encoded}
    if not (service_name and service_namespace):
        raise ValueError("a webhook clientConfig needs a url or a service name and namespace")
    return {
        "service": {
            "name": service_name,
            "namespace": service_namespace,
            "path": path,
            "port": service_port,
        },
        "caBundle": encoded,
    }


def _rules() -> list[dict[str, Any]]:
    return [
        {
            "apiGroups": [names.GROUP],
            "apiVersions": [names.VERSION],
            "operations": ["CREATE", "UPDATE"],
            "resources": [names.PLURAL],
            "scope": "Namespaced",
        }
    ]


def _webhook(name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "timeoutSeconds": TIMEOUT_SECONDS,
        "matchPolicy": "Equivalent",
        "clientConfig": config,
        "rules": _rules(),
        "namespaceSelector": {},
        "objectSelector": {},
    }


def _labels() -> dict[str, str]:
    return {names.LABEL_MANAGED_BY: names.MANAGED_BY}


def _configuration(*, kind: str, name: str, hook: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "labels": _labels()},
        "webhooks": [hook],
    }


def configurations(
    *,
    ca_bundle: bytes,
    url: str | None = None,
    service_name: str | None = None,
    service_namespace: str | None = None,
) -> list[dict[str, Any]]:
    """Both configurations, mutating first (the order an installer should apply them)."""

    def config(path: str) -> dict[str, Any]:
        # Both webhooks reach the same server; only the path differs.
        return client_config(
            ca_bundle=ca_bundle,
            path=path,
            url=url,
            service_name=service_name,
            service_namespace=service_namespace,
        )

    mutating = _webhook(MUTATING_WEBHOOK, config(MUTATE_PATH))
    mutating["reinvocationPolicy"] = "Never"
    validating = _webhook(VALIDATING_WEBHOOK, config(VALIDATE_PATH))
    return [
        _configuration(kind="MutatingWebhookConfiguration", name=MUTATING_NAME, hook=mutating),
        _configuration(
            kind="ValidatingWebhookConfiguration", name=VALIDATING_NAME, hook=validating
        ),
    ]
