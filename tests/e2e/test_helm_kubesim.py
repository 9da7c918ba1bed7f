"""The rendered chart applied to kubesim with the real `kubectl apply`, as a user would install it.

Covers, in both certificate modes with HA and every optional object on:
- the CRD from helm/zen-flow/crds/ and the cert-manager / Prometheus Operator kinds (minimal CRDs,
  tests/fixtures/helm.py) install first, as `helm install` and the operators would;
- a server-side dry run, then the real (client-side) apply, create every object; applying again
  server-side (as Helm 4 does) and once more leaves every resourceVersion unchanged: the chart is
  stable, nothing the server defaults turns into a diff;
- what the server stores is what the chart rendered: RBAC rules, the webhook configurations' CA
  wiring per mode, the Deployment's pod security settings.

Built-in kinds kubesim does not model (it serves what zen-flow's controller and clients use) are
served through stand-in CRDs that keep every field; the test lists them in its output. Their
fields are checked against the official client's models in test_helm_render.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures import helm
from tests.fixtures import kubesim as kubesim_fixtures

log = logging.getLogger(__name__)

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


def _prepare(handle: Any, cache: Path, rendered: helm.Rendered) -> list[str]:
    """Install the CRDs the chart needs; return the stand-in kinds used."""
    served = set(_kubectl(handle, cache, "api-resources", "-o", "name").split())
    stand_ins = helm.stand_in_crds(set(rendered.kinds()) | {"Namespace"}, served)
    for crd in stand_ins:
        # Registered on the server's type registry, not through the API: the API (rightly)
        # refuses CRDs for built-in groups such as `apps` and `policy`.
        handle.store.registry.register_crd(crd["metadata"]["name"], crd)
    crds = helm.third_party_crds()
    _kubectl(handle, cache, "apply", "-f", "-", stdin=yaml.safe_dump_all(crds))
    _kubectl(handle, cache, "apply", "-f", str(helm.CHART_DIR / "crds" / "jobflows.yaml"))
    names = [f"crd/{c['metadata']['name']}" for c in crds] + ["crd/jobflows.workflow.kube-zen.io"]
    _kubectl(handle, cache, "wait", "--for=condition=Established", "--timeout=30s", *names)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": helm.NAMESPACE}}
    _kubectl(handle, cache, "apply", "-f", "-", stdin=yaml.safe_dump(namespace))
    return sorted(c["spec"]["names"]["kind"] for c in stand_ins)


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
    stand_ins = _prepare(kubesim_server, cache, rendered)
    log.info("stand-in CRDs for kinds kubesim does not serve", extra={"kinds": stand_ins})
    print(f"stand-in CRDs (kinds kubesim does not serve): {', '.join(stand_ins) or 'none'}")

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
