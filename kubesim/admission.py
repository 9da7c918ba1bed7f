"""Admission webhooks, called the way kube-apiserver calls them.

For every create/update/patch/apply that reaches the HTTP layer, the core calls
``Admission.mutate`` (before schema validation) and ``Admission.validate`` (after it). Each reads
the Mutating/ValidatingWebhookConfigurations currently in the Store, so a configuration takes
effect as soon as it is created, exactly like a real API server.

What is emulated (see reference section 15):

* rule matching on operations, apiGroups, apiVersions, resources (``*``, ``*/*``, ``pods/*``,
  ``*/status``, explicit ``jobs/status``) and scope; ``namespaceSelector`` (labels of the
  namespace; for a Namespace object its own labels) and ``objectSelector`` (new or old object);
* ``matchPolicy: Equivalent`` (default): a rule naming another served version of the same
  group/resource also matches; the webhook then sees ``kind``/``resource`` of the version its rule
  named and the object with that apiVersion (kubesim stores one schema per resource, so conversion
  is only the apiVersion), while ``requestKind``/``requestResource`` keep what the client sent;
* an AdmissionReview v1 POSTed to ``url`` or to a ``service`` over HTTPS. The server certificate
  is verified against ``clientConfig.caBundle`` (system roots when empty) and, as upstream, the
  host name checked is the URL host or ``<service>.<namespace>.svc``. There is no cluster DNS, so a
  service reference is resolved through ``Admission.service_resolver`` (a mapping or callable
  ``(namespace, name, port) -> base URL``); unresolved, the default URL does not resolve and the
  call fails like any unreachable webhook;
* ``timeoutSeconds`` (default 10, clamped to 1..30) and ``failurePolicy`` (default Fail): a call
  error, timeout, non-2xx status or invalid reply is 500 InternalError
  ``failed calling webhook "<name>": ...`` under Fail and is logged and skipped under Ignore;
* mutating webhooks run serially (configurations sorted by name, webhooks in list order), each
  seeing the previous one's output; base64 JSONPatch replies are applied (RFC 6902, all six ops);
* validating webhooks run one after the other (upstream runs them in parallel; only latency
  differs) and the first denial wins;
* a denial is ``ApiError(code, reason, 'admission webhook "<name>" denied the request: <msg>')``
  with code from ``status.code`` (default 403, raised to at least 400) and ``status.details``
  passed through; ``warnings`` are returned to the caller for ``Warning`` headers;
* dry-run requests reach only webhooks whose ``sideEffects`` is None or NoneOnDryRun.

Not emulated: ``reinvocationPolicy: IfNeeded`` (each mutating webhook is called once),
``matchConditions`` (ignored: a webhook with conditions is called for every rule match), CONNECT,
auditAnnotations, client certificates.

This module owns the admission chain (``Admission``: reading the configurations from the Store,
namespaceSelector, failurePolicy, applying patches); its pure parts are ``admissionrules``
(which webhooks a request reaches), ``admissionreview`` (the review sent and the reply checked),
``rfc6902`` (JSON Patch) and ``webhookcall`` (the HTTPS call); their names are re-exported here.

Invariant: no lock is held while a webhook is called, and nothing here writes to the Store.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

# re-exported: the admission API in one place (tests and the server import these from here)
from kubesim.admissionreview import REVIEW_VERSIONS as REVIEW_VERSIONS
from kubesim.admissionreview import WebhookCallError as WebhookCallError
from kubesim.admissionreview import build_review as build_review
from kubesim.admissionreview import call_failure as call_failure
from kubesim.admissionreview import check_response as check_response
from kubesim.admissionreview import decode_patch as decode_patch
from kubesim.admissionreview import denial_error as denial_error
from kubesim.admissionreview import with_api_version
from kubesim.admissionrules import Attributes as Attributes
from kubesim.admissionrules import Match as Match
from kubesim.admissionrules import labels_of
from kubesim.admissionrules import match_webhook as match_webhook
from kubesim.admissionrules import object_selector_matches as object_selector_matches
from kubesim.admissionrules import resource_matches as resource_matches
from kubesim.admissionrules import rule_matches as rule_matches
from kubesim.errors import ApiError
from kubesim.resources import GVR
from kubesim.rfc6902 import JSONPatchError as JSONPatchError
from kubesim.rfc6902 import apply_json_patch as apply_json_patch
from kubesim.selectors import match_label_selector_object
from kubesim.webhookcall import post_review as post_review
from kubesim.webhookcall import ssl_context as ssl_context

if TYPE_CHECKING:
    from kubesim.store import Store

log = logging.getLogger(__name__)

MUTATING = GVR("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
VALIDATING = GVR("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")
NAMESPACES = GVR("", "v1", "namespaces")
CRDS = GVR("apiextensions.k8s.io", "v1", "customresourcedefinitions")

DEFAULT_TIMEOUT_SECONDS = 10  # upstream default for timeoutSeconds
MAX_TIMEOUT_SECONDS = 30  # upstream validation range is 1..30

ServiceResolver = Mapping[tuple[str, str, int], str] | Callable[[str, str, int], str | None]


class Admission:
    """Calls the webhooks configured in ``store``; thread-safe (no shared mutable state besides
    the resolver, which callers set once)."""

    def __init__(self, store: Store, *, service_resolver: ServiceResolver | None = None) -> None:
        self.store = store
        # (namespace, name, port) -> base URL such as "https://127.0.0.1:8443": there is no
        # cluster DNS, so tests and the demo say where a service reference really listens.
        self.service_resolver: ServiceResolver | None = service_resolver

    def mutate(self, attrs: Attributes) -> tuple[dict[str, Any], list[str]]:
        """Run the matching mutating webhooks in order; return (object, warnings)."""
        obj = copy.deepcopy(attrs.obj) if attrs.obj is not None else {}
        warnings: list[str] = []
        for match in self._matches(MUTATING, attrs):
            response = self._call(match, dataclasses.replace(attrs, obj=obj), mutating=True)
            if response is None:
                continue
            warnings += [str(w) for w in response.get("warnings") or []]
            if not response["allowed"]:
                raise denial_error(str(match.webhook.get("name")), response)
            if response.get("patch"):
                obj = self._apply_patch(match, obj, response, converted=match.gvr != attrs.gvr)
        return obj, warnings

    def validate(self, attrs: Attributes) -> list[str]:
        """Run the matching validating webhooks; return their warnings or raise the first
        denial/failure."""
        warnings: list[str] = []
        for match in self._matches(VALIDATING, attrs):
            response = self._call(match, attrs, mutating=False)
            if response is None:
                continue
            warnings += [str(w) for w in response.get("warnings") or []]
            if not response["allowed"]:
                raise denial_error(str(match.webhook.get("name")), response)
        return warnings

    # -- internals ---------------------------------------------------------------------------

    def _matches(self, config_gvr: GVR, attrs: Attributes) -> list[Match]:
        configs = self.store.list(config_gvr)
        if not configs:
            return []
        configs.sort(key=lambda c: str((c.get("metadata") or {}).get("name", "")))
        namespaced = bool(attrs.namespace)
        equivalents: list[GVR] | None = None
        ns_labels: Mapping[str, str] | None = None
        out: list[Match] = []
        for config in configs:
            for webhook in config.get("webhooks") or []:
                if not isinstance(webhook, Mapping):
                    continue
                if equivalents is None:
                    equivalents = self._equivalents(attrs.gvr)
                matched = match_webhook(
                    webhook,
                    operation=attrs.operation,
                    gvr=attrs.gvr,
                    subresource=attrs.subresource,
                    namespaced=namespaced,
                    equivalents=equivalents,
                )
                if matched is None:
                    continue
                if webhook.get("namespaceSelector"):
                    if ns_labels is None:
                        ns_labels = self._namespacelabels_of(attrs)
                    if not match_label_selector_object(webhook["namespaceSelector"], ns_labels):
                        continue
                if not object_selector_matches(webhook, attrs):
                    continue
                kind = dict(attrs.kind)
                kind.update(group=matched.group, version=matched.version)
                out.append(
                    Match(
                        str((config.get("metadata") or {}).get("name", "")), webhook, matched, kind
                    )
                )
        return out

    def _namespacelabels_of(self, attrs: Attributes) -> Mapping[str, str]:
        if attrs.gvr == NAMESPACES:  # a Namespace is matched by its own labels
            return labels_of(attrs.obj or attrs.old_obj)
        if not attrs.namespace:
            return {}  # cluster-scoped: namespaceSelector does not apply
        try:
            return labels_of(self.store.get(NAMESPACES, attrs.namespace))
        except ApiError:
            return {}

    def _equivalents(self, gvr: GVR) -> list[GVR]:
        """Other served versions of a custom resource (built-ins here serve one version)."""
        if not gvr.group or "." not in gvr.group:
            return []
        try:
            crd = self.store.get(CRDS, f"{gvr.resource}.{gvr.group}")
        except ApiError:
            return []
        versions = (crd.get("spec") or {}).get("versions") or []
        return [
            GVR(gvr.group, str(v.get("name")), gvr.resource)
            for v in versions
            if isinstance(v, Mapping) and v.get("served", True)
        ]

    def _resolve(self, ref: Mapping[str, Any]) -> tuple[str, str]:
        """(URL to dial, host name the certificate must carry) for a clientConfig."""
        if ref.get("url"):
            url = str(ref["url"])
            return url, urllib.parse.urlsplit(url).hostname or ""
        service = ref.get("service") or {}
        namespace = str(service.get("namespace", ""))
        name = str(service.get("name", ""))
        port = int(service.get("port") or 443)
        path = str(service.get("path") or "")
        host = f"{name}.{namespace}.svc"
        base: str | None = None
        resolver = self.service_resolver
        if isinstance(resolver, Mapping):
            base = resolver.get((namespace, name, port))
        elif resolver is not None:
            base = resolver(namespace, name, port)
        if not base:
            base = f"https://{host}:{port}"
        return base.rstrip("/") + path, host

    def _call(self, match: Match, attrs: Attributes, *, mutating: bool) -> dict[str, Any] | None:
        """Call one webhook; return its checked response, or None when failurePolicy Ignore
        swallowed a failure."""
        webhook = match.webhook
        name = str(webhook.get("name", ""))
        if attrs.dry_run and webhook.get("sideEffects") not in ("None", "NoneOnDryRun"):
            raise ApiError(
                400, "BadRequest", f'admission webhook "{name}" does not support dry run'
            )
        try:
            return self._call_once(match, attrs, mutating=mutating)
        except WebhookCallError as exc:
            if (webhook.get("failurePolicy") or "Fail") == "Ignore":
                log.warning(
                    "webhook call failed; failurePolicy Ignore lets the request through",
                    extra={"webhook": name, "error": str(exc)},
                )
                return None
            raise call_failure(name, f"failed to call webhook: {exc}") from None

    def _call_once(self, match: Match, attrs: Attributes, *, mutating: bool) -> dict[str, Any]:
        webhook = match.webhook
        versions = [
            v for v in webhook.get("admissionReviewVersions") or ["v1"] if v in REVIEW_VERSIONS
        ]
        if not versions:
            raise WebhookCallError(
                "webhook does not accept a known AdmissionReview version (v1, v1beta1)"
            )
        timeout = webhook.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS
        timeout = min(max(int(timeout), 1), MAX_TIMEOUT_SECONDS)
        client_config = webhook.get("clientConfig") or {}
        url, server_hostname = self._resolve(client_config)
        url += ("&" if "?" in url else "?") + f"timeout={math.ceil(timeout)}s"
        uid = str(uuid.uuid4())
        review = build_review(attrs, match, uid=uid, review_version=versions[0])
        body = json.dumps(review).encode()
        reply = post_review(
            url,
            body,
            server_hostname=server_hostname,
            ca_bundle=client_config.get("caBundle"),
            timeout=float(timeout),
        )
        return check_response(reply, uid=uid, mutating=mutating)

    def _apply_patch(
        self, match: Match, obj: dict[str, Any], response: Mapping[str, Any], *, converted: bool
    ) -> dict[str, Any]:
        """Apply a reply's patch to the object as the webhook saw it (its rule's version), then
        give the result back the request's apiVersion."""
        name = str(match.webhook.get("name", ""))
        try:
            ops = decode_patch(response)
            target = with_api_version(obj, match.gvr) if converted else obj
            patched = apply_json_patch(target, ops)
        except JSONPatchError as exc:
            raise call_failure(name, f"JSON patch could not be applied: {exc}") from None
        if not isinstance(patched, dict):
            raise call_failure(name, "the patched object is not a JSON object")
        if converted:
            patched["apiVersion"] = obj.get("apiVersion")
        before = obj.get("metadata") or {}
        after = patched.get("metadata") or {}
        for key in ("name", "namespace"):
            if before.get(key) != after.get(key):
                raise call_failure(name, f"the webhook's patch may not change metadata.{key}")
        return patched
