"""The API server's answers to Job creates, against kubesim (issue 13, items 1 and 10).

Covers:
- a Job create answered 422 Invalid (kubesim validates batch/v1 Jobs as kube-apiserver does:
  two containers named "main"): each refused attempt is a failed attempt of the retry policy,
  the step ends Failed (reason CreateRejected) with the server's message, a Warning Event
  CreateRejected carries it, the dependant is Skipped and the flow ends Failed; no Job exists;
- a Job create answered 403 by a validating admission webhook (a policy engine's denial): the
  step fails at once with the webhook's message, the flow ends Failed, the step beside it that
  the policy allows still runs to Succeeded;
- a resourceTemplates object that cannot be created (a ConfigMap of the same name that the
  flow does not own is in the way): the flow ends Failed, reason CreateRejected, saying which
  object and why, with a Warning Event, and no Job starts;
- a Job create answered 500 for a while is retried (the step is never failed, nothing is
  charged) and the flow succeeds once the server recovers;
- item 10 under a kill: the retry's Job is created, every status write fails, the controller
  process is SIGKILLed; the next controller adopts that Job without charging its retry again,
  so a step with retry limit 2 whose first two attempts fail still gets its third attempt.
"""

from __future__ import annotations

import base64
import http.server
import json
import signal
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.kube import CONFIGMAPS, EVENTS, Resource
from kubesim import tls
from tests.fixtures.controller import NAMESPACE, ControllerProcess, flow, job_step
from tests.waiting import eventually

WEBHOOKS = Resource(
    "admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", namespaced=False
)
STEP_LABEL = "workflow.kube-zen.io/step"
POLICY = "jobs of step guarded need a cost-center label (policy require-cost-center)"


def events(cluster: Any, flow_name: str) -> list[tuple[str, str, str]]:
    listed = cluster.kube.list_all(
        EVENTS, NAMESPACE, field_selector=f"involvedObject.name={flow_name}"
    )
    return [(e["type"], e["reason"], e["message"]) for e in listed["items"]]


def job_names(cluster: Any, flow_name: str, step: str) -> list[str]:
    return [j["metadata"]["name"] for j in cluster.step_jobs(flow_name, step)]


def test_a_job_the_server_finds_invalid_fails_its_step_after_its_retries(
    cluster: Any, start_controller: Callable[..., Any]
) -> None:
    main = {"name": "main", "image": "busybox"}
    bad = job_step(
        "bad",
        retryPolicy={"limit": 1, "backoff": {"type": "Fixed", "duration": "1s"}},
    )
    bad["template"]["spec"]["template"]["spec"]["containers"] = [main, dict(main)]
    cluster.create_flow(flow("invalid", [bad, job_step("after", "bad")]))
    start_controller()
    status = cluster.wait_phase("invalid", "Failed", timeout=30)
    steps = {s["name"]: s for s in status["steps"]}
    attempt_1 = cluster.step(  # the Job name of attempt 1 is in jobRef
        "invalid", "bad"
    )["jobRef"]["name"]
    refusal = (
        f'Job.batch "{attempt_1}" is invalid: '
        'spec.template.spec.containers[1].name: Duplicate value: "main"'
    )
    bad_entry = steps["bad"]
    assert (bad_entry["phase"], bad_entry["reason"]) == ("Failed", "CreateRejected")
    assert bad_entry["message"] == f"{refusal}; retry limit 1 reached"
    assert (bad_entry["attempts"], bad_entry["retries"]) == (2, 1)
    assert (steps["after"]["phase"], steps["after"]["reason"]) == ("Skipped", "UpstreamFailed")
    assert cluster.jobs("invalid") == []  # the server stored nothing

    def said() -> list[tuple[str, str, str]]:
        found = events(cluster, "invalid")
        reasons = {r for _, r, _ in found}
        return found if {"CreateRejected", "StepRetrying", "StepFailed"} <= reasons else []

    found = eventually(said, 10, message="the refusals are Events on the flow")
    rejected = " ".join(m for t, r, m in found if (t, r) == ("Warning", "CreateRejected"))
    assert f"step bad: the API server refused Job {attempt_1}: {refusal}" in rejected
    assert any(
        r == "StepRetrying" and "attempt 1 failed (CreateRejected); retry 1/1" in m
        for _, r, m in found
    )


