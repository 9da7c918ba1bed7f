"""Thread boundaries of the real controller against kubesim (issue 11): a flow whose validation
raises a BaseException from native code, a worker killed mid-pass, and a controller whose
workers cannot make progress.

How the failures are caused. The real trigger was the old CEL engine (Rust, through pyo3)
raising ``PanicException``, a ``BaseException``, from ``jobflow.validation.validate`` during a
reconcile (docs/conditions.md, reproduction 2). The engine was replaced and ``when`` is
length-limited before any parser sees it, so no input we know of reaches native code that
raises one now. Each test therefore monkeypatches ``jobflow.validation.validate`` in this
process (the controller runs in-process; the reconciler reaches it through
``jobflow.planning.spec_problems``) for the flows it names only: it raises the test's
``Panic(BaseException)`` or ``SystemExit``, or blocks. Every other flow gets the real one.

Covered:
- panicking flows (more of them than workers, which once killed every worker): each gets
  ``Accepted=False`` with reason ReconcileError naming ``Panic`` and the panic's first line,
  written once (its resourceVersion stays put while the retries continue with backoff, far from
  a hot loop) with one Warning Event; a canary created after them succeeds; the workers stay
  alive and the controller ready; when the panic stops, the flow is accepted and succeeds;
- a SystemExit inside a pass ends that worker thread: the supervisor starts another, counts it
  in ``zenflow_thread_restarts_total{thread="reconcile"}``, the key is retried and the flow
  succeeds;
- the only worker stuck in a pass while another flow waits: /readyz (the ops app over httpx,
  with the check `zen-flow serve` registers) answers 503 once ``stall_after`` passes, and 200
  again when the worker is free.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from app import main
from controller.kube import EVENTS
from jobflow import validation
from tests.fixtures.controller import NAMESPACE, flow, job_step
from tests.fixtures.webhook import AppClient
from tests.waiting import eventually

PANIC_LINE = "called `Option::unwrap()` on a `None` value"


class Panic(BaseException):
    """Stands for pyo3's PanicException: a BaseException, not an Exception."""


def quick(name: str) -> dict[str, Any]:
    return flow(name, [job_step("a"), job_step("b", "a")])


def accepted(cluster, name: str) -> dict[str, Any]:
    for cond in cluster.status(name).get("conditions") or ():
        if cond["type"] == "Accepted":
            return cond
    return {}


