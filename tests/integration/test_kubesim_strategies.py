"""A kind is its strategy (kubesim/strategies/): a test registers a kind kubesim does not have
and the official client and real kubectl use it as any served kind.

The Widget kind below declares its ResourceType, defaulting (``prepare``), validation, table
columns and an after-create hook in one Strategy, given to ``kubesim.start(kinds=...)``; then,
over HTTPS: discovery lists it, the DynamicClient creates, gets, lists and watches widgets, a
bad widget is 422 with the strategy's cause, the status subresource rules hold, the table has the
strategy's columns (official client with the Table Accept header, and ``kubectl get``), and the
hook ran after the commit.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException

import kubesim
from kubesim import errors
from kubesim.errors import Cause
from kubesim.resources import GVR, ResourceType, builtin_type
from kubesim.strategies.base import Store
from kubesim.tables import col, field
from tests.fixtures import kubesim as kubesim_fixtures

NS = "default"
WIDGETS = builtin_type(
    "example.kubesim.io",
    "v1",
    "widgets",
    "Widget",
    short_names=("wd",),
    has_status=True,
    has_generation=True,
    description="Widget is a kind registered by a test.",
)
CM_GVR = GVR("", "v1", "configmaps")


class WidgetStrategy(kubesim.Strategy):
    types = (WIDGETS,)
    columns = (
        (col("Size", "integer"), lambda o: field(o, "spec", "size")),
        (col("Phase"), lambda o: field(o, "status", "phase", default="")),
    )

    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        obj.setdefault("spec", {}).setdefault("size", 1)
        if old is None:
            obj.setdefault("status", {})["phase"] = "New"
        return []

    def validate(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[Cause]:
        size = (obj.get("spec") or {}).get("size")
        if not isinstance(size, int) or size < 1:
            return [errors.invalid_value("spec.size", size, "must be at least 1")]
        return []

    def after_create(self, store: Store, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        store.create(
            CM_GVR,
            {"metadata": {"name": f"widget-{meta['name']}"}, "data": {"uid": meta["uid"]}},
            namespace=meta["namespace"],
        )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    handle = kubesim.start(kinds=[WidgetStrategy()])
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def api(cluster: Any) -> Iterator[client.ApiClient]:
    c = kubesim_fixtures.api_client(cluster)
    try:
        yield c
    finally:
        c.close()


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.kubesim.io/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_an_extra_kind_is_created_read_listed_and_watched(api: client.ApiClient) -> None:
    widgets = dynamic.DynamicClient(api).resources.get(
        api_version="example.kubesim.io/v1", kind="Widget"
    )
    assert widgets.namespaced and widgets.short_names == ["wd"]
    dyn = dynamic.DynamicClient(api)
    since = widgets.get(namespace=NS).metadata.resourceVersion  # the watch replays from here
    events: list[tuple[str, str]] = []

    def watch_widgets() -> None:
        for ev in dyn.watch(widgets, namespace=NS, resource_version=since, timeout=10):
            events.append((ev["type"], ev["object"].metadata.name))
            if len(events) == 2:
                return

    watcher = threading.Thread(target=watch_widgets)
    watcher.start()
    created = widgets.create(body=widget("w1"), namespace=NS)
    assert created.spec.size == 1 and created.status.phase == "New"  # the strategy's defaults
    widgets.create(body=widget("w2", size=3), namespace=NS)
    watcher.join(15)
    assert events == [("ADDED", "w1"), ("ADDED", "w2")]
    got = widgets.get(name="w1", namespace=NS)
    assert got.metadata.uid == created.metadata.uid and got.metadata.generation == 1
    listed = widgets.get(namespace=NS)
    assert [i.metadata.name for i in listed.items] == ["w1", "w2"]
    # the after-create hook ran after the commit, with the stored uid
    cm = client.CoreV1Api(api).read_namespaced_config_map("widget-w1", NS)
    assert cm.data == {"uid": created.metadata.uid}
    # an update through the main resource keeps the status (the status subresource rules)
    body = got.to_dict()
    body["spec"]["size"] = 2
    body["status"] = {"phase": "Hacked"}
    updated = widgets.replace(body=body, namespace=NS)
    assert updated.spec.size == 2 and updated.status.phase == "New"
    assert updated.metadata.generation == 2


def test_an_extra_kind_is_validated_by_its_strategy(api: client.ApiClient) -> None:
    widgets = dynamic.DynamicClient(api).resources.get(
        api_version="example.kubesim.io/v1", kind="Widget"
    )
    with pytest.raises(ApiException) as caught:
        widgets.create(body=widget("bad", size=0), namespace=NS)
    assert caught.value.status == 422
    body = caught.value.body
    text = body.decode() if isinstance(body, bytes) else str(body)
    assert 'Widget.example.kubesim.io \\"bad\\" is invalid' in text or "spec.size" in text
    assert "must be at least 1" in text


def test_an_extra_kind_prints_its_strategys_columns(
    api: client.ApiClient, cluster: Any, tmp_path: Path
) -> None:
    widgets = dynamic.DynamicClient(api).resources.get(
        api_version="example.kubesim.io/v1", kind="Widget"
    )
    widgets.create(body=widget("printed", size=7), namespace=NS)
    raw = api.call_api(
        "GET",
        f"{cluster.url}/apis/example.kubesim.io/v1/namespaces/default/widgets/printed",
        header_params={
            "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io",
            "Authorization": f"Bearer {cluster.token}",
        },
    )
    raw.read()
    table = json.loads(raw.data)
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Phase", "Age"]
    assert table["rows"][0]["cells"][:3] == ["printed", 7, "New"]
    out = kubesim_fixtures.kubectl(
        cluster, "get", "wd", "printed", cache_dir=tmp_path / "kube-cache"
    )
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "SIZE", "PHASE", "AGE"]
    assert row.split()[:3] == ["printed", "7", "New"]


def test_a_kind_registered_twice_is_refused() -> None:
    class Pods(kubesim.Strategy):
        types = (builtin_type("", "v1", "pods", "Pod"),)

    with pytest.raises(ValueError, match=r"pods\. is registered twice"):
        kubesim.Store(kinds=[Pods()])
