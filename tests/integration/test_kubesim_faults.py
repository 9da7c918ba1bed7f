"""kubesim fault injection seen through the official Python client.

Covers: injected 500s on one verb (other verbs and discovery unaffected) and their end after
reset(); 429 with Retry-After surfaced to the client (kubernetes 37 does not retry it); the same
seed giving the same failure pattern; added latency; watches dropped every N seconds (the
stream ends); watches with a resourceVersion forced to 410 Expired.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

NS = "default"


@pytest.fixture
def cluster(kubesim_server: Any) -> Any:
    return kubesim_server


@pytest.fixture
def api(kube_api_client: client.ApiClient) -> client.ApiClient:
    return kube_api_client


def cm(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {"k": "v"}}


def test_500_on_one_verb_then_reset(cluster: Any, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NS, cm("a"))
    cluster.faults.configure(error_rate={"list": 1.0})
    with pytest.raises(ApiException) as info:
        core.list_namespaced_config_map(NS)
    assert info.value.status == 500
    assert '"reason":"InternalError"' in info.value.body.replace(" ", "")
    assert core.read_namespaced_config_map("a", NS).data == {"k": "v"}  # get is unaffected
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]  # discovery too
    cluster.faults.reset()
    assert [c.metadata.name for c in core.list_namespaced_config_map(NS).items] == ["a"]


def test_429_carries_retry_after(cluster: Any, api: client.ApiClient) -> None:
    cluster.faults.configure(error_rate={"create": 1.0}, error_code=429, retry_after=3)
    with pytest.raises(ApiException) as info:
        client.CoreV1Api(api).create_namespaced_config_map(NS, cm("x"))
    assert info.value.status == 429
    assert info.value.headers["Retry-After"] == "3"
    assert '"reason":"TooManyRequests"' in info.value.body.replace(" ", "")


def failure_pattern(cluster: Any, core: client.CoreV1Api, seed: int) -> list[bool]:
    cluster.faults.configure(error_rate={"get": 0.5}, seed=seed)
    out = []
    for _ in range(30):
        try:
            core.read_namespace(NS)
            out.append(False)
        except ApiException as exc:
            assert exc.status == 500
            out.append(True)
    return out


def test_same_seed_same_pattern(cluster: Any, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    first = failure_pattern(cluster, core, seed=42)
    assert 3 < sum(first) < 27
    assert failure_pattern(cluster, core, seed=42) == first
    assert failure_pattern(cluster, core, seed=43) != first


def test_latency(cluster: Any, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    cluster.faults.configure(latency=0.3)
    started = time.monotonic()
    core.read_namespace(NS)
    assert time.monotonic() - started >= 0.3


def test_dropped_watch_ends_the_stream(cluster: Any, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    cluster.faults.configure(drop_watches_every=0.5)
    started = time.monotonic()
    events = list(
        watch.Watch().stream(
            core.list_namespaced_config_map, NS, timeout_seconds=30, _request_timeout=20
        )
    )
    assert time.monotonic() - started < 5
    assert events == []


def test_watch_from_a_resource_version_gets_410(cluster: Any, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    rv = core.list_namespaced_config_map(NS).metadata.resource_version
    cluster.faults.configure(expire_watches=True)
    with pytest.raises(ApiException) as info:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map,
            NS,
            resource_version=rv,
            timeout_seconds=5,
            _request_timeout=10,
        ):
            pass
    assert info.value.status == 410
    # a watch without a resourceVersion is not affected
    events = list(
        watch.Watch().stream(
            core.list_namespaced_config_map, NS, timeout_seconds=1, _request_timeout=10
        )
    )
    assert events == []
