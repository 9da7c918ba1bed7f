"""Watch events encoded once and shared by every watch that shows them the same way
(``watches.EncodedEvents``), through the real HTTPS API: each watch still gets every event of
its own selection, in resourceVersion order, with its own selector transitions (an object
leaving a label selection is DELETED for that watch and MODIFIED for an unfiltered one), a
Table watch still gets Tables, and the lines two watches share are the same bytes; initial
events still end with their bookmark, and a compacted resourceVersion still gets 410."""

from __future__ import annotations

import json
import threading
from typing import Any

from kubernetes import client

NS = "default"


def watch_lines(api: client.ApiClient, since: str, **query: Any) -> list[bytes]:
    """The raw lines of a watch from ``since`` that ends after 2 s."""
    resp = client.CoreV1Api(api).list_namespaced_config_map(
        NS,
        watch=True,
        resource_version=since,
        timeout_seconds=2,
        _preload_content=False,
        **query,
    )
    return [line for line in resp.data.splitlines() if line.strip()]


def table_lines(api: client.ApiClient, since: str) -> list[bytes]:
    resp = api.call_api(
        *api.param_serialize(
            "GET",
            f"/api/v1/namespaces/{NS}/configmaps",
            query_params=[("watch", "true"), ("resourceVersion", since), ("timeoutSeconds", "2")],
            header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
            auth_settings=["BearerToken"],
        )
    )
    resp.read()
    return [line for line in resp.data.splitlines() if line.strip()]


def summary(lines: list[bytes]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        ev = json.loads(line)
        out.append((ev["type"], ev["object"]["metadata"]["name"]))
    return out


def test_shared_watch_lines_keep_each_watchs_events_and_order(
    kube_api_client: client.ApiClient,
) -> None:
    core = client.CoreV1Api(kube_api_client)
    since = core.list_namespaced_config_map(NS).metadata.resource_version
    results: dict[str, list[bytes]] = {}
    watches = {
        "all": lambda: watch_lines(kube_api_client, since),
        "all-again": lambda: watch_lines(kube_api_client, since),
        "labelled": lambda: watch_lines(kube_api_client, since, label_selector="app=x"),
        "table": lambda: table_lines(kube_api_client, since),
    }
    threads = [
        threading.Thread(target=lambda n=name, f=fn: results.__setitem__(n, f()))
        for name, fn in watches.items()
    ]
    for t in threads:
        t.start()
    body = {"metadata": {"name": "one", "labels": {"app": "x"}}, "data": {"k": "1"}}
    core.create_namespaced_config_map(NS, body)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "two"}, "data": {"k": "2"}})
    core.patch_namespaced_config_map("one", NS, {"metadata": {"labels": {"app": "y"}}})
    core.patch_namespaced_config_map("two", NS, {"metadata": {"labels": {"app": "x"}}})
    core.delete_namespaced_config_map("one", NS)
    core.delete_namespaced_config_map("two", NS)
    for t in threads:
        t.join(10)

    assert summary(results["all"]) == [
        ("ADDED", "one"),
        ("ADDED", "two"),
        ("MODIFIED", "one"),
        ("MODIFIED", "two"),
        ("DELETED", "one"),
        ("DELETED", "two"),
    ]
    assert results["all-again"] == results["all"]  # the same bytes, line for line
    assert summary(results["labelled"]) == [
        ("ADDED", "one"),
        ("DELETED", "one"),  # left the selection
        ("ADDED", "two"),  # entered it
        ("DELETED", "two"),
    ]
    assert results["labelled"][0] == results["all"][0]  # ADDED one: shared
    versions = [int(json.loads(x)["object"]["metadata"]["resourceVersion"]) for x in results["all"]]
    assert versions == sorted(versions)
    tables = [json.loads(x) for x in results["table"]]
    assert [t["object"]["kind"] for t in tables] == ["Table"] * 6
    assert [t["object"]["rows"][0]["cells"][0] for t in tables] == [
        "one",
        "two",
        "one",
        "two",
        "one",
        "two",
    ]


def raw_watch(api: client.ApiClient, query: list[tuple[str, str]]) -> list[dict[str, Any]]:
    resp = api.call_api(
        *api.param_serialize(
            "GET",
            f"/api/v1/namespaces/{NS}/configmaps",
            query_params=[("watch", "true"), ("timeoutSeconds", "1"), *query],
            auth_settings=["BearerToken"],
        )
    )
    resp.read()
    return [json.loads(line) for line in resp.data.splitlines() if line.strip()]


def test_initial_events_end_with_their_bookmark_and_a_compacted_version_gets_410(
    kubesim_server: Any, kube_api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_api_client)
    for name in ("a", "b"):
        core.create_namespaced_config_map(NS, {"metadata": {"name": name}})
    initial = [
        ("sendInitialEvents", "true"),
        ("resourceVersionMatch", "NotOlderThan"),
        ("allowWatchBookmarks", "true"),
    ]
    first, second = raw_watch(kube_api_client, initial), raw_watch(kube_api_client, initial)
    for events in (first, second):
        assert [(e["type"], e["object"]["metadata"].get("name")) for e in events] == [
            ("ADDED", "a"),
            ("ADDED", "b"),
            ("BOOKMARK", None),
        ]
        end = events[-1]["object"]["metadata"]["annotations"]
        assert end == {"k8s.io/initial-events-end": "true"}
    assert first[:2] == second[:2]
    old = first[0]["object"]["metadata"]["resourceVersion"]
    kubesim_server.store.compact()
    (expired,) = raw_watch(kube_api_client, [("resourceVersion", old)])
    assert expired["type"] == "ERROR"
    assert expired["object"]["code"] == 410
