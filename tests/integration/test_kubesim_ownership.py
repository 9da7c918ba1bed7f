"""The Job runner copies once: it reads the stored Job without a copy, builds each pod and status
write afresh and hands it to the Store without a copy (``Store.get(copy=False)``,
``owned=True``). What that must never do, seen through the real HTTPS API: change a stored
object in place. Checked on the objects and on the watch history, which holds every earlier
stored state: each event shows the object as it was when it was written."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from kubesim.runner import JOBS, PODS
from tests.waiting import eventually

NS = "default"


def job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completions": 2,
            "template": {
                "metadata": {"labels": {"app": "demo"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "busybox", "env": [{"name": "A", "value": "1"}]}
                    ],
                },
            },
        },
    }


def history(lister: Any, since: str) -> list[dict[str, Any]]:
    """Every watch event after ``since`` (the server's history, replayed), until the timeout."""
    resp = lister(NS, watch=True, resource_version=since, timeout_seconds=1, _preload_content=False)
    return [json.loads(line) for line in resp.data.decode().splitlines() if line.strip()]


def test_the_runners_writes_leave_every_stored_state_as_it_was(
    kubesim_server: Any, kube_api_client: client.ApiClient
) -> None:
    batch = client.BatchV1Api(kube_api_client)
    created = kube_api_client.sanitize_for_serialization(
        batch.create_namespaced_job(NS, job("owned"))
    )
    since = created["metadata"]["resourceVersion"]
    template = created["spec"]["template"]

    def complete() -> bool:
        status = (
            kube_api_client.sanitize_for_serialization(batch.read_namespaced_job("owned", NS)).get(
                "status"
            )
            or {}
        )
        return status.get("succeeded") == 2

    eventually(complete, 10)
    stored = kubesim_server.store.get(JOBS, "owned", namespace=NS)
    # the pods' spec (nodeName, serviceAccountName, defaults) never reached the Job's template
    assert stored["spec"]["template"] == template
    assert stored["metadata"]["generation"] == 1

    pod_events = history(client.CoreV1Api(kube_api_client).list_namespaced_pod, since)
    by_pod: dict[str, list[dict[str, Any]]] = {}
    for ev in pod_events:
        by_pod.setdefault(ev["object"]["metadata"]["name"], []).append(ev)
    assert len(by_pod) == 2
    for events in by_pod.values():
        assert [e["type"] for e in events] == ["ADDED", "MODIFIED"]
        added, done = (e["object"] for e in events)
        # the pod as created is still Pending in the history: the status write that made it
        # Succeeded replaced the stored pod, it did not change it
        assert added["status"]["phase"] == "Pending"
        assert "containerStatuses" not in added["status"]
        assert done["status"]["phase"] == "Succeeded"
        assert added["spec"] == done["spec"]
        assert added["spec"]["nodeName"] == "kubesim-node"
        assert added["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
        assert int(added["metadata"]["resourceVersion"]) < int(done["metadata"]["resourceVersion"])
    job_events = history(batch.list_namespaced_job, since)
    statuses = [e["object"].get("status") or {} for e in job_events]
    # each status write is a state of its own: none of the earlier ones shows the end
    assert statuses[-1]["succeeded"] == 2
    assert all(s.get("succeeded", 0) < 2 for s in statuses[:-1])
    assert all(e["object"]["spec"]["template"] == template for e in job_events)
    for pod in kubesim_server.store.list(PODS, namespace=NS):
        assert pod["status"]["phase"] == "Succeeded"


def test_get_without_a_copy_is_the_stored_object_and_a_copy_is_not(kubesim_server: Any) -> None:
    store = kubesim_server.store
    store.create(JOBS, job("read"), namespace=NS)
    ref = store.get(JOBS, "read", namespace=NS, copy=False)
    assert store.get(JOBS, "read", namespace=NS, copy=False) is ref
    mine = store.get(JOBS, "read", namespace=NS)
    assert mine == ref and mine is not ref
    mine["spec"]["template"]["metadata"]["labels"]["app"] = "changed"
    assert ref["spec"]["template"]["metadata"]["labels"]["app"] == "demo"
