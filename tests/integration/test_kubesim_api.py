"""kubesim driven by the official ``kubernetes`` Python client (and raw HTTPS where the client has no
API), over TLS verified against kubesim's CA.

Covers: authentication (401 without the token); typed CRUD with 201/200/404; AlreadyExists vs
Conflict (same 409, different reason); 422 Invalid with causes (built-in Job and CRD schema);
custom resources through CustomObjectsApi (defaulting, pruning, PUT needs a resourceVersion,
strategic merge 415, JSON patch with the right content type, merge patch of a list body 400);
the status subresource (main endpoint keeps status, /status keeps spec, generation rules); a
no-op write keeps the resourceVersion; server-side apply (201 on create, fieldManager required);
label selectors with every operator and field selectors (metadata.name, status.phase);
list pagination with limit/continue; watch from a resourceVersion (replay), selector transitions
(ADDED when a label starts matching, DELETED when it stops), 410 Expired after compaction,
WatchList with the initial-events-end bookmark and its 422 validation; Table output; finalizers
and deletionTimestamp; DELETE with a protobuf DeleteOptions body (dryRun, preconditions);
owner-reference garbage collection (background, foreground with
blockOwnerDeletion, orphan) of runner-made pods; namespace deletion; the DynamicClient (legacy
discovery); persistence across a restart with ``data_dir``; Lease MicroTime with ``+00:00``
stored as ``Z`` and the leader-election 409; the CRD lifecycle (Established at once, OpenAPI
hash changes with the schema, deletion removes endpoints, discovery entry and objects);
events.k8s.io/v1 and core/v1 Events sharing one storage (written, listed, selected and patched
through either).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, dynamic, watch
from kubernetes.client.exceptions import ApiException

import kubesim
from kubesim.store import GVR
from tests.fixtures.kubesim import api_client, protobuf_delete_options
from tests.waiting import eventually

NS = "default"
GROUP, VERSION, PLURAL = "example.kubesim.io", "v1", "gadgets"
GADGETS = GVR(GROUP, VERSION, PLURAL)
PODS = GVR("", "v1", "pods")
JOBS = GVR("batch", "v1", "jobs")

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["replicas"],
                                "properties": {
                                    "replicas": {"type": "integer", "minimum": 0},
                                    "mode": {
                                        "type": "string",
                                        "default": "fast",
                                        "enum": ["fast", "slow"],
                                    },
                                    "free": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {"phase": {"type": "string"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


def gadget(name: str, replicas: int = 1, **labels: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Gadget",
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas},
    }


def reason(exc: ApiException) -> str:
    return str(json.loads(exc.body)["reason"])


@pytest.fixture(scope="module")
def server(kubesim_module_server: Any) -> Any:
    with api_client(kubesim_module_server) as c:
        client.ApiextensionsV1Api(c).create_custom_resource_definition(CRD)
    return kubesim_module_server


@pytest.fixture
def api(server: Any) -> Iterator[client.ApiClient]:
    c = api_client(server)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def raw(server: Any) -> Iterator[httpx.Client]:
    ctx = ssl.create_default_context(cafile=server.ca_file)
    with httpx.Client(
        base_url=server.url,
        verify=ctx,
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    ) as c:
        yield c


def test_requests_without_the_token_get_401(server: Any) -> None:
    ctx = ssl.create_default_context(cafile=server.ca_file)
    with httpx.Client(base_url=server.url, verify=ctx) as c:
        r = c.get("/api/v1/namespaces")
    assert r.status_code == 401
    assert r.json()["reason"] == "Unauthorized"


def test_configmap_crud_and_409_reasons(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    cm = v1.create_namespaced_config_map(NS, {"metadata": {"name": "crud"}, "data": {"a": "1"}})
    assert cm.metadata.uid and cm.metadata.creation_timestamp and cm.metadata.generation is None
    with pytest.raises(ApiException) as exists:
        v1.create_namespaced_config_map(NS, {"metadata": {"name": "crud"}})
    assert exists.value.status == 409 and reason(exists.value) == "AlreadyExists"
    cm.data = {"a": "2"}
    updated = v1.replace_namespaced_config_map("crud", NS, cm)
    assert int(updated.metadata.resource_version) > int(cm.metadata.resource_version)
    with pytest.raises(ApiException) as stale:
        v1.replace_namespaced_config_map("crud", NS, cm)  # still carries the old resourceVersion
    assert stale.value.status == 409 and reason(stale.value) == "Conflict"
    assert "the object has been modified" in json.loads(stale.value.body)["message"]
    same = v1.replace_namespaced_config_map("crud", NS, updated)
    assert same.metadata.resource_version == updated.metadata.resource_version  # no-op write
    patched = v1.patch_namespaced_config_map("crud", NS, {"data": {"b": "3"}})
    assert patched.data == {"a": "2", "b": "3"}
    v1.delete_namespaced_config_map("crud", NS)
    with pytest.raises(ApiException) as missing:
        v1.read_namespaced_config_map("crud", NS)
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'configmaps "crud" not found'


def test_invalid_job_lists_every_cause(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as exc:
        client.BatchV1Api(api).create_namespaced_job(
            NS,
            {
                "metadata": {"name": "bad-job"},
                "spec": {"template": {"spec": {"containers": [{"name": "main"}]}}},
            },
        )
    body = json.loads(exc.value.body)
    assert exc.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["kind"] == "Job"
    fields = {c["field"] for c in body["details"]["causes"]}
    assert fields == {"spec.template.spec.containers[0].image", "spec.template.spec.restartPolicy"}


def test_custom_resources_default_prune_and_validate(api: client.ApiClient, server: Any) -> None:
    co = client.CustomObjectsApi(api)
    body = gadget("g-valid", 2)
    body["spec"]["unknown"] = True
    body["spec"]["free"] = {"anything": [1, 2]}
    created = co.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
    assert created["spec"] == {"replicas": 2, "mode": "fast", "free": {"anything": [1, 2]}}
    assert created["metadata"]["generation"] == 1
    with pytest.raises(ApiException) as exc:
        co.create_namespaced_custom_object(
            GROUP,
            VERSION,
            NS,
            PLURAL,
            {**gadget("g-bad"), "spec": {"replicas": "three", "mode": "medium"}},
        )
    detail = json.loads(exc.value.body)
    assert exc.value.status == 422
    assert detail["message"].startswith('Gadget.example.kubesim.io "g-bad" is invalid: [')
    assert {c["reason"] for c in detail["details"]["causes"]} == {
        "FieldValueTypeInvalid",
        "FieldValueNotSupported",
    }
    unconditional = dict(created)
    unconditional["metadata"] = {
        k: v for k, v in created["metadata"].items() if k != "resourceVersion"
    }
    with pytest.raises(ApiException) as put:
        co.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "g-valid", unconditional)
    assert put.value.status == 422 and "must be specified for an update" in put.value.body


def test_custom_resource_patch_types(api: client.ApiClient, raw: httpx.Client) -> None:
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, gadget("g-patch"))
    with pytest.raises(ApiException) as as_merge:
        co.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            NS,
            PLURAL,
            "g-patch",
            [{"op": "replace", "path": "/spec/replicas", "value": 4}],
        )
    assert as_merge.value.status == 400
    patched = co.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NS,
        PLURAL,
        "g-patch",
        [{"op": "replace", "path": "/spec/replicas", "value": 4}],
        _content_type="application/json-patch+json",
    )
    assert patched["spec"]["replicas"] == 4 and patched["metadata"]["generation"] == 2
    r = raw.patch(
        f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/g-patch",
        content=b'{"spec":{"replicas":5}}',
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert r.status_code == 415 and r.json()["reason"] == "UnsupportedMediaType"


def test_status_subresource_rules(api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, gadget("g-status"))
    after_status = co.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        NS,
        PLURAL,
        "g-status",
        {"status": {"phase": "Ready"}, "spec": {"replicas": 9}},
    )
    assert after_status["status"] == {"phase": "Ready"}
    assert after_status["spec"]["replicas"] == 1  # /status drops spec changes
    assert after_status["metadata"]["generation"] == 1  # status writes never bump generation
    main = co.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NS,
        PLURAL,
        "g-status",
        {"status": {"phase": "Hacked"}, "spec": {"replicas": 2}},
    )
    assert main["status"] == {"phase": "Ready"}  # main endpoint keeps status
    assert main["metadata"]["generation"] == 2


def test_server_side_apply_creates_with_201_and_needs_a_field_manager(
    api: client.ApiClient, raw: httpx.Client
) -> None:
    co = client.CustomObjectsApi(api)
    created = co.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NS,
        PLURAL,
        "g-ssa",
        gadget("g-ssa", 3),
        field_manager="tests",
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    assert (
        created is None
    )  # the client maps only 200; kubesim answers 201 Created like kube-apiserver
    got = co.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "g-ssa")
    assert got["spec"]["replicas"] == 3
    assert got["metadata"]["managedFields"][0]["manager"] == "tests"
    r = raw.patch(
        f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/g-ssa",
        content=json.dumps(gadget("g-ssa")),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert r.status_code == 422 and "fieldManager: Required value" in r.json()["message"]


def test_label_and_field_selectors(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "sel"}})
    for name, labels in (
        ("s1", {"app": "a", "tier": "web"}),
        ("s2", {"app": "b"}),
        ("s3", {"tier": "db"}),
    ):
        v1.create_namespaced_config_map("sel", {"metadata": {"name": name, "labels": labels}})

    def names(**kw: str) -> list[str]:
        return [i.metadata.name for i in v1.list_namespaced_config_map("sel", **kw).items]

    assert names(label_selector="app=a") == ["s1"]
    assert names(label_selector="app==b") == ["s2"]
    assert names(label_selector="app!=a") == ["s2", "s3"]
    assert names(label_selector="app in (a,b)") == ["s1", "s2"]
    assert names(label_selector="app notin (a)") == ["s2", "s3"]
    assert names(label_selector="tier") == ["s1", "s3"]
    assert names(label_selector="!tier") == ["s2"]
    assert names(label_selector="app,tier=web") == ["s1"]
    # As the real server: keys and values are validated, a bad one is 400 naming it.
    for bad, words in (
        ("a=((", "values[0][a]: Invalid value: '(('"),
        ("app in (a,b c)", "values[1][app]: Invalid value: 'b c'"),
        ("app in (a,-b)", "values[1][app]: Invalid value: '-b'"),
        ("-app=a", "key: Invalid value: '-app'"),
        ("app=" + "x" * 64, "values[0][app]"),
    ):
        with pytest.raises(ApiException) as refused:
            names(label_selector=bad)
        assert refused.value.status == 400, bad
        assert words in json.loads(refused.value.body)["message"], bad
    assert names(field_selector="metadata.name=s3") == ["s3"]
    assert names(field_selector="metadata.name!=s3") == ["s1", "s2"]
    assert [
        i.metadata.name
        for i in v1.list_config_map_for_all_namespaces(
            field_selector="metadata.namespace=sel"
        ).items
    ] == ["s1", "s2", "s3"]
    v1.create_namespaced_pod(
        "sel",
        {
            "metadata": {"name": "p1"},
            # bound to a node kubesim's kubelet is not: it stays Pending
            "spec": {"nodeName": "elsewhere", "containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    assert [
        p.metadata.name
        for p in v1.list_namespaced_pod("sel", field_selector="status.phase=Pending").items
    ] == ["p1"]
    assert v1.list_namespaced_pod("sel", field_selector="status.phase=Running").items == []


def test_pagination_with_limit_and_continue(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "pages"}})
    for i in range(7):
        v1.create_namespaced_config_map("pages", {"metadata": {"name": f"cm-{i}"}})
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = v1.list_namespaced_config_map("pages", limit=3, _continue=token)
        pages += 1
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 7 - len(seen)
    assert pages == 3 and seen == [f"cm-{i}" for i in range(7)]


def test_watch_replays_from_a_resource_version_with_selector_transitions(
    api: client.ApiClient,
) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "watched"}})
    start_rv = v1.list_namespaced_config_map("watched").metadata.resource_version
    v1.create_namespaced_config_map(
        "watched", {"metadata": {"name": "w1", "labels": {"pick": "no"}}}
    )
    v1.patch_namespaced_config_map("w1", "watched", {"metadata": {"labels": {"pick": "yes"}}})
    v1.patch_namespaced_config_map("w1", "watched", {"data": {"k": "v"}})
    v1.patch_namespaced_config_map("w1", "watched", {"metadata": {"labels": {"pick": "no"}}})
    all_events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            v1.list_namespaced_config_map, "watched", resource_version=start_rv, timeout_seconds=1
        )
    ]
    assert all_events == [
        ("ADDED", "w1"),
        ("MODIFIED", "w1"),
        ("MODIFIED", "w1"),
        ("MODIFIED", "w1"),
    ]
    picked = [
        e["type"]
        for e in watch.Watch().stream(
            v1.list_namespaced_config_map,
            "watched",
            resource_version=start_rv,
            label_selector="pick=yes",
            timeout_seconds=1,
        )
    ]
    assert picked == ["ADDED", "MODIFIED", "DELETED"]
    no_rv = [
        e["type"]
        for e in watch.Watch().stream(v1.list_namespaced_config_map, "watched", timeout_seconds=1)
    ]
    assert no_rv == ["ADDED"]  # the current state, then live events


def test_watch_from_a_compacted_resource_version_is_410(kubesim_server: Any) -> None:
    with api_client(kubesim_server) as c:
        v1 = client.CoreV1Api(c)
        rv = v1.create_namespaced_config_map(
            NS, {"metadata": {"name": "old"}}
        ).metadata.resource_version
        v1.patch_namespaced_config_map("old", NS, {"data": {"a": "b"}})
        kubesim_server.store.compact()
        with pytest.raises(ApiException) as exc:
            list(
                watch.Watch().stream(
                    v1.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=1
                )
            )
        assert exc.value.status == 410


def test_watch_list_sends_initial_events_then_the_end_bookmark(
    raw: httpx.Client, api: client.ApiClient
) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_config_map(NS, {"metadata": {"name": "wl-1"}})
    url = f"/api/v1/namespaces/{NS}/configmaps"
    params = {
        "watch": "true",
        "sendInitialEvents": "true",
        "allowWatchBookmarks": "true",
        "resourceVersionMatch": "NotOlderThan",
        "fieldSelector": "metadata.name=wl-1",
        "timeoutSeconds": "1",
    }
    with raw.stream("GET", url, params=params) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert [e["type"] for e in lines] == ["ADDED", "BOOKMARK"]
    assert lines[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    bad = raw.get(url, params={"watch": "true", "sendInitialEvents": "true"})
    assert bad.status_code == 422 and bad.json()["reason"] == "Invalid"


def test_table_output(raw: httpx.Client, api: client.ApiClient) -> None:
    client.CoreV1Api(api).create_namespaced_config_map(
        NS, {"metadata": {"name": "tabled"}, "data": {"a": "1"}}
    )
    r = raw.get(
        f"/api/v1/namespaces/{NS}/configmaps/tabled",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
    )
    table = r.json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert table["rows"][0]["cells"][:2] == ["tabled", 1]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_finalizers_hold_deletion(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_config_map(
        NS, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    )
    v1.delete_namespaced_config_map("held", NS)
    held = v1.read_namespaced_config_map("held", NS)
    assert held.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as exc:
        v1.patch_namespaced_config_map(
            "held", NS, {"metadata": {"finalizers": ["example.com/hold", "x.io/new"]}}
        )
    assert exc.value.status == 422
    v1.patch_namespaced_config_map(
        "held", NS, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/hold"]}}
    )
    with pytest.raises(ApiException) as gone:
        v1.read_namespaced_config_map("held", NS)
    assert gone.value.status == 404


def _job(name: str) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"annotations": {"kubesim.io/duration": "30"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox"}],
                },
            }
        },
    }


def _pods_of(v1: client.CoreV1Api, job: str) -> list[Any]:
    return v1.list_namespaced_pod(NS, label_selector=f"job-name={job}").items


@pytest.mark.parametrize("policy", ["Background", "Foreground", "Orphan"])
def test_garbage_collection_of_pods_owned_by_a_job(api: client.ApiClient, policy: str) -> None:
    v1, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    name = f"gc-{policy.lower()}"
    batch.create_namespaced_job(NS, _job(name))
    pods = eventually(lambda: _pods_of(v1, name), 10)
    assert pods[0].metadata.owner_references[0].block_owner_deletion is True
    batch.delete_namespaced_job(name, NS, propagation_policy=policy)
    eventually(
        lambda: not batch.list_namespaced_job(NS, field_selector=f"metadata.name={name}").items, 10
    )
    if policy == "Orphan":
        orphans = _pods_of(v1, name)
        assert orphans and not orphans[0].metadata.owner_references
    else:
        assert _pods_of(v1, name) == []


def test_delete_with_protobuf_delete_options(api: client.ApiClient, raw: httpx.Client) -> None:
    v1 = client.CoreV1Api(api)
    cm = v1.create_namespaced_config_map(NS, {"metadata": {"name": "pb-delete"}})
    url = f"/api/v1/namespaces/{NS}/configmaps/pb-delete"
    headers = {"Content-Type": "application/vnd.kubernetes.protobuf"}

    def delete(**options: Any) -> httpx.Response:
        body = protobuf_delete_options(**options)
        return raw.request("DELETE", url, content=body, headers=headers)

    assert delete(dry_run=["All"]).status_code == 200
    assert v1.read_namespaced_config_map("pb-delete", NS).metadata.uid == cm.metadata.uid
    stale = delete(preconditions={"uid": "not-" + cm.metadata.uid})
    assert (stale.status_code, stale.json()["reason"]) == (409, "Conflict")
    done = delete(preconditions={"uid": cm.metadata.uid}, propagation_policy="Background")
    assert done.status_code == 200, done.text
    with pytest.raises(ApiException) as gone:
        v1.read_namespaced_config_map("pb-delete", NS)
    assert gone.value.status == 404


def test_namespace_deletion_removes_its_content(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "doomed"}})
    v1.create_namespaced_config_map("doomed", {"metadata": {"name": "c1"}})
    v1.create_namespaced_secret("doomed", {"metadata": {"name": "s1"}, "stringData": {"k": "v"}})
    v1.delete_namespace("doomed")
    eventually(lambda: "doomed" not in [n.metadata.name for n in v1.list_namespace().items])
    assert (
        v1.list_config_map_for_all_namespaces(field_selector="metadata.namespace=doomed").items
        == []
    )
    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_config_map("doomed", {"metadata": {"name": "late"}})
    assert (
        exc.value.status == 404
        and json.loads(exc.value.body)["message"] == 'namespaces "doomed" not found'
    )


def test_dynamic_client_uses_legacy_discovery(api: client.ApiClient, tmp_path: Path) -> None:
    dc = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    gadgets = dc.resources.get(api_version=f"{GROUP}/{VERSION}", kind="Gadget")
    gadgets.create(body=gadget("g-dyn", 2), namespace=NS)
    assert gadgets.get(name="g-dyn", namespace=NS).spec.replicas == 2
    patched = gadgets.patch(
        name="g-dyn",
        namespace=NS,
        body={"spec": {"replicas": 3}},
        content_type="application/merge-patch+json",
    )
    assert patched.spec.replicas == 3
    leases = dc.resources.get(api_version="coordination.k8s.io/v1", kind="Lease")
    leases.create(
        body={"metadata": {"name": "lock"}, "spec": {"holderIdentity": "me"}}, namespace=NS
    )
    assert leases.get(name="lock", namespace=NS).spec.holderIdentity == "me"


def test_objects_survive_a_restart_with_a_data_dir(tmp_path: Path) -> None:
    with kubesim.start(data_dir=tmp_path, runner=False) as first:
        with api_client(first) as c:
            created = client.CoreV1Api(c).create_namespaced_config_map(
                NS, {"metadata": {"name": "kept"}, "data": {"a": "1"}}
            )
        kubeconfig = Path(first.kubeconfig).read_text()
    with kubesim.start(data_dir=tmp_path, runner=False) as second:
        with api_client(second) as c:
            v1 = client.CoreV1Api(c)
            kept = v1.read_namespaced_config_map("kept", NS)
            assert kept.metadata.uid == created.metadata.uid and kept.data == {"a": "1"}
            fresh = v1.create_namespaced_config_map(NS, {"metadata": {"name": "after"}})
            assert int(fresh.metadata.resource_version) > int(created.metadata.resource_version)
        assert second.token in kubeconfig  # same credentials across restarts


def test_lease_microtime_from_the_python_client_is_stored_with_z(
    api: client.ApiClient, server: Any
) -> None:
    import datetime as dt

    coord = client.CoordinationV1Api(api)
    now = dt.datetime.now(dt.UTC)
    coord.create_namespaced_lease(
        NS,
        {
            "metadata": {"name": "leader"},
            "spec": {
                "holderIdentity": "a",
                "leaseDurationSeconds": 15,
                "acquireTime": now,
                "renewTime": now,
            },
        },
    )
    stored = server.store.get(GVR("coordination.k8s.io", "v1", "leases"), "leader", namespace=NS)
    assert stored["spec"]["renewTime"].endswith("Z") and "+00:00" not in stored["spec"]["renewTime"]
    lease = coord.read_namespaced_lease("leader", NS)
    assert lease.spec.renew_time == now
    lease.spec.holder_identity = "b"
    coord.replace_namespaced_lease("leader", NS, lease)
    with pytest.raises(ApiException) as race:
        coord.replace_namespaced_lease("leader", NS, lease)  # the leader-election race: stale RV
    assert race.value.status == 409


def test_crd_lifecycle_changes_discovery_openapi_and_removes_objects(kubesim_server: Any) -> None:
    ctx = ssl.create_default_context(cafile=kubesim_server.ca_file)
    with (
        api_client(kubesim_server) as c,
        httpx.Client(
            base_url=kubesim_server.url,
            verify=ctx,
            headers={"Authorization": f"Bearer {kubesim_server.token}"},
        ) as http,
    ):
        ext = client.ApiextensionsV1Api(c)
        before = http.get("/openapi/v3").json()["paths"]
        assert f"apis/{GROUP}/{VERSION}" not in before
        crd = ext.create_custom_resource_definition(CRD)
        conds = {cond.type: cond.status for cond in crd.status.conditions}
        assert conds == {"NamesAccepted": "True", "Established": "True"}
        index = http.get("/openapi/v3").json()["paths"]
        url = index[f"apis/{GROUP}/{VERSION}"]["serverRelativeURL"]
        doc = http.get(url).json()
        assert f"io.kubesim.example.{VERSION}.Gadget" in doc["components"]["schemas"]
        co = client.CustomObjectsApi(c)
        co.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, gadget("g-life"))
        body = json.loads(json.dumps(CRD))
        body["metadata"]["resourceVersion"] = crd.metadata.resource_version
        props = body["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
            "properties"
        ]
        props["color"] = {"type": "string"}
        ext.replace_custom_resource_definition(f"{PLURAL}.{GROUP}", body)
        changed = http.get("/openapi/v3").json()["paths"][f"apis/{GROUP}/{VERSION}"][
            "serverRelativeURL"
        ]
        assert changed != url  # the hash follows the schema, so clients refetch
        groups = [g["name"] for g in http.get("/apis").json()["groups"]]
        assert GROUP in groups
        ext.delete_custom_resource_definition(f"{PLURAL}.{GROUP}")
        assert kubesim_server.store.registry.find(GADGETS) is None
        r = http.get(f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}")
        assert r.status_code == 404
        assert GROUP not in [g["name"] for g in http.get("/apis").json()["groups"]]


def test_events_v1_and_core_events_are_one_storage(api: client.ApiClient) -> None:
    import datetime as dt

    v1, ev1 = client.CoreV1Api(api), client.EventsV1Api(api)
    cm = v1.create_namespaced_config_map(NS, {"metadata": {"name": "evented"}})
    regarding = {
        "kind": "ConfigMap",
        "name": "evented",
        "namespace": NS,
        "uid": cm.metadata.uid,
        "apiVersion": "v1",
    }
    ev1.create_namespaced_event(
        NS,
        {
            "metadata": {"name": "evented.new"},
            "regarding": regarding,
            "reason": "Checked",
            "note": "written with events.k8s.io/v1",
            "type": "Normal",
            "action": "Check",
            "eventTime": dt.datetime.now(dt.UTC),
            "reportingController": "tests",
            "reportingInstance": "t1",
        },
    )
    core = v1.list_namespaced_event(
        NS, field_selector=f"involvedObject.uid={cm.metadata.uid}"
    ).items
    assert [(e.reason, e.message, e.reporting_component) for e in core] == [
        ("Checked", "written with events.k8s.io/v1", "tests")
    ]
    v1.create_namespaced_event(
        NS,
        {
            "metadata": {"name": "evented.old"},
            "involvedObject": regarding,
            "reason": "Legacy",
            "message": "written with core/v1",
            "type": "Warning",
        },
    )
    new = ev1.list_namespaced_event(NS, field_selector="regarding.name=evented").items
    assert sorted((e.reason, e.note) for e in new) == [
        ("Checked", "written with events.k8s.io/v1"),
        ("Legacy", "written with core/v1"),
    ]
    patched = ev1.patch_namespaced_event("evented.new", NS, {"note": "patched"})
    assert patched.note == "patched"
    assert v1.read_namespaced_event("evented.new", NS).message == "patched"
