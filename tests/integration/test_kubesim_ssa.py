"""kubesim's server-side apply merges lists as the real API server does (issue 19 gap 2).

Covers, with real kubectl and the official client over HTTPS:
- `kubectl create -f` then `kubectl apply --server-side -f` of the same (unchanged) Deployment
  and Job: 200, no conflict with the creator, although the stored lists carry server defaults;
- lists marked map (containers by name, container ports by containerPort+protocol, env by
  name) are owned per item and per field: a second manager changing one container's image
  conflicts on `.spec.template.spec.containers[name="main"].image` only, and two managers each
  applying their own container both keep theirs; an applier that drops its container removes
  it, unless another manager still owns it;
- equal values are shared: both managers appear in managedFields for the same item;
- a custom resource's `x-kubernetes-list-type: map` / `set` lists from its CRD schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from kubesim import managed
from tests.fixtures import kubesim as kubesim_fixtures

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: nginx:1.27
        ports: [{containerPort: 80}, {containerPort: 53, protocol: UDP}]
        env: [{name: A, value: "1"}]
"""
JOB = """apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox, command: [sh, -c, "exit 0"],
                    ports: [{containerPort: 8080}]}]
"""


@pytest.fixture
def kubectl(kubesim_server: Any, tmp_path: Path) -> Any:
    def run(*args: str, stdin: str | None = None, ok: bool = True) -> Any:
        done = kubesim_fixtures.kubectl(
            kubesim_server, *args, cache_dir=tmp_path / "cache", input=stdin
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    return run


def owners(obj: dict[str, Any]) -> dict[str, set[managed.Path]]:
    return {
        f"{e['manager']}/{e['operation']}": managed.decode(e["fieldsV1"])
        for e in obj["metadata"]["managedFields"]
    }


def get(kubectl: Any, kind: str, name: str) -> dict[str, Any]:
    out = kubectl("get", kind, name, "-o", "json", "--show-managed-fields").stdout
    return dict(json.loads(out))


@pytest.mark.parametrize(
    ("manifest", "kind", "container_port"),
    [(DEPLOY, "deployment/web", 80), (JOB, "job/batch", 8080)],
)
def test_applying_the_created_manifest_unchanged_is_no_conflict(
    kubectl: Any, manifest: str, kind: str, container_port: int
) -> None:
    kubectl("create", "-f", "-", stdin=manifest)
    done = kubectl("apply", "--server-side", "-f", "-", stdin=manifest)
    assert "serverside-applied" in done.stdout
    obj = get(kubectl, *kind.split("/"))
    image = (
        "spec",
        "template",
        "spec",
        "containers",
        'k:{"name":"main"}',
        "image",
    )
    # equal values: both managers own the container's image
    mine = owners(obj)
    assert image in mine["kubectl-create/Update"] and image in mine["kubectl/Apply"]
    port = "k:" + json.dumps({"containerPort": container_port, "protocol": "TCP"}).replace(" ", "")
    assert (*image[:-1], "ports", port, "containerPort") in mine["kubectl/Apply"]


def test_map_list_items_are_owned_per_key(kubectl: Any) -> None:
    kubectl("apply", "--server-side", "-f", "-", stdin=DEPLOY)
    changed = DEPLOY.replace("nginx:1.27", "nginx:1.28")
    done = kubectl(
        "apply", "--server-side", "--field-manager=other", "-f", "-", stdin=changed, ok=False
    )
    assert done.returncode == 1
    assert (
        'Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: '
        '.spec.template.spec.containers[name="main"].image'
    ) in done.stderr
    # another manager adds its own container (a sidecar) and its own env var on "main"
    sidecar = yaml.safe_load(DEPLOY)
    del sidecar["metadata"]["labels"]
    sidecar["spec"] = {
        "template": {
            "spec": {
                "containers": [
                    {"name": "main", "env": [{"name": "B", "value": "2"}]},
                    {"name": "side", "image": "busybox"},
                ]
            }
        }
    }
    kubectl(
        "apply", "--server-side", "--field-manager=mesh", "-f", "-", stdin=yaml.safe_dump(sidecar)
    )
    containers = get(kubectl, "deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["main", "side"]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert containers[0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP"},
        {"containerPort": 53, "protocol": "UDP"},
    ]
    # the first applier drops its env var and a port: only its own fields go
    trimmed = DEPLOY.replace(", {containerPort: 53, protocol: UDP}", "").replace(
        '        env: [{name: A, value: "1"}]\n', ""
    )
    kubectl("apply", "--server-side", "-f", "-", stdin=trimmed)
    containers = get(kubectl, "deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert containers[0]["env"] == [{"name": "B", "value": "2"}]
    assert containers[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert [c["name"] for c in containers] == ["main", "side"]
    # the mesh manager stops applying its sidecar: nobody else owns it, so it goes
    sidecar["spec"]["template"]["spec"]["containers"] = [{"name": "main"}]
    kubectl(
        "apply", "--server-side", "--field-manager=mesh", "-f", "-", stdin=yaml.safe_dump(sidecar)
    )
    containers = get(kubectl, "deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["main"]
    assert "env" not in containers[0]


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.example.test"},
    "spec": {
        "group": "example.test",
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "parts": {
                                        "type": "array",
                                        "x-kubernetes-list-type": "map",
                                        "x-kubernetes-list-map-keys": ["id"],
                                        "items": {
                                            "type": "object",
                                            "required": ["id"],
                                            "properties": {
                                                "id": {"type": "string"},
                                                "size": {"type": "integer"},
                                            },
                                        },
                                    },
                                    "tags": {
                                        "type": "array",
                                        "x-kubernetes-list-type": "set",
                                        "items": {"type": "string"},
                                    },
                                    "order": {"type": "array", "items": {"type": "string"}},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_custom_resource_lists_follow_the_crd_schema(kube_api_client: client.ApiClient) -> None:
    client.ApiextensionsV1Api(kube_api_client).create_custom_resource_definition(CRD)
    objects = client.CustomObjectsApi(kube_api_client)

    def apply(manager: str, spec: dict[str, Any], force: bool = False) -> dict[str, Any]:
        body = {
            "apiVersion": "example.test/v1",
            "kind": "Gadget",
            "metadata": {"name": "g"},
            "spec": spec,
        }
        objects.patch_namespaced_custom_object(
            "example.test",
            "v1",
            "default",
            "gadgets",
            "g",
            body,
            field_manager=manager,
            force=force,
            _content_type="application/apply-patch+yaml",
        )
        got = objects.get_namespaced_custom_object("example.test", "v1", "default", "gadgets", "g")
        return dict(got)

    apply("a", {"parts": [{"id": "x", "size": 1}], "tags": ["red"], "order": ["1"]})
    got = apply("b", {"parts": [{"id": "y", "size": 2}], "tags": ["blue"], "order": ["1"]})
    assert got["spec"]["parts"] == [{"id": "x", "size": 1}, {"id": "y", "size": 2}]
    assert got["spec"]["tags"] == ["red", "blue"]
    assert got["spec"]["order"] == ["1"]  # atomic, equal: shared
    with pytest.raises(client.ApiException) as caught:
        apply("b", {"parts": [{"id": "x", "size": 5}]})
    assert caught.value.status == 409
    (cause,) = json.loads(caught.value.body)["details"]["causes"]
    assert cause["field"] == '.spec.parts[id="x"].size'
    got = apply("a", {"parts": [{"id": "x", "size": 1}]})
    assert got["spec"]["tags"] == ["blue"] and got["spec"]["order"] == ["1"]
