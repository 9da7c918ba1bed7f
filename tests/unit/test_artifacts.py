"""Artifacts through the workspace (jobflow.artifacts, and the planner using it).

Covers: the workspace claim (named <flow>-workspace, owned by the flow, namespace forced, no
claim without spec.workspace); output mounts at a per-flow/step/artifact subPath; input mounts
of that same subPath read-only (``from: step/artifact`` and the whole-step ``from: step``,
default path /tmp/artifacts/<name>); every container gets the mounts, existing mounts and
volumes are kept; ``http`` inputs: an init container with the configured image (before the
user's init containers), headers, the URL after ``--``, a single-file read-only mount; a step
without artifacts is unchanged; through ``plan()``: the claim is in create_objects before the
first Job, Jobs carry the mounts, a succeeded step lists its artifacts (name, subPath) in
status, ``fetch_image`` reaches the init container; a failed download (or a template's own
init container) is explained in the step's message once the pods were read: which artifact,
from where, curl's last line, the exit code.
"""

from __future__ import annotations

from typing import Any

from jobflow import artifacts, jobs
from jobflow.planning import plan
from tests.unit.planning_world import T0, World, flow, step

FLOW = jobs.FlowRef(name="etl", namespace="team-a", uid="uid-9")
WORKSPACE = {
    "volumeClaimTemplate": {
        "metadata": {"name": "ignored", "namespace": "elsewhere", "labels": {"tier": "data"}},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "2Gi"}}},
    }
}


def built(step_spec: dict[str, Any], *, flow_name: str = "etl", **pod: Any) -> dict[str, Any]:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                        },
                        {"name": "side", "image": "busybox"},
                    ],
                    "volumes": [{"name": "cache", "emptyDir": {}}],
                    **pod,
                }
            }
        },
    }
    return artifacts.apply(job, step_spec, flow_name=flow_name, fetch_image="mirror/curl:1")


