"""Mutating and validating webhook configurations: upstream's defaults (failurePolicy Fail,
matchPolicy Equivalent, timeout 10 s, empty selectors, rule scope ``*``, service port 443) and
the validation the API server applies before any webhook is called."""

from __future__ import annotations

from typing import Any

from kubesim import errors
from kubesim.errors import Cause
from kubesim.kinds import DNS1123_SUBDOMAIN
from kubesim.resources import ResourceType, builtin_type
from kubesim.strategies.base import Strategy
from kubesim.tables import col

GROUP = "admissionregistration.k8s.io"


def _default_webhook_config(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    mutating = obj.get("kind") == "MutatingWebhookConfiguration"
    for w in obj.get("webhooks") or []:
        if not isinstance(w, dict):
            continue
        w.setdefault("failurePolicy", "Fail")
        w.setdefault("matchPolicy", "Equivalent")
        w.setdefault("timeoutSeconds", 10)
        w.setdefault("namespaceSelector", {})
        w.setdefault("objectSelector", {})
        if mutating:
            w.setdefault("reinvocationPolicy", "Never")
        for r in w.get("rules") or []:
            if isinstance(r, dict):
                r.setdefault("scope", "*")
        svc = (w.get("clientConfig") or {}).get("service")
        if isinstance(svc, dict):
            svc.setdefault("port", 443)


def _validate_webhook_config(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, w in enumerate(obj.get("webhooks") or []):
        p = f"webhooks[{i}]"
        if not isinstance(w, dict):
            causes.append(errors.type_invalid(p, "string", "must be an object"))
            continue
        name = str(w.get("name") or "")
        if not name:
            causes.append(errors.required(f"{p}.name"))
        elif name.count(".") < 2 and not DNS1123_SUBDOMAIN.match(name):
            causes.append(
                errors.invalid_value(
                    f"{p}.name",
                    name,
                    "should be a domain with at least three segments separated by dots",
                )
            )
        if name in seen:
            causes.append(errors.duplicate(f"{p}.name", name))
        seen.add(name)
        if not w.get("admissionReviewVersions"):
            causes.append(
                errors.required(f"{p}.admissionReviewVersions", "must specify one of v1, v1beta1")
            )
        se = w.get("sideEffects")
        if se not in ("None", "NoneOnDryRun"):
            causes.append(errors.not_supported(f"{p}.sideEffects", se, ["None", "NoneOnDryRun"]))
        cc = w.get("clientConfig") or {}
        if bool(cc.get("url")) == bool(cc.get("service")):
            causes.append(
                errors.required(f"{p}.clientConfig", "exactly one of url or service is required")
            )
        fp = w.get("failurePolicy")
        if fp not in ("Fail", "Ignore"):
            causes.append(errors.not_supported(f"{p}.failurePolicy", fp, ["Fail", "Ignore"]))
        ts = w.get("timeoutSeconds")
        if not isinstance(ts, int) or not 1 <= ts <= 30:
            causes.append(
                errors.invalid_value(
                    f"{p}.timeoutSeconds", ts, "the timeout value must be between 1 and 30 seconds"
                )
            )
    return causes


class WebhookConfigStrategy(Strategy):
    columns = ((col("Webhooks", "integer"), lambda o: len(o.get("webhooks") or [])),)

    def __init__(self, t: ResourceType) -> None:
        self.types = (t,)

    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        _default_webhook_config(obj, old)
        return []

    def validate(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[Cause]:
        return _validate_webhook_config(obj, old)


MUTATING = WebhookConfigStrategy(
    builtin_type(
        GROUP,
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        namespaced=False,
        categories=("api-extensions",),
        has_generation=True,
        description="MutatingWebhookConfiguration describes the configuration of an admission webhook.",
    )
)
VALIDATING = WebhookConfigStrategy(
    builtin_type(
        GROUP,
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        namespaced=False,
        categories=("api-extensions",),
        has_generation=True,
        description="ValidatingWebhookConfiguration describes the configuration of an admission webhook.",
    )
)
