"""An in-memory world for planner tests: one JobFlow, its Jobs and owned objects, a clock.

``World.apply(plan)`` does what the controller runtime does with a plan (create objects and
Jobs, adopt on AlreadyExists, delete Jobs, write status, record events, delete the flow) so
tests can run the planner in a loop and assert on the resulting objects. Jobs are finished by
the test (``finish``), or by ``simulate`` from a per-step script. This is a test double of the
Kubernetes API, not of any product code: ``jobflow.planning.plan`` runs for real.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from jobflow import names
from jobflow.planning import Event, ObservedJob, Plan, plan

T0 = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)


def ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def job_template(*, backoff_limit: int | None = None, **pod: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                **pod,
            }
        }
    }
    if backoff_limit is not None:
        spec["backoffLimit"] = backoff_limit
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": spec}


def step(name: str, *deps: str, **fields: object) -> dict[str, object]:
    out: dict[str, object] = {"name": name}
    if deps:
        out["dependencies"] = list(deps)
    if fields.get("type") != "Manual" and "template" not in fields:
        out["template"] = job_template()
    out.update(fields)
    return out


def flow(
    *steps: dict[str, object],
    name: str = "f",
    uid: str = "uid-1",
    created: datetime = T0,
    policy: Mapping[str, object] | None = None,
    **spec: object,
) -> dict[str, object]:
    body: dict[str, object] = {"steps": list(steps), **spec}
    if policy is not None:
        body["executionPolicy"] = dict(policy)
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": uid,
            "generation": 1,
            "creationTimestamp": ts(created),
        },
        "spec": body,
    }


@dataclass
class PodResult:
    exit_code: int | None = None
    termination_message: str | None = None
    init_container: str | None = None  # the failed init container they came from


@dataclass
class World:
    flow: dict[str, object]
    now: datetime = T0
    jobs: dict[str, dict[str, object]] = field(default_factory=dict)
    objects: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)
    pods: dict[str, PodResult] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    deleted_jobs: list[str] = field(default_factory=list)
    created_jobs: list[str] = field(default_factory=list)
    created_at: dict[str, str] = field(default_factory=dict)
    flow_deleted: bool = False
    peers: list[dict[str, object]] = field(default_factory=list)
    uid_counter: int = 0
    max_starts: int | None = None  # the controller's --max-active-jobs share per pass

    # -- reading --

    @property
    def status(self) -> dict[str, object]:
        value = self.flow.get("status")
        return value if isinstance(value, dict) else {}

    @property
    def phase(self) -> str | None:
        value = self.status.get("phase")
        return value if isinstance(value, str) else None

    def step_status(self, name: str) -> dict[str, object]:
        steps = self.status.get("steps")
        assert isinstance(steps, list)
        for entry in steps:
            if entry["name"] == name:
                return dict(entry)
        raise KeyError(name)

    def condition(self, kind: str) -> dict[str, object]:
        conditions = self.status.get("conditions")
        assert isinstance(conditions, list)
        for cond in conditions:
            if cond["type"] == kind:
                return dict(cond)
        raise KeyError(kind)

    def jobs_of(self, step_name: str) -> list[dict[str, object]]:
        return sorted(
            (
                j
                for j in self.jobs.values()
                if j["metadata"]["labels"][names.LABEL_STEP] == step_name  # type: ignore[index]
            ),
            key=lambda j: int(j["metadata"]["labels"][names.LABEL_ATTEMPT]),  # type: ignore[index]
        )

    def observed(self) -> list[ObservedJob]:
        out = []
        for name, job in self.jobs.items():
            pod = self.pods.get(name)
            out.append(
                ObservedJob(
                    job=copy.deepcopy(job),
                    exit_code=pod.exit_code if pod else None,
                    termination_message=pod.termination_message if pod else None,
                    failed_init_container=pod.init_container if pod else None,
                    pod_details_read=pod is not None,
                )
            )
        return out

    # -- the planner --

    def plan(self) -> Plan:
        return plan(
            copy.deepcopy(self.flow),
            self.observed(),
            self.now,
            peers=self.peers,
            max_starts=self.max_starts,
        )

    def apply(self, result: Plan) -> None:
        for obj in result.create_objects:
            key = (str(obj["kind"]), str(obj["metadata"]["name"]))  # type: ignore[index]
            self.objects.setdefault(key, copy.deepcopy(dict(obj)))
        for manifest in result.create_jobs:
            name = str(manifest["metadata"]["name"])  # type: ignore[index]
            if name in self.jobs:
                continue  # AlreadyExists for our own Job: adoption
            job = copy.deepcopy(dict(manifest))
            self.uid_counter += 1
            job["metadata"]["uid"] = f"job-uid-{self.uid_counter}"  # type: ignore[index]
            job["metadata"]["creationTimestamp"] = ts(self.now)  # type: ignore[index]
            job["status"] = {"active": 1, "startTime": ts(self.now)}
            self.jobs[name] = job
            self.created_jobs.append(name)
            self.created_at[name] = ts(self.now)
        for name in result.delete_jobs:
            if self.jobs.pop(name, None) is not None:
                self.deleted_jobs.append(name)
        self.flow["status"] = copy.deepcopy(dict(result.status))
        self.events.extend(result.events)
        if result.delete_flow:
            self.flow_deleted = True

    def reconcile(self, *, check_idempotent: bool = True) -> Plan:
        """One pass (plan + apply); then assert the next pass at the same instant is a no-op."""
        result = self.plan()
        self.apply(result)
        if check_idempotent and not self.flow_deleted:
            again = self.plan()
            assert_noop(again, result)
        return result

    # -- the cluster's side --

    def finish(
        self,
        job_name: str,
        *,
        ok: bool,
        at: datetime | None = None,
        exit_code: int | None = None,
        message: str | None = None,
        reason: str | None = None,
        init_container: str | None = None,
        pods_readable: bool = True,
    ) -> None:
        """Finish a Job. A failed one's pod says exit code 1 unless told otherwise (the runtime
        reads it once); ``pods_readable=False`` leaves the pods unread (the runtime not asked yet)."""
        job = self.jobs[job_name]
        when = ts(at or self.now)
        kind = "Complete" if ok else "Failed"
        condition = {
            "type": kind,
            "status": "True",
            "lastTransitionTime": when,
            "reason": reason or ("Completed" if ok else "BackoffLimitExceeded"),
            "message": "Job completed" if ok else "Job has reached the specified backoff limit",
        }
        job["status"] = {
            "conditions": [condition],
            "succeeded" if ok else "failed": 1,
            **({"completionTime": when} if ok else {}),
        }
        if not ok and exit_code is None and pods_readable:
            exit_code = 1
        if (exit_code is not None or message is not None) and pods_readable:
            self.pods[job_name] = PodResult(
                exit_code=exit_code, termination_message=message, init_container=init_container
            )

    def job_of(self, step_name: str, attempt: int = 0) -> str:
        meta = self.flow["metadata"]
        assert isinstance(meta, dict)
        return names.job_name(str(meta["name"]), str(meta["uid"]), step_name, attempt)

    def annotate(self, key: str, value: str) -> None:
        meta = self.flow["metadata"]
        assert isinstance(meta, dict)
        meta.setdefault("annotations", {})[key] = value
        meta["generation"] = meta.get("generation", 1)

    def set_spec(self, key: str, value: object) -> None:
        spec = self.flow["spec"]
        assert isinstance(spec, dict)
        spec[key] = value
        meta = self.flow["metadata"]
        assert isinstance(meta, dict)
        meta["generation"] = int(meta.get("generation", 1)) + 1

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def running_after(
    body: dict[str, object], first: Plan
) -> tuple[dict[str, object], list[ObservedJob]]:
    """The flow with ``first``'s status and each Job ``first`` created seen running: what a
    steady pass reads (the benchmarks time it)."""
    observed = []
    for manifest in first.create_jobs:
        job = dict(manifest)
        job["metadata"] = {**manifest["metadata"], "uid": "u"}  # type: ignore[dict-item]
        job["status"] = {"active": 1, "ready": 1, "startTime": "2026-01-01T00:00:00Z"}
        observed.append(ObservedJob(job=job))
    return {**body, "status": dict(first.status)}, observed


def assert_noop(again: Plan, previous: Plan) -> None:
    assert again.create_objects == (), again.create_objects
    assert again.create_jobs == (), [j["metadata"]["name"] for j in again.create_jobs]  # type: ignore[index]
    assert again.delete_jobs == (), again.delete_jobs
    assert again.events == (), again.events
    assert again.needs_pod_details == previous.needs_pod_details
    assert dict(again.status) == dict(previous.status)
    assert again.requeue_after == previous.requeue_after


# A step's behaviour in a simulation: (step, attempt) -> (seconds to run, ok, exit code, message)
Script = Callable[[str, int], tuple[float, bool, int | None, str | None]]


def always_ok(_step: str, _attempt: int) -> tuple[float, bool, int | None, str | None]:
    return 5.0, True, 0, None


def simulate(
    world: World,
    script: Script = always_ok,
    *,
    max_passes: int = 200,
    until_deleted: bool = False,
    check_idempotent: bool = True,
    on_pass: Callable[[World], None] | None = None,
) -> list[Plan]:
    """Run passes, finishing Jobs per ``script`` and jumping the clock to the next deadline,
    until the flow is terminal with nothing pending. Every pass is checked for idempotence and
    for never creating a second Job for an attempt."""
    plans: list[Plan] = []
    finish_at: dict[str, datetime] = {}
    for _ in range(max_passes):
        if on_pass is not None:
            on_pass(world)
        result = world.reconcile(check_idempotent=check_idempotent)
        plans.append(result)
        assert len(world.created_jobs) == len(set(world.created_jobs)), "an attempt got two Jobs"
        if world.flow_deleted:
            return plans
        if world.phase in ("Succeeded", "Failed") and not until_deleted:
            return plans
        for name, job in world.jobs.items():
            if name in finish_at or job["status"].get("conditions"):  # type: ignore[union-attr]
                continue
            labels = job["metadata"]["labels"]  # type: ignore[index]
            duration, ok, code, message = script(
                labels[names.LABEL_STEP], int(labels[names.LABEL_ATTEMPT])
            )
            finish_at[name] = world.now + timedelta(seconds=duration)
        pending = {n: t for n, t in finish_at.items() if n in world.jobs and _is_active(world, n)}
        candidates = list(pending.values())
        if result.requeue_after is not None:
            candidates.append(world.now + timedelta(seconds=result.requeue_after))
        if not candidates:
            if world.phase in ("Succeeded", "Failed", "Paused", "Suspended", "Pending"):
                return plans
            if not check_idempotent:
                continue  # a lost status write: the runtime retries the pass
            raise AssertionError(f"flow stuck in {world.phase} with nothing pending")
        world.now = max(min(candidates), world.now)
        for name, moment in pending.items():
            if moment <= world.now:
                labels = world.jobs[name]["metadata"]["labels"]  # type: ignore[index]
                _, ok, code, message = script(
                    labels[names.LABEL_STEP], int(labels[names.LABEL_ATTEMPT])
                )
                world.finish(name, ok=ok, exit_code=code, message=message)
    raise AssertionError(f"no end after {max_passes} passes (phase {world.phase})")


def _is_active(world: World, name: str) -> bool:
    job_status = world.jobs[name].get("status")
    return not (isinstance(job_status, dict) and job_status.get("conditions"))
