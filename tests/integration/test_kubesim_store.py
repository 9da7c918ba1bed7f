"""kubesim's Store and its pure helpers, in process (no HTTP): the rules the server builds on.

Covers: resourceVersion/generation/uid rules and the no-op write; optimistic concurrency and the
status subresource on the Store API the runner uses; subscribe/unsubscribe; bounded watch
history (410 once compacted); foreground deletion held by a dependent's finalizer and released
when it goes; background GC keeps a dependent that still has a live owner; a namespace that
stays Terminating until a finalizer-held object goes; system namespaces cannot be deleted; pod
logs kept per container (default container without a name, kubectl's default-container
annotation, 400 for an unknown container, dropped with the pod, persisted, an old one-log-per-pod
snapshot still loads); persistence through ``flush``/load; server-side apply ownership (a field the applier stops
sending is removed unless another manager owns it); strategic merge directives; JSON patch
errors; schema validation and defaulting details; validation ratcheting of unchanged fields
after a schema change; selector parsing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubesim import managed, patch, schema, selectors
from kubesim.errors import ApiError
from kubesim.store import GVR, Store

CM = GVR("", "v1", "configmaps")
NS_GVR = GVR("", "v1", "namespaces")
POD = GVR("", "v1", "pods")
JOB = GVR("batch", "v1", "jobs")


def owner_ref(obj: dict, *, block: bool = True) -> dict:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": block,
    }


@pytest.fixture
def store() -> Store:
    return Store()


def test_versions_generation_and_no_op(store: Store) -> None:
    job = store.create(
        JOB,
        {
            "metadata": {"name": "j"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}
                }
            },
        },
        namespace="default",
    )
    assert job["metadata"]["generation"] == 1
    assert job["spec"]["backoffLimit"] == 6
    assert job["spec"]["template"]["metadata"]["labels"]["job-name"] == "j"
    same = store.update(JOB, job, namespace="default")
    assert same["metadata"]["resourceVersion"] == job["metadata"]["resourceVersion"]
    job["metadata"]["labels"] = {"x": "y"}
    relabeled = store.update(JOB, job, namespace="default")
    assert relabeled["metadata"]["generation"] == 1
    relabeled["spec"]["backoffLimit"] = 2
    respec = store.update(JOB, relabeled, namespace="default")
    assert respec["metadata"]["generation"] == 2
    respec["status"] = {"active": 1}
    status = store.update(JOB, respec, namespace="default", subresource="status")
    assert status["status"] == {"active": 1} and status["metadata"]["generation"] == 2
    with pytest.raises(ApiError) as stale:
        store.update(JOB, respec, namespace="default", subresource="status")
    assert stale.value.code == 409 and stale.value.reason == "Conflict"


def test_subscribe_sees_every_change_until_unsubscribed(store: Store) -> None:
    seen: list[tuple[str, str]] = []
    unsubscribe = store.subscribe(lambda t, gvr, obj: seen.append((t, obj["metadata"]["name"])))
    cm = store.create(CM, {"metadata": {"name": "a"}}, namespace="default")
    cm["data"] = {"k": "v"}
    store.update(CM, cm, namespace="default")
    store.delete(CM, "a", namespace="default")
    unsubscribe()
    store.create(CM, {"metadata": {"name": "b"}}, namespace="default")
    assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_bounded_history_expires_old_resource_versions() -> None:
    store = Store(history_size=5)
    rt = store.registry.get(CM)
    first = store.create(CM, {"metadata": {"name": "c0"}}, namespace="default")
    for i in range(1, 10):
        store.create(CM, {"metadata": {"name": f"c{i}"}}, namespace="default")
    with pytest.raises(ApiError) as exc:
        store.watch(
            rt, namespace="default", since=int(first["metadata"]["resourceVersion"]), callback=print
        )
    assert exc.value.code == 410 and "too old resource version" in exc.value.message
    events, _rv, handle = store.watch(
        rt, namespace="default", since=store.resource_version - 2, callback=print
    )
    handle.cancel()
    assert [e.obj["metadata"]["name"] for e in events] == ["c8", "c9"]


def test_foreground_deletion_waits_for_a_blocking_dependent(store: Store) -> None:
    owner = store.create(CM, {"metadata": {"name": "owner"}}, namespace="default")
    store.create(
        CM,
        {
            "metadata": {
                "name": "dep",
                "finalizers": ["x.io/hold"],
                "ownerReferences": [owner_ref(owner)],
            }
        },
        namespace="default",
    )
    store.delete(CM, "owner", namespace="default", propagation="Foreground")
    held = store.get(CM, "owner", namespace="default")
    assert (
        held["metadata"]["finalizers"] == ["foregroundDeletion"]
        and held["metadata"]["deletionTimestamp"]
    )
    dep = store.get(CM, "dep", namespace="default")
    assert dep["metadata"]["deletionTimestamp"]
    dep["metadata"]["finalizers"] = []
    store.update(CM, dep, namespace="default")
    assert store.list(CM, namespace="default", field_selector="metadata.name=owner") == []


def test_background_gc_spares_a_dependent_with_another_live_owner(store: Store) -> None:
    a = store.create(CM, {"metadata": {"name": "a"}}, namespace="default")
    b = store.create(CM, {"metadata": {"name": "b"}}, namespace="default")
    store.create(
        CM,
        {"metadata": {"name": "shared", "ownerReferences": [owner_ref(a), owner_ref(b)]}},
        namespace="default",
    )
    store.create(
        CM, {"metadata": {"name": "only-a", "ownerReferences": [owner_ref(a)]}}, namespace="default"
    )
    store.delete(CM, "a", namespace="default")
    names = [o["metadata"]["name"] for o in store.list(CM, namespace="default")]
    assert names == ["b", "shared"]
    store.delete(CM, "b", namespace="default")
    assert store.list(CM, namespace="default") == []


def test_namespace_terminates_after_its_last_finalizer(store: Store) -> None:
    store.create(NS_GVR, {"metadata": {"name": "t"}})
    store.create(CM, {"metadata": {"name": "held", "finalizers": ["x.io/hold"]}}, namespace="t")
    store.create(CM, {"metadata": {"name": "free"}}, namespace="t")
    store.delete(NS_GVR, "t")
    ns = store.get(NS_GVR, "t")
    assert ns["status"]["phase"] == "Terminating"
    with pytest.raises(ApiError) as exc:
        store.create(CM, {"metadata": {"name": "late"}}, namespace="t")
    assert exc.value.code == 403
    assert [o["metadata"]["name"] for o in store.list(CM, namespace="t")] == ["held"]
    held = store.get(CM, "held", namespace="t")
    held["metadata"]["finalizers"] = []
    store.update(CM, held, namespace="t")
    with pytest.raises(ApiError):
        store.get(NS_GVR, "t")


def test_pod_logs(store: Store) -> None:
    store.create(
        POD,
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        namespace="default",
    )
    store.set_pod_log("default", "p", "one\n")
    store.set_pod_log("default", "p", "two\n", append=True)
    assert store.get_pod_log("default", "p") == "one\ntwo\n"
    store.delete(POD, "p", namespace="default")
    with pytest.raises(ApiError) as exc:
        store.get_pod_log("default", "p")
    assert exc.value.code == 404
    with pytest.raises(ApiError) as exc:
        store.set_pod_log("default", "p", "late\n", append=True)  # a run outliving its pod
    assert exc.value.code == 404


def multi_container_pod(store: Store, name: str, *, default: str | None = None) -> None:
    meta: dict = {"name": name}
    if default:
        meta["annotations"] = {"kubectl.kubernetes.io/default-container": default}
    store.create(
        POD,
        {
            "metadata": meta,
            "spec": {
                "initContainers": [{"name": "fetch", "image": "curl"}],
                "containers": [{"name": "main", "image": "i"}, {"name": "side", "image": "i"}],
            },
        },
        namespace="default",
    )


def test_pod_logs_are_kept_per_container(store: Store) -> None:
    multi_container_pod(store, "p")
    store.set_pod_log("default", "p", "downloading\n", container="fetch")
    store.set_pod_log("default", "p", "main says hi\n")  # no container: the first app one
    store.set_pod_log("default", "p", "side\n", container="side", append=True)
    assert store.get_pod_log("default", "p", container="fetch") == "downloading\n"
    assert store.get_pod_log("default", "p", container="main") == "main says hi\n"
    assert store.get_pod_log("default", "p") == "main says hi\n"
    assert store.get_pod_log("default", "p", container="side") == "side\n"
    with pytest.raises(ApiError) as exc:
        store.get_pod_log("default", "p", container="nope")
    assert (exc.value.code, exc.value.message) == (400, "container nope is not valid for pod p")
    with pytest.raises(ApiError) as exc:
        store.set_pod_log("default", "p", "x", container="nope")
    assert exc.value.code == 400
    # kubectl's default-container annotation picks the default, for writers and readers
    multi_container_pod(store, "q", default="side")
    store.set_pod_log("default", "q", "from side\n")
    assert store.get_pod_log("default", "q", container="side") == "from side\n"
    assert store.get_pod_log("default", "q", container="main") == ""
    # a pod of the same name created again starts without the old containers' logs
    store.delete(POD, "p", namespace="default")
    multi_container_pod(store, "p")
    assert store.get_pod_log("default", "p", container="fetch") == ""
    assert store.get_pod_log("default", "p") == ""


def test_pod_logs_survive_a_restart_and_an_old_snapshot_loads(tmp_path: Path) -> None:
    first = Store(data_dir=tmp_path)
    multi_container_pod(first, "p")
    first.set_pod_log("default", "p", "fetched\n", container="fetch")
    first.set_pod_log("default", "p", "ran\n")
    first.close()
    second = Store(data_dir=tmp_path)
    try:
        assert second.get_pod_log("default", "p", container="fetch") == "fetched\n"
        assert second.get_pod_log("default", "p") == "ran\n"
    finally:
        second.close()
    # the format before per-container logs: [namespace, pod, text], the default container's
    snapshot = json.loads((tmp_path / "store.json").read_text())
    snapshot["logs"] = [["default", "p", "old format\n"], ["default", "gone", "orphan\n"]]
    (tmp_path / "store.json").write_text(json.dumps(snapshot))
    third = Store(data_dir=tmp_path)
    try:
        assert third.get_pod_log("default", "p") == "old format\n"
        assert third.get_pod_log("default", "p", container="fetch") == ""
    finally:
        third.close()


def test_persistence_round_trip(tmp_path: Path) -> None:
    first = Store(data_dir=tmp_path)
    cm = first.create(CM, {"metadata": {"name": "kept"}, "data": {"a": "1"}}, namespace="default")
    first.close()
    second = Store(data_dir=tmp_path)
    try:
        assert second.get(CM, "kept", namespace="default") == cm
        assert second.resource_version == int(cm["metadata"]["resourceVersion"])
    finally:
        second.close()


def test_apply_removes_fields_the_manager_no_longer_sends() -> None:
    applied = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labels": {"a": "1", "b": "2"}},
        "data": {"k": "v", "old": "x"},
    }
    first = managed.apply(
        None,
        applied,
        manager="m",
        force=False,
        api_version="v1",
        has_status=False,
        subresource=None,
    )
    second_cfg = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labels": {"a": "1"}},
        "data": {"k": "v2"},
    }
    second = managed.apply(
        first,
        second_cfg,
        manager="m",
        force=False,
        api_version="v1",
        has_status=False,
        subresource=None,
    )
    assert second["data"] == {"k": "v2"} and second["metadata"]["labels"] == {"a": "1"}
    with pytest.raises(ApiError) as exc:
        managed.apply(
            second,
            {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v3"}},
            manager="other",
            force=False,
            api_version="v1",
            has_status=False,
            subresource=None,
        )
    assert exc.value.code == 409
    assert exc.value.details == {
        "causes": [
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "m" using v1',
                "field": ".data.k",
            }
        ]
    }
    forced = managed.apply(
        second,
        {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v3"}},
        manager="other",
        force=True,
        api_version="v1",
        has_status=False,
        subresource=None,
    )
    assert forced["data"]["k"] == "v3"
    owners = {
        e["manager"]: managed.decode(e["fieldsV1"]) for e in forced["metadata"]["managedFields"]
    }
    assert ("data", "k") in owners["other"] and ("data", "k") not in owners["m"]


def test_strategic_merge_directives() -> None:
    live = {
        "spec": {
            "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}],
            "volumes": [{"name": "v"}],
        },
        "metadata": {"finalizers": ["f1"]},
    }
    out = patch.strategic_merge(
        live,
        {
            "spec": {
                "containers": [{"name": "b", "image": "3"}, {"name": "a", "$patch": "delete"}],
                "$setElementOrder/containers": [{"name": "b"}],
                "volumes": [{"$patch": "replace"}, {"name": "w"}],
            },
            "metadata": {"finalizers": ["f2"], "$deleteFromPrimitiveList/finalizers": ["f1"]},
        },
    )
    assert out["spec"]["containers"] == [{"name": "b", "image": "3"}]
    assert out["spec"]["volumes"] == [{"name": "w"}]
    assert out["metadata"]["finalizers"] == ["f2"]
    assert patch.merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None}, "d": [1]}) == {
        "a": {"c": 2},
        "d": [1],
    }


def test_json_patch_operations_and_errors() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = patch.json_patch(
        doc,
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "move", "from": "/b/c", "path": "/d"},
            {"op": "copy", "from": "/d", "path": "/e"},
            {"op": "test", "path": "/e", "value": 1},
            {"op": "remove", "path": "/a/0"},
        ],
    )
    assert out == {"a": [2, 3], "b": {}, "d": 1, "e": 1}
    assert doc == {"a": [1, 2], "b": {"c": 1}}
    for ops in (
        [{"op": "replace", "path": "/missing", "value": 1}],
        [{"op": "test", "path": "/b/c", "value": 2}],
        [{"op": "remove", "path": "/a/9"}],
    ):
        with pytest.raises(ApiError) as exc:
            patch.json_patch(doc, ops)
        assert exc.value.code == 422


def test_schema_validation_details() -> None:
    sch = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "port": {"x-kubernetes-int-or-string": True},
                    "tags": {
                        "type": "array",
                        "items": {"type": "string"},
                        "maxItems": 2,
                        "x-kubernetes-list-type": "set",
                    },
                    "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                    "opt": {"type": "string", "nullable": True},
                    "nested": {
                        "type": "object",
                        "default": {},
                        "properties": {"n": {"type": "integer", "default": 7}},
                    },
                },
            }
        },
    }
    obj = {"spec": {"port": "http", "tags": ["a"], "name": "ok", "opt": None, "junk": 1}}
    assert schema.prune(sch, obj) == ["spec.junk"]
    schema.apply_defaults(sch, obj)
    assert obj["spec"]["nested"] == {"n": 7}
    assert schema.validate(sch, obj) == []
    bad = {"spec": {"port": 1.5, "tags": ["a", "a", "b"], "name": "TOOLONG"}}
    fields = sorted((c.field, c.reason) for c in schema.validate(sch, bad))
    assert fields == [
        ("spec.name", "FieldValueInvalid"),
        ("spec.name", "FieldValueTooLong"),
        ("spec.port", "FieldValueTypeInvalid"),
        ("spec.tags", "FieldValueTooMany"),
        ("spec.tags[1]", "FieldValueDuplicate"),
    ]


@pytest.mark.parametrize("text", ["a in (b", "=x", "a b"])
def test_selector_syntax_errors_are_400(text: str) -> None:
    with pytest.raises(ApiError) as exc:
        selectors.parse_label_selector(text)
    assert exc.value.code == 400


def test_validation_ratchets_unchanged_fields_after_a_schema_change(store: Store) -> None:
    crd_gvr = GVR("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    spec_schema = {
        "type": "object",
        "properties": {"size": {"type": "integer"}, "note": {"type": "string"}},
    }

    def crd(schema_spec: dict) -> dict:
        return {
            "metadata": {"name": "things.ex.io"},
            "spec": {
                "group": "ex.io",
                "scope": "Namespaced",
                "names": {"plural": "things", "kind": "Thing"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "subresources": {"status": {}},
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": schema_spec,
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

    created = store.create(crd_gvr, crd(spec_schema))
    things = GVR("ex.io", "v1", "things")
    thing = store.create(
        things, {"metadata": {"name": "t"}, "spec": {"size": 5}}, namespace="default"
    )
    stricter = crd(
        {
            **spec_schema,
            "properties": {"size": {"type": "integer", "maximum": 1}, "note": {"type": "string"}},
        }
    )
    stricter["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    store.update(crd_gvr, stricter)
    thing["status"] = {"phase": "Ready"}
    thing = store.update(things, thing, namespace="default", subresource="status")
    thing["spec"]["note"] = "unchanged size is not re-validated"
    thing = store.update(things, thing, namespace="default")
    thing["spec"]["size"] = 6
    with pytest.raises(ApiError) as exc:
        store.update(things, thing, namespace="default")
    assert exc.value.code == 422 and "spec.size" in exc.value.message


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_system_namespaces_cannot_be_deleted(store: Store, name: str) -> None:
    with pytest.raises(ApiError) as exc:
        store.delete(NS_GVR, name)
    assert exc.value.code == 403 and "may not be deleted" in exc.value.message
    assert store.get(NS_GVR, name)["status"]["phase"] == "Active"
