"""Which admission webhooks a request reaches (pure): the request's ``Attributes``, a webhook's
rules (operations, apiGroups, apiVersions, resources with upstream's ``*``, ``*/*``, ``pods/*``,
``*/status`` patterns, scope), ``matchPolicy: Equivalent`` across served versions, and the
``objectSelector``. The ``namespaceSelector`` needs the namespace's labels from the Store and
is applied by ``admission.Admission``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubesim.resources import GVR
from kubesim.selectors import match_label_selector_object


@dataclass(frozen=True)
class Attributes:
    """One admission request, as the core hands it over."""

    operation: str  # "CREATE" | "UPDATE" | "DELETE"
    gvr: GVR
    kind: dict[str, str]  # {"group","version","kind"}
    namespace: str | None
    name: str
    obj: dict[str, Any] | None  # the incoming object (after defaulting by the core)
    old_obj: dict[str, Any] | None
    subresource: str  # "" or "status"
    dry_run: bool
    user: dict[str, Any]  # {"username": ..., "groups": [...]}
    # CreateOptions/UpdateOptions/DeleteOptions as received; optional, so the agreed positional
    # fields above stay as they are.
    options: dict[str, Any] | None = None


@dataclass(frozen=True)
class Match:
    """A webhook chosen for a request, with the version its rule named."""

    config_name: str
    webhook: Mapping[str, Any]
    gvr: GVR  # resource as the webhook sees it (differs from the request under Equivalent)
    kind: dict[str, str]


def _in_list(values: Sequence[str] | None, value: str) -> bool:
    if not values:
        return False
    return "*" in values or value in values


def resource_matches(patterns: Sequence[str] | None, resource: str, subresource: str) -> bool:
    """Upstream resource matching: ``*`` is every resource but no subresource, ``*/*`` everything,
    ``pods/*`` every subresource of pods, ``*/status`` the status of everything."""
    for pattern in patterns or ():
        if pattern == "*/*":
            return True
        res, sep, sub = pattern.partition("/")
        if res not in ("*", resource):
            continue
        if not sep and not subresource:
            return True
        if sep and subresource and sub in ("*", subresource):
            return True
    return False


def rule_matches(
    rule: Mapping[str, Any], *, operation: str, gvr: GVR, subresource: str, namespaced: bool
) -> bool:
    """One RuleWithOperations against a request (no selectors)."""
    if not _in_list(rule.get("operations"), operation):
        return False
    if not _in_list(rule.get("apiGroups"), gvr.group):
        return False
    if not _in_list(rule.get("apiVersions"), gvr.version):
        return False
    if not resource_matches(rule.get("resources"), gvr.resource, subresource):
        return False
    scope = rule.get("scope") or "*"
    if scope == "Cluster":
        return not namespaced
    if scope == "Namespaced":
        return namespaced
    return True


def match_webhook(
    webhook: Mapping[str, Any],
    *,
    operation: str,
    gvr: GVR,
    subresource: str,
    namespaced: bool,
    equivalents: Sequence[GVR] = (),
) -> GVR | None:
    """The GVR under which ``webhook``'s rules match the request, or None.

    An exact match wins; with matchPolicy Equivalent (the default) the ``equivalents`` (other
    versions of the same resource) are tried in order next.
    """
    rules = webhook.get("rules") or []
    candidates = [gvr]
    if (webhook.get("matchPolicy") or "Equivalent") == "Equivalent":
        candidates += [g for g in equivalents if g != gvr]
    for cand in candidates:
        for rule in rules:
            if isinstance(rule, Mapping) and rule_matches(
                rule, operation=operation, gvr=cand, subresource=subresource, namespaced=namespaced
            ):
                return cand
    return None


def labels_of(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    if not obj:
        return {}
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, Mapping) else {}


def object_selector_matches(webhook: Mapping[str, Any], attrs: Attributes) -> bool:
    """objectSelector matches when the new or the old object matches (upstream semantics)."""
    selector = webhook.get("objectSelector")
    if not selector:
        return True
    return any(
        o is not None and match_label_selector_object(selector, labels_of(o))
        for o in (attrs.obj, attrs.old_obj)
    )
