"""What every kind shares: name and metadata validation as the real API server's
(``ValidateObjectMeta``: names as RFC 1123/1035, labels, annotation keys and sizes,
finalizers, owner references), RFC 3339 time normalization, and which container of a pod its
logs are read from. Each kind's own rules are its strategy (``kubesim/strategies/``).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from kubesim import errors
from kubesim.errors import Cause
from kubesim.resources import ResourceType

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
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
        ok, limit, what = DNS1123_SUBDOMAIN.match(name), SUBDOMAIN_MAX, "RFC 1123 subdomain"
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


METADATA_VALIDATED = ("labels", "annotations", "finalizers", "ownerReferences")  # and the name


@functools.lru_cache(maxsize=4096)  # label and annotation keys repeat on every write
def _valid_qualified_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > SUBDOMAIN_MAX or not DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= LABEL_MAX and bool(_QUALIFIED_NAME.match(name))


def validate_metadata(meta: dict[str, Any]) -> list[Cause]:
    """The causes of invalid ``METADATA_VALIDATED`` fields (the name is ``validate_name``'s)."""
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


def normalize_time(value: object) -> object:
    """RFC 3339 with ``Z``: the Python client sends ``2026-11-25 21:30:12.550187+00:00``."""
    if isinstance(value, str) and value.endswith("+00:00"):
        return value[: -len("+00:00")].replace(" ", "T") + "Z"
    return value


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
