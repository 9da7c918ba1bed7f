"""The ui's graph model (app.ui.data.graph): drawn from the spec generically, so that step
lists and fields other branches add (spec.finally, withItems) show without a new drawing."""

from __future__ import annotations

from typing import Any

from app.ui import data


def _flow(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "f", "namespace": "default"}, "spec": spec, "status": status or {}}


def test_nodes_edges_and_phases_from_the_spec_and_status() -> None:
    flow = _flow(
        {
            "steps": [
                {"name": "a"},
                {"name": "gate", "type": "Manual", "dependencies": ["a"]},
                {"name": "b", "dependencies": ["a", "gate"], "when": "flow.parameters['x'] == '1'"},
            ]
        },
        {"steps": [{"name": "a", "phase": "Succeeded", "attempts": 2}]},
    )
    graph = data.graph(flow)
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert list(nodes) == ["a", "gate", "b"]
    assert nodes["a"]["phase"] == "Succeeded" and nodes["a"]["attempts"] == 2
    assert nodes["gate"]["kind"] == "Manual" and nodes["gate"]["phase"] == "Pending"
    assert nodes["b"]["conditional"] and not nodes["a"]["conditional"]
    pairs = {(e["source"], e["target"]) for e in graph["edges"]}
    assert pairs == {("a", "gate"), ("a", "b"), ("gate", "b")}


def test_finally_steps_hang_off_the_ends_and_fan_outs_show_their_count() -> None:
    flow = _flow(
        {
            "steps": [
                {"name": "a", "withItems": ["x", "y", "z"]},
                {"name": "b", "withItems": "{{ steps.a.outputs.list }}", "dependencies": ["a"]},
                {"name": "c"},
                {"name": "d", "withParam": {"step": "a", "parameter": "list"}},
                {"name": "e", "withParam": {"step": "a", "parameter": "list"}},
            ],
            "finally": [{"name": "cleanup"}, {"name": "report", "dependencies": ["cleanup"]}],
        },
        {
            "steps": [
                {"name": "cleanup", "phase": "Running", "finally": True},
                {"name": "d", "phase": "Running", "items": {"count": 4, "phases": "SRRP"}},
            ]
        },
    )
    graph = data.graph(flow)
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["a"]["fanout"] == 3 and nodes["b"]["fanout"] == 0 and nodes["c"]["fanout"] is None
    # withParam: the count once the step has started (its status says), unknown (0) before.
    assert nodes["d"]["fanout"] == 4 and nodes["e"]["fanout"] == 0
    assert nodes["cleanup"]["group"] == "finally" and nodes["cleanup"]["phase"] == "Running"
    edges = {(e["source"], e["target"], e["kind"]) for e in graph["edges"]}
    # The main steps' ends (b, c) lead to the finally root; its own dependency is plain.
    assert edges == {
        ("a", "b", "dependency"),
        ("b", "cleanup", "finally"),
        ("c", "cleanup", "finally"),
        ("d", "cleanup", "finally"),
        ("e", "cleanup", "finally"),
        ("cleanup", "report", "dependency"),
    }


def test_actions_follow_the_phase() -> None:
    running = data.flow_view(_flow({"steps": [{"name": "a"}]}, {"phase": "Running"}))
    assert running["actions"] == {
        "retry": False,
        "stop": True,
        "terminate": True,
        "suspend": True,
        "resume": False,
    }
    failed = data.flow_view(_flow({"steps": [{"name": "a"}], "suspend": True}, {"phase": "Failed"}))
    assert failed["actions"]["retry"] and not failed["actions"]["stop"]
    assert not failed["actions"]["resume"]
