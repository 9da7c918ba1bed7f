"""Checks of a step's data passing: input and output parameters (names, one source each,
references to ancestors and to outputs they declare) and artifacts (names, paths, sources, the
workspace they travel through, and the mount points jobflow.artifacts adds to the Job).
"""

from __future__ import annotations

from collections.abc import Mapping

from jobflow import artifacts, decoded, names
from jobflow.validation.context import Context, dns_subdomain_message


def declared_outputs(step: Mapping[str, object]) -> tuple[set[str], set[str]]:
    """The names of the output (parameters, artifacts) a step declares."""
    outputs = decoded.mapping_or_none(step.get("outputs"))
    if outputs is None:
        return set(), set()
    found: tuple[set[str], set[str]] = (set(), set())
    for slot, field in enumerate(("parameters", "artifacts")):
        for item in decoded.list_or_none(outputs.get(field)) or []:
            entry = decoded.mapping_or_none(item)
            name = decoded.string(entry.get("name")) if entry is not None else None
            if name is not None:
                found[slot].add(name)
    return found


def _is_clean_path(path: str) -> bool:
    return path.startswith("/") and ".." not in path.split("/")


def check_inputs(ctx: Context, inputs: Mapping[str, object], step: str, base: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(decoded.list_or_none(inputs.get("parameters")) or []):
        param = decoded.mapping_or_none(item)
        if param is not None:
            check_input_parameter(ctx, param, step, f"{base}.parameters[{i}]", seen)
    seen = set()
    for i, item in enumerate(decoded.list_or_none(inputs.get("artifacts")) or []):
        artifact = decoded.mapping_or_none(item)
        if artifact is not None:
            check_input_artifact(ctx, artifact, step, f"{base}.artifacts[{i}]", seen)


def check_name(
    ctx: Context, item: Mapping[str, object], path: str, seen: set[str], what: str
) -> None:
    name = decoded.string(item.get("name"))
    if name is None:
        return
    if not names.is_dns1123_subdomain(name):
        ctx.add(f"invalid-{what}-name", f"{path}.name", dns_subdomain_message(what, name))
    elif name in seen:
        ctx.add(f"duplicate-{what}-name", f"{path}.name", f"{what} {name!r} is declared twice")
    seen.add(name)


def check_input_parameter(
    ctx: Context, param: Mapping[str, object], step: str, path: str, seen: set[str]
) -> None:
    check_name(ctx, param, path, seen, "parameter")
    has_value = param.get("value") is not None
    value_from = decoded.mapping_or_none(param.get("valueFrom"))
    if has_value and param.get("valueFrom") is not None:
        ctx.add("parameter-multiple-sources", path, "set either value or valueFrom, not both")
    elif not has_value and param.get("valueFrom") is None:
        ctx.add("parameter-source-required", path, "set value or valueFrom")
    if value_from is None:
        return
    vpath = f"{path}.valueFrom"
    sources = [
        key
        for key in (
            "jsonPath",
            "configMapKeyRef",
            "secretKeyRef",
            "stepOutputRef",
            "flowParameter",
            "flowOutcome",
        )
        if value_from.get(key) is not None
    ]
    if not sources:
        ctx.add(
            "value-from-source-required",
            vpath,
            "set one of stepOutputRef, flowParameter, flowOutcome, configMapKeyRef,"
            " secretKeyRef or jsonPath",
        )
    elif len(sources) > 1:
        ctx.add("value-from-multiple-sources", vpath, f"set only one of {', '.join(sources)}")
    for key in ("configMapKeyRef", "secretKeyRef"):
        ref = decoded.mapping_or_none(value_from.get(key))
        if ref is None:
            continue
        ref_name = decoded.string(ref.get("name"))
        if ref_name is not None and not names.is_dns1123_subdomain(ref_name):
            ctx.add(
                "invalid-key-ref",
                f"{vpath}.{key}.name",
                dns_subdomain_message("name", ref_name),
            )
        if decoded.string(ref.get("key")) == "":
            ctx.add("invalid-key-ref", f"{vpath}.{key}.key", "key must not be empty")
    flow_parameter = decoded.string(value_from.get("flowParameter"))
    if flow_parameter is not None and flow_parameter not in ctx.flow_parameters:
        known = ", ".join(sorted(ctx.flow_parameters)) or "none"
        ctx.add(
            "unknown-flow-parameter",
            f"{vpath}.flowParameter",
            f"{flow_parameter!r} is not declared in spec.parameters (declared: {known})",
        )
    json_path = decoded.string(value_from.get("jsonPath"))
    if json_path is not None:
        check_input_json_path(ctx, json_path, step, f"{vpath}.jsonPath")
    step_ref = decoded.mapping_or_none(value_from.get("stepOutputRef"))
    if step_ref is not None:
        ref_step = decoded.string(step_ref.get("step"))
        ref_param = decoded.string(step_ref.get("parameter"))
        if ref_step is not None:
            before = len(ctx.problems)
            ctx.check_step_reference(
                ref_step, step, f"{vpath}.stepOutputRef.step", code_prefix="input"
            )
            declared = ctx.outputs.get(ref_step)
            if (
                len(ctx.problems) == before
                and ref_param is not None
                and declared is not None
                and ref_param not in declared[0]
            ):
                ctx.add(
                    "unknown-output-parameter",
                    f"{vpath}.stepOutputRef.parameter",
                    f"step {ref_step!r} declares no output parameter {ref_param!r}",
                )


def check_input_json_path(ctx: Context, json_path: str, step: str, path: str) -> None:
    prefix, colon, expr = json_path.partition(":")
    if not colon:
        ctx.add(
            "invalid-json-path",
            path,
            "an input jsonPath reads another step's Job: write '<step>:$.status...'",
        )
        return
    if not names.is_dns1123_subdomain(prefix) or not expr.startswith("$"):
        ctx.add(
            "invalid-json-path",
            path,
            f"{json_path!r} must look like '<step>:$.expression'",
        )
        return
    ctx.check_step_reference(prefix, step, path, code_prefix="input")


def check_input_artifact(
    ctx: Context, artifact: Mapping[str, object], step: str, path: str, seen: set[str]
) -> None:
    check_name(ctx, artifact, path, seen, "artifact")
    target = decoded.string(artifact.get("path"))
    if target is not None and not _is_clean_path(target):
        ctx.add(
            "invalid-artifact-path",
            f"{path}.path",
            f"must be an absolute path without '..'; got {target!r}",
        )
    source = decoded.string(artifact.get("from"))
    http = decoded.mapping_or_none(artifact.get("http"))
    if artifact.get("from") is not None and artifact.get("http") is not None:
        ctx.add("artifact-multiple-sources", path, "set either from or http, not both")
    elif artifact.get("from") is None and artifact.get("http") is None:
        ctx.add("artifact-source-required", path, "set from (<step>/<artifact>) or http")
    if source is not None:
        parts = source.split("/")
        if len(parts) > 2 or not all(names.is_dns1123_subdomain(p) for p in parts):
            ctx.add(
                "invalid-artifact-from",
                f"{path}.from",
                f"must be '<step>' or '<step>/<artifact>'; got {source!r}",
            )
        else:
            require_workspace(ctx, f"{path}.from")
            before = len(ctx.problems)
            ctx.check_step_reference(parts[0], step, f"{path}.from", code_prefix="input")
            declared = ctx.outputs.get(parts[0])
            if (
                len(parts) == 2
                and len(ctx.problems) == before
                and declared is not None
                and parts[1] not in declared[1]
            ):
                ctx.add(
                    "unknown-output-artifact",
                    f"{path}.from",
                    f"step {parts[0]!r} declares no output artifact {parts[1]!r}",
                )
    if http is not None:
        url = decoded.string(http.get("url"))
        if url is not None and not url.startswith(("http://", "https://")):
            ctx.add(
                "invalid-artifact-url",
                f"{path}.http.url",
                f"must start with http:// or https://; got {url!r}",
            )


def check_outputs(ctx: Context, outputs: Mapping[str, object], base: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(decoded.list_or_none(outputs.get("parameters")) or []):
        param = decoded.mapping_or_none(item)
        if param is None:
            continue
        path = f"{base}.parameters[{i}]"
        check_name(ctx, param, path, seen, "parameter")
        value_from = decoded.mapping_or_none(param.get("valueFrom"))
        if value_from is None:
            continue
        json_path = decoded.string(value_from.get("jsonPath"))
        key = decoded.string(value_from.get("terminationMessageKey"))
        if json_path is not None and key is not None:
            ctx.add(
                "value-from-multiple-sources",
                f"{path}.valueFrom",
                "set only one of jsonPath, terminationMessageKey",
            )
        if json_path is not None and not json_path.startswith("$"):
            ctx.add(
                "invalid-json-path",
                f"{path}.valueFrom.jsonPath",
                f"an output jsonPath reads the step's own Job and starts with '$'; got"
                f" {json_path!r}",
            )
        if key == "":
            ctx.add(
                "invalid-value",
                f"{path}.valueFrom.terminationMessageKey",
                "must not be empty",
            )
    seen = set()
    for i, item in enumerate(decoded.list_or_none(outputs.get("artifacts")) or []):
        artifact = decoded.mapping_or_none(item)
        if artifact is None:
            continue
        path = f"{base}.artifacts[{i}]"
        check_name(ctx, artifact, path, seen, "artifact")
        require_workspace(ctx, path)
        target = decoded.string(artifact.get("path"))
        if target is not None and not _is_clean_path(target):
            ctx.add(
                "invalid-artifact-path",
                f"{path}.path",
                f"must be an absolute path without '..'; got {target!r}",
            )
        if artifact.get("s3") is not None:
            ctx.add(
                "unsupported-s3",
                f"{path}.s3",
                "S3 artifacts are not supported yet; remove s3 (artifacts travel between"
                " steps through spec.workspace)",
            )


def require_workspace(ctx: Context, path: str) -> None:
    if not ctx.has_workspace:
        ctx.add(
            "workspace-required",
            path,
            "artifacts travel through the flow's workspace volume: declare"
            " spec.workspace.volumeClaimTemplate (a PersistentVolumeClaim)",
        )


def check_artifact_mounts(ctx: Context, step: Mapping[str, object], base: str) -> None:
    """Artifact paths of one step are distinct mount points; our volume names are free."""
    mounts: dict[str, str] = {}
    for side in ("inputs", "outputs"):
        container = decoded.mapping_or_none(step.get(side))
        items = decoded.list_or_none(container.get("artifacts")) if container is not None else None
        for i, item in enumerate(items or []):
            artifact = decoded.mapping_or_none(item)
            if artifact is None:
                continue
            target = (
                artifacts.input_path(artifact)
                if side == "inputs"
                else decoded.string(artifact.get("path"))
            )
            if not target:
                continue
            path = f"{base}.{side}.artifacts[{i}].path"
            normalised = target.rstrip("/") or "/"
            if normalised in mounts:
                ctx.add(
                    "duplicate-artifact-path",
                    path,
                    f"{target!r} is already the path of {mounts[normalised]}; each artifact"
                    " needs its own directory",
                )
            else:
                mounts[normalised] = f"{base}.{side}.artifacts[{i}]"
    if not mounts:
        return
    template = decoded.mapping_or_none(step.get("template"))
    job_spec = decoded.mapping_or_none(template.get("spec")) if template is not None else None
    pod = decoded.mapping_or_none(job_spec.get("template")) if job_spec is not None else None
    pod_spec = decoded.mapping_or_none(pod.get("spec")) if pod is not None else None
    volumes = decoded.list_or_none(pod_spec.get("volumes")) if pod_spec is not None else None
    for i, item in enumerate(volumes or []):
        volume = decoded.mapping_or_none(item)
        name = volume.get("name") if volume is not None else None
        if name in artifacts.RESERVED_VOLUMES:
            ctx.add(
                "reserved-volume-name",
                f"{base}.template.spec.template.spec.volumes[{i}].name",
                f"volume name {name!r} is used by zen-flow for artifacts; rename it",
            )
    # Kubernetes refuses a pod whose container mounts two volumes at one path.
    containers = decoded.list_or_none(pod_spec.get("containers")) if pod_spec is not None else None
    for c, item in enumerate(containers or []):
        container = decoded.mapping_or_none(item)
        own = decoded.list_or_none(container.get("volumeMounts")) if container is not None else None
        for m, mount_item in enumerate(own or []):
            mount = decoded.mapping_or_none(mount_item)
            mount_path = decoded.string(mount.get("mountPath")) if mount is not None else None
            if mount_path is not None and (mount_path.rstrip("/") or "/") in mounts:
                ctx.add(
                    "duplicate-artifact-path",
                    f"{base}.template.spec.template.spec.containers[{c}].volumeMounts[{m}]"
                    ".mountPath",
                    f"{mount_path!r} is also the path of"
                    f" {mounts[mount_path.rstrip('/') or '/']}, which zen-flow mounts there;"
                    " use another path",
                )
