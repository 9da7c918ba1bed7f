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

Invariant: no lock is held while a webhook is called, and nothing here writes to the Store.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import functools
import http.client
import json
import logging
import math
import socket
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubesim.errors import ApiError, internal
from kubesim.resources import GVR
from kubesim.selectors import match_label_selector_object

if TYPE_CHECKING:
    from kubesim.store import Store

log = logging.getLogger(__name__)

MUTATING = GVR("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
VALIDATING = GVR("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")
NAMESPACES = GVR("", "v1", "namespaces")
CRDS = GVR("apiextensions.k8s.io", "v1", "customresourcedefinitions")

DEFAULT_TIMEOUT_SECONDS = 10  # upstream default for timeoutSeconds
MAX_TIMEOUT_SECONDS = 30  # upstream validation range is 1..30
MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # a webhook reply larger than this is treated as invalid
REVIEW_VERSIONS = ("v1", "v1beta1")  # the shapes are identical for what we send

OPTIONS_KIND = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}

ServiceResolver = Mapping[tuple[str, str, int], str] | Callable[[str, str, int], str | None]


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


class WebhookCallError(Exception):
    """The webhook could not be called or answered nonsense; failurePolicy decides what follows."""


# --------------------------------------------------------------------------------------------
# Rule matching (pure)


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


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
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
        o is not None and match_label_selector_object(selector, _labels(o))
        for o in (attrs.obj, attrs.old_obj)
    )


# --------------------------------------------------------------------------------------------
# AdmissionReview building and reply checking (pure)


def build_review(
    attrs: Attributes, match: Match, *, uid: str, review_version: str = "v1"
) -> dict[str, Any]:
    """The AdmissionReview request for ``attrs`` as ``match``'s webhook sees it."""
    obj = attrs.obj
    old = attrs.old_obj
    if match.gvr != attrs.gvr:
        obj = _with_api_version(obj, match.gvr)
        old = _with_api_version(old, match.gvr)
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


def _with_api_version(obj: dict[str, Any] | None, gvr: GVR) -> dict[str, Any] | None:
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


# --------------------------------------------------------------------------------------------
# RFC 6902 JSON Patch (pure)


class JSONPatchError(ValueError):
    pass


def _decode_pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise JSONPatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise JSONPatchError(f"invalid array index {token!r}")
    idx = int(token)
    if idx > len(container) or (idx == len(container) and not allow_end):
        raise JSONPatchError(f"array index {idx} out of range")
    return idx


def _parent(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict):
            if tok not in cur:
                raise JSONPatchError(f"path component {tok!r} not found")
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_index(cur, tok, allow_end=False)]
        else:
            raise JSONPatchError(f"cannot traverse into {type(cur).__name__}")
    return cur


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    tok = tokens[-1]
    if isinstance(parent, dict):
        if tok not in parent:
            raise JSONPatchError(f"path component {tok!r} not found")
        return parent[tok]
    if isinstance(parent, list):
        return parent[_index(parent, tok, allow_end=False)]
    raise JSONPatchError("cannot index a scalar")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    tok = tokens[-1]
    if isinstance(parent, dict):
        parent[tok] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tok, allow_end=True), value)
    else:
        raise JSONPatchError("cannot add to a scalar")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        raise JSONPatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    tok = tokens[-1]
    if isinstance(parent, dict):
        if tok not in parent:
            raise JSONPatchError(f"path component {tok!r} not found")
        return doc, parent.pop(tok)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, tok, allow_end=False))
    raise JSONPatchError("cannot remove from a scalar")


def apply_json_patch(doc: Any, ops: Any) -> Any:
    """Apply an RFC 6902 patch to a deep copy of ``doc``; raise JSONPatchError on any problem."""
    if not isinstance(ops, list):
        raise JSONPatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise JSONPatchError(f"invalid operation {op!r}")
        kind = op.get("op")
        tokens = _decode_pointer(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise JSONPatchError(f"operation {kind!r} needs a value")
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, tokens)
        elif kind == "replace":
            doc, _ = _remove(doc, tokens) if tokens else (doc, None)
            doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            if not isinstance(op.get("from"), str):
                raise JSONPatchError(f"operation {kind!r} needs 'from'")
            src = _decode_pointer(op["from"])
            if kind == "move":
                if tokens[: len(src)] == src and len(tokens) > len(src):
                    raise JSONPatchError("cannot move a value into one of its children")
                doc, value = _remove(doc, src)
            else:
                value = copy.deepcopy(_get(doc, src))
            doc = _add(doc, tokens, value)
        elif kind == "test":
            if _get(doc, tokens) != op["value"]:
                raise JSONPatchError(f"test operation failed at {op['path']!r}")
        else:
            raise JSONPatchError(f"unknown operation {kind!r}")
    return doc


