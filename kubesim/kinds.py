"""Built-in kinds: the defaulting and validation a real API server applies to them.

Only what clients and controllers observably rely on is modelled: namespaces are Active with the
``kubernetes.io/metadata.name`` label; Jobs get upstream's defaults (backoffLimit 6, completions
and parallelism 1, a generated ``controller-uid`` selector and the ``job-name`` /
``controller-uid`` pod-template labels) and reject a pod template whose restartPolicy is not
Never/OnFailure; pods start Pending; secrets turn ``stringData`` into base64 ``data``; CRDs are
checked for the fields the server needs to serve them and get their status (NamesAccepted,
Established, acceptedNames, storedVersions) synchronously, so they are served at once.
"""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

from kubesim import errors
from kubesim.errors import Cause
from kubesim.resources import ResourceType
from kubesim.timestamps import now_rfc3339

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_MAX = 63
SUBDOMAIN_MAX = 253


def forbidden_cause(field: str, detail: str) -> Cause:
    return errors.forbidden_field(field, detail)


def not_supported_cause(field: str, value: object, supported: list[str]) -> Cause:
    return errors.not_supported(field, value, supported)


def validate_name(rt: ResourceType, name: str) -> list[Cause]:
    if rt.key == ("", "namespaces"):
        ok, limit, what = _DNS1123_LABEL.match(name), LABEL_MAX, "RFC 1123 label"
    elif rt.key == ("", "services"):
        ok, limit, what = _DNS1035_LABEL.match(name), LABEL_MAX, "RFC 1035 label"
    else:
        ok, limit, what = _DNS1123_SUBDOMAIN.match(name), SUBDOMAIN_MAX, "RFC 1123 subdomain"
    if ok and len(name) <= limit:
        return []
    if len(name) > limit:
        return [
            errors.invalid_value("metadata.name", name, f"must be no more than {limit} characters")
        ]
    return [
        errors.invalid_value(
            "metadata.name",
            name,
            f"a lowercase {what} must consist of lower case alphanumeric characters, '-' or '.', and must start "
            "and end with an alphanumeric character",
        )
    ]


QUALIFIED_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
ANNOTATIONS_MAX_BYTES = 256 * 1024  # upstream TotalAnnotationSizeLimitB


def _annotations_size(ann: dict[str, Any]) -> int:
    return sum(len(str(k)) + len(v if isinstance(v, str) else str(v)) for k, v in ann.items())


def _valid_qualified_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > SUBDOMAIN_MAX or not _DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= LABEL_MAX and bool(_QUALIFIED_NAME.match(name))


