"""The webhook's /validate and /mutate on fan-out and finally steps (issue 17), through a fresh
create_app per test: a valid flow with both is admitted (and the mutation leaves withItems
values as written); bad item sources, item placeholders, finally dependencies and outcome
inputs are denied with their codes and paths, as `zen-flow validate` says them."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from app import main, settings
from tests.fixtures.webhook import AppClient, apply_patch, jobflow, review, step
from webhook.review import decode_patch


@pytest.fixture
def client() -> AppClient:
    return AppClient(main.create_app(settings.load({}, environ={}), registry=CollectorRegistry()))


def answer(client: AppClient, path: str, obj: dict[str, Any]) -> dict[str, Any]:
    reply = client.post(path, json=review(obj))
    assert reply.status_code == 200, reply.text
    return dict(reply.json()["response"])


def causes(client: AppClient, obj: dict[str, Any]) -> list[tuple[str, str]]:
    response = answer(client, "/validate", obj)
    assert response["allowed"] is False, response
    return [(c["reason"], c["field"]) for c in response["status"]["details"]["causes"]]


def echo(*args: str) -> dict[str, Any]:
    template = step("x")["template"]
    template["spec"]["template"]["spec"]["containers"][0]["args"] = list(args)
    return template


def test_a_flow_with_fan_out_and_finally_is_admitted(client: AppClient) -> None:
    flow = jobflow(
        steps=[
            step("gen", outputs={"parameters": [{"name": "list"}]}),
            step(
                "each",
                "gen",
                withParam={"step": "gen", "parameter": "list"},
                parallelism=2,
                template=echo("{{ item }}", "{{ index }}"),
            ),
            step("pick", withItems=[{"x": 1}, {"x": "two"}], template=echo("{{ item.x }}")),
        ],
        **{
            "finally": [
                step(
                    "cleanup",
                    when="flow.phase == 'Failed'",
                    inputs={"parameters": [{"name": "o", "valueFrom": {"flowOutcome": "phase"}}]},
                )
            ]
        },
    )
    assert answer(client, "/validate", flow)["allowed"] is True
    response = answer(client, "/mutate", flow)
    mutated = apply_patch(flow, decode_patch(response)) if "patch" in response else flow
    assert mutated["spec"]["steps"][2]["withItems"] == [{"x": 1}, {"x": "two"}]


def test_bad_fan_outs_and_finally_steps_are_denied(client: AppClient) -> None:
    flow = jobflow(
        steps=[
            step("gen", outputs={"parameters": [{"name": "list"}]}),
            step("each", "gen", withParam={"step": "gen", "parameter": "nope"}),
            step("far", withParam={"step": "gen", "parameter": "list"}),
            step("plain", template=echo("{{ item }}")),
            step("scalars", withItems=[1, 2], template=echo("{{ item.x }}")),
            step("many", withItems=list(range(1001))),
            step("waits", "cleanup"),
        ],
        **{
            "finally": [
                step("cleanup"),
                step("gen"),
            ]
        },
    )
    flow["spec"]["steps"][0]["inputs"] = {
        "parameters": [{"name": "o", "valueFrom": {"flowOutcome": "phase"}}]
    }
    found = causes(client, flow)
    for expected in [
        ("with-param-undeclared-output", "spec.steps[1].withParam.parameter"),
        ("with-param-references-non-ancestor", "spec.steps[2].withParam.step"),
        ("item-outside-fanout", "spec.steps[3].template"),
        ("item-field-not-in-items", "spec.steps[4].withItems[0]"),
        ("too-many-items", "spec.steps[5].withItems"),
        ("dependency-on-finally", "spec.steps[6].dependencies[0]"),
        ("duplicate-step-name", "spec.finally[1].name"),
        (
            "flow-outcome-outside-finally",
            "spec.steps[0].inputs.parameters[0].valueFrom.flowOutcome",
        ),
    ]:
        assert expected in found, (expected, found)
