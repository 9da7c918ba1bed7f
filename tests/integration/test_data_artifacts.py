"""Artifacts through the workspace with the real controller against kubesim (simulated Jobs).

Covers: spec.workspace creates the claim <flow>-workspace (owned by the flow, before the first
Job); the producer's Job mounts it at the output path with subPath <flow>/<step>/<artifact>;
the consumer's Job mounts the same subPath read-only at its input path; an ``http`` input gets
an init container with the controller's ``artifact_fetch_image`` setting; the producer's
status lists its artifact and where it is in the claim; deleting the flow
removes the claim (owner reference, foreground garbage collection in kubesim).
"""

from __future__ import annotations

from typing import Any

from controller.kube import JOBFLOWS, PVCS, NotFound
from tests.fixtures.controller import NAMESPACE, flow, job_step
from tests.waiting import eventually

WORKSPACE = {
    "volumeClaimTemplate": {
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }
}


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def artifact_flow(name: str) -> dict[str, Any]:
    produce = job_step("produce")
    produce["outputs"] = {"artifacts": [{"name": "report", "path": "/out/report"}]}
    consume = job_step("consume", "produce")
    consume["inputs"] = {
        "artifacts": [
            {"name": "report", "from": "produce/report", "path": "/in/report"},
            {"name": "data", "path": "/in/data.csv", "http": {"url": "https://example.com/d"}},
        ]
    }
    return flow(name, [produce, consume], workspace=WORKSPACE)


def test_workspace_claim_and_mounts(cluster, start_controller) -> None:
    start_controller(artifact_fetch_image="mirror.local/curl:8")
    cluster.create_flow(artifact_flow("files"))
    status = cluster.wait_phase("files", "Succeeded")
    produced = next(s for s in status["steps"] if s["name"] == "produce")
    assert produced["outputs"] == {
        "artifacts": [{"name": "report", "path": "files/produce/report"}]
    }

    claim = cluster.kube.get(PVCS, NAMESPACE, "files-workspace")
    owner = claim["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("JobFlow", "files")
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    (produce,) = cluster.step_jobs("files", "produce")
    (consume,) = cluster.step_jobs("files", "consume")
    assert claim["metadata"]["creationTimestamp"] <= produce["metadata"]["creationTimestamp"]

    volume = {"name": "zen-workspace", "persistentVolumeClaim": {"claimName": "files-workspace"}}
    assert volume in pod_spec(produce)["volumes"]
    assert pod_spec(produce)["containers"][0]["volumeMounts"] == [
        {"name": "zen-workspace", "mountPath": "/out/report", "subPath": "files/produce/report"}
    ]
    assert volume in pod_spec(consume)["volumes"]
    assert pod_spec(consume)["containers"][0]["volumeMounts"] == [
        {
            "name": "zen-workspace",
            "mountPath": "/in/report",
            "subPath": "files/produce/report",
            "readOnly": True,
        },
        {"name": "zen-fetch", "mountPath": "/in/data.csv", "subPath": "0", "readOnly": True},
    ]
    (fetch,) = pod_spec(consume)["initContainers"]
    assert fetch["image"] == "mirror.local/curl:8"
    assert fetch["command"][-1] == "https://example.com/d"


def test_claim_goes_with_the_flow(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(artifact_flow("gone"))
    cluster.wait_phase("gone", "Succeeded")
    cluster.kube.delete(JOBFLOWS, NAMESPACE, "gone", propagation_policy="Foreground")

    def claim_deleted() -> bool:
        try:
            claim = cluster.kube.get(PVCS, NAMESPACE, "gone-workspace")
        except NotFound:
            return True
        return bool(claim["metadata"].get("deletionTimestamp"))

    eventually(claim_deleted, 10, message="workspace claim deleted with its flow")
