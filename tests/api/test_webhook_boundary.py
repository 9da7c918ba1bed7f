"""The review boundary of the webhook (issue 11): a BaseException from native code inside a
review is answered, never an HTTP 5xx or a dropped connection.

The real trigger was the old CEL engine (Rust, through pyo3) raising ``PanicException``, a
``BaseException``, from ``jobflow.validation.validate`` (docs/conditions.md, reproduction 2);
the engine was replaced, so the tests monkeypatch ``jobflow.validation.validate`` in this
process for the flow named ``panic`` only (every other flow gets the real validation).

Covered: over real uvicorn and TLS, a panicking review, small (reviewed inline on the event loop)
and large (in a worker thread), gets a 200 AdmissionReview denial with ``status.code`` 500 and
the uid echoed, counted as result="error"; the same connection and server then review a valid
flow. In process: SystemExit, KeyboardInterrupt, GeneratorExit and asyncio.CancelledError are not
swallowed by the boundary (they ask for a stop or cancel the request).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from app import main, serve, settings
from jobflow import validation
from tests.fixtures.webhook import AppClient, CertBundle, jobflow, review
from webhook import routes


class Panic(BaseException):
    """Stands for pyo3's PanicException: a BaseException, not an Exception."""


def raise_for_panic_flow(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    real = validation.validate

    def validate(obj: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        if (obj.get("metadata") or {}).get("name") == "panic":
            raise error
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(validation, "validate", validate)


def large_panic_flow() -> dict[str, Any]:
    """Above the inline limit, so the review runs in a worker thread."""
    obj = jobflow("panic")
    obj["metadata"]["annotations"] = {
        f"pad-{i}": "x" * 1000 for i in range(routes.INLINE_LIMIT // 900)
    }
    return obj


@pytest.mark.parametrize("size", ["inline", "thread"])
def test_a_native_panic_in_a_review_is_a_200_denial_over_uvicorn(
    webhook_server: serve.RunningServers,
    webhook_certs: CertBundle,
    monkeypatch: pytest.MonkeyPatch,
    size: str,
) -> None:
    raise_for_panic_flow(monkeypatch, Panic("called `Option::unwrap()` on a `None` value"))
    obj = jobflow("panic") if size == "inline" else large_panic_flow()
    body = review(obj, uid=f"panic-{size}")
    assert (len(json.dumps(body)) > routes.INLINE_LIMIT) == (size == "thread")
    verify = ssl.create_default_context(cadata=webhook_certs.ca_pem.decode())
    with httpx.Client(verify=verify, timeout=10) as client:
        answer = client.post(f"{webhook_server.webhook_url}/validate", json=body)
        assert answer.status_code == 200, answer.text
        response = answer.json()["response"]
        assert response["uid"] == f"panic-{size}"
        assert response["allowed"] is False
        assert response["status"]["code"] == 500
        assert response["status"]["reason"] == "InternalError"

        after = client.post(f"{webhook_server.webhook_url}/validate", json=review(jobflow()))
        assert after.status_code == 200
        assert after.json()["response"]["allowed"] is True
    metrics = httpx.get(f"{webhook_server.ops_url}/metrics", timeout=5).text
    assert 'result="error"' in metrics


@pytest.mark.parametrize(
    "error",
    [SystemExit(1), KeyboardInterrupt(), GeneratorExit(), asyncio.CancelledError()],
    ids=["SystemExit", "KeyboardInterrupt", "GeneratorExit", "CancelledError"],
)
def test_stop_requests_and_cancellation_pass_through_the_boundary(
    monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    raise_for_panic_flow(monkeypatch, error)
    client = AppClient(main.create_app(settings.load({}, environ={})))
    with pytest.raises(type(error)):
        client.post("/validate", json=review(jobflow("panic")))