# -- a validating admission webhook that denies Jobs ------------------------------------------


@pytest.fixture
def deny_guarded_jobs(cluster: Any, tmp_path: Path) -> Iterator[list[str]]:
    """An HTTPS validating webhook on Job creates that denies (403) the Jobs of step
    ``guarded``, registered in kubesim as kube-apiserver would call it; yields the names of the
    Jobs it denied."""
    pki = tls.make_pki(["127.0.0.1"])
    (tmp_path / "tls.crt").write_bytes(pki.cert_pem)
    (tmp_path / "tls.key").write_bytes(pki.key_pem)
    denied: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            request = review["request"]
            labels = (request.get("object") or {}).get("metadata", {}).get("labels") or {}
            response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
            if labels.get(STEP_LABEL) == "guarded":
                denied.append(request["name"])
                response = {
                    "uid": request["uid"],
                    "allowed": False,
                    "status": {"code": 403, "reason": "Forbidden", "message": POLICY},
                }
            body = json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": response,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}/validate"
    cluster.kube.create(
        WEBHOOKS,
        None,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "require-cost-center"},
            "webhooks": [
                {
                    "name": "require-cost-center.policy.test",
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "failurePolicy": "Fail",
                    "clientConfig": {
                        "url": url,
                        "caBundle": base64.b64encode(pki.ca_pem).decode(),
                    },
                    "rules": [
                        {
                            "operations": ["CREATE"],
                            "apiGroups": ["batch"],
                            "apiVersions": ["v1"],
                            "resources": ["jobs"],
                        }
                    ],
                }
            ],
        },
    )
    try:
        yield denied
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_job_denied_by_an_admission_webhook_fails_its_step_and_the_flow(
    cluster: Any, start_controller: Callable[..., Any], deny_guarded_jobs: list[str]
) -> None:
    cluster.create_flow(flow("policed", [job_step("guarded"), job_step("free", duration=0.5)]))
    start_controller()
    status = cluster.wait_phase("policed", "Failed", timeout=30)
    steps = {s["name"]: s for s in status["steps"]}
    guarded = steps["guarded"]
    message = f'admission webhook "require-cost-center.policy.test" denied the request: {POLICY}'
    assert (guarded["phase"], guarded["reason"], guarded["message"]) == (
        "Failed",
        "CreateRejected",
        message,
    )
    assert (guarded["attempts"], guarded.get("retries", 0)) == (1, 0)
    assert steps["free"]["phase"] == "Succeeded"  # running steps finish; the flow then fails
    assert job_names(cluster, "policed", "guarded") == []
    assert deny_guarded_jobs and set(deny_guarded_jobs) == {guarded["jobRef"]["name"]}

    def said() -> list[str]:
        return [
            m for t, r, m in events(cluster, "policed") if (t, r) == ("Warning", "CreateRejected")
        ]

    rejected = eventually(said, 10, message="a CreateRejected Event")
    assert any(message in m for m in rejected), rejected
    assert any(
        r == "StepFailed" and f"step guarded failed (CreateRejected): {message}" in m
        for _, r, m in events(cluster, "policed")
    )


