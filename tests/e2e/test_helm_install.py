"""`helm install`, `helm upgrade` and `helm uninstall` of the chart into kubesim, through the real
Helm library (helm-python-sdk's Config: Helm v4's action package, cluster-aware, with `lookup`).

Covers:
- install in self-signed mode: Helm installs the CRD from crds/ itself, the generated Secret and
  the webhook caBundle agree;
- upgrade (to HA with every option on) keeps the very same certificate and CA, read back with
  `lookup` (without it every upgrade would break the webhook until the pods restart), and adds the
  leader-election Role;
- install in cert-manager mode creates the Issuer and Certificate (cert-manager's CRDs present);
- uninstall removes every object of the release and keeps the CRD (and so the users' flows).

Helm keeps its release records in its default storage, Secrets in the release namespace (one per
revision); uninstall deletes them with protobuf DeleteOptions bodies, which kubesim decodes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from tests.fixtures import helm
from tests.fixtures import kubesim as kubesim_fixtures

HELM_TIMEOUT = 60  # seconds per Helm action; each takes about one here
SELF_SIGNED = {"certificates": {"mode": "self-signed"}}
HA_EVERYTHING = {
    "replicaCount": 3,
    "podDisruptionBudget": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "networkPolicy": {"enabled": True},
}


class Cluster:
    def __init__(self, handle: Any, cache: Path) -> None:
        self.handle = handle
        self.cache = cache

    def kubectl(self, *args: str, stdin: str | None = None, ok: bool = True) -> str:
        done = kubesim_fixtures.kubectl(self.handle, *args, cache_dir=self.cache, input=stdin)
        if ok:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout if ok else done.stderr

    def get(self, resource: str, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        args = ["get", resource, name, "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        obj: dict[str, Any] = json.loads(self.kubectl(*args))
        return obj


@pytest.fixture
def cluster(kubesim_server: Any, tmp_path: Path) -> Cluster:
    cluster = Cluster(kubesim_server, tmp_path / "kubectl-cache")
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(helm.third_party_crds()))
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": helm.NAMESPACE}}
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(namespace))
    return cluster


@pytest.fixture
def helm_config(cluster: Cluster) -> Iterator[helm_python.Config]:
    with helm_python.Config(
        kubeconfig_path=cluster.handle.kubeconfig,
        namespace=helm.NAMESPACE,
        storage_driver="secret",  # Helm's default, named so HELM_DRIVER cannot change it
    ) as config:
        yield config


def _install(config: helm_python.Config, values: dict[str, Any]) -> dict[str, Any]:
    return config.install(
        str(helm.CHART_DIR), helm.RELEASE, values, namespace=helm.NAMESPACE, timeout=HELM_TIMEOUT
    )


def _release_secrets(cluster: Cluster) -> list[str]:
    out = cluster.kubectl("get", "secrets", "-n", helm.NAMESPACE, "-l", "owner=helm", "-o", "name")
    return sorted(line.removeprefix("secret/") for line in out.split())


def _webhook_ca(cluster: Cluster) -> set[str]:
    return {
        hook["clientConfig"].get("caBundle", "")
        for resource, name in (
            ("mutatingwebhookconfigurations", "zen-flow-mutating"),
            ("validatingwebhookconfigurations", "zen-flow-validating"),
        )
        for hook in cluster.get(resource, name)["webhooks"]
    }


def test_self_signed_upgrade_keeps_the_certificate_and_uninstall_cleans_up(
    cluster: Cluster, helm_config: helm_python.Config
) -> None:
    release = _install(helm_config, SELF_SIGNED)
    assert release["status"] == "deployed" and release["revision"] == 1
    crd = cluster.get("customresourcedefinitions", "jobflows.workflow.kube-zen.io")
    assert crd["spec"]["group"] == "workflow.kube-zen.io"  # Helm installed it from crds/

    secret = cluster.get("secrets", "zen-flow-webhook-tls", namespace=helm.NAMESPACE)["data"]
    assert _webhook_ca(cluster) == {secret["ca.crt"]}
    assert "Webhook certificate: self-signed" in release["notes"]

    upgraded = helm_config.upgrade(
        str(helm.CHART_DIR),
        helm.RELEASE,
        {**SELF_SIGNED, **HA_EVERYTHING},
        namespace=helm.NAMESPACE,
        timeout=HELM_TIMEOUT,
    )
    assert upgraded["revision"] == 2
    after = cluster.get("secrets", "zen-flow-webhook-tls", namespace=helm.NAMESPACE)["data"]
    assert after == secret, "helm upgrade replaced the webhook certificate"
    assert _webhook_ca(cluster) == {secret["ca.crt"]}
    role = cluster.get(
        "roles.rbac.authorization.k8s.io", "zen-flow-leader-election", namespace=helm.NAMESPACE
    )
    assert role["rules"][1]["resourceNames"] == ["zen-flow-leader"]
    deployment = cluster.get("deployments.apps", "zen-flow", namespace=helm.NAMESPACE)
    assert deployment["spec"]["replicas"] == 3

    manifest = helm_config.status(helm.RELEASE)["manifest"]
    records = [f"sh.helm.release.v1.{helm.RELEASE}.v{n}" for n in (1, 2)]
    assert _release_secrets(cluster) == records
    helm_config.uninstall(helm.RELEASE, timeout=HELM_TIMEOUT)
    assert _release_secrets(cluster) == []
    leftovers = cluster.kubectl("get", "-f", "-", "-o", "name", stdin=manifest, ok=False)
    assert leftovers.count("NotFound") == len([d for d in yaml.safe_load_all(manifest) if d])
    # Helm never deletes CRDs: the users' JobFlows survive an uninstall.
    assert cluster.get("customresourcedefinitions", "jobflows.workflow.kube-zen.io")


def test_cert_manager_install_creates_issuer_and_certificate(
    cluster: Cluster, helm_config: helm_python.Config
) -> None:
    release = _install(helm_config, {})
    assert release["status"] == "deployed"
    certificate = cluster.get(
        "certificates.cert-manager.io", "zen-flow-webhook", namespace=helm.NAMESPACE
    )
    assert certificate["spec"]["secretName"] == "zen-flow-webhook-tls"
    assert certificate["spec"]["dnsNames"][-1] == f"zen-flow.{helm.NAMESPACE}.svc"
    issuer = cluster.get("issuers.cert-manager.io", "zen-flow-selfsigned", namespace=helm.NAMESPACE)
    assert issuer["spec"] == {"selfSigned": {}}
    assert _webhook_ca(cluster) == {""}  # cainjector's job, not Helm's
