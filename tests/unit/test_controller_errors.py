"""The controller's one error policy (controller.kube.policy), decided by the error's class.

Covers: every HTTP answer maps to RETRY (5xx, 429, a stale write's 409 Conflict, 401 whose
credentials are re-read, no answer at all) or REFUSED (400/422 Invalid, 403 from RBAC, an
admission webhook or a quota, 404, 409 AlreadyExists, 410); a 401 is still a ``Forbidden`` to
callers that catch that; a namesake object we do not own is a refusal; a refusal's message is
the server's, on one line and cut to the limit.
"""

from __future__ import annotations

import pytest

from controller import kube, reconciler


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (500, "InternalError", kube.Policy.RETRY),
        (503, "ServiceUnavailable", kube.Policy.RETRY),
        (429, "TooManyRequests", kube.Policy.RETRY),
        (409, "Conflict", kube.Policy.RETRY),
        (401, "Unauthorized", kube.Policy.RETRY),
        (0, "", kube.Policy.RETRY),  # no answer: a timeout or a dropped connection
        (400, "BadRequest", kube.Policy.REFUSED),
        (422, "Invalid", kube.Policy.REFUSED),
        (403, "Forbidden", kube.Policy.REFUSED),
        (404, "NotFound", kube.Policy.REFUSED),
        (409, "AlreadyExists", kube.Policy.REFUSED),
        (410, "Expired", kube.Policy.REFUSED),
    ],
)
def test_the_policy_follows_the_class(code: int, reason: str, expected: kube.Policy) -> None:
    error = kube._error_for(code, f'{{"reason":"{reason}","message":"m"}}'.encode(), "fallback")
    assert kube.policy(error) is expected


def test_a_401_is_retried_and_still_a_forbidden() -> None:
    error = kube._error_for(401, b"{}", "fallback")
    assert isinstance(error, kube.Unauthorized) and isinstance(error, kube.Forbidden)
    assert kube.policy(error) is kube.Policy.RETRY


def test_an_object_we_do_not_own_is_a_refusal() -> None:
    error = reconciler.ForeignObject("Job default/x exists and is not owned by this flow")
    assert kube.policy(error) is kube.Policy.REFUSED


def test_a_refusal_message_is_the_servers_on_one_line_and_bounded() -> None:
    error = kube.Invalid('Job.batch "x" is invalid:\n  spec.a: bad', code=422)
    assert reconciler.refusal_message(error) == 'Job.batch "x" is invalid: spec.a: bad'
    long = reconciler.refusal_message(kube.Invalid("y" * 5000, code=422))
    assert len(long) == reconciler.MAX_REFUSAL_TEXT and long.endswith("...")
    assert reconciler.refusal_message(kube.Forbidden("", code=403, reason="Forbidden")) == (
        "HTTP 403 Forbidden"
    )
