"""The webhook on operator requests (spec.retry, spec.stop) and flow parameters, through httpx.

Covers: /mutate stamps requestedBy of a new or changed request from request.userInfo (and
replaces a value the writer put there), keeps the stamp of an unchanged request, removes a
writer's value when the API server names no user; /validate refuses a retry naming an unknown
step or parameter (with the names the flow has), a bad request id, an input naming an
undeclared flow parameter, a `when` over an unknown flow field or an undeclared flow parameter; a valid request passes on
a started flow (steps unchanged); editing spec.parameters of a started flow warns that the
values in effect change only with a retry.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from jobflow import defaults
from tests.fixtures.webhook import (
    AppClient,
    app_client,
    apply_patch,
    jobflow,
    review,
    step,
)
from tests.fixtures.webhook import review_answer as post
from webhook.review import decode_patch


@pytest.fixture
def client() -> AppClient:
    return app_client()


def started(obj: dict[str, Any]) -> dict[str, Any]:
    done = defaults.apply_defaults(obj)
    done["status"] = {"phase": "Failed", "startTime": "2026-01-01T00:00:00Z"}
    return done


def with_user(body: dict[str, Any], username: str | None) -> dict[str, Any]:
    if username is None:
        del body["request"]["userInfo"]
    else:
        body["request"]["userInfo"] = {"username": username}
    return body


def mutated(client: AppClient, new: dict[str, Any], old: dict[str, Any], user: str | None) -> Any:
    body = with_user(review(new, operation="UPDATE", old=old), user)
    response = post(client, "/mutate", body)
    assert response["allowed"] is True
    return apply_patch(new, decode_patch(response)) if "patch" in response else new


def test_a_new_retry_is_stamped_with_the_requesting_user(client: AppClient) -> None:
    old = started(jobflow())
    new = copy.deepcopy(old)
    new["spec"]["retry"] = {"id": "r1", "requestedBy": "someone-else"}
    patched = mutated(client, new, old, "alice")
    assert patched["spec"]["retry"] == {"id": "r1", "requestedBy": "alice"}
    new["spec"]["stop"] = {"id": "s1", "mode": "Terminate"}
    patched = mutated(client, new, old, "bob")
    assert patched["spec"]["stop"]["requestedBy"] == "bob"


def test_an_unchanged_request_keeps_its_stamp(client: AppClient) -> None:
    old = started(jobflow())
    old["spec"]["retry"] = {"id": "r1", "requestedBy": "alice"}
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"x": "y"}
    assert mutated(client, new, old, "bob")["spec"]["retry"]["requestedBy"] == "alice"


def test_without_a_user_a_written_stamp_is_removed(client: AppClient) -> None:
    old = started(jobflow())
    new = copy.deepcopy(old)
    new["spec"]["retry"] = {"id": "r2", "requestedBy": "mallory"}
    assert mutated(client, new, old, None)["spec"]["retry"] == {"id": "r2"}


def denial(client: AppClient, new: dict[str, Any], old: dict[str, Any] | None) -> list[Any]:
    body = review(new, operation="UPDATE" if old else "CREATE", old=old)
    response = post(client, "/validate", body)
    assert response["allowed"] is False, response
    return [
        (c["reason"], c["field"], c["message"]) for c in response["status"]["details"]["causes"]
    ]


def test_retry_of_an_unknown_step_or_parameter_is_refused(client: AppClient) -> None:
    old = started(jobflow(parameters=[{"name": "tag", "value": "v1"}]))
    new = json.loads(json.dumps(old))
    new["spec"]["retry"] = {"id": "r1", "steps": ["b", "nope"], "parameters": {"tagg": "v2"}}
    assert denial(client, new, old) == [
        (
            "retry-unknown-step",
            "spec.retry.steps[1]",
            "'nope' is not a step of this flow; its steps: a, b",
        ),
        (
            "retry-unknown-parameter",
            "spec.retry.parameters.tagg",
            "'tagg' is not a parameter of this flow (spec.parameters); its parameters: tag",
        ),
    ]


def test_a_bad_request_id_is_refused(client: AppClient) -> None:
    new = jobflow()
    new["spec"]["stop"] = {"id": "-x y", "mode": "Terminate"}
    [(code, path, _)] = denial(client, new, None)
    assert (code, path) == ("invalid-request-id", "spec.stop.id")


def test_an_undeclared_flow_parameter_is_refused(client: AppClient) -> None:
    new = jobflow(
        steps=[
            step("a", inputs={"parameters": [{"name": "p", "valueFrom": {"flowParameter": "q"}}]})
        ]
    )
    [(code, path, message)] = denial(client, new, None)
    assert code == "unknown-flow-parameter"
    assert path == "spec.steps[0].inputs.parameters[0].valueFrom.flowParameter"
    assert message == "'q' is not declared in spec.parameters (declared: none)"


def test_when_over_an_unknown_flow_field_is_refused(client: AppClient) -> None:
    new = jobflow(steps=[step("a"), step("b", "a", when="flow.parameterz['x'] == 'y'")])
    [(code, _, message)] = denial(client, new, None)
    assert code == "when-unknown-field"
    assert "the flow has no field 'parameterz'" in message


def test_a_valid_retry_passes_on_a_started_flow(client: AppClient) -> None:
    old = started(jobflow(parameters=[{"name": "tag", "value": "v1"}]))
    new = json.loads(json.dumps(old))
    new["spec"]["retry"] = {
        "id": "2026-01-01T00:00:00Z",
        "steps": ["a"],
        "parameters": {"tag": "v2"},
    }
    response = post(client, "/validate", review(new, operation="UPDATE", old=old))
    assert response["allowed"] is True, response


def test_editing_parameters_of_a_started_flow_warns(client: AppClient) -> None:
    old = started(jobflow(parameters=[{"name": "tag", "value": "v1"}]))
    new = json.loads(json.dumps(old))
    new["spec"]["parameters"][0]["value"] = "v2"
    response = post(client, "/validate", review(new, operation="UPDATE", old=old))
    assert response["allowed"] is True
    assert response["warnings"] == [
        "spec.parameters changed on a started flow: the values in effect (status.parameters) "
        "change only with a retry (zen-flow retry -p NAME=VALUE, or spec.retry.parameters)"
    ]


def test_when_over_an_undeclared_flow_parameter_is_refused(client: AppClient) -> None:
    new = jobflow(
        parameters=[{"name": "tag", "value": "v1"}],
        steps=[
            step("a"),
            step("b", "a", when="flow.parameters['tga'] == 'v1' && flow.parameters.tag != ''"),
        ],
    )
    assert denial(client, new, None) == [
        (
            "when-unknown-parameter",
            "spec.steps[1].when",
            "flow.parameters['tga'] is not declared in spec.parameters (declared: tag)",
        )
    ]
