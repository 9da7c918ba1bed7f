"""kubesim answers as a real API server where a peer's test suite found it did not (issue 19).

Covers, with the official client and real kubectl over HTTPS:
- Status bodies (and object bodies) end with the newline Go's json.Encoder writes;
- annotation keys are validated as qualified names (422 Invalid, cause on
  metadata.annotations, from kubectl too), upper case allowed as upstream lower-cases them;
- a `default` ServiceAccount exists in the seeded namespaces and appears in a new namespace;
- server defaults: containerPort protocol TCP, pod spec defaults in a Job's template (pull
  policy, DNS policy, scheduler, grace period, enableServiceLinks), probe and volume defaults,
  a pod's serviceAccountName.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.fixtures import kubesim as kubesim_fixtures

NS = "default"


@pytest.fixture
def api(kube_api_client: client.ApiClient) -> client.ApiClient:
    return kube_api_client


def kubectl(cluster: Any, tmp_path: Path, *args: str) -> Any:
    return kubesim_fixtures.kubectl(cluster, *args, cache_dir=tmp_path / "kube-cache")


def plain(api: client.ApiClient, obj: Any) -> dict[str, Any]:
    return api.sanitize_for_serialization(obj)


def test_status_and_object_bodies_end_with_a_newline(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("missing", NS)
    body = caught.value.body
    text = body.decode() if isinstance(body, bytes) else str(body)
    assert text.endswith("}\n") and json.loads(text)["reason"] == "NotFound"
    raw = core.read_namespace("default", _preload_content=False)
    assert raw.data.endswith(b"}\n")


def test_annotation_keys_are_qualified_names(
    api: client.ApiClient, kubesim_server: Any, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api)
    bad = {
        "metadata": {"name": "annotated", "annotations": {"workflow.kube-zen.io/approved/x": "y"}}
    }
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(NS, bad)
    status = json.loads(caught.value.body)
    assert caught.value.status == 422 and status["reason"] == "Invalid"
    (cause,) = status["details"]["causes"]
    assert cause["field"] == "metadata.annotations"
    assert "workflow.kube-zen.io/approved/x" in cause["message"]
    good = {"metadata": {"name": "annotated", "annotations": {"Example.COM/Mixed_Case": "ok"}}}
    core.create_namespaced_config_map(NS, good)
    done = kubectl(kubesim_server, tmp_path, "annotate", "configmap", "annotated", "a/b/c=1")
    assert done.returncode == 1
    assert 'The ConfigMap "annotated" is invalid: metadata.annotations: Invalid value: "a/b/c"' in (
        done.stderr
    )


def test_every_namespace_has_a_default_service_account(
    api: client.ApiClient, kubesim_server: Any, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api)
    for ns in ("default", "kube-system", "kube-public"):
        assert core.read_namespaced_service_account("default", ns).metadata.name == "default"
    assert kubectl(kubesim_server, tmp_path, "create", "namespace", "fresh").returncode == 0
    done = kubectl(kubesim_server, tmp_path, "get", "serviceaccounts", "-n", "fresh", "-o", "name")
    assert done.stdout.split() == ["serviceaccount/default"]


def test_server_defaults_of_pods_and_job_templates(api: client.ApiClient) -> None:
    container = {
        "name": "web",
        "image": "registry.local:5000/web",
        "ports": [{"containerPort": 8080}],
        "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "readinessProbe": {"httpGet": {"port": 8080}},
    }
    pod = {
        "metadata": {"name": "defaulted"},
        "spec": {
            "containers": [container],
            "volumes": [{"name": "cfg", "configMap": {"name": "c"}}, {"name": "scratch"}],
        },
    }
    stored = plain(api, client.CoreV1Api(api).create_namespaced_pod(NS, pod))
    spec = stored["spec"]
    (web,) = spec["containers"]
    assert web["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert web["imagePullPolicy"] == "Always"  # no tag: the registry port is not one
    assert web["env"][0]["valueFrom"]["fieldRef"] == {
        "apiVersion": "v1",
        "fieldPath": "spec.nodeName",
    }
    assert web["readinessProbe"] == {
        "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert spec["volumes"] == [
        {"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}},
        {"name": "scratch", "emptyDir": {}},
    ]
    assert (spec["serviceAccountName"], spec["serviceAccount"]) == ("default", "default")
    assert spec["enableServiceLinks"] is True
    job = {
        "metadata": {"name": "defaulted"},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox:1.36",
                            "ports": [
                                {"containerPort": 53, "protocol": "UDP"},
                                {"containerPort": 80},
                            ],
                        }
                    ],
                }
            },
        },
    }
    made = plain(api, client.BatchV1Api(api).create_namespaced_job(NS, job))
    tspec = made["spec"]["template"]["spec"]
    assert {
        k: tspec[k] for k in ("dnsPolicy", "schedulerName", "terminationGracePeriodSeconds")
    } == {
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
        "terminationGracePeriodSeconds": 30,
    }
    (main,) = tspec["containers"]
    assert main["imagePullPolicy"] == "IfNotPresent"
    assert main["ports"] == [
        {"containerPort": 53, "protocol": "UDP"},
        {"containerPort": 80, "protocol": "TCP"},
    ]
    assert "serviceAccountName" not in tspec  # the ServiceAccount plugin admits pods only
