"""The rendered chart applied to kubesim with the real `kubectl apply`, as a user would install it.

Covers, in both certificate modes with HA and every optional object on:
- the CRD from helm/zen-flow/crds/ and the cert-manager / Prometheus Operator kinds (minimal CRDs,
  tests/fixtures/helm.py) install first, as `helm install` and the operators would;
- a server-side dry run, then the real (client-side) apply, create every object; applying again
  server-side (as Helm 4 does) and once more leaves every resourceVersion unchanged: the chart is
  stable, nothing the server defaults turns into a diff;
- what the server stores is what the chart rendered: RBAC rules, the webhook configurations' CA
  wiring per mode, the Deployment's pod security settings.

kubesim serves every built-in kind of the chart itself (Deployment, RBAC, PDB, NetworkPolicy...)
with its own defaulting and validation; the test first checks discovery lists them all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures import helm
from tests.fixtures import kubesim as kubesim_fixtures

THIRD_PARTY = {"cert-manager.io", "monitoring.coreos.com"}
EVERYTHING_ON = {
    "replicaCount": 3,
    "podDisruptionBudget": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "networkPolicy": {"enabled": True},
}


def _kubectl(handle: Any, cache: Path, *args: str, stdin: str | None = None) -> str:
    done = kubesim_fixtures.kubectl(handle, *args, cache_dir=cache, input=stdin)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def _prepare(handle: Any, cache: Path) -> None:
    """Install what must exist before the chart: CRDs (its own and third-party), the namespace."""
    served = set(_kubectl(handle, cache, "api-resources", "-o", "name").split())
    builtins = {k for k in helm.CHART_KINDS if helm.CHART_KINDS[k][0] not in THIRD_PARTY}
    missing = {k for k in builtins if helm.resource_name(k) not in served}
    assert not missing, f"kubesim does not serve {sorted(missing)}"
    crds = helm.third_party_crds()
    _kubectl(handle, cache, "apply", "-f", "-", stdin=yaml.safe_dump_all(crds))
    _kubectl(handle, cache, "apply", "-f", str(helm.CHART_DIR / "crds" / "jobflows.yaml"))
    names = [f"crd/{c['metadata']['name']}" for c in crds] + ["crd/jobflows.workflow.kube-zen.io"]
    _kubectl(handle, cache, "wait", "--for=condition=Established", "--timeout=30s", *names)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": helm.NAMESPACE}}
    _kubectl(handle, cache, "apply", "-f", "-", stdin=yaml.safe_dump(namespace))


def _key(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _stored(handle: Any, cache: Path, manifest: str) -> dict[str, dict[str, Any]]:
    """Every object of ``manifest`` as the server stores it (one `kubectl get -f -`)."""
    listed = json.loads(_kubectl(handle, cache, "get", "-f", "-", "-o", "json", stdin=manifest))
    return {_key(o): o for o in listed["items"]}


@pytest.mark.parametrize("mode", ["cert-manager", "self-signed"])
def test_chart_applies_cleanly_and_is_stable(
    mode: str, kubesim_server: Any, tmp_path: Path
) -> None:
    rendered = helm.render({**EVERYTHING_ON, "certificates": {"mode": mode}})
    cache = tmp_path / "kubectl-cache"
    _prepare(kubesim_server, cache)

    manifest = rendered.yaml()
    _kubectl(kubesim_server, cache, "apply", "--dry-run=server", "-f", "-", stdin=manifest)
    created = _kubectl(kubesim_server, cache, "apply", "-f", "-", stdin=manifest).splitlines()
    assert len(created) == len(rendered.objects)
    assert all(line.endswith(" created") for line in created), created

    # Re-applying changes nothing: a server-side apply (Helm 4's way) twice leaves every
    # resourceVersion as it was (the first one only takes over field ownership).
    _kubectl(kubesim_server, cache, "apply", "--server-side", "-f", "-", stdin=manifest)
    before = _stored(kubesim_server, cache, manifest)
    _kubectl(kubesim_server, cache, "apply", "--server-side", "-f", "-", stdin=manifest)
    stored = _stored(kubesim_server, cache, manifest)
    assert sorted(stored) == sorted(_key(o) for o in rendered.objects)
    assert {k: o["metadata"]["resourceVersion"] for k, o in stored.items()} == {
        k: o["metadata"]["resourceVersion"] for k, o in before.items()
    }

    role = rendered.one("ClusterRole")
    assert stored[_key(role)]["rules"] == role["rules"]
    deployment = rendered.one("Deployment")
    stored_pod = stored[_key(deployment)]["spec"]["template"]["spec"]
    rendered_pod = deployment["spec"]["template"]["spec"]
    assert stored_pod["securityContext"] == rendered_pod["securityContext"]
    assert (
        stored_pod["containers"][0]["securityContext"]
        == rendered_pod["containers"][0]["securityContext"]
    )
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        config = stored[_key(rendered.one(kind))]
        [hook] = config["webhooks"]
        [want] = rendered.one(kind)["webhooks"]
        assert hook["clientConfig"] == want["clientConfig"]
        assert hook["rules"] == want["rules"]
        annotations = config["metadata"].get("annotations", {})
        if mode == "cert-manager":
            assert "caBundle" not in hook["clientConfig"]
            assert annotations["cert-manager.io/inject-ca-from"] == (
                f"{helm.NAMESPACE}/zen-flow-webhook"
            )
        else:
            assert hook["clientConfig"]["caBundle"]
            assert "cert-manager.io/inject-ca-from" not in annotations