def test_a_job_create_answered_500_is_retried_not_failed(
    cluster: Any, start_controller: Callable[..., Any]
) -> None:
    faults = cluster.server.faults
    cluster.create_flow(flow("flaky", [job_step("a", duration=0.1)]))
    faults.configure(error_rate={"create": 1.0}, error_code=500)
    start_controller()
    eventually(lambda: faults.injected.get("create", 0) >= 3, 10, message="creates refused")
    assert cluster.jobs("flaky") == []
    assert cluster.step("flaky", "a").get("phase") != "Failed"
    faults.reset()
    status = cluster.wait_phase("flaky", "Succeeded", timeout=30)
    entry = status["steps"][0]
    assert (entry["phase"], entry["attempts"], entry.get("retries", 0)) == ("Succeeded", 1, 0)
    assert "CreateRejected" not in {r for _, r, _ in events(cluster, "flaky")}


# -- item 10: retries charged once across a lost status write and a kill ----------------------


def test_a_retry_adopted_after_a_lost_status_write_and_a_kill_is_charged_once(
    cluster: Any, spawn_controller: Callable[..., ControllerProcess]
) -> None:
    faults = cluster.server.faults
    cluster.create_flow(
        flow(
            "charged",
            [
                job_step(
                    "c",
                    duration=1.0,
                    fail_attempts=2,
                    attempt_key="charged-c",
                    retryPolicy={"limit": 2, "backoff": {"type": "Fixed", "duration": "1s"}},
                )
            ],
        )
    )
    first = spawn_controller("--no-leader-elect").proc
    eventually(
        lambda: cluster.step("charged", "c").get("reason") == "RetryBackoff",
        30,
        message="attempt 0 failed; retry 1 charged",
    )
    assert cluster.step("charged", "c")["retries"] == 1
    faults.configure(error_rate={"update": 1.0})  # every status write from now on is lost
    eventually(lambda: len(job_names(cluster, "charged", "c")) == 2, 10, message="attempt 1's Job")
    first.send_signal(signal.SIGKILL)
    first.wait(5)
    faults.reset()
    entry = cluster.step("charged", "c")
    assert (entry["reason"], entry["attempts"], entry["retries"]) == ("RetryBackoff", 1, 1)
    spawn_controller("--no-leader-elect")
    status = eventually(
        lambda: (s := cluster.status("charged")).get("phase") in ("Succeeded", "Failed") and s,
        40,
        message="the flow ended",
    )
    entry = status["steps"][0]
    assert (status["phase"], entry["phase"], entry["attempts"], entry["retries"]) == (
        "Succeeded",
        "Succeeded",
        3,
        2,
    ), entry
    assert len(job_names(cluster, "charged", "c")) == 3


def test_a_resource_template_in_the_way_fails_the_flow_with_its_reason(
    cluster: Any, start_controller: Callable[..., Any]
) -> None:
    cluster.kube.create(
        CONFIGMAPS,
        NAMESPACE,
        {"metadata": {"name": "blocked-cfg"}, "data": {"owner": "someone else"}},
    )
    resources = {"configMapTemplates": [{"metadata": {"name": "cfg"}, "data": {"a": "b"}}]}
    pod_spec = {"volumes": [{"name": "conf", "configMap": {"name": "cfg"}}]}
    cluster.create_flow(
        flow("blocked", [job_step("use", extra_pod_spec=pod_spec)], resourceTemplates=resources)
    )
    start_controller()
    status = cluster.wait_phase("blocked", "Failed", timeout=30)
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    said = (
        f"ConfigMap blocked-cfg of resourceTemplates was refused: ConfigMap {NAMESPACE}/"
        "blocked-cfg exists and is not owned by this flow; delete or rename it"
    )
    assert (failed["status"], failed["reason"], failed["message"]) == (
        "True",
        "CreateRejected",
        said,
    )
    step = status["steps"][0]
    assert (step["phase"], step["reason"]) == ("Skipped", "CreateRejected")
    assert job_names(cluster, "blocked", "use") == []
    assert cluster.kube.get(CONFIGMAPS, NAMESPACE, "blocked-cfg")["data"] == {
        "owner": "someone else"
    }
    eventually(
        lambda: ("Warning", "CreateRejected", said) in events(cluster, "blocked"),
        10,
        message="a CreateRejected Event",
    )