def decode_patch(response: Mapping[str, Any]) -> list[Any]:
    try:
        raw = base64.b64decode(str(response["patch"]), validate=True)
        ops = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise JSONPatchError(f"cannot decode the webhook's patch: {exc}") from exc
    if not isinstance(ops, list):
        raise JSONPatchError("the webhook's patch is not a JSON array")
    return ops


# --------------------------------------------------------------------------------------------
# The HTTPS call


class _HTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to ``host:port`` while verifying the certificate for ``server_hostname``: a service
    reference is dialled at its resolved loopback address but must present the service's name."""

    def __init__(
        self, host: str, port: int, *, server_hostname: str, context: ssl.SSLContext, timeout: float
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_hostname = server_hostname
        self._ctx = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            self.sock = self._ctx.wrap_socket(sock, server_hostname=self._server_hostname)
        except BaseException:
            sock.close()
            raise


@functools.lru_cache(maxsize=64)
def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verify against the base64 PEM caBundle, or the system roots when it is empty.

    Cached per bundle: building a context parses the CA each time, and a context is safe to
    share between threads for client connections."""
    if not ca_bundle:
        return ssl.create_default_context()
    try:
        pem = base64.b64decode(ca_bundle, validate=False).decode("ascii")
        return ssl.create_default_context(cadata=pem)
    except (binascii.Error, UnicodeDecodeError, ssl.SSLError, ValueError) as exc:
        raise WebhookCallError(f"invalid caBundle: {exc}") from exc


def post_review(
    url: str, body: bytes, *, server_hostname: str | None, ca_bundle: str | None, timeout: float
) -> Any:
    """POST the review and return the decoded JSON reply; any failure is WebhookCallError with
    a message shaped like the Go client's (``Post "<url>": <error>``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https":
        raise WebhookCallError(f'Post "{url}": webhooks must be called over https')
    host = parts.hostname or ""
    port = parts.port or 443
    ctx = ssl_context(ca_bundle)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn = _HTTPSConnection(
        host, port, server_hostname=server_hostname or host, context=ctx, timeout=timeout
    )
    deadline = time.monotonic() + timeout
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        resp = conn.getresponse()
        data = resp.read(MAX_RESPONSE_BYTES + 1)
    except TimeoutError:
        raise WebhookCallError(f'Post "{url}": context deadline exceeded') from None
    except ssl.SSLCertVerificationError as exc:
        raise WebhookCallError(
            f'Post "{url}": tls: failed to verify certificate: {exc.verify_message}'
        ) from None
    except ConnectionRefusedError:
        raise WebhookCallError(
            f'Post "{url}": dial tcp {host}:{port}: connect: connection refused'
        ) from None
    except socket.gaierror:
        raise WebhookCallError(f'Post "{url}": dial tcp: lookup {host}: no such host') from None
    except (OSError, http.client.HTTPException) as exc:
        raise WebhookCallError(f'Post "{url}": {exc or type(exc).__name__}') from None
    finally:
        conn.close()
    if time.monotonic() > deadline:
        raise WebhookCallError(f'Post "{url}": context deadline exceeded')
    if len(data) > MAX_RESPONSE_BYTES:
        raise WebhookCallError("webhook response is too large")
    if not 200 <= resp.status < 300:
        snippet = data[:200].decode("utf-8", "replace")
        raise WebhookCallError(
            f"the server responded with the status code {resp.status} but did not return more "
            f"information: {snippet}"
        )
    try:
        return json.loads(data)
    except ValueError as exc:
        raise WebhookCallError(f"received invalid webhook response: {exc}") from None


# --------------------------------------------------------------------------------------------
# The admission chain


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
                        ns_labels = self._namespace_labels(attrs)
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

    def _namespace_labels(self, attrs: Attributes) -> Mapping[str, str]:
        if attrs.gvr == NAMESPACES:  # a Namespace is matched by its own labels
            return _labels(attrs.obj or attrs.old_obj)
        if not attrs.namespace:
            return {}  # cluster-scoped: namespaceSelector does not apply
        try:
            return _labels(self.store.get(NAMESPACES, attrs.namespace))
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
            target = _with_api_version(obj, match.gvr) if converted else obj
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
