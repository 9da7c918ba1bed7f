"""Conformance of kubesim with the real kubectl 1.37 (``.venv/bin/kubectl``), one process per call.

Covers: version; typed `create namespace|configmap|secret|serviceaccount|job|deployment|service|
role|rolebinding|clusterrole|clusterrolebinding|poddisruptionbudget|secret tls|docker-registry`
(protobuf bodies);
api-resources (built-ins and a CRD with short name); apply of a CRD then of its
custom resources (client-side: created / unchanged / configured; server-side, for a CRD too:
serverside-applied, server dry run,
409 FieldManagerConflict, --force-conflicts); built-in apply through strategic merge; get as a
table with printer columns, -o yaml, -l, get all (category), -w (watch rows as the object
changes); describe with events (involvedObject field selectors); patch --type merge (and
"(no change)"), --type json, default strategic patch refused with 415 for a CR; label; annotate;
schema validation (422 with causes) and strict unknown-field decoding (400); delete (also of an
object whose finalizer is removed while kubectl waits); wait --for=jsonpath and
--for=condition; logs of a finished pod, and per container (-c, kubectl's default-container
annotation, the server's 400 without container= for two app containers); explain of a CRD
field; Deployment and RBAC manifests (kinds kubesim serves without a controller).

One kubesim serves the whole module (tests use their own object names); every test has its own
kubectl --cache-dir so discovery and OpenAPI caches never leak between tests.
"""

from __future__ import annotations

import base64
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from kubesim import tls
from kubesim.store import GVR
from tests.fixtures.kubesim import KUBECTL, kubectl
from tests.waiting import eventually

NS = "default"
WIDGETS = GVR("example.kubesim.io", "v1", "widgets")
PODS = GVR("", "v1", "pods")
EVENTS = GVR("", "v1", "events")

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.kubesim.io
spec:
  group: example.kubesim.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        description: Widget is a test resource.
        properties:
          spec:
            type: object
            description: Desired state of the widget.
            required: [color]
            properties:
              color: {type: string, enum: [red, green, blue], description: The colour.}
              size: {type: integer, minimum: 1, default: 3, description: How big.}
          status:
            type: object
            properties:
              phase: {type: string}
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
                    reason: {type: string}
                    message: {type: string}
                    lastTransitionTime: {type: string}
