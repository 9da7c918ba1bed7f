"""Property tests of the planner on random flows (hypothesis).

For random DAGs (random dependencies, retry policies, continueOnFailure, `when` literals,
timeouts, Manual steps approved or rejected by a simulated person) with random Job outcomes and durations, driven by the in-memory world until the end:
- every pass is idempotent (a second pass at the same instant does nothing) and no attempt ever
  gets two Jobs;
- the flow always reaches Succeeded or Failed (never stuck), and it is Failed exactly when some
  step failed for good without continueOnFailure;
- a step never started before all its dependencies finished;
- a step is charged exactly the retries its failed attempts used, and ends "retry limit N
  reached" only after N retries ran;
- losing status writes at random (the controller crashed after creating Jobs) changes none of
  the above: Jobs are adopted, never duplicated, never charged twice;
- a finished flow changes phase again only through a retry request (spec.retry), which reruns
  exactly the steps it names (or the Failed and Skipped ones) as new attempts, keeps the other
  steps' entries and Jobs, and never gives an attempt two Jobs, with lost writes too.
"""

from __future__ import annotations

from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobflow import names, requests
from tests.unit.planning_world import Plan, World, flow, simulate, step

Outcome = tuple[float, bool, int | None, str | None]


@st.composite
def random_flows(draw: st.DrawFn) -> tuple[dict[str, object], dict[tuple[str, int], Outcome]]:
    count = draw(st.integers(min_value=1, max_value=7))
    steps = []
    for i in range(count):
        deps = draw(st.lists(st.integers(min_value=0, max_value=max(i - 1, 0)), max_size=3))
        fields: dict[str, object] = {}
        if draw(st.booleans()):
            fields["retryPolicy"] = {
                "limit": draw(st.integers(min_value=0, max_value=2)),
                "backoff": {
                    "type": draw(st.sampled_from(["Fixed", "Linear", "Exponential"])),
                    "duration": f"{draw(st.integers(min_value=1, max_value=20))}s",
                },
            }
        if draw(st.booleans()):
            fields["continueOnFailure"] = True
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            fields["when"] = draw(st.sampled_from(["never", "always", "false"]))
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            fields["timeoutSeconds"] = draw(st.integers(min_value=1, max_value=30))
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            fields = {k: v for k, v in fields.items() if k in ("continueOnFailure", "when")}
            fields["type"] = "Manual"
        dependencies = sorted({f"s{d}" for d in deps if i > 0})
        steps.append(step(f"s{i}", *dependencies, **fields))
    outcomes: dict[tuple[str, int], Outcome] = {}
    for i in range(count):
        for attempt in range(4):
            outcomes[(f"s{i}", attempt)] = (
                float(draw(st.integers(min_value=0, max_value=40))),
                draw(st.booleans()),
                draw(st.sampled_from([0, 1, 2])),
                None,
            )
    return flow(*steps, policy={"backoffLimit": draw(st.integers(0, 4))}), outcomes