def validate_metadata(meta: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    labels = meta.get("labels")
    if labels is not None and not isinstance(labels, dict):
        return [errors.type_invalid("metadata.labels", "string", "must be a map")]
    for k, v in (labels or {}).items():
        if not _valid_qualified_key(str(k)):
            causes.append(
                errors.invalid_value(
                    "metadata.labels",
                    k,
                    "name part must consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                )
            )
        if not isinstance(v, str) or len(v) > LABEL_MAX or not _LABEL_VALUE.match(v):
            causes.append(
                errors.invalid_value(
                    f"metadata.labels.{k}" if False else "metadata.labels",
                    v,
                    "a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                )
            )
    ann = meta.get("annotations")
    if ann is not None and not isinstance(ann, dict):
        causes.append(errors.type_invalid("metadata.annotations", "string", "must be a map"))
    for k, v in (ann or {}).items():
        # upstream ValidateAnnotations: each key is a qualified name (checked lower-cased)
        if not _valid_qualified_key(str(k).lower()):
            causes.append(errors.invalid_value("metadata.annotations", k, QUALIFIED_NAME_MESSAGE))
        if not isinstance(v, str):
            causes.append(errors.type_invalid(f"metadata.annotations.{k}", v, "must be a string"))
    if isinstance(ann, dict) and _annotations_size(ann) > ANNOTATIONS_MAX_BYTES:
        causes.append(errors.too_long("metadata.annotations", ANNOTATIONS_MAX_BYTES))
    fins = meta.get("finalizers")
    if fins is not None and not (isinstance(fins, list) and all(isinstance(f, str) for f in fins)):
        causes.append(
            errors.type_invalid("metadata.finalizers", "string", "must be a list of strings")
        )
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        for f in ("apiVersion", "kind", "name", "uid"):
            if not isinstance(ref, dict) or not ref.get(f):
                causes.append(errors.required(f"metadata.ownerReferences[{i}].{f}"))
    return causes


# ---------------------------------------------------------------- defaulting


def default(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if not rt.builtin:
        return
    fn = _DEFAULTERS.get(rt.key)
    if fn is not None:
        fn(obj, old)


def _default_namespace(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    meta = obj.setdefault("metadata", {})
    meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
    status = obj.setdefault("status", {})
    status.setdefault("phase", "Active")
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])


def _default_pod_spec(spec: dict[str, Any], *, restart: str = "Always") -> None:
    """Upstream SetDefaults_PodSpec and what it calls for containers, ports and volumes."""
    spec.setdefault("restartPolicy", restart)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                _default_container(c)
    for v in spec.get("volumes") or []:
        if isinstance(v, dict):
            _default_volume(v)


def _default_container(c: dict[str, Any]) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = str(c.get("image", ""))
    tagless = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
    c.setdefault(
        "imagePullPolicy", "Always" if image.endswith(":latest") or tagless else "IfNotPresent"
    )
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    for e in c.get("env") or []:
        ref = (e.get("valueFrom") or {}).get("fieldRef") if isinstance(e, dict) else None
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(c.get(probe), dict):
            _default_probe(c[probe])


def _default_probe(probe: dict[str, Any]) -> None:
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("path", "/")
        probe["httpGet"].setdefault("scheme", "HTTP")


_VOLUME_MODES = ("secret", "configMap", "downwardAPI", "projected")
DEFAULT_VOLUME_MODE = 0o644  # upstream's defaultMode 420 for secret/configMap/... volumes


def _default_volume(v: dict[str, Any]) -> None:
    sources = [k for k in v if k != "name"]
    if not sources:
        v["emptyDir"] = {}  # upstream: a volume without a source is an emptyDir
    for kind in _VOLUME_MODES:
        if isinstance(v.get(kind), dict):
            v[kind].setdefault("defaultMode", DEFAULT_VOLUME_MODE)


def _default_pod(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    _default_pod_spec(spec)
    if old is None:
        # the ServiceAccount admission plugin's default (a pod's token volume is not modelled)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        obj.setdefault("status", {}).setdefault("phase", "Pending")
        obj["status"].setdefault("qosClass", "BestEffort")


def _default_job(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("parallelism", 1)
    if spec.get("completionMode", "NonIndexed") == "NonIndexed":
        spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = spec.setdefault("template", {})
    tmeta = template.setdefault("metadata", {})
    tspec = template.setdefault("spec", {})
    if tspec.get("restartPolicy") in ("Never", "OnFailure"):
        # the template gets the pod defaults as upstream's; without a Job restartPolicy it is
        # left alone, for validation to name the missing field
        _default_pod_spec(tspec)
    else:
        for c in tspec.get("containers") or []:
            if isinstance(c, dict):
                c.setdefault("terminationMessagePath", "/dev/termination-log")
                c.setdefault("terminationMessagePolicy", "File")
    if old is None and not spec.get("manualSelector"):
        # upstream generates the selector from the Job's (future) uid; we pick the uid here and
        # the Store keeps it because it never overwrites labels it did not set
        # prepare() may run more than once on one create (before and after admission): keep the
        # uid already chosen for the selector
        picked = (tmeta.get("labels") or {}).get("batch.kubernetes.io/controller-uid")
        cuid = picked or obj.setdefault("metadata", {}).get("uid") or str(uuid.uuid4())
        obj["metadata"]["uid"] = cuid
        name = obj["metadata"].get("name", "")
        labels = tmeta.setdefault("labels", {})
        labels.setdefault("controller-uid", cuid)
        labels.setdefault("batch.kubernetes.io/controller-uid", cuid)
        if name:
            labels.setdefault("job-name", name)
            labels.setdefault("batch.kubernetes.io/job-name", name)
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": cuid}})
        if not obj["metadata"].get("labels"):
            obj["metadata"]["labels"] = dict(
                labels
            )  # upstream copies template labels to a label-less Job


def _default_deployment(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if strategy.get("type") == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
    tspec = spec.setdefault("template", {}).setdefault("spec", {})
    _default_pod_spec(tspec)


def _validate_deployment(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    causes = _validate_containers(
        (template.get("spec") or {}).get("containers"), "spec.template.spec.containers"
    )
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not selector:
        causes.append(errors.required("spec.selector"))
    else:
        from kubesim.selectors import match_label_selector_object

        labels = (template.get("metadata") or {}).get("labels") or {}
        if not match_label_selector_object(selector, labels):
            causes.append(
                errors.invalid_value(
                    "spec.template.metadata.labels",
                    labels,
                    "`selector` does not match template `labels`",
                )
            )
    if old is not None and (old.get("spec") or {}).get("selector") != selector:
        causes.append(errors.invalid_value("spec.selector", selector, "field is immutable"))
    return causes


def preset_uid(rt: ResourceType, obj: dict[str, Any]) -> str | None:
    """The uid defaulting already committed to (a Job's generated selector names it)."""
    if rt.key != ("batch", "jobs") or not rt.builtin:
        return None
    spec = obj.get("spec") or {}
    if spec.get("manualSelector"):
        return None
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    uid = labels.get("batch.kubernetes.io/controller-uid")
    return str(uid) if uid else None


def _default_secret(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    obj.setdefault("type", "Opaque")
    sd = obj.pop("stringData", None)
    if isinstance(sd, dict):
        data = obj.setdefault("data", {})
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def _default_service(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("type") != "ExternalName" and old is None and "clusterIP" not in spec:
        n = abs(hash(obj.get("metadata", {}).get("name", ""))) % 65000
        spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
        spec["clusterIPs"] = [spec["clusterIP"]]
    for p in spec.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
    if old is None:
        obj.setdefault("status", {"loadBalancer": {}})


def _default_pvc(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    if old is None:
        # no provisioner exists: claims bind at once so workloads that mount them can run
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Bound")
        status.setdefault("accessModes", spec.get("accessModes") or ["ReadWriteOnce"])
        req = ((spec.get("resources") or {}).get("requests")) or {}
        if req.get("storage"):
            status.setdefault("capacity", {"storage": req["storage"]})


def _default_event(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if "reason" in obj:
        obj.setdefault("type", "Normal")
    for f in ("eventTime", "firstTimestamp", "lastTimestamp"):
        if f in obj:
            obj[f] = normalize_time(obj[f])


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


def _default_crd(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    names = spec.setdefault("names", {})
    kind = str(names.get("kind", ""))
    names.setdefault("singular", kind.lower())
    names.setdefault("listKind", kind + "List")
    spec.setdefault("scope", "Namespaced")
    spec.setdefault("conversion", {"strategy": "None"})


def normalize_time(value: object) -> object:
    """RFC 3339 with ``Z``: the Python client sends ``2026-11-25 21:30:12.550187+00:00``."""
    if isinstance(value, str) and value.endswith("+00:00"):
        return value[: -len("+00:00")].replace(" ", "T") + "Z"
    return value


def _default_lease(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        for f in ("acquireTime", "renewTime"):
            if f in spec:
                spec[f] = normalize_time(spec[f])


def _default_new_event(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    for f in ("eventTime", "deprecatedFirstTimestamp", "deprecatedLastTimestamp"):
        if f in obj:
            obj[f] = normalize_time(obj[f])
    series = obj.get("series")
    if isinstance(series, dict) and "lastObservedTime" in series:
        series["lastObservedTime"] = normalize_time(series["lastObservedTime"])


_DEFAULTERS = {
    ("apps", "deployments"): _default_deployment,
    ("coordination.k8s.io", "leases"): _default_lease,
    ("events.k8s.io", "events"): _default_new_event,
    ("", "namespaces"): _default_namespace,
    ("", "pods"): _default_pod,
    ("batch", "jobs"): _default_job,
    ("", "secrets"): _default_secret,
    ("", "services"): _default_service,
    ("", "persistentvolumeclaims"): _default_pvc,
    ("", "events"): _default_event,
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): _default_webhook_config,
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): _default_webhook_config,
    ("apiextensions.k8s.io", "customresourcedefinitions"): _default_crd,
}


# ---------------------------------------------------------------- validation


def validate(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    if not rt.builtin:
        return []
    fn = _VALIDATORS.get(rt.key)
    return fn(obj, old) if fn is not None else []


def _validate_containers(containers: object, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(containers, list) or not containers:
        return [errors.required(path)]
    seen: set[str] = set()
    for i, c in enumerate(containers):
        if not isinstance(c, dict):
            causes.append(errors.type_invalid(f"{path}[{i}]", "string", "must be an object"))
            continue
        name = c.get("name")
        if not name:
            causes.append(errors.required(f"{path}[{i}].name"))
        elif name in seen:
            causes.append(errors.duplicate(f"{path}[{i}].name", name))
        else:
            seen.add(str(name))
        if not c.get("image"):
            causes.append(errors.required(f"{path}[{i}].image"))
    return causes


def _validate_pod(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = _validate_containers(spec.get("containers"), "spec.containers")
    rp = spec.get("restartPolicy")
    if rp not in ("Always", "OnFailure", "Never"):
        causes.append(
            errors.not_supported("spec.restartPolicy", rp, ["Always", "OnFailure", "Never"])
        )
    if old is not None:
        old_spec = dict(old.get("spec") or {})
        new_spec = dict(spec)
        for s in (old_spec, new_spec):
            s.pop("activeDeadlineSeconds", None)
            s.pop("nodeName", None)
            s["containers"] = [
                {k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c
                for c in (s.get("containers") or [])
            ]
        if old_spec != new_spec:
            causes.append(
                errors.forbidden_field(
                    "spec",
                    "pod updates may not change fields other than "
                    "`spec.containers[*].image`, `spec.activeDeadlineSeconds` "
                    "or `spec.tolerations` (only additions to existing tolerations)",
                )
            )
    return causes


def _validate_job(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    tspec = ((spec.get("template") or {}).get("spec")) or {}
    causes = _validate_containers(tspec.get("containers"), "spec.template.spec.containers")
    rp = tspec.get("restartPolicy")
    if rp not in ("OnFailure", "Never"):
        if rp is None:
            causes.append(
                errors.required(
                    "spec.template.spec.restartPolicy", 'valid values: "OnFailure", "Never"'
                )
            )
        else:
            causes.append(
                errors.not_supported("spec.template.spec.restartPolicy", rp, ["OnFailure", "Never"])
            )
    for f in (
        "backoffLimit",
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    ):
        v = spec.get(f)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            causes.append(
                errors.invalid_value(f"spec.{f}", v, "must be greater than or equal to 0")
            )
    ads = spec.get("activeDeadlineSeconds")
    if isinstance(ads, int) and ads == 0:
        causes.append(
            errors.invalid_value("spec.activeDeadlineSeconds", ads, "must be greater than 0")
        )
    if old is not None:
        old_spec = old.get("spec") or {}
        if old_spec.get("template") != spec.get("template") and not old_spec.get("suspend"):
            causes.append(errors.invalid_value("spec.template", "object", "field is immutable"))
        if old_spec.get("selector") != spec.get("selector"):
            causes.append(errors.invalid_value("spec.selector", "object", "field is immutable"))
        if old_spec.get("completions") != spec.get("completions"):
            causes.append(
                errors.invalid_value(
                    "spec.completions", spec.get("completions"), "field is immutable"
                )
            )
    return causes


def _validate_configmap(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    for f in ("data", "binaryData"):
        v = obj.get(f)
        if v is None:
            continue
        if not isinstance(v, dict):
            causes.append(errors.type_invalid(f, "string", "must be a map of strings"))
            continue
        for k, val in v.items():
            if not isinstance(val, str):
                causes.append(errors.type_invalid(f"{f}[{k}]", _kind_of(val), "must be a string"))
    return causes


def _kind_of(v: object) -> str:
    return type(v).__name__


def _validate_lease(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    v = spec.get("leaseDurationSeconds")
    if v is not None and (not isinstance(v, int) or v <= 0):
        return [errors.invalid_value("spec.leaseDurationSeconds", v, "must be greater than 0")]
    return []


def _validate_event(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    io = obj.get("involvedObject")
    if not isinstance(io, dict):
        return [errors.required("involvedObject")]
    ns = (obj.get("metadata") or {}).get("namespace")
    if io.get("namespace") and ns and io.get("namespace") != ns:
        return [
            errors.invalid_value(
                "involvedObject.namespace", io.get("namespace"), "does not match event.namespace"
            )
        ]
    return []


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
        elif name.count(".") < 2 and not _DNS1123_SUBDOMAIN.match(name):
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


def _validate_crd(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = _crd_name_causes(obj, spec)
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            errors.not_supported("spec.scope", spec.get("scope"), ["Cluster", "Namespaced"])
        )
    causes += _crd_version_causes(spec.get("versions"))
    if old is not None:
        causes += _crd_immutable_causes(spec, old.get("spec") or {})
    return causes


def _crd_group_and_plural(spec: dict[str, Any]) -> tuple[str, str]:
    return str(spec.get("group") or ""), str((spec.get("names") or {}).get("plural") or "")


def _crd_name_causes(obj: dict[str, Any], spec: dict[str, Any]) -> list[Cause]:
    """spec.group, spec.names and the object's name, which must be ``<plural>.<group>``."""
    causes: list[Cause] = []
    group, plural = _crd_group_and_plural(spec)
    if not group:
        causes.append(errors.required("spec.group"))
    elif "." not in group:
        causes.append(
            errors.invalid_value("spec.group", group, "should be a domain with at least one dot")
        )
    if not plural:
        causes.append(errors.required("spec.names.plural"))
    if not (spec.get("names") or {}).get("kind"):
        causes.append(errors.required("spec.names.kind"))
    name = (obj.get("metadata") or {}).get("name")
    if group and plural and name != f"{plural}.{group}":
        causes.append(
            errors.invalid_value("metadata.name", name, 'must be spec.names.plural+"."+spec.group')
        )
    return causes


def _crd_version_causes(versions: Any) -> list[Cause]:
    """One storage version, and every version named with an object schema at its root."""
    if not isinstance(versions, list) or not versions:
        return [errors.required("spec.versions")]
    causes: list[Cause] = []
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if len(storage) != 1:
        causes.append(
            errors.invalid_value(
                "spec.versions",
                len(storage),
                "must have exactly one version marked as storage version",
            )
        )
    for i, v in enumerate(versions):
        if not isinstance(v, dict) or not v.get("name"):
            causes.append(errors.required(f"spec.versions[{i}].name"))
            continue
        sch = (v.get("schema") or {}).get("openAPIV3Schema")
        if sch is None:
            causes.append(
                errors.required(
                    f"spec.versions[{i}].schema.openAPIV3Schema", "schemas are required"
                )
            )
        elif isinstance(sch, dict) and sch.get("type") != "object":
            causes.append(
                errors.invalid_value(
                    f"spec.versions[{i}].schema.openAPIV3Schema.type",
                    sch.get("type"),
                    "must be object at the root",
                )
            )
    return causes


def _crd_immutable_causes(spec: dict[str, Any], old_spec: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    group, plural = _crd_group_and_plural(spec)
    if old_spec.get("group") != spec.get("group"):
        causes.append(errors.invalid_value("spec.group", group, "field is immutable"))
    if (old_spec.get("names") or {}).get("plural") != plural:
        causes.append(errors.invalid_value("spec.names.plural", plural, "field is immutable"))
    if old_spec.get("scope") != spec.get("scope"):
        causes.append(errors.invalid_value("spec.scope", spec.get("scope"), "field is immutable"))
    return causes


_VALIDATORS = {
    ("apps", "deployments"): _validate_deployment,
    ("", "pods"): _validate_pod,
    ("batch", "jobs"): _validate_job,
    ("", "configmaps"): _validate_configmap,
    ("coordination.k8s.io", "leases"): _validate_lease,
    ("", "events"): _validate_event,
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): _validate_webhook_config,
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): _validate_webhook_config,
    ("apiextensions.k8s.io", "customresourcedefinitions"): _validate_crd,
}


def crd_prepare(crd: dict[str, Any]) -> None:
    """Set a CRD's status as the apiextensions controllers would, synchronously."""
    spec = crd.get("spec") or {}
    status = crd.setdefault("status", {})
    ts = now_rfc3339()
    old_conds = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}

    def cond(typ: str, reason: str, message: str) -> dict[str, Any]:
        prev = old_conds.get(typ)
        if prev and prev.get("status") == "True":
            return prev
        return {
            "type": typ,
            "status": "True",
            "lastTransitionTime": ts,
            "reason": reason,
            "message": message,
        }

    status["conditions"] = [
        cond("NamesAccepted", "NoConflicts", "no conflicts found"),
        cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
    ]
    names = dict(spec.get("names") or {})
    status["acceptedNames"] = names
    stored = list(status.get("storedVersions") or [])
    for v in spec.get("versions") or []:
        if isinstance(v, dict) and v.get("storage") and v.get("name") not in stored:
            stored.append(v["name"])
    status["storedVersions"] = stored


# -------------------------------------------------------------------------------- pod containers

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def pod_container_names(pod: dict[str, Any]) -> list[str]:
    """Every container name of a pod in upstream's visiting order: init, app, ephemeral."""
    spec = pod.get("spec") or {}
    return [
        str(c.get("name", ""))
        for field in ("initContainers", "containers", "ephemeralContainers")
        for c in (spec.get(field) or [])
        if isinstance(c, dict)
    ]


def default_container(pod: dict[str, Any]) -> str:
    """The container a log means when none is named, as kubectl picks it: the
    ``kubectl.kubernetes.io/default-container`` annotation when it names a container of the pod,
    else the first app container ("" for a pod without containers)."""
    annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get(
        DEFAULT_CONTAINER_ANNOTATION
    )
    if annotated and annotated in pod_container_names(pod):
        return str(annotated)
    containers = (pod.get("spec") or {}).get("containers") or []
    return str(containers[0].get("name", "")) if containers else ""


def log_container(pod: dict[str, Any], requested: str | None) -> str:
    """The container ``GET pods/{name}/log?container=`` reads, by the API server's rule
    (upstream ``validateContainer``): a named container must exist (init and ephemeral ones
    included); without a name a pod must have exactly one app container (the annotation is
    kubectl's business: kubectl always sends ``container=``). Raises 400 BadRequest."""
    name = str((pod.get("metadata") or {}).get("name", ""))
    names = pod_container_names(pod)
    if requested:
        if requested not in names:
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    containers = (pod.get("spec") or {}).get("containers") or []
    if len(containers) == 1:
        return str(containers[0].get("name", ""))
    if not containers:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    # Go's %s of a []string: "[a b c]"
    raise errors.bad_request(
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
    )
