"""Artifacts: files that travel between steps through one shared workspace volume.

The controller never copies data; it only wires volumes into the Jobs it builds:
- ``spec.workspace.volumeClaimTemplate`` is one PersistentVolumeClaim, created with the flow as
  ``<flow>-workspace`` and owned by it (deleted with the flow). ``workspace_objects`` returns it
  for the planner's ``create_objects``.
- An output artifact ``{name, path}`` of step ``s`` mounts the workspace at ``path`` with
  ``subPath: <flow>/<s>/<name>`` (the kubelet creates that directory), so whatever the step
  writes under ``path`` stays in the claim.
- An input artifact ``{from: "<s>/<name>", path}`` mounts that same subPath read-only at
  ``path`` (default ``/tmp/artifacts/<input name>``); ``from: "<s>"`` mounts all of step s's
  artifacts (``<flow>/<s>``).
- An input artifact ``{http: {url, headers}, path}`` is downloaded by an init container (image
  ``fetch_image``, a controller setting; it must provide ``curl``) into an emptyDir, and the
  file is mounted read-only at ``path`` (a single-file subPath mount).

Mounts go into every container of ``spec.template.spec.containers`` (sidecars see the same
files). Validation guarantees that a flow with artifacts declares a workspace, that paths are
absolute and that ``from`` names an ancestor's declared artifact; this module trusts that and
skips what it cannot wire rather than raising.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Final

from jobflow import decoded, jobs, names

WORKSPACE: Final = "workspace"  # the claim is <flow>-workspace
WORKSPACE_VOLUME: Final = "zen-workspace"
FETCH_VOLUME: Final = "zen-fetch"
FETCH_DIR: Final = "/zen-fetch"
# The init container downloading the i-th http input artifact is "zen-fetch-<i>".
FETCH_CONTAINER_PREFIX: Final = "zen-fetch-"
# curl is small and has retries; a cluster without Docker Hub sets its own mirror.
DEFAULT_FETCH_IMAGE: Final = "curlimages/curl:8.11.1"
DEFAULT_INPUT_DIR: Final = "/tmp/artifacts"  # the seed's default target of an input artifact
# Generous but bounded: a hung download must not hold the step forever.
FETCH_MAX_SECONDS: Final = 600
# Volume names our mounts use; a template that uses them is refused by validation.
RESERVED_VOLUMES: Final = frozenset({WORKSPACE_VOLUME, FETCH_VOLUME})


def claim_name(flow_name: str) -> str:
    return names.resource_name(flow_name, WORKSPACE)


def sub_path(flow_name: str, step: str, artifact: str | None = None) -> str:
    """Where a step's artifact lives in the workspace claim."""
    return f"{flow_name}/{step}" if artifact is None else f"{flow_name}/{step}/{artifact}"


def has_artifacts(step: Mapping[str, object]) -> bool:
    return bool(
        decoded.path(step, "outputs", "artifacts") or decoded.path(step, "inputs", "artifacts")
    )


def status_entries(step: Mapping[str, object], flow_name: str) -> list[dict[str, object]]:
    """``status.steps[].outputs.artifacts`` of a succeeded step: name and subPath in the claim."""
    return [
        {"name": name, "path": sub_path(flow_name, decoded.string(step.get("name")) or "", name)}
        for artifact in decoded.items(decoded.path(step, "outputs", "artifacts"))
        if (name := decoded.string(artifact.get("name")))
    ]


def workspace_objects(spec: Mapping[str, object], *, flow: jobs.FlowRef) -> list[dict[str, object]]:
    """The workspace PVC of ``spec`` ([] without a workspace), ready to create."""
    template = decoded.mapping(decoded.path(spec, "workspace", "volumeClaimTemplate"))
    if not template:
        return []
    named = {
        **decoded.thaw(template),
        "metadata": {**decoded.thaw(decoded.mapping(template.get("metadata"))), "name": WORKSPACE},
    }
    return jobs.resource_objects({"volumeClaimTemplates": [named]}, flow=flow)


def http_inputs(step: Mapping[str, object]) -> list[Mapping[str, object]]:
    """The step's ``http`` input artifacts in order: the i-th is fetched by "zen-fetch-<i>"."""
    return [
        artifact
        for artifact in decoded.items(decoded.path(step, "inputs", "artifacts"))
        if not decoded.string(artifact.get("from")) and decoded.mapping(artifact.get("http"))
    ]