def check_invariants(world: World, *, lost_writes: bool = False) -> None:
    assert world.phase in ("Succeeded", "Failed"), world.phase
    entries = {s["name"]: s for s in world.status["steps"]}  # type: ignore[union-attr,index]
    spec_steps = {s["name"]: s for s in world.flow["spec"]["steps"]}  # type: ignore[index,union-attr]
    blocking = [
        n
        for n, s in entries.items()
        if s["phase"] == "Failed" and not spec_steps[n].get("continueOnFailure")
    ]
    assert (world.phase == "Failed") == bool(blocking), (world.phase, blocking)
    assert all(s["phase"] in ("Succeeded", "Failed", "Skipped") for s in entries.values())
    backoff_limit = world.flow["spec"]["executionPolicy"]["backoffLimit"]  # type: ignore[index]
    retries = 0
    for name, entry in entries.items():
        limit = (spec_steps[name].get("retryPolicy") or {}).get("limit", 0)
        made = {world.job_of(name, a) for a in range(entry["attempts"] + 2)} & set(
            world.created_jobs
        )
        assert made == {world.job_of(name, a) for a in range(entry["attempts"])}, name
        assert entry["attempts"] <= limit + 1, (name, entry)
        # Retries are charged exactly for the attempts that failed (no Ignore rules here):
        # one per attempt after the first, and at most one more for a last failed attempt
        # whose retry was charged and then cancelled (the flow was failing).
        charged = entry.get("retries", 0)
        retried = max(entry["attempts"] - 1, 0)
        extra = 1 if entry["phase"] == "Failed" and entry["attempts"] else 0
        assert retried <= charged <= retried + extra, (name, entry)
        if "retry limit" in str(entry.get("message")):
            assert entry["attempts"] == limit + 1 and charged == limit, (name, entry)
        retries += max(entry["attempts"] - 1, 0)
    assert retries <= backoff_limit
    for name, spec in spec_steps.items():
        # With lost writes a Skipped step may be re-stamped later; order is checked without.
        if not entries[name]["attempts"] or lost_writes:
            continue
        started = _time(world.created_at[world.job_of(name, 0)])
        for dep in spec.get("dependencies", []):
            done = entries[dep].get("completionTime")
            assert done is not None and _time(done) <= started, (name, dep)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def lose_writes(world: World, lose: set[int]) -> None:
    """From now on, the status write of the passes numbered in ``lose`` is lost (the controller
    died after its creates/deletes, before writing status)."""
    passes = 0
    original_apply = world.apply

    def flaky_apply(result: Plan) -> None:
        nonlocal passes
        passes += 1
        saved = world.flow.get("status")
        original_apply(result)
        if passes in lose and not world.flow_deleted:
            if saved is None:
                world.flow.pop("status", None)
            else:
                world.flow["status"] = saved

    world.apply = flaky_apply  # type: ignore[method-assign]


def run(
    spec: dict[str, object] | World,
    outcomes: dict[tuple[str, int], Outcome],
    *,
    lose: set[int],
    request: bool = False,
) -> World:
    """Drive a new flow (or, after a request, an existing world) to its end, losing the status
    writes of the passes numbered in ``lose``; with ``request``, until it was acted on too (a
    pass whose write was lost leaves the flow finished with its request still new)."""
    world = spec if isinstance(spec, World) else World(flow=spec)
    lose_writes(world, lose)

    def script(name: str, attempt: int) -> Outcome:
        return outcomes.get((name, attempt), (1.0, True, 0, None))

    def approve(world: World) -> None:
        # A person answers each waiting Manual step: approve unless its attempt-0 outcome says
        # "fail" (then reject).
        for entry in world.status.get("steps") or []:  # type: ignore[attr-defined]
            if entry["phase"] == "PendingApproval":
                ok = script(entry["name"], 0)[1]
                world.annotate(names.approve_annotation(entry["name"]), "true" if ok else "false")

    while True:
        simulate(world, script, max_passes=400, check_idempotent=not lose, on_pass=approve)
        if world.phase in ("Succeeded", "Failed"):
            if not request or world.status.get("requests"):
                return world
            continue  # the request's pass was lost: the next pass acts on it again
        assert world.phase == "Paused", world.phase
        world.advance(1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_flows())
def test_random_flows_end_and_keep_invariants(
    case: tuple[dict[str, object], dict[tuple[str, int], Outcome]],
) -> None:
    spec, outcomes = case
    world = run(spec, outcomes, lose=set())
    check_invariants(world)


def test_a_retry_cancelled_by_a_later_failure_in_the_same_pass_sets_no_timer() -> None:
    # Found by the property above: s0 fails and is due to retry in 1 s, s3 (later in the spec)
    # fails in the same pass, so s0 is not retried; the plan must not keep s0's wake-up, or the
    # next pass (which has none) differs from it.
    retried = step("s0", retryPolicy={"limit": 1, "backoff": {"type": "Fixed", "duration": "1s"}})
    spec = flow(
        retried,
        step("s1", type="Manual", when="never"),
        step("s2", type="Manual"),
        step("s3"),
        policy={"backoffLimit": 1},
    )
    outcomes: dict[tuple[str, int], Outcome] = {
        (name, attempt): (0.0, False, 0, None)
        for name in ("s0", "s1", "s2", "s3")
        for attempt in range(4)
    }
    outcomes[("s3", 0)] = (1.0, False, 0, None)
    world = run(spec, outcomes, lose=set())
    assert world.phase == "Failed"
    check_invariants(world)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_flows(), st.sets(st.integers(min_value=1, max_value=12), max_size=5))
