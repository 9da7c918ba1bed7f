"""AdmissionReview v1 (`admission.k8s.io/v1`) as pydantic models: the wire format of the webhook.

Input and output are separate models. The request model is deliberately lenient (unknown fields
are ignored, `object`/`oldObject` are any JSON) because an API server newer than this code may
add fields, and because "the object is not a JSON object" must become a *denial the API server
can show*, not a 400 that it reports as a failed webhook call. Only the envelope is strict: a body
without `apiVersion: admission.k8s.io/v1`, `kind: AdmissionReview` and a `request.uid` is not an
AdmissionReview (HTTP 400), since there is no uid to answer to.

The response is serialised with its camelCase aliases and without nulls, because the API server
rejects a `patch` without `patchType` and a validating webhook that returns any `patch`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator
from pydantic_core import PydanticSerializationError

API_VERSION: Final = "admission.k8s.io/v1"
KIND: Final = "AdmissionReview"


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class GroupVersionKind(_Wire):
    group: str = ""
    version: str = ""
    kind: str = ""


class GroupVersionResource(_Wire):
    group: str = ""
    version: str = ""
    resource: str = ""


class UserInfo(_Wire):
    username: str = ""
    uid: str = ""
    groups: list[str] = Field(default_factory=list)


class AdmissionRequest(_Wire):
    uid: StrictStr = Field(min_length=1)
    kind: GroupVersionKind = Field(default_factory=GroupVersionKind)
    resource: GroupVersionResource = Field(default_factory=GroupVersionResource)
    sub_resource: str = Field("", alias="subResource")
    name: str = ""
    namespace: str = ""
    operation: str = ""
    user_info: UserInfo = Field(default_factory=UserInfo, alias="userInfo")
    object: Any = None
    old_object: Any = Field(None, alias="oldObject")
    dry_run: bool = Field(False, alias="dryRun")

    @field_validator("kind", "resource", "user_info", mode="before")
    @classmethod
    def _tolerate_null(cls, value: Any) -> Any:
        # A null where an object is expected carries no information; treat it as absent.
        return {} if value is None else value

    @field_validator("sub_resource", "name", "namespace", "operation", mode="before")
    @classmethod
    def _null_string(cls, value: Any) -> Any:
        return "" if value is None else value


class AdmissionReviewRequest(_Wire):
    api_version: Literal["admission.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


class StatusCause(_Wire):
    reason: str
    message: str
    field: str


class StatusDetails(_Wire):
    name: str | None = None
    group: str | None = None
    kind: str | None = None
    causes: list[StatusCause] = Field(default_factory=list)


class Status(_Wire):
    """metav1.Status as it appears in a denial."""

    status: Literal["Failure"] = "Failure"
    message: str
    reason: str
    code: int
    details: StatusDetails | None = None


class AdmissionResponse(_Wire):
    uid: str
    allowed: bool
    status: Status | None = None
    patch: str | None = None
    patch_type: Literal["JSONPatch"] | None = Field(None, alias="patchType")
    warnings: list[str] | None = None
    audit_annotations: dict[str, str] | None = Field(None, alias="auditAnnotations")


class AdmissionReviewResponse(_Wire):
    api_version: Literal["admission.k8s.io/v1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["AdmissionReview"] = KIND
    response: AdmissionResponse

    def to_json(self) -> bytes:
        # pydantic-core writes the JSON in one native call (UTF-8, ~4x model_dump + json.dumps).
        # A lone surrogate (legal as an escape in a request's JSON; the routes refuse such
        # bodies, but this stays total) cannot be UTF-8: stdlib json then echoes it as an
        # escape.
        try:
            return self.model_dump_json(by_alias=True, exclude_none=True).encode()
        except PydanticSerializationError:
            data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
            return json.dumps(data, separators=(",", ":")).encode()


def encode(answer: AdmissionResponse) -> bytes:
    """``AdmissionReviewResponse(response=answer).to_json()``, the same bytes; an answer without
    status (every allowed review) is written by orjson from its fields (~4x: no second model)."""
    if answer.status is None and answer.audit_annotations is None:
        response: dict[str, object] = {"uid": answer.uid, "allowed": answer.allowed}
        if answer.patch is not None:
            response["patch"] = answer.patch
        if answer.patch_type is not None:
            response["patchType"] = answer.patch_type
        if answer.warnings is not None:
            response["warnings"] = answer.warnings
        try:
            return orjson.dumps({"apiVersion": API_VERSION, "kind": KIND, "response": response})
        except TypeError:  # text UTF-8 cannot hold (a lone surrogate): the model's way
            pass
    return AdmissionReviewResponse(response=answer).to_json()


# -- builders ---------------------------------------------------------------------------------
def _patch_json(ops: Sequence[Mapping[str, Any]]) -> bytes:
    # orjson (~5x json.dumps); values it does not take (integers past 64 bits) go the slow way.
    try:
        return orjson.dumps(list(ops))
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(list(ops), separators=(",", ":")).encode()


def allow(uid: str, *, warnings: Sequence[str] = ()) -> AdmissionResponse:
    return AdmissionResponse(uid=uid, allowed=True, warnings=list(warnings) or None)


def allow_with_patch(
    uid: str, ops: Sequence[Mapping[str, Any]], *, warnings: Sequence[str] = ()
) -> AdmissionResponse:
    """Allowed, with the RFC 6902 ``ops`` base64-encoded; no patch fields when ops is empty."""
    if not ops:
        return allow(uid, warnings=warnings)
    encoded = base64.b64encode(_patch_json(ops)).decode()
    return AdmissionResponse(
        uid=uid,
        allowed=True,
        patch=encoded,
        patch_type="JSONPatch",
        warnings=list(warnings) or None,
    )


def deny(
    uid: str,
    message: str,
    *,
    code: int = 422,
    reason: str = "Invalid",
    causes: Sequence[StatusCause] = (),
    details_name: str | None = None,
    warnings: Sequence[str] = (),
) -> AdmissionResponse:
    details = None
    if causes or details_name:
        details = StatusDetails(
            name=details_name or None,
            group="workflow.kube-zen.io",
            kind="jobflows",
            causes=list(causes),
        )
    return AdmissionResponse(
        uid=uid,
        allowed=False,
        status=Status(message=message, reason=reason, code=code, details=details),
        warnings=list(warnings) or None,
    )


def decode_patch(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The JSON Patch ops of a response dict ([] when none); used by tests and benches."""
    patch = response.get("patch")
    if not patch:
        return []
    ops = json.loads(base64.b64decode(patch))
    assert isinstance(ops, list)
    return ops
