"""Checks of the flow as a whole: identity (apiVersion, kind, metadata.name), executionPolicy
and its podFailurePolicy, resourceTemplates and their PersistentVolumeClaims, spec.workspace;
then the steps (``steps.check_steps``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from jobflow import artifacts, decoded, names, quantities
from jobflow.validation import finale, governance, requests
from jobflow.validation.context import MAX_INT32, Context, dns_subdomain_message

MAX_EXIT_CODE: Final = 255


def check(ctx: Context) -> None:
    """Every rule of layer 2 (meaning), in document order (roughly)."""
    obj = ctx.obj
    api_version = obj.get("apiVersion")
    if api_version != names.API_VERSION:
        ctx.add(
            "invalid-api-version",
            "apiVersion",
            f"must be {names.API_VERSION!r}; got {api_version!r}",
        )
    kind = obj.get("kind")
    if kind != names.KIND:
        ctx.add("invalid-kind", "kind", f"must be {names.KIND!r}; got {kind!r}")
    check_metadata(ctx, decoded.mapping_or_none(obj.get("metadata")))
    spec = decoded.mapping_or_none(obj.get("spec"))
    if spec is None:
        return
    policy = decoded.mapping_or_none(spec.get("executionPolicy"))
    if policy is not None:
        check_execution_policy(ctx, policy)
    templates = decoded.mapping_or_none(spec.get("resourceTemplates"))
    if templates is not None:
        check_resource_templates(ctx, templates)
    workspace = decoded.mapping_or_none(spec.get("workspace"))
    ctx.has_workspace = workspace is not None
    if workspace is not None:
        check_workspace(ctx, workspace, templates)
    requests.check(ctx, spec)
    step_list = decoded.list_or_none(spec.get("steps"))
    if step_list is not None:
        finale.check(ctx, step_list, decoded.list_or_none(spec.get("finally")))
    governance.check(ctx)


def check_metadata(ctx: Context, meta: Mapping[str, object] | None) -> None:
    name = decoded.string(meta.get("name")) if meta is not None else None
    generate = decoded.string(meta.get("generateName")) if meta is not None else None
    if not name and not generate:
        ctx.add(
            "required-field", "metadata.name", "a JobFlow needs metadata.name (or generateName)"
        )
    elif name and len(name) > names.MAX_FLOW_NAME_LENGTH:
        # Refused rather than hashed (Argo and Tekton refuse too): the name is the flow label
        # on every Job and pod, and a label value stops at 63, so a longer name could only be
        # a cut or a hash that `kubectl get pods -l workflow.kube-zen.io/flow=<name>` never
        # finds. generateName needs no check: the API server cuts it so the name fits in 63.
        ctx.add(
            "name-too-long",
            "metadata.name",
            f"is {len(name)} characters; a JobFlow name is at most"
            f" {names.MAX_FLOW_NAME_LENGTH} because it is the {names.LABEL_FLOW} label of"
            f" every Job and pod of the flow (a label value is at most"
            f" {names.MAX_LABEL_LENGTH} characters); choose a shorter name",
        )
    elif name and not names.is_dns1123_subdomain(name):
        ctx.add("invalid-name", "metadata.name", dns_subdomain_message("name", name))


def check_execution_policy(ctx: Context, policy: Mapping[str, object]) -> None:
    base = "spec.executionPolicy"
    ttl = decoded.strict_integer(policy.get("ttlSecondsAfterFinished"))
    if ttl is not None and not 0 <= ttl <= MAX_INT32:
        ctx.add(
            "invalid-ttl",
            f"{base}.ttlSecondsAfterFinished",
            f"must be between 0 and {MAX_INT32} seconds; got {ttl}",
        )
    limit = decoded.strict_integer(policy.get("backoffLimit"))
    if limit is not None and not 0 <= limit <= MAX_INT32:
        ctx.add(
            "invalid-backoff-limit",
            f"{base}.backoffLimit",
            f"must be between 0 and {MAX_INT32}; got {limit}",
        )
    deadline = decoded.strict_integer(policy.get("activeDeadlineSeconds"))
    if deadline is not None and deadline <= 0:
        ctx.add(
            "invalid-active-deadline",
            f"{base}.activeDeadlineSeconds",
            f"must be greater than 0 seconds; got {deadline}",
        )
    key = decoded.string(policy.get("concurrencyKey"))
    if key is not None and not 0 < len(key) <= names.MAX_SUBDOMAIN_LENGTH:
        ctx.add(
            "invalid-concurrency-key",
            f"{base}.concurrencyKey",
            f"must be 1 to {names.MAX_SUBDOMAIN_LENGTH} characters (omit it for no group)",
        )
    pfp = decoded.mapping_or_none(policy.get("podFailurePolicy"))
    if pfp is not None:
        check_pod_failure_policy(ctx, pfp, f"{base}.podFailurePolicy")


def check_pod_failure_policy(ctx: Context, pfp: Mapping[str, object], base: str) -> None:
    rules = decoded.list_or_none(pfp.get("rules"))
    if rules is None:
        return
    if not rules:
        ctx.add("empty-pod-failure-policy", f"{base}.rules", "needs at least one rule")
    for i, rule in enumerate(rules):
        entry = decoded.mapping_or_none(rule)
        on_exit = decoded.mapping_or_none(entry.get("onExitCodes")) if entry is not None else None
        if on_exit is None:
            continue
        path = f"{base}.rules[{i}].onExitCodes"
        container = decoded.string(on_exit.get("containerName"))
        if container is not None and not names.is_dns1123_label(container):
            ctx.add(
                "invalid-container-name",
                f"{path}.containerName",
                f"{container!r} is not a valid container name (DNS-1123 label)",
            )
        values = decoded.list_or_none(on_exit.get("values"))
        if values is None:
            continue
        if not values:
            ctx.add("empty-exit-codes", f"{path}.values", "needs at least one exit code")
        for j, value in enumerate(values):
            code = decoded.strict_integer(value)
            if code is not None and not 0 <= code <= MAX_EXIT_CODE:
                ctx.add(
                    "invalid-exit-code",
                    f"{path}.values[{j}]",
                    f"exit codes are 0..{MAX_EXIT_CODE}; got {code}",
                )


def check_resource_templates(ctx: Context, templates: Mapping[str, object]) -> None:
    base = "spec.resourceTemplates"
    for field, kind, check_resource in (
        ("volumeClaimTemplates", "PersistentVolumeClaim", check_pvc),
        ("configMapTemplates", "ConfigMap", None),
    ):
        items = decoded.list_or_none(templates.get(field))
        if items is None:
            continue
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            resource = decoded.mapping_or_none(item)
            path = f"{base}.{field}[{i}]"
            if resource is None:
                continue
            declared = resource.get("kind")
            if declared is not None and declared != kind:
                ctx.add(
                    "invalid-resource-template-kind",
                    f"{path}.kind",
                    f"must be {kind!r} (or omitted); got {declared!r}",
                )
            meta = decoded.mapping_or_none(resource.get("metadata"))
            name = decoded.string(meta.get("name")) if meta is not None else None
            if not name:
                ctx.add(
                    "resource-template-name-required",
                    f"{path}.metadata.name",
                    f"a {kind} template needs metadata.name (created as <flow>-<name>)",
                )
            elif not names.is_dns1123_subdomain(name):
                ctx.add(
                    "invalid-resource-template-name",
                    f"{path}.metadata.name",
                    dns_subdomain_message("name", name),
                )
            elif name in seen:
                ctx.add(
                    "duplicate-resource-template-name",
                    f"{path}.metadata.name",
                    f"{name!r} is already used by {field}[{seen[name]}]",
                )
            else:
                seen[name] = i
            if check_resource is not None:
                check_resource(ctx, resource, path)


def check_pvc(ctx: Context, pvc: Mapping[str, object], path: str) -> None:
    spec = decoded.mapping_or_none(pvc.get("spec"))
    modes = decoded.list_or_none(spec.get("accessModes")) if spec is not None else None
    if not modes:
        ctx.add(
            "pvc-access-modes-required",
            f"{path}.spec.accessModes",
            "a PersistentVolumeClaim needs at least one access mode, e.g. [ReadWriteOnce]",
        )
    resources = decoded.mapping_or_none(spec.get("resources")) if spec is not None else None
    requests = decoded.mapping_or_none(resources.get("requests")) if resources is not None else None
    storage = requests.get("storage") if requests is not None else None
    if storage is None:
        ctx.add(
            "pvc-storage-required",
            f"{path}.spec.resources.requests.storage",
            "a PersistentVolumeClaim needs a storage request, e.g. 1Gi",
        )
        return
    amount = quantities.parse_quantity(storage)
    if amount is None or amount <= 0:
        ctx.add(
            "invalid-resource-quantity",
            f"{path}.spec.resources.requests.storage",
            f"must be a positive quantity such as 1Gi; got {storage!r}",
        )


def check_workspace(
    ctx: Context, workspace: Mapping[str, object], templates: Mapping[str, object] | None
) -> None:
    """spec.workspace: one PersistentVolumeClaim (jobflow.artifacts wires it into the Jobs)."""
    base = "spec.workspace.volumeClaimTemplate"
    claim = decoded.mapping_or_none(workspace.get("volumeClaimTemplate"))
    if claim is None:
        return  # the shape check reports a missing or non-object template
    declared = claim.get("kind")
    if declared is not None and declared != "PersistentVolumeClaim":
        ctx.add(
            "invalid-resource-template-kind",
            f"{base}.kind",
            f"must be 'PersistentVolumeClaim' (or omitted); got {declared!r}",
        )
    check_pvc(ctx, claim, base)
    claims = (
        decoded.list_or_none(templates.get("volumeClaimTemplates"))
        if templates is not None
        else None
    )
    for i, item in enumerate(claims or []):
        entry = decoded.mapping_or_none(item)
        meta = decoded.mapping_or_none(entry.get("metadata")) if entry is not None else None
        if meta is not None and meta.get("name") == artifacts.WORKSPACE:
            ctx.add(
                "workspace-name-conflict",
                f"spec.resourceTemplates.volumeClaimTemplates[{i}].metadata.name",
                f"{artifacts.WORKSPACE!r} is the name of spec.workspace's claim"
                " (<flow>-workspace); rename this template",
            )
