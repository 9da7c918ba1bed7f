"""The webhook's limits on hostile bodies, in process (httpx, a fresh create_app per test).

Covers: nesting deeper than webhook.nesting.MAX_DEPTH is a 400 that says how deep and where,
before json.loads; a body at the bound is reviewed like any other; a body that does not arrive
within body_timeout is a 400 with `Connection: close`, and so is every refusal made before the
body ended (413, 415); a denial names at most MAX_CAUSES problems and says how many more, and
cuts problem texts and warnings (which quote the user's values) at MAX_TEXT characters.
The same limits over TLS against the real server: tests/api/test_webhook_hostile.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry

from app import main, settings
from tests.fixtures.webhook import AppClient, job_template, jobflow, review, step
from webhook import handlers, nesting

JSON = {"content-type": "application/json"}


def client(**flags: Any) -> AppClient:
    return AppClient(
        main.create_app(settings.load(flags, environ={}), registry=CollectorRegistry())
    )


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_nesting_past_the_bound_is_400_with_where() -> None:
    flow = jobflow() | {"extra": nested(nesting.MAX_DEPTH)}  # under review > request > object
    body = json.dumps(review(flow, uid="deep")).encode()
    answer = client().post("/validate", content=body, headers=JSON)
    assert answer.status_code == 400
    status = answer.json()
    assert status["reason"] == "BadRequest"
    offset = body.index(b"[" * nesting.MAX_DEPTH) + nesting.MAX_DEPTH - 3
    assert status["message"] == (
        f"body nests arrays and objects deeper than {nesting.MAX_DEPTH} levels (at byte "
        f"{offset}); a JobFlow needs about 20"
    )


def test_nesting_at_the_bound_is_reviewed() -> None:
    flow = jobflow() | {"extra": nested(nesting.MAX_DEPTH - 4)}
    answer = client().post("/mutate", json=review(flow, uid="at-bound"))
    assert answer.status_code == 200
    assert answer.json()["response"]["uid"] == "at-bound"


def test_a_body_that_stalls_is_400_and_closes() -> None:
    async def stalled() -> AsyncIterator[bytes]:
        yield b'{"apiVersion": '
        await asyncio.sleep(5)
        yield b"}"

    answer = client(body_timeout=0.2).post("/validate", content=stalled(), headers=JSON)
    assert answer.status_code == 400
    assert answer.json()["message"] == "the body did not arrive within 0.2 s"
    assert answer.headers["connection"] == "close"


def test_refusals_before_the_body_ended_close_the_connection() -> None:
    small = client(max_request_bytes=1024)
    too_big = small.post("/validate", content=b" " * 2048, headers=JSON)
    assert (too_big.status_code, too_big.headers["connection"]) == (413, "close")
    wrong_type = small.post("/validate", content=b"{}", headers={"content-type": "text/plain"})
    assert (wrong_type.status_code, wrong_type.headers["connection"]) == (415, "close")
    not_json = small.post("/validate", content=b"{", headers=JSON)
    assert (not_json.status_code, "connection" in not_json.headers) == (400, False)


def test_a_denial_names_at_most_max_causes_problems() -> None:
    extra = 30
    flow = jobflow("many", [{"name": f"s{i}"} for i in range(handlers.MAX_CAUSES + extra)])
    answer = client().post("/validate", json=review(flow, uid="many"))
    status = answer.json()["response"]["status"]
    problems = int(status["message"].split(" problems: ")[0].rsplit(" ", 1)[-1])
    assert problems >= handlers.MAX_CAUSES + extra
    assert len(status["details"]["causes"]) == handlers.MAX_CAUSES
    assert status["message"].endswith(f"; and {problems - handlers.MAX_CAUSES} more")


def test_long_values_are_cut_in_problems_and_warnings() -> None:
    template = job_template(image="r/" + "a" * 5000)  # no tag: a warning quotes the image
    container = template["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": "z" * 5000}}  # a problem quotes the value
    flow = jobflow("long", [step("a") | {"template": template}])
    response = client().post("/validate", json=review(flow, uid="long")).json()["response"]
    causes = response["status"]["details"]["causes"]
    assert any(c["message"].endswith("...") for c in causes)
    assert all(len(c["message"]) <= handlers.MAX_TEXT + 3 for c in causes)
    assert response["warnings"]
    assert all(len(w) <= handlers.MAX_TEXT + 3 for w in response["warnings"])
