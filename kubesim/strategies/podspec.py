"""Pod spec rules shared by the kinds that carry one (pods, and the templates of Jobs and
Deployments): upstream's ``SetDefaults_PodSpec`` and what it calls for containers, ports, probes
and volumes, container validation, and the wide table columns of a pod template."""

from __future__ import annotations

from typing import Any

from kubesim import errors
from kubesim.errors import Cause
from kubesim.tables import Column, col, field, selector_text


def default_pod_spec(spec: dict[str, Any], *, restart: str = "Always") -> None:
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


def validate_containers(containers: object, path: str) -> list[Cause]:
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


def template_containers(obj: dict[str, Any], key: str) -> str:
    containers = field(obj, "spec", "template", "spec", "containers", default=[]) or []
    return ",".join(c.get(key, "") for c in containers)


POD_TEMPLATE_COLUMNS: list[Column] = [
    (col("Containers", priority=1), lambda o: template_containers(o, "name")),
    (col("Images", priority=1), lambda o: template_containers(o, "image")),
    (col("Selector", priority=1), lambda o: selector_text(field(o, "spec", "selector"))),
]