def test_lost_status_writes_never_duplicate_attempts(
    case: tuple[dict[str, object], dict[tuple[str, int], Outcome]], lose: set[int]
) -> None:
    spec, outcomes = case
    world = run(spec, outcomes, lose=lose)
    check_invariants(world, lost_writes=True)
    per_attempt = [
        (j["metadata"]["labels"][names.LABEL_STEP], j["metadata"]["labels"][names.LABEL_ATTEMPT])  # type: ignore[index]
        for j in world.jobs.values()
    ]
    assert len(per_attempt) == len(set(per_attempt))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    random_flows(),
    st.lists(st.integers(min_value=0, max_value=6), max_size=2),
    st.sets(st.integers(min_value=1, max_value=8), max_size=3),
)
def test_a_retry_reruns_exactly_what_it_names_and_never_duplicates_attempts(
    case: tuple[dict[str, object], dict[tuple[str, int], Outcome]],
    named: list[int],
    lose: set[int],
) -> None:
    """A finished flow changes phase again only through a retry request: the steps it reruns
    (Failed and Skipped ones, or the named ones and their dependants) get new attempts (never
    a second Job for an attempt, even with lost status writes), the others keep their status
    entries and Jobs, and the flow ends again."""
    spec, outcomes = case
    world = run(spec, outcomes, lose=set())
    before = {s["name"]: dict(s) for s in world.status["steps"]}  # type: ignore[union-attr,index]
    jobs_before = set(world.created_jobs)
    names_in_spec = [s["name"] for s in world.flow["spec"]["steps"]]  # type: ignore[index,union-attr]
    chosen = sorted({names_in_spec[i] for i in named if i < len(names_in_spec)})
    retry = requests.Retry(id="r1", steps=tuple(chosen), parameters={}, requested_by=None)
    rerun = set(requests.rerun_for(world.flow, retry))
    world.set_spec("retry", {"id": "r1", **({"steps": chosen} if chosen else {})})
    world.advance(5)
    again = run(world, outcomes, lose=lose, request=True)
    assert again.phase in ("Succeeded", "Failed")
    assert again.status["requests"]["retry"] == "r1"  # type: ignore[index]
    after = {s["name"]: s for s in again.status["steps"]}  # type: ignore[union-attr,index]
    for name, entry in before.items():
        if name not in rerun:
            assert after[name] == entry, name
            continue
        assert after[name]["attempts"] >= entry["attempts"], name
        assert after[name].get("firstAttempt", 0) == entry["attempts"], name
    new_jobs = set(again.created_jobs) - jobs_before
    for job in new_jobs:
        assert job in {again.job_of(n, a) for n in rerun for a in range(after[n]["attempts"])}
    per_attempt = [
        (j["metadata"]["labels"][names.LABEL_STEP], j["metadata"]["labels"][names.LABEL_ATTEMPT])  # type: ignore[index]
        for j in again.jobs.values()
    ]
    assert len(per_attempt) == len(set(per_attempt))


# -- finally steps and fan-out (issue 17) --------------------------------------------------


@st.composite
def expressive_flows(
    draw: st.DrawFn,
) -> tuple[dict[str, object], dict[tuple[str, int], Outcome]]:
    """A random flow whose one Job step fans out over 1-4 items (maybe with a parallelism),
    plus 0-2 finally steps (the second maybe after the first, maybe conditional on the
    outcome)."""
    spec, outcomes = draw(random_flows())
    steps = spec["spec"]["steps"]  # type: ignore[index]
    jobs = [s for s in steps if s.get("type") != "Manual"]
    if jobs:
        fan = draw(st.sampled_from(jobs))
        fan["withItems"] = draw(
            st.lists(
                st.one_of(st.integers(0, 9), st.text("ab", min_size=1)), min_size=1, max_size=4
            )
        )
        if draw(st.booleans()):
            fan["parallelism"] = draw(st.integers(1, 2))
    finals = []
    for i in range(draw(st.integers(0, 2))):
        fields: dict[str, object] = {}
        if draw(st.booleans()):
            fields["when"] = draw(
                st.sampled_from(["flow.phase == 'Failed'", "flow.phase == 'Succeeded'"])
            )
        if draw(st.booleans()):
            fields["retryPolicy"] = {"limit": 1, "backoff": {"type": "Fixed", "duration": "1s"}}
        deps = ("f0",) if i == 1 and draw(st.booleans()) else ()
        finals.append(step(f"f{i}", *deps, **fields))
        for attempt in range(3):
            outcomes[(f"f{i}", attempt)] = (
                float(draw(st.integers(0, 10))),
                draw(st.booleans()),
                0,
                None,
            )
    if finals:
        spec["spec"]["finally"] = finals  # type: ignore[index]
    return spec, outcomes