"""


def widget(name: str, *, color: str = "red", size: int | None = None, labels: str = "") -> str:
    size_line = f"\n  size: {size}" if size is not None else ""
    label_line = f"\n  labels: {{{labels}}}" if labels else ""
    return (
        f"apiVersion: example.kubesim.io/v1\nkind: Widget\nmetadata:\n  name: {name}{label_line}\n"
        f"spec:\n  color: {color}{size_line}\n"
    )


@pytest.fixture(scope="module")
def server(kubesim_module_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    cache = tmp_path_factory.mktemp("crd-cache")
    result = kubectl(kubesim_module_server, "apply", "-f", "-", cache_dir=cache, input=CRD)
    assert result.returncode == 0, result.stderr
    assert (
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.kubesim.io created"
        in result.stdout
    )
    return kubesim_module_server


@pytest.fixture
def k(server: Any, tmp_path: Path) -> Any:
    """kubectl bound to the module's server and this test's own cache dir."""

    def run(
        *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return kubectl(server, *args, cache_dir=tmp_path / "cache", input=input, timeout=timeout)

    return run


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result.stdout


def test_version(k: Any) -> None:
    assert "Server Version: v1.37.1-kubesim" in ok(k("version"))


def test_api_resources_lists_builtins_and_the_crd(k: Any) -> None:
    out = ok(k("api-resources"))
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "wd" in rows["widgets"] and "example.kubesim.io/v1" in rows["widgets"]
    for resource in (
        "configmaps",
        "pods",
        "jobs",
        "leases",
        "customresourcedefinitions",
        "namespaces",
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
    ):
        assert resource in rows


def test_client_side_apply_create_unchanged_configured(k: Any, server: Any) -> None:
    assert "widget.example.kubesim.io/csa created" in ok(k("apply", "-f", "-", input=widget("csa")))
    assert "widget.example.kubesim.io/csa unchanged" in ok(
        k("apply", "-f", "-", input=widget("csa"))
    )
    assert "widget.example.kubesim.io/csa configured" in ok(
        k("apply", "-f", "-", input=widget("csa", size=4))
    )
    obj = server.store.get(WIDGETS, "csa", namespace=NS)
    assert obj["spec"] == {"color": "red", "size": 4}
    assert obj["metadata"]["generation"] == 2


def test_builtin_apply_uses_strategic_merge(k: Any, server: Any) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n"
    assert "configmap/cfg created" in ok(k("apply", "-f", "-", input=cm))
    assert "configmap/cfg configured" in ok(k("apply", "-f", "-", input=cm.replace("'1'", "'2'")))
    assert server.store.get(GVR("", "v1", "configmaps"), "cfg", namespace=NS)["data"] == {"a": "2"}


def test_server_side_apply_create_conflict_and_force(k: Any, server: Any) -> None:
    assert "widget.example.kubesim.io/ssa serverside-applied" in ok(
        k("apply", "--server-side", "-f", "-", input=widget("ssa", size=2))
    )
    obj = server.store.get(WIDGETS, "ssa", namespace=NS)
    assert any(
        m["manager"] == "kubectl" and m["operation"] == "Apply"
        for m in obj["metadata"]["managedFields"]
    )
    ok(k("patch", "wd", "ssa", "--type", "merge", "-p", '{"spec":{"size":5}}'))
    conflict = k("apply", "--server-side", "-f", "-", input=widget("ssa", size=6))
    assert conflict.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl-patch"' in conflict.stderr
    assert ".spec.size" in conflict.stderr
    ok(k("apply", "--server-side", "--force-conflicts", "-f", "-", input=widget("ssa", size=6)))
    assert server.store.get(WIDGETS, "ssa", namespace=NS)["spec"]["size"] == 6


def test_get_table_yaml_and_label_selector(k: Any) -> None:
    ok(k("apply", "-f", "-", input=widget("tbl-a", size=7, labels="app: tbl")))
    ok(k("apply", "-f", "-", input=widget("tbl-b", color="blue")))
    lines = ok(k("get", "wd", "-l", "app=tbl")).splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "SIZE", "AGE"]
    assert len(lines) == 2 and lines[1].split()[:2] == ["tbl-a", "7"]
    assert "tbl-b" in ok(k("get", "widgets", "-l", "app!=tbl"))
    out = ok(k("get", "wd", "tbl-b", "-o", "yaml"))
    assert "kind: Widget" in out and "color: blue" in out and "size: 3" in out  # schema default
    assert "widget.example.kubesim.io/tbl-a" in ok(k("get", "all"))


def test_get_watch_prints_a_row_per_change(k: Any, server: Any, tmp_path: Path) -> None:
    ok(k("apply", "-f", "-", input=widget("watched", size=1)))
    proc = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            server.kubeconfig,
            "--cache-dir",
            str(tmp_path / "cache"),
            "get",
            "wd",
            "watched",
            "-w",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline()
        assert header.split() == ["NAME", "PHASE", "SIZE", "AGE"]
        assert proc.stdout.readline().split()[:2] == ["watched", "1"]
        ok(k("patch", "wd", "watched", "--type", "merge", "-p", '{"spec":{"size":9}}'))
        assert proc.stdout.readline().split()[:2] == ["watched", "9"]
    finally:
        proc.kill()
        proc.communicate()


def test_describe_shows_events(k: Any, server: Any) -> None:
    ok(k("apply", "-f", "-", input=widget("described", labels="team: a")))
    obj = server.store.get(WIDGETS, "described", namespace=NS)
    server.store.create(
        EVENTS,
        {
            "metadata": {"name": "described.1"},
            "involvedObject": {
                "kind": "Widget",
                "name": "described",
                "namespace": NS,
                "uid": obj["metadata"]["uid"],
                "apiVersion": "example.kubesim.io/v1",
            },
            "reason": "Polished",
            "message": "the widget shines",
            "type": "Normal",
            "count": 1,
            "source": {"component": "tests"},
            "firstTimestamp": obj["metadata"]["creationTimestamp"],
            "lastTimestamp": obj["metadata"]["creationTimestamp"],
        },
        namespace=NS,
    )
    out = ok(k("describe", "wd", "described"))
    assert "Name:         described" in out and "team=a" in out
    assert "Polished" in out and "the widget shines" in out


def test_patch_merge_no_change_json_and_strategic_refused(k: Any, server: Any) -> None:
    ok(k("apply", "-f", "-", input=widget("patched")))
    assert "patched\n" in ok(
        k("patch", "wd", "patched", "--type", "merge", "-p", '{"spec":{"size":5}}')
    )
    rv = server.store.get(WIDGETS, "patched", namespace=NS)["metadata"]["resourceVersion"]
    assert "(no change)" in ok(
        k("patch", "wd", "patched", "--type", "merge", "-p", '{"spec":{"size":5}}')
    )
    assert server.store.get(WIDGETS, "patched", namespace=NS)["metadata"]["resourceVersion"] == rv
    ok(
        k(
            "patch",
            "wd",
            "patched",
            "--type",
            "json",
            "-p",
            '[{"op":"replace","path":"/spec/size","value":6}]',
        )
    )
    assert server.store.get(WIDGETS, "patched", namespace=NS)["spec"]["size"] == 6
    refused = k("patch", "wd", "patched", "-p", '{"spec":{"size":7}}')
    assert refused.returncode == 1
    assert "application/strategic-merge-patch+json is not supported" in refused.stderr
    bad = k(
        "patch",
        "wd",
        "patched",
        "--type",
        "json",
        "-p",
        '[{"op":"test","path":"/spec/size","value":1}]',
    )
    assert bad.returncode == 1


def test_label_and_annotate(k: Any, server: Any) -> None:
    ok(k("apply", "-f", "-", input=widget("tagged")))
    assert "widget.example.kubesim.io/tagged labeled" in ok(k("label", "wd", "tagged", "tier=gold"))
    assert "widget.example.kubesim.io/tagged annotated" in ok(
        k("annotate", "wd", "tagged", "note=hello")
    )
    meta = server.store.get(WIDGETS, "tagged", namespace=NS)["metadata"]
    assert meta["labels"]["tier"] == "gold" and meta["annotations"]["note"] == "hello"
    assert meta["generation"] == 1  # metadata changes do not bump generation
    ok(k("label", "wd", "tagged", "tier-"))
    assert "tier" not in (
        server.store.get(WIDGETS, "tagged", namespace=NS)["metadata"].get("labels") or {}
    )


def test_invalid_and_unknown_fields_are_rejected(k: Any) -> None:
    invalid = k(
        "apply",
        "-f",
        "-",
        input=widget("bad", color="pink").replace("color: pink", "color: pink\n  size: 0"),
    )
    assert invalid.returncode == 1
    assert 'The Widget "bad" is invalid' in invalid.stderr
    assert 'spec.color: Unsupported value: "pink"' in invalid.stderr
    assert "spec.size: Invalid value: 0" in invalid.stderr
    strict = k("apply", "-f", "-", input=widget("bad") + "  bogus: 1\n")
    assert strict.returncode == 1
    assert 'strict decoding error: unknown field "spec.bogus"' in strict.stderr


def test_delete_plain_and_with_finalizer_removed_while_waiting(k: Any, server: Any) -> None:
    ok(k("apply", "-f", "-", input=widget("gone")))
    assert 'widget.example.kubesim.io "gone" deleted' in ok(k("delete", "wd", "gone"))
    assert "gone" not in ok(k("get", "wd", "-o", "name"))
    fin = widget("held").replace(
        "  name: held", "  name: held\n  finalizers: [example.kubesim.io/hold]"
    )
    ok(k("apply", "-f", "-", input=fin))

    def release() -> None:
        eventually(
            lambda: server.store.get(WIDGETS, "held", namespace=NS)["metadata"].get(
                "deletionTimestamp"
            )
        )
        obj = server.store.get(WIDGETS, "held", namespace=NS)
        obj["metadata"]["finalizers"] = []
        server.store.update(WIDGETS, obj, namespace=NS)

    t = threading.Thread(target=release)
    t.start()
    out = ok(k("delete", "wd", "held", "--timeout=20s"))
    t.join()
    assert 'widget.example.kubesim.io "held" deleted' in out


def test_wait_for_jsonpath_and_condition(k: Any, server: Any) -> None:
    ok(k("apply", "-f", "-", input=widget("awaited")))

    def finish() -> None:
        obj = server.store.get(WIDGETS, "awaited", namespace=NS)
        obj["status"] = {
            "phase": "Done",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Built",
                    "message": "",
                    "lastTransitionTime": obj["metadata"]["creationTimestamp"],
                }
            ],
        }
        server.store.update(WIDGETS, obj, namespace=NS, subresource="status")

    timer = threading.Timer(0.5, finish)
    timer.start()
    try:
        out = ok(k("wait", "--for=jsonpath={.status.phase}=Done", "wd/awaited", "--timeout=20s"))
    finally:
        timer.join()
    assert "widget.example.kubesim.io/awaited condition met" in out
    assert "condition met" in ok(k("wait", "--for=condition=Ready", "wd/awaited", "--timeout=10s"))
    missed = k("wait", "--for=jsonpath={.status.phase}=Never", "wd/awaited", "--timeout=1s")
    assert missed.returncode == 1 and "timed out" in missed.stderr


def test_logs_of_a_finished_pod(k: Any, server: Any) -> None:
    pod = server.store.create(
        PODS,
        {
            "metadata": {"name": "logged"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox"}],
            },
        },
        namespace=NS,
    )
    server.store.set_pod_log(NS, "logged", "hello from the pod\nsecond line\n")
    pod["status"] = {
        "phase": "Succeeded",
        "containerStatuses": [
            {
                "name": "main",
                "ready": False,
                "restartCount": 0,
                "image": "busybox",
                "imageID": "",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
            }
        ],
    }
    server.store.update(PODS, pod, namespace=NS, subresource="status")
    assert ok(k("logs", "logged")) == "hello from the pod\nsecond line\n"
    assert ok(k("logs", "logged", "--tail=1")) == "second line\n"
    assert "Completed" in ok(k("get", "pod", "logged"))


def test_logs_of_a_pod_with_several_containers(k: Any, server: Any) -> None:
    server.store.create(
        PODS,
        {
            "metadata": {
                "name": "multi",
                "annotations": {"kubectl.kubernetes.io/default-container": "side"},
            },
            "spec": {
                "restartPolicy": "Never",
                "initContainers": [{"name": "fetch", "image": "curl"}],
                "containers": [
                    {"name": "main", "image": "busybox"},
                    {"name": "side", "image": "busybox"},
                ],
            },
        },
        namespace=NS,
    )
    for container in ("fetch", "main", "side"):
        server.store.set_pod_log(NS, "multi", f"{container} output\n", container=container)
    # kubectl picks the annotated default container and names it in the request
    assert ok(k("logs", "multi")) == "side output\n"
    assert ok(k("logs", "multi", "-c", "main")) == "main output\n"
    assert ok(k("logs", "multi", "-c", "fetch")) == "fetch output\n"
    # the API server itself does not read the annotation: with two app containers a request
    # without container= is a 400 listing them all (init containers first, as upstream)
    raw = k("get", "--raw", f"/api/v1/namespaces/{NS}/pods/multi/log")
    assert raw.returncode != 0
    assert (
        "Error from server (BadRequest): a container name must be specified for pod multi, "
        "choose one of: [fetch main side]"
    ) in raw.stderr


def test_logs_of_a_job_run_by_the_runner(k: Any, server: Any) -> None:
    job = (
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: talker}\nspec:\n  template:\n"
        "    metadata:\n      annotations: {kubesim.io/log: 'simulated output'}\n"
        "    spec:\n      restartPolicy: Never\n      containers: [{name: main, image: busybox}]\n"
    )
    ok(k("apply", "-f", "-", input=job))
    ok(k("wait", "--for=condition=Complete", "job/talker", "--timeout=20s"))
    assert "simulated output" in ok(k("logs", "job/talker"))
    assert "Complete" in ok(k("get", "jobs", "talker"))


def test_explain_a_crd_field(k: Any) -> None:
    out = ok(k("explain", "widget.spec"))
    assert "KIND:       Widget" in out and "Desired state of the widget." in out
    assert "color\t<string> -required-" in out and "How big." in out


def test_typed_create_commands_sending_protobuf(k: Any, server: Any) -> None:
    assert "namespace/proto created" in ok(k("create", "namespace", "proto"))
    ok(k("create", "configmap", "pcm", "-n", "proto", "--from-literal=a=1", "--from-literal=b=two"))
    ok(k("create", "secret", "generic", "psec", "-n", "proto", "--from-literal=token=s3cret"))
    ok(k("create", "serviceaccount", "robot", "-n", "proto"))
    store = server.store
    assert store.get(GVR("", "v1", "configmaps"), "pcm", namespace="proto")["data"] == {
        "a": "1",
        "b": "two",
    }
    assert store.get(GVR("", "v1", "secrets"), "psec", namespace="proto")["data"] == {
        "token": "czNjcmV0"
    }
    assert (
        store.get(GVR("", "v1", "serviceaccounts"), "robot", namespace="proto")["metadata"]["name"]
        == "robot"
    )
    assert 'namespace "proto" deleted' in ok(k("delete", "namespace", "proto"))


def test_every_typed_create_generator_of_a_served_kind(k: Any, server: Any, tmp_path: Path) -> None:
    """Issue 19 gap 1: kubectl sends protobuf for these; each object arrives whole."""
    pki = tls.make_pki(["example.test"])
    (tmp_path / "tls.crt").write_bytes(pki.cert_pem)
    (tmp_path / "tls.key").write_bytes(pki.key_pem)
    ok(k("create", "namespace", "gen"))
    ok(k("create", "job", "j1", "-n", "gen", "--image=busybox", "--", "sh", "-c", "exit 0"))
    ok(k("wait", "-n", "gen", "--for=condition=Complete", "job/j1", "--timeout=20s"))
    ok(
        k(
            "create",
            "deployment",
            "d1",
            "-n",
            "gen",
            "--image=nginx:1.27",
            "--port=80",
            "--replicas=0",
        )
    )
    ok(k("create", "service", "nodeport", "s1", "-n", "gen", "--tcp=80:8080"))
    ok(k("create", "role", "r1", "-n", "gen", "--verb=get,list", "--resource=pods"))
    ok(k("create", "rolebinding", "rb1", "-n", "gen", "--role=r1", "--user=alice", "--group=ops"))
    ok(k("create", "clusterrole", "gen-cr1", "--verb=get", "--resource=jobs.batch"))
    ok(
        k(
            "create",
            "clusterrolebinding",
            "gen-crb1",
            "--clusterrole=gen-cr1",
            "--serviceaccount=gen:default",
        )
    )
    ok(
        k(
            "create",
            "poddisruptionbudget",
            "p1",
            "-n",
            "gen",
            "--selector=app=x",
            "--max-unavailable=25%",
        )
    )
    ok(
        k(
            "create",
            "secret",
            "tls",
            "t1",
            "-n",
            "gen",
            "--cert",
            str(tmp_path / "tls.crt"),
            "--key",
            str(tmp_path / "tls.key"),
        )
    )
    ok(
        k(
            "create",
            "secret",
            "docker-registry",
            "reg",
            "-n",
            "gen",
            "--docker-server=r.io",
            "--docker-username=u",
            "--docker-password=p",
        )
    )
    store = server.store
    job = store.get(GVR("batch", "v1", "jobs"), "j1", namespace="gen")
    (main,) = job["spec"]["template"]["spec"]["containers"]
    assert (main["image"], main["command"]) == ("busybox", ["sh", "-c", "exit 0"])
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    deploy = store.get(GVR("apps", "v1", "deployments"), "d1", namespace="gen")
    assert deploy["spec"]["replicas"] == 0  # an explicit zero is kept
    assert deploy["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP"}
    ]
    svc = store.get(GVR("", "v1", "services"), "s1", namespace="gen")
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"][0]["targetPort"] == 8080 and svc["spec"]["ports"][0]["port"] == 80
    rb = store.get(GVR("rbac.authorization.k8s.io", "v1", "rolebindings"), "rb1", namespace="gen")
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r1"}
    assert {s["name"] for s in rb["subjects"]} == {"alice", "ops"}
    role = store.get(GVR("rbac.authorization.k8s.io", "v1", "roles"), "r1", namespace="gen")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    pdb = store.get(GVR("policy", "v1", "poddisruptionbudgets"), "p1", namespace="gen")
    assert pdb["spec"]["maxUnavailable"] == "25%"
    tls_secret = store.get(GVR("", "v1", "secrets"), "t1", namespace="gen")
    assert tls_secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(tls_secret["data"]["tls.crt"]) == pki.cert_pem
    reg = store.get(GVR("", "v1", "secrets"), "reg", namespace="gen")
    assert reg["type"] == "kubernetes.io/dockerconfigjson"
    ok(k("delete", "clusterrolebinding", "gen-crb1"))
    ok(k("delete", "clusterrole", "gen-cr1"))
    assert 'namespace "gen" deleted' in ok(k("delete", "namespace", "gen"))


def test_server_side_apply_of_a_crd_then_its_resources(k: Any, server: Any) -> None:
    crd = (
        CRD.replace("widgets", "sprockets")
        .replace("widget", "sprocket")
        .replace("Widget", "Sprocket")
        .replace("shortNames: [wd]", "shortNames: [spr]")
    )
    out = ok(k("apply", "--server-side", "-f", "-", input=crd))
    assert (
        "customresourcedefinition.apiextensions.k8s.io/sprockets.example.kubesim.io serverside-applied"
        in out
    )
    ok(
        k(
            "wait",
            "--for=condition=Established",
            "crd/sprockets.example.kubesim.io",
            "--timeout=10s",
        )
    )
    manifest = widget("s1", size=2).replace("Widget", "Sprocket")
    assert "sprocket.example.kubesim.io/s1 serverside-applied" in ok(
        k("apply", "--server-side", "-f", "-", input=manifest)
    )
    assert ok(k("get", "spr", "s1", "-o", "jsonpath={.spec.size}")) == "2"
    dry = ok(
        k(
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            "-",
            input=manifest.replace("size: 2", "size: 4"),
        )
    )
    assert "serverside-applied (server dry run)" in dry
    assert ok(k("get", "spr", "s1", "-o", "jsonpath={.spec.size}")) == "2"
    assert "sprockets.example.kubesim.io" in ok(k("delete", "crd", "sprockets.example.kubesim.io"))
    gone = k("get", "spr")
    assert gone.returncode == 1


WORKLOAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web}
spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress]}
"""


def test_manifest_kinds_without_controllers_apply(k: Any, server: Any) -> None:
    out = ok(k("apply", "-f", "-", input=WORKLOAD))
    for line in (
        "deployment.apps/web created",
        "role.rbac.authorization.k8s.io/reader created",
        "rolebinding.rbac.authorization.k8s.io/reader created",
        "networkpolicy.networking.k8s.io/web created",
    ):
        assert line in out
    assert "deployment.apps/web unchanged" in ok(k("apply", "-f", "-", input=WORKLOAD))
    table = ok(k("get", "deploy,rolebinding"))
    assert "READY   UP-TO-DATE   AVAILABLE" in table and "Role/reader" in table
    ok(k("apply", "-f", "-", input=WORKLOAD.replace("image: nginx", "image: nginx:2")))
    deploy = server.store.get(GVR("apps", "v1", "deployments"), "web", namespace=NS)
    assert deploy["metadata"]["generation"] == 2 and deploy["spec"]["replicas"] == 1
    bad = k(
        "apply",
        "-f",
        "-",
        input=WORKLOAD.split("---")[0].replace(
            "app: web}}\n  template", "app: other}}\n  template"
        ),
    )
    assert bad.returncode == 1 and "field is immutable" in bad.stderr
