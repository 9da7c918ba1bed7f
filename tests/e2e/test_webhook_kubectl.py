"""End to end: real `kubectl` against kubesim, which calls our webhook over TLS.

Set-up per test: kubesim (its own CA and token), the real `serve --webhook-only` servers on an
ephemeral port with certificates from certs/, the CRD (crds/jobflows.yaml) and both webhook
configurations from webhook/configuration.py with a url clientConfig and the CA as caBundle,
applied with `kubectl apply -f`.

Covers: a flow with a cycle is refused (`kubectl apply` exits non-zero and prints `denied the
request` and the cycle path); a valid flow is stored with the executionPolicy defaults visible
in `kubectl get jf NAME -o yaml` and its steps as written; re-applying an unchanged manifest
prints "unchanged" (client-side, twice, and `kubectl diff` is empty) while an edit prints
"configured"; a server-side re-apply writes nothing; kubectl shows webhook warnings; a started flow refuses new steps
but accepts an approval annotation and spec.suspend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import serve
from tests.fixtures.kubesim import kubectl
from tests.fixtures.webhook import CertBundle, job_template, jobflow, step
from tests.waiting import eventually
from webhook import configuration

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "jobflows.yaml"


class Cluster:
    def __init__(self, handle: Any, cache: Path, workdir: Path) -> None:
        self.handle, self.cache, self.workdir = handle, cache, workdir

    def kubectl(self, *args: str, stdin: str | None = None) -> Any:
        return kubectl(self.handle, *args, cache_dir=self.cache, input=stdin)

    def apply(self, obj: dict[str, Any] | list[dict[str, Any]], name: str) -> Any:
        path = self.workdir / f"{name}.yaml"
        docs = obj if isinstance(obj, list) else [obj]
        path.write_text(yaml.safe_dump_all(docs))
        return self.kubectl("apply", "-f", str(path))


@pytest.fixture
def cluster(
    kubesim_server: Any,
    kubectl_cache: Path,
    webhook_server: serve.RunningServers,
    webhook_certs: CertBundle,
    tmp_path: Path,
) -> Cluster:
    c = Cluster(kubesim_server, kubectl_cache, tmp_path)
    crd = c.kubectl("apply", "-f", str(CRD_FILE))
    assert crd.returncode == 0, crd.stderr
    hooks = configuration.configurations(
        ca_bundle=webhook_certs.ca_pem, url=webhook_server.webhook_url
    )
    installed = c.apply(hooks, "webhooks")
    assert installed.returncode == 0, installed.stderr
    eventually(
        lambda: c.kubectl("get", "jf").returncode == 0,
        timeout=20,
        message="the JobFlow resource is served",
    )
    return c


def test_cycle_is_denied_with_its_path(cluster: Cluster) -> None:
    flow = jobflow("cyclic", [step("a", "c"), step("b", "a"), step("c", "b")])
    result = cluster.apply(flow, "cyclic")
    assert result.returncode != 0
    assert "denied the request" in result.stderr
    assert 'admission webhook "vjobflow.workflow.kube-zen.io" denied the request' in result.stderr
    assert "a -> c -> b -> a" in result.stderr
    assert cluster.kubectl("get", "jf", "cyclic").returncode != 0  # nothing stored


def test_valid_flow_is_stored_with_defaults(cluster: Cluster) -> None:
    flow = jobflow(
        "defaults",
        [
            step("a"),
            step("b", "a", retryPolicy={"backoff": {"type": "Exponential", "duration": "5s"}}),
        ],
    )
    result = cluster.apply(flow, "valid")
    assert result.returncode == 0, result.stderr
    shown = cluster.kubectl("get", "jf", "defaults", "-o", "yaml")
    assert shown.returncode == 0, shown.stderr
    stored = yaml.safe_load(shown.stdout)
    assert stored["spec"]["executionPolicy"] == {
        "concurrencyPolicy": "Forbid",
        "ttlSecondsAfterFinished": 86400,
        "backoffLimit": 6,
    }
    # Steps are stored as written: their defaults (type Job, retryPolicy.limit 3, factor 2)
    # apply in memory, because a default stored inside the list is drift for `kubectl apply`.
    assert stored["spec"]["steps"] == flow["spec"]["steps"]


def test_reapplying_an_unchanged_flow_is_unchanged(cluster: Cluster) -> None:
    """Issue 13 item 6: `kubectl apply` of the same manifest prints "unchanged" (GitOps tools
    see no drift), the defaults still apply, and a real edit is still "configured"."""
    flow = jobflow(
        "same",
        [
            step("a"),
            step("b", "a", retryPolicy={"backoff": {"type": "Exponential", "duration": "5s"}}),
            {"name": "gate", "type": "Manual", "dependencies": ["b"]},
        ],
    )
    first = cluster.apply(flow, "same")
    assert (first.returncode, first.stdout.strip()) == (
        0,
        "jobflow.workflow.kube-zen.io/same created",
    ), first.stderr
    before = yaml.safe_load(cluster.kubectl("get", "jf", "same", "-o", "yaml").stdout)
    assert before["spec"]["executionPolicy"]["concurrencyPolicy"] == "Forbid"  # defaulted

    for _ in range(2):
        again = cluster.apply(flow, "same")
        assert (again.returncode, again.stdout.strip()) == (
            0,
            "jobflow.workflow.kube-zen.io/same unchanged",
        ), again.stderr
    diff = cluster.kubectl("diff", "-f", str(cluster.workdir / "same.yaml"))
    assert (diff.returncode, diff.stdout) == (0, ""), diff.stderr
    after = yaml.safe_load(cluster.kubectl("get", "jf", "same", "-o", "yaml").stdout)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    flow["spec"]["steps"][0]["timeoutSeconds"] = 60
    edited = cluster.apply(flow, "same")
    assert (edited.returncode, edited.stdout.strip()) == (
        0,
        "jobflow.workflow.kube-zen.io/same configured",
    ), edited.stderr
    assert (
        cluster.apply(flow, "same").stdout.strip() == "jobflow.workflow.kube-zen.io/same unchanged"
    )


def test_server_side_reapply_changes_nothing(cluster: Cluster) -> None:
    """Server-side apply of an unchanged manifest writes nothing (same resourceVersion), and
    the webhook's defaults do not conflict with the applier's fields."""
    flow = jobflow("ssa", [step("a"), step("b", "a", retryPolicy={"limit": 1})])
    path = cluster.workdir / "ssa.yaml"
    path.write_text(yaml.safe_dump(flow))
    first = cluster.kubectl("apply", "--server-side", "-f", str(path))
    assert first.returncode == 0, first.stderr
    before = yaml.safe_load(cluster.kubectl("get", "jf", "ssa", "-o", "yaml").stdout)
    again = cluster.kubectl("apply", "--server-side", "-f", str(path))
    assert (again.returncode, again.stdout.strip()) == (
        0,
        "jobflow.workflow.kube-zen.io/ssa serverside-applied",
    ), again.stderr
    after = yaml.safe_load(cluster.kubectl("get", "jf", "ssa", "-o", "yaml").stdout)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"]["executionPolicy"]["backoffLimit"] == 6


def test_warnings_are_shown_by_kubectl(cluster: Cluster) -> None:
    flow = jobflow("risky", [{"name": "a", "template": job_template("busybox")}])
    result = cluster.apply(flow, "risky")
    assert result.returncode == 0, result.stderr
    assert "Warning:" in result.stderr
    assert "has no tag or uses :latest" in result.stderr


def test_started_flow_keeps_steps_but_takes_approvals(cluster: Cluster) -> None:
    flow = jobflow(
        "started", [step("a"), {"name": "gate", "type": "Manual", "dependencies": ["a"]}]
    )
    assert cluster.apply(flow, "started").returncode == 0
    status = {"status": {"phase": "Paused", "startTime": "2026-01-01T00:00:00Z"}}
    patched = cluster.kubectl(
        "patch", "jf", "started", "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )
    assert patched.returncode == 0, patched.stderr

    flow["spec"]["steps"].append(step("late", "gate"))
    refused = cluster.apply(flow, "started-more")
    assert refused.returncode != 0
    assert "denied the request" in refused.stderr
    assert "steps cannot change once the flow has started (phase Paused)" in refused.stderr

    approved = cluster.kubectl(
        "annotate", "jf", "started", "approve.workflow.kube-zen.io/gate=true"
    )
    assert approved.returncode == 0, approved.stderr
    suspended = cluster.kubectl(
        "patch", "jf", "started", "--type=merge", "-p", '{"spec": {"suspend": true}}'
    )
    assert suspended.returncode == 0, suspended.stderr
