"""The webhook refuses JobFlow names over 63 characters, with the limit and the reason.

Covers: a 64-character name is denied (422, cause ``name-too-long`` on ``metadata.name``, the
message names the limit and the flow label); a 63-character name is allowed. The name is the
``workflow.kube-zen.io/flow`` label of every Job and pod, and a label value stops at 63, so a
longer name could only be cut or hashed where ``kubectl get pods -l ...=<name>`` cannot find it
(issue 13, item 5).
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from app import main, settings
from tests.fixtures.webhook import AppClient, jobflow, review, step


@pytest.fixture
def client() -> AppClient:
    return AppClient(main.create_app(settings.load({}, environ={}), registry=CollectorRegistry()))


def validate(client: AppClient, name: str) -> dict[str, Any]:
    answer = client.post("/validate", json=review(jobflow(name, steps=[step("a")])))
    assert answer.status_code == 200, answer.text
    response: dict[str, Any] = answer.json()["response"]
    return response


def test_a_name_over_63_characters_is_denied_with_the_reason(client: AppClient) -> None:
    name = "nightly-" + "x" * 56
    response = validate(client, name)
    assert response["allowed"] is False
    status = response["status"]
    assert status["code"] == 422
    causes = status["details"]["causes"]
    assert [(c["reason"], c["field"]) for c in causes] == [("name-too-long", "metadata.name")]
    assert (
        "is 64 characters; a JobFlow name is at most 63 because it is the"
        " workflow.kube-zen.io/flow label of every Job and pod" in status["message"]
    )


def test_a_name_of_63_characters_is_allowed(client: AppClient) -> None:
    assert validate(client, "n" * 63)["allowed"] is True