def pod_of(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def test_workspace_claim() -> None:
    (claim,) = artifacts.workspace_objects({"workspace": WORKSPACE}, flow=FLOW)
    assert claim["apiVersion"] == "v1" and claim["kind"] == "PersistentVolumeClaim"
    meta = claim["metadata"]
    assert meta["name"] == "etl-workspace" == artifacts.claim_name("etl")
    assert meta["namespace"] == "team-a"
    assert meta["labels"]["tier"] == "data"
    (owner,) = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("JobFlow", "etl", "uid-9")
    assert owner["controller"] is True
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_no_workspace_no_claim() -> None:
    assert artifacts.workspace_objects({"steps": []}, flow=FLOW) == []


def test_output_and_input_mounts() -> None:
    spec = {
        "name": "report",
        "inputs": {
            "artifacts": [
                {"name": "rows", "from": "extract/rows", "path": "/in/rows"},
                {"name": "everything", "from": "extract"},
            ]
        },
        "outputs": {"artifacts": [{"name": "pdf", "path": "/out/pdf"}]},
    }
    job = built(spec)
    pod = pod_of(job)
    expected = [
        {"name": "zen-workspace", "mountPath": "/out/pdf", "subPath": "etl/report/pdf"},
        {
            "name": "zen-workspace",
            "mountPath": "/in/rows",
            "subPath": "etl/extract/rows",
            "readOnly": True,
        },
        {
            "name": "zen-workspace",
            "mountPath": "/tmp/artifacts/everything",
            "subPath": "etl/extract",
            "readOnly": True,
        },
    ]
    main, side = pod["containers"]
    assert main["volumeMounts"] == [{"name": "cache", "mountPath": "/cache"}, *expected]
    assert side["volumeMounts"] == expected
    assert pod["volumes"] == [
        {"name": "cache", "emptyDir": {}},
        {"name": "zen-workspace", "persistentVolumeClaim": {"claimName": "etl-workspace"}},
    ]
    assert "initContainers" not in pod


def test_the_reader_mounts_what_the_writer_wrote() -> None:
    writer = built({"name": "a", "outputs": {"artifacts": [{"name": "x", "path": "/o"}]}})
    reader = built({"name": "b", "inputs": {"artifacts": [{"name": "x", "from": "a/x"}]}})
    written = pod_of(writer)["containers"][0]["volumeMounts"][-1]
    read = pod_of(reader)["containers"][0]["volumeMounts"][-1]
    assert written["subPath"] == read["subPath"]
    assert read["readOnly"] is True and "readOnly" not in written


def test_http_input_is_downloaded_by_an_init_container() -> None:
    spec = {
        "name": "fetch",
        "inputs": {
            "artifacts": [
                {
                    "name": "data",
                    "path": "/in/data.csv",
                    "http": {
                        "url": "https://example.com/d.csv?a=1&b=2",
                        "headers": {"Authorization": "Bearer t", "Accept": "text/csv"},
                    },
                }
            ]
        },
    }
    job = built(spec, initContainers=[{"name": "user-init", "image": "busybox"}])
    pod = pod_of(job)
    fetch, user = pod["initContainers"]
    assert user["name"] == "user-init"
    assert fetch["name"] == "zen-fetch-0" and fetch["image"] == "mirror/curl:1"
    command = fetch["command"]
    assert command[0] == "curl" and "--fail" in command
    assert command[command.index("--output") + 1] == "/zen-fetch/0"
    assert command[-2:] == ["--", "https://example.com/d.csv?a=1&b=2"]
    headers = [command[i + 1] for i, arg in enumerate(command) if arg == "--header"]
    assert headers == ["Accept: text/csv", "Authorization: Bearer t"]
    assert fetch["volumeMounts"] == [{"name": "zen-fetch", "mountPath": "/zen-fetch"}]
    assert fetch["terminationMessagePolicy"] == "FallbackToLogsOnError"  # curl's error text
    assert artifacts.fetched_by(spec, "zen-fetch-0") is spec["inputs"]["artifacts"][0]
    assert [artifacts.fetched_by(spec, c) for c in ("zen-fetch-1", "user-init")] == [None, None]
    assert pod["containers"][0]["volumeMounts"][-1] == {
        "name": "zen-fetch",
        "mountPath": "/in/data.csv",
        "subPath": "0",
        "readOnly": True,
    }
    assert {"name": "zen-fetch", "emptyDir": {}} in pod["volumes"]
    assert not any(v["name"] == "zen-workspace" for v in pod["volumes"])


def test_step_without_artifacts_is_unchanged() -> None:
    job = built({"name": "plain"})
    assert pod_of(job)["volumes"] == [{"name": "cache", "emptyDir": {}}]
    assert "initContainers" not in pod_of(job)


# --- through the planner -----------------------------------------------------------------------


def artifact_flow() -> dict[str, object]:
    return flow(
        step("make", outputs={"artifacts": [{"name": "out", "path": "/out"}]}),
        step(
            "http",
            inputs={"artifacts": [{"name": "d", "path": "/d", "http": {"url": "http://h/d"}}]},
        ),
        step("use", "make", inputs={"artifacts": [{"name": "in", "from": "make/out"}]}),
        workspace=WORKSPACE,
    )


def test_plan_creates_the_claim_and_mounts() -> None:
    world = World(artifact_flow())
    first = world.reconcile()
    kinds = [(o["kind"], o["metadata"]["name"]) for o in first.create_objects]  # type: ignore[index]
    assert kinds == [("PersistentVolumeClaim", "f-workspace")]
    (make,) = world.jobs_of("make")
    mounts = make["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]  # type: ignore[index]
    assert mounts == [{"name": "zen-workspace", "mountPath": "/out", "subPath": "f/make/out"}]
    world.advance(5)
    world.finish(world.job_of("make"), ok=True)
    world.reconcile()
    (use,) = world.jobs_of("use")
    mounts = use["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]  # type: ignore[index]
    assert mounts == [
        {
            "name": "zen-workspace",
            "mountPath": "/tmp/artifacts/in",
            "subPath": "f/make/out",
            "readOnly": True,
        }
    ]
    assert world.step_status("make")["outputs"] == {
        "artifacts": [{"name": "out", "path": "f/make/out"}]
    }
    assert "outputs" not in world.step_status("use")  # still running: nothing to show yet
    # The claim is created once: later passes do not ask again.
    assert world.reconcile().create_objects == ()


def test_plan_passes_the_fetch_image() -> None:
    result = plan(artifact_flow(), [], T0, fetch_image="registry.local/curl:8")
    (http,) = [j for j in result.create_jobs if j["metadata"]["name"].startswith("f-http")]  # type: ignore[index]
    init = http["spec"]["template"]["spec"]["initContainers"]  # type: ignore[index]
    assert [c["image"] for c in init] == ["registry.local/curl:8"]
    default = plan(artifact_flow(), [], T0)
    (http,) = [j for j in default.create_jobs if j["metadata"]["name"].startswith("f-http")]  # type: ignore[index]
    init = http["spec"]["template"]["spec"]["initContainers"]  # type: ignore[index]
    assert init[0]["image"] == artifacts.DEFAULT_FETCH_IMAGE


def test_a_failed_download_is_explained_in_the_step_message() -> None:
    world = World(flow(artifact_flow()["spec"]["steps"][1]))  # type: ignore[index]
    world.reconcile()
    world.advance(3)
    name = world.job_of("http")
    world.finish(name, ok=False, pods_readable=False)
    first = world.plan()
    assert first.needs_pod_details == (name,)  # the pods say whether the download failed
    curl = "  % Total\ncurl: (22) The requested URL returned error: 404\n"
    world.finish(name, ok=False, exit_code=22, message=curl, init_container="zen-fetch-0")
    world.reconcile()
    failed = world.step_status("http")
    assert failed["phase"] == "Failed" and failed["exitCode"] == 22
    assert failed["message"] == (
        "Job has reached the specified backoff limit: input artifact 'd' could not be downloaded"
        " from http://h/d (exit code 22: curl: (22) The requested URL returned error: 404)"
    )


def test_a_templates_own_failed_init_container_is_named() -> None:
    world = World(flow(step("s")))
    world.reconcile()
    world.finish(world.job_of("s"), ok=False, exit_code=3, init_container="migrate")
    world.reconcile()
    assert world.step_status("s")["message"] == (
        "Job has reached the specified backoff limit: init container 'migrate' failed (exit code 3)"
    )