def check_expressive(world: World, *, lost_writes: bool) -> None:
    assert world.phase in ("Succeeded", "Failed"), world.phase
    entries = {s["name"]: s for s in world.status["steps"]}  # type: ignore[union-attr,index]
    raw = [*world.flow["spec"]["steps"], *world.flow["spec"].get("finally", [])]  # type: ignore[index,union-attr]
    cof = {s["name"]: bool(s.get("continueOnFailure")) for s in raw}
    blocking = [n for n, s in entries.items() if s["phase"] == "Failed" and not cof[n]]
    assert (world.phase == "Failed") == bool(blocking), (world.phase, blocking)
    dag_done = [_time(s["completionTime"]) for s in entries.values() if not s.get("finally")]
    for entry in entries.values():
        # With lost writes a Skipped step may be re-stamped later; order is checked without.
        if entry.get("finally") and entry.get("startTime") and dag_done and not lost_writes:
            assert _time(entry["startTime"]) >= max(dag_done), entry
        items = entry.get("items")
        if items is not None:
            assert len(items["phases"]) == items["count"]
            if entry["phase"] == "Succeeded":
                assert set(items["phases"]) <= {"S"}, entry
    per_attempt = [
        (
            j["metadata"]["labels"][names.LABEL_STEP],  # type: ignore[index]
            j["metadata"]["labels"].get("workflow.kube-zen.io/item-index"),  # type: ignore[index]
            j["metadata"]["labels"][names.LABEL_ATTEMPT],  # type: ignore[index]
        )
        for j in world.jobs.values()
    ]
    assert len(per_attempt) == len(set(per_attempt)), "an attempt got two Jobs"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressive_flows(), st.sets(st.integers(min_value=1, max_value=12), max_size=4))
def test_finally_and_fan_out_end_idempotently_even_with_lost_writes(
    case: tuple[dict[str, object], dict[tuple[str, int], Outcome]], lose: set[int]
) -> None:
    """Every pass is idempotent (without lost writes); with lost status writes no item
    attempt gets two Jobs; finally steps start after the last DAG step ended; the flow is
    Failed exactly when a step (DAG or finally) failed for good without continueOnFailure."""
    spec, outcomes = case
    world = run(spec, outcomes, lose=lose)
    check_expressive(world, lost_writes=bool(lose))


def test_a_fan_out_retry_given_up_later_in_the_pass_leaves_no_stale_timer() -> None:
    """Found by the property above on a fresh clone: an item's retry timer was set as soon as
    the item was seen waiting, then a failure later in the same pass gave the retry up; the
    plan asked for a requeue in 1 s that the next pass did not (not idempotent). Retry timers
    of items are now read once the sweeps settle, as steps' are."""
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                }
            }
        },
    }
    spec: dict[str, object] = {
        "apiVersion": "workflow.kube-zen.io/v1alpha1",
        "kind": "JobFlow",
        "metadata": {
            "name": "f",
            "namespace": "ns",
            "uid": "uid-1",
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "steps": [
                {
                    "name": "s0",
                    "template": job,
                    "retryPolicy": {"limit": 1, "backoff": {"type": "Fixed", "duration": "1s"}},
                    "withItems": [0],
                },
                {"name": "s1", "template": job},
                {"name": "s2", "type": "Manual"},
                {"name": "s3", "when": "never", "type": "Manual"},
            ],
            "executionPolicy": {"backoffLimit": 1},
        },
    }
    outcomes: dict[tuple[str, int], Outcome] = {
        (name, attempt): (0.0, False, 0, None)
        for name in ("s0", "s2", "s3")
        for attempt in range(4)
    }
    outcomes.update({("s1", a): (0.0, False, 0, None) for a in range(4)})
    outcomes[("s1", 0)] = (1.0, False, 0, None)
    world = run(spec, outcomes, lose=set())
    check_expressive(world, lost_writes=False)
