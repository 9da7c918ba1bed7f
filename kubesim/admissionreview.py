"""The AdmissionReview exchange with a webhook (pure): the request kube-apiserver sends
(``build_review``: kind/resource as the webhook's rule named them, ``requestKind`` as the client
sent, options, userInfo), the checks its reply must pass (``check_response``, upstream's
VerifyAdmissionResponse), a reply's JSONPatch (``decode_patch``) and the errors a denial or a
failed call becomes."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from kubesim.admissionrules import Attributes, Match
from kubesim.errors import ApiError, internal
from kubesim.resources import GVR
from kubesim.rfc6902 import JSONPatchError

REVIEW_VERSIONS = ("v1", "v1beta1")  # the shapes are identical for what we send
OPTIONS_KIND = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}


class WebhookCallError(Exception):
    """The webhook could not be called or answered nonsense; failurePolicy decides what follows."""


def build_review(
    attrs: Attributes, match: Match, *, uid: str, review_version: str = "v1"
) -> dict[str, Any]:
    """The AdmissionReview request for ``attrs`` as ``match``'s webhook sees it."""
    obj = attrs.obj
    old = attrs.old_obj
    if match.gvr != attrs.gvr:
        obj = with_api_version(obj, match.gvr)
        old = with_api_version(old, match.gvr)
    options = dict(attrs.options or {})
    if options.get("kind") == "PatchOptions":
        # upstream's patchToUpdateOptions: webhooks see a patch or apply as an UPDATE
        options.pop("force", None)
        options["kind"] = "UpdateOptions"
    options.setdefault("apiVersion", "meta.k8s.io/v1")
    options.setdefault("kind", OPTIONS_KIND.get(attrs.operation, "CreateOptions"))
    user = dict(attrs.user or {})  # UserInfo: empty uid, groups and extra are omitted
    request: dict[str, Any] = {
        "uid": uid,
        "kind": dict(match.kind),
        "resource": _gvr_dict(match.gvr),
        "subResource": attrs.subresource,
        "requestKind": dict(attrs.kind),
        "requestResource": _gvr_dict(attrs.gvr),
        "requestSubResource": attrs.subresource,
        "name": attrs.name,
        "namespace": attrs.namespace or "",
        "operation": attrs.operation,
        "userInfo": user,
        "object": None if attrs.operation == "DELETE" else obj,
        "oldObject": None if attrs.operation == "CREATE" else old,
        "dryRun": attrs.dry_run,
        "options": options,
    }
    if not request["subResource"]:
        del request["subResource"]
        del request["requestSubResource"]
    return {
        "apiVersion": f"admission.k8s.io/{review_version}",
        "kind": "AdmissionReview",
        "request": request,
    }


def _gvr_dict(gvr: GVR) -> dict[str, str]:
    return {"group": gvr.group, "version": gvr.version, "resource": gvr.resource}


def with_api_version(obj: dict[str, Any] | None, gvr: GVR) -> dict[str, Any] | None:
    if obj is None:
        return None
    out = dict(obj)
    out["apiVersion"] = f"{gvr.group}/{gvr.version}" if gvr.group else gvr.version
    return out


def check_response(review: Any, *, uid: str, mutating: bool) -> dict[str, Any]:
    """Return ``review.response`` or raise WebhookCallError as upstream VerifyAdmissionResponse."""
    if not isinstance(review, dict):
        raise WebhookCallError("received invalid webhook response: not a JSON object")
    known = {f"admission.k8s.io/{v}" for v in REVIEW_VERSIONS}
    if review.get("kind") != "AdmissionReview" or review.get("apiVersion") not in known:
        raise WebhookCallError(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got "
            f"{review.get('apiVersion')}, Kind={review.get('kind')}"
        )
    response = review.get("response")
    if not isinstance(response, dict):
        raise WebhookCallError("webhook response was absent")
    if response.get("uid") != uid:
        raise WebhookCallError(f'expected response.uid="{uid}", got "{response.get("uid")}"')
    if not isinstance(response.get("allowed"), bool):
        raise WebhookCallError("webhook response has no boolean response.allowed")
    has_patch = bool(response.get("patch"))
    has_type = bool(response.get("patchType"))
    if not mutating and (has_patch or has_type):
        raise WebhookCallError("validating webhook may not return response.patch")
    if has_patch and not has_type:
        raise WebhookCallError("webhook returned response.patch but not response.patchType")
    if has_type and not has_patch:
        raise WebhookCallError("webhook returned response.patchType but not response.patch")
    if has_type and response["patchType"] != "JSONPatch":
        raise WebhookCallError(f"unsupported patch type {response['patchType']!r}")
    return response


def denial_error(webhook_name: str, response: Mapping[str, Any]) -> ApiError:
    """The error a denial becomes: the webhook's status, message prefixed as upstream does."""
    status = response.get("status") or {}
    if not isinstance(status, Mapping):
        status = {}
    raw_code = status.get("code")
    code = raw_code if isinstance(raw_code, int) and raw_code else 403
    code = max(code, 400)  # a denial is always an error, whatever the webhook claims
    reason = str(status.get("reason") or ("Forbidden" if code == 403 else ""))
    text = str(status.get("message") or status.get("reason") or "")
    prefix = f'admission webhook "{webhook_name}" denied the request'
    message = f"{prefix}: {text}" if text else f"{prefix} without explanation"
    details = status.get("details")
    return ApiError(
        code, reason, message, details=dict(details) if isinstance(details, Mapping) else None
    )


def call_failure(webhook_name: str, err: str) -> ApiError:
    return internal(f'failed calling webhook "{webhook_name}": {err}')


def decode_patch(response: Mapping[str, Any]) -> list[Any]:
    try:
        raw = base64.b64decode(str(response["patch"]), validate=True)
        ops = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise JSONPatchError(f"cannot decode the webhook's patch: {exc}") from exc
    if not isinstance(ops, list):
        raise JSONPatchError("the webhook's patch is not a JSON array")
    return ops