def patch_validate(
    monkeypatch: pytest.MonkeyPatch, names: set[str], action: Callable[[str], None]
) -> None:
    """``action(name)`` runs before the real validation of the flows called ``names``."""
    real = validation.validate

    def validate(obj: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        name = str((obj.get("metadata") or {}).get("name"))
        if name in names:
            action(name)
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(validation, "validate", validate)


def restarts(ctl, role: str = "reconcile") -> float:
    value = ctl.metrics.registry.get_sample_value("zenflow_thread_restarts_total", {"thread": role})
    return value or 0.0


def test_panicking_flows_are_marked_and_the_rest_keep_reconciling(
    cluster, start_controller, monkeypatch
) -> None:
    bad = {f"panic-{i}" for i in range(4)}
    crashes: dict[str, int] = dict.fromkeys(bad, 0)
    panicking = threading.Event()
    panicking.set()

    def panic(name: str) -> None:
        if panicking.is_set():
            crashes[name] += 1
            raise Panic(f"{PANIC_LINE}\nnote: run with `RUST_BACKTRACE=1`")

    patch_validate(monkeypatch, bad, panic)
    ctl = start_controller(workers=2)
    for name in sorted(bad):
        cluster.create_flow(quick(name))
    cluster.create_flow(quick("canary"))
    cluster.wait_phase("canary", "Succeeded")

    for name in sorted(bad):
        cond = eventually(
            lambda name=name: (
                accepted(cluster, name).get("status") == "False" and accepted(cluster, name)
            ),
            10,
            message=f"{name} not accepted",
        )
        assert cond["reason"] == "ReconcileError"
        assert f"Panic: {PANIC_LINE}" in cond["message"]
        assert "RUST_BACKTRACE" not in cond["message"]
        assert cluster.phase(name) == "Pending"
        assert not cluster.jobs(name)
    assert ctl.live_workers == 2
    assert ctl.is_ready()
    planning_errors = ctl.metrics.registry.get_sample_value(
        "zenflow_reconcile_errors_total", {"error": "planning"}
    )
    assert planning_errors is not None and planning_errors >= len(bad)

    # Written once: the retries go on (with backoff) and leave the flow as it is.
    rv = cluster.flow("panic-0")["metadata"]["resourceVersion"]
    seen = crashes["panic-0"]
    # the next retry is due after the key's doubling backoff: seconds, after a dozen crashes
    eventually(lambda: crashes["panic-0"] > seen, 30, message="panic-0 retried")
    cluster.create_flow(quick("canary-2"))
    cluster.wait_phase("canary-2", "Succeeded")
    assert cluster.flow("panic-0")["metadata"]["resourceVersion"] == rv
    # Backoff from 5 ms doubling: a dozen retries in these seconds; a hot loop makes thousands.
    assert max(crashes.values()) < 30, crashes

    def warnings() -> list[dict[str, Any]]:
        return [
            e
            for e in cluster.kube.list_all(EVENTS, NAMESPACE)["items"]
            if e["involvedObject"]["name"] == "panic-0" and e["reason"] == "ReconcileError"
        ]

    eventually(warnings, 10, message="a ReconcileError event")
    assert len(warnings()) == 1
    assert warnings()[0]["type"] == "Warning"

    # The panic goes away (a fixed engine): the next pass, here prompted by an edit, plans it.
    panicking.clear()
    cluster.patch_flow("panic-0", {"metadata": {"labels": {"poke": "1"}}})
    cluster.wait_phase("panic-0", "Succeeded")
    assert accepted(cluster, "panic-0")["status"] == "True"


def test_a_worker_killed_mid_pass_is_restarted_and_counted(
    cluster, start_controller, monkeypatch
) -> None:
    exits = [SystemExit(1)]

    def exit_once(_name: str) -> None:
        if exits:
            raise exits.pop()

    patch_validate(monkeypatch, {"exit-1"}, exit_once)
    ctl = start_controller(workers=2)
    eventually(lambda: ctl.ready, 10, message="controller ready")
    assert restarts(ctl) == 0
    cluster.create_flow(quick("exit-1"))
    eventually(lambda: restarts(ctl) == 1, 10, message="the killed worker was restarted")
    assert not exits, "SystemExit was raised in a pass"
    eventually(lambda: ctl.live_workers == 2, 5, message="two live workers again")
    cluster.wait_phase("exit-1", "Succeeded")  # its key was requeued, not lost
    cluster.create_flow(quick("canary"))
    cluster.wait_phase("canary", "Succeeded")
    assert restarts(ctl) == 1
    for role in ("informer-jobflows", "informer-jobs", "resync", "event-writer"):
        assert restarts(ctl, role) == 0, role


def test_readyz_is_503_while_no_worker_can_make_progress(
    cluster, start_controller, monkeypatch
) -> None:
    release = threading.Event()
    entered = threading.Event()

    def block(_name: str) -> None:
        entered.set()
        release.wait(30)

    patch_validate(monkeypatch, {"stuck"}, block)
    ctl = start_controller(workers=1, stall_after=1.0)
    readiness = main.Readiness()
    readiness.add("controller", ctl.is_ready)  # what `zen-flow serve` registers
    ops = AppClient(main.create_ops_app(registry=CollectorRegistry(), readiness=readiness))
    eventually(lambda: ops.get("/readyz").status_code == 200, 10, message="ready at first")
    try:
        cluster.create_flow(quick("stuck"))
        assert entered.wait(10), "the only worker is in the stuck pass"
        cluster.create_flow(quick("waiting"))
        answer = eventually(
            lambda: (r := ops.get("/readyz")).status_code == 503 and r, 10, message="503"
        )
        assert answer.json()["checks"] == {"controller": False}
        assert ctl.unready_reason == "stalled"
        assert ctl.live_workers == 1, "alive, but stuck: not a restart case"
    finally:
        release.set()
    eventually(lambda: ops.get("/readyz").status_code == 200, 10, message="ready again")
    cluster.wait_phase("waiting", "Succeeded")
    cluster.wait_phase("stuck", "Succeeded")
