"""What an update validates now that it skips what it keeps of the stored object: metadata
(labels, annotations, finalizers, owner references) equal to the stored object's and a spec
shared with it (a status write) are not validated again, since the stored object passed the
same checks. Anything an update changes is still validated, on the Store API the runner and
the HTTP layer use."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim.errors import ApiError
from kubesim.store import GVR, Store

JOB = GVR("batch", "v1", "jobs")
POD = GVR("", "v1", "pods")


def job(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": "demo"}},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "i"}]}
            }
        },
    }


def test_changed_metadata_is_still_validated_on_update() -> None:
    store = Store()
    cur = store.create(JOB, job("j"), namespace="default")
    for field, value in [
        ("labels", {"app": "bad value!"}),
        ("labels", {"-bad-key": "x"}),
        ("annotations", {"bad key!": "x"}),
        ("finalizers", [1]),
        ("ownerReferences", [{"name": "x"}]),
    ]:
        changed = {**cur, "metadata": {**cur["metadata"], field: value}}
        with pytest.raises(ApiError) as err:
            store.update(JOB, changed, namespace="default")
        assert err.value.code == 422, field
    kept = {**cur, "metadata": {**cur["metadata"], "labels": {"app": "demo", "tier": "x"}}}
    assert store.update(JOB, kept, namespace="default")["metadata"]["labels"]["tier"] == "x"


def test_a_changed_spec_is_still_validated_and_a_status_write_keeps_the_stored_one() -> None:
    store = Store()
    cur = store.create(JOB, job("j"), namespace="default")
    spec = cur["spec"]
    changed = {**cur, "spec": {**spec, "backoffLimit": -1}}
    with pytest.raises(ApiError) as err:
        store.update(JOB, changed, namespace="default")
    assert err.value.code == 422
    # through the status subresource a changed spec is ignored (the stored one is kept) and the
    # status is written
    sneaky = {**changed, "status": {"active": 1}}
    written = store.update(JOB, sneaky, namespace="default", subresource="status")
    assert written["spec"]["backoffLimit"] == 6
    assert written["status"]["active"] == 1


def test_a_pod_spec_change_is_refused_but_its_status_write_is_not() -> None:
    store = Store()
    pod = store.create(
        POD,
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "m", "image": "i"}]}},
        namespace="default",
    )
    moved = {**pod, "spec": {**pod["spec"], "restartPolicy": "Never"}}
    with pytest.raises(ApiError) as err:
        store.update(POD, moved, namespace="default")
    assert err.value.code == 422
    done = {**pod, "status": {"phase": "Succeeded"}}
    assert store.update(POD, done, namespace="default", subresource="status")["status"] == {
        "phase": "Succeeded"
    }
