"""controller.packing: cached flows keep their spec as JSON and a pass gets it whole again.

Covers: the round trip (unpack(pack(flow)) == flow), what stays readable on a packed flow
(executionPolicy, suspend, the status's phase and Accepted condition, metadata), reuse of the stored packed spec for a newer copy
at the same generation and a fresh one after a spec change, and specs orjson cannot write.
"""

from __future__ import annotations

import copy
from typing import Any

from controller import packing, runner


def flow(generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "workflow.kube-zen.io/v1alpha1",
        "kind": "JobFlow",
        "metadata": {"name": "f", "namespace": "d", "uid": "u1", "generation": generation},
        "spec": {
            "executionPolicy": {"concurrencyKey": "k", "concurrencyPolicy": "Forbid"},
            "suspend": False,
            "steps": [{"name": "a", "template": {"kind": "Job"}}],
            **spec,
        },
        "status": {
            "phase": "Running",
            "steps": [{"name": "a", "phase": "Running", "attempts": 1}],
            "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Valid"},
                {"type": "Progressing", "status": "True", "reason": "Running"},
            ],
        },
    }


def test_round_trip_and_what_stays_readable() -> None:
    original = flow()
    packed = packing.pack(copy.deepcopy(original))
    assert isinstance(packed["spec"], packing.PackedSpec)
    assert packed["spec"] == {
        "executionPolicy": original["spec"]["executionPolicy"],
        "suspend": False,
    }
    assert isinstance(packed["status"], packing.PackedStatus)
    assert packed["status"] == {
        "phase": "Running",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Valid"}],
    }
    assert packed["metadata"] == original["metadata"]
    assert packing.unpack(packed) == original
    assert packing.unpack(original) is original  # not packed: as it is


def test_a_newer_copy_reuses_the_packed_spec_until_the_generation_moves() -> None:
    stored = packing.pack(flow())
    again = packing.pack({**flow(), "status": {"phase": "Succeeded"}}, stored)
    assert again["spec"] is stored["spec"]
    changed = packing.pack(flow(generation=2, suspend=True), stored)
    assert changed["spec"] is not stored["spec"]
    assert packing.unpack(changed)["spec"]["suspend"] is True


def test_a_spec_orjson_cannot_write_stays_decoded() -> None:
    big = flow(extra=2**70)
    assert packing.pack(big)["spec"] is big["spec"]
    odd = {**flow(), "status": {"phase": "Running", "extra": 2**70}}
    assert packing.pack(odd)["status"] is odd["status"]
    assert packing.unpack(packing.pack(odd)) == odd


def test_a_newer_status_is_packed_anew_and_peers_read_phase_and_acceptance() -> None:
    from jobflow import status

    stored = packing.pack(flow())
    newer = {
        **flow(),
        "status": {
            "phase": "Failed",
            "conditions": [
                {"type": "Accepted", "status": "False", "reason": "Invalid"},
            ],
        },
    }
    again = packing.pack(newer, stored)
    assert again["status"] is not stored["status"]
    assert packing.unpack(again)["status"] == newer["status"]
    # what concurrency reads of a peer is there without unpacking
    conditions = again["status"]["conditions"]
    assert status.condition_status(conditions, status.ACCEPTED) == "False"
    assert again["status"]["phase"] == "Failed"


def test_the_flow_cache_transform_packs_and_drops_last_applied() -> None:
    original = flow()
    original["metadata"]["annotations"] = {
        runner.LAST_APPLIED: '{"kind": "JobFlow"}',
        "approve.workflow.kube-zen.io/a": "true",
    }
    original["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    cached = runner.prepare_flow(copy.deepcopy(original))
    assert cached["metadata"]["annotations"] == {"approve.workflow.kube-zen.io/a": "true"}
    assert "managedFields" not in cached["metadata"]
    assert packing.unpack(cached)["spec"] == original["spec"]


def test_a_cached_job_keeps_suspend_and_its_whole_spec_comes_back() -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "d", "managedFields": [{"manager": "x"}]},
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"spec": {"containers": [{"name": "main"}]}},
        },
        "status": {"active": 1},
    }
    cached = runner.strip_job(copy.deepcopy(job))
    assert isinstance(cached["spec"], packing.PackedJobSpec)
    assert cached["spec"] == {"suspend": True}
    assert "managedFields" not in cached["metadata"]
    whole = packing.unpack_job(cached)
    assert whole["spec"] == {
        "suspend": True,
        "backoffLimit": 0,
        "selector": {"matchLabels": {"a": "b"}},
    }  # the pod template is not kept
    assert packing.unpack_job(whole) is whole


def test_a_newer_copy_of_a_job_reuses_its_packed_spec_until_the_generation_moves() -> None:
    job = {
        "metadata": {"name": "j", "uid": "u", "generation": 1},
        "spec": {"suspend": True, "completions": 1},
        "status": {},
    }
    stored = runner.strip_job(copy.deepcopy(job))
    later = runner.strip_job({**copy.deepcopy(job), "status": {"active": 1}}, stored)
    assert later["spec"] is stored["spec"]
    resumed = copy.deepcopy(job)
    resumed["metadata"]["generation"] = 2
    resumed["spec"]["suspend"] = False
    changed = runner.strip_job(resumed, stored)
    assert changed["spec"] == {"suspend": False}
    assert packing.unpack_job(changed)["spec"] == {"suspend": False, "completions": 1}