def fetched_by(step: Mapping[str, object], container: str) -> Mapping[str, object] | None:
    """The http input artifact the init container ``container`` downloads; None when it is not
    one of ours (a template's own init container)."""
    index = container.removeprefix(FETCH_CONTAINER_PREFIX)
    if index == container or not index.isdigit():
        return None
    found = http_inputs(step)
    return found[int(index)] if int(index) < len(found) else None


def input_path(artifact: Mapping[str, object]) -> str:
    path = decoded.string(artifact.get("path"))
    if path:
        return path
    return posixpath.join(DEFAULT_INPUT_DIR, decoded.string(artifact.get("name")) or "input")


def _fetch_container(
    index: int, artifact: Mapping[str, object], *, fetch_image: str
) -> dict[str, object]:
    http = decoded.mapping(artifact.get("http"))
    command: list[object] = [
        "curl",
        "--fail",
        "--silent",
        "--show-error",
        "--location",
        "--retry",
        "3",
        "--max-time",
        str(FETCH_MAX_SECONDS),
        "--output",
        f"{FETCH_DIR}/{index}",
    ]
    for header, value in sorted(decoded.string_map(http.get("headers")).items()):
        command += ["--header", f"{header}: {value}"]
    # "--" so a URL can never be read as an option.
    command += ["--", decoded.string(http.get("url")) or ""]
    return {
        "name": f"{FETCH_CONTAINER_PREFIX}{index}",
        "image": fetch_image,
        "command": command,
        "volumeMounts": [{"name": FETCH_VOLUME, "mountPath": FETCH_DIR}],
        # curl writes nothing to the termination log: a failed download reports its last
        # output lines instead ("curl: (22) The requested URL returned error: 404").
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def apply(
    job: dict[str, object],
    step: Mapping[str, object],
    *,
    flow_name: str,
    fetch_image: str = DEFAULT_FETCH_IMAGE,
) -> dict[str, object]:
    """Add the workspace/download volumes and mounts for ``step``'s artifacts to ``job``.

    ``job`` is a freshly built manifest (``jobs.build_job``); it is edited in place and
    returned. A step without artifacts gets it back unchanged.
    """
    if not has_artifacts(step):
        return job
    step_name = decoded.string(step.get("name")) or ""
    mounts: list[dict[str, object]] = []
    for artifact in decoded.items(decoded.path(step, "outputs", "artifacts")):
        name = decoded.string(artifact.get("name"))
        path = decoded.string(artifact.get("path"))
        if name and path:
            mounts.append(
                {
                    "name": WORKSPACE_VOLUME,
                    "mountPath": path,
                    "subPath": sub_path(flow_name, step_name, name),
                }
            )
    fetches: list[dict[str, object]] = []
    for artifact in decoded.items(decoded.path(step, "inputs", "artifacts")):
        source = decoded.string(artifact.get("from"))
        if source:
            upstream, _, name = source.partition("/")
            mounts.append(
                {
                    "name": WORKSPACE_VOLUME,
                    "mountPath": input_path(artifact),
                    "subPath": sub_path(flow_name, upstream, name or None),
                    "readOnly": True,
                }
            )
        elif decoded.mapping(artifact.get("http")):  # the same order as http_inputs()
            index = len(fetches)
            fetches.append(_fetch_container(index, artifact, fetch_image=fetch_image))
            mounts.append(
                {
                    "name": FETCH_VOLUME,
                    "mountPath": input_path(artifact),
                    "subPath": str(index),
                    "readOnly": True,
                }
            )

    pod_spec = decoded.path(job, "spec", "template", "spec")
    if not isinstance(pod_spec, dict) or not mounts:
        return job
    for container in pod_spec.get("containers") or []:
        if isinstance(container, dict):
            existing = container.get("volumeMounts")
            current = list(existing) if isinstance(existing, list) else []
            container["volumeMounts"] = [*current, *(dict(m) for m in mounts)]
    existing_volumes = pod_spec.get("volumes")
    volumes = list(existing_volumes) if isinstance(existing_volumes, list) else []
    if any(m["name"] == WORKSPACE_VOLUME for m in mounts):
        volumes.append(
            {
                "name": WORKSPACE_VOLUME,
                "persistentVolumeClaim": {"claimName": claim_name(flow_name)},
            }
        )
    if fetches:
        volumes.append({"name": FETCH_VOLUME, "emptyDir": {}})
        # Ours first: every download is done before any container of the template starts.
        existing_init = pod_spec.get("initContainers")
        init = list(existing_init) if isinstance(existing_init, list) else []
        pod_spec["initContainers"] = [*fetches, *init]
    pod_spec["volumes"] = volumes
    return job
