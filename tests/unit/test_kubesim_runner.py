"""Pure parts of kubesim's Job runner: annotation parsing and simulated outcomes, Job spec
defaults, the finish/create decision (backoffLimit for Never and OnFailure, deadline,
completions, work-queue Jobs, suspend), pod re-creation backoff, conditions, completed
indexes, pod status documents, and the local command line ($(VAR) expansion, the termination
message path mapping, FallbackToLogsOnError tail)."""

from __future__ import annotations

import pytest

from kubesim import jobcontrol, localexec, podstatus
from kubesim.jobcontrol import Decision, JobSpec
from kubesim.simspec import AnnotationError, SimSpec


def test_sim_defaults() -> None:
    spec = SimSpec.from_annotations({}, {}, job_name="j")
    assert spec == SimSpec(attempt_key="j")
    assert spec.outcome(1) == podstatus.Outcome(0, "")


def test_template_annotations_override_job_annotations() -> None:
    spec = SimSpec.from_annotations(
        {"kubesim.io/exit-code": "3", "kubesim.io/duration": "2"},
        {"kubesim.io/exit-code": "4", "kubesim.io/log": "hello"},
        job_name="j",
    )
    assert (spec.exit_code, spec.duration, spec.log) == (4, 2.0, "hello")


def test_fail_attempts_fail_first_attempts_only() -> None:
    spec = SimSpec.from_annotations(
        {
            "kubesim.io/fail-attempts": "2",
            "kubesim.io/fail-exit-code": "7",
            "kubesim.io/termination-message": "boom",
            "kubesim.io/attempt-key": "flow-step",
        },
        {},
        job_name="j",
    )
    assert spec.attempt_key == "flow-step"
    assert [spec.outcome(i) for i in (1, 2, 3)] == [
        (7, "boom", ""),
        (7, "boom", ""),
        (0, "boom", ""),
    ]


@pytest.mark.parametrize(
    ("ann", "message"),
    [
        ({"kubesim.io/duration": "soon"}, "must be a number of seconds"),
        ({"kubesim.io/duration": "-1"}, "must be >= 0"),
        ({"kubesim.io/duration": "inf"}, "finite"),
        ({"kubesim.io/exit-code": "1.5"}, "must be an integer"),
        ({"kubesim.io/exit-code": "256"}, "0..255"),
        ({"kubesim.io/fail-exit-code": "0"}, "1..255"),
    ],
)
def test_bad_annotations(ann: dict[str, str], message: str) -> None:
    with pytest.raises(AnnotationError, match=message):
        SimSpec.from_annotations(ann, {}, job_name="j")


def job(**spec: object) -> dict[str, object]:
    restart = spec.pop("restartPolicy", "Never")
    return {"spec": {"template": {"spec": {"restartPolicy": restart}}, **spec}}


def test_job_spec_defaults() -> None:
    s = JobSpec.from_job(job())
    assert (s.completions, s.parallelism, s.backoff_limit) == (1, 1, 6)
    assert (s.active_deadline, s.suspend, s.restart_policy, s.indexed) == (
        None,
        False,
        "Never",
        False,
    )


def test_job_spec_work_queue_and_indexed() -> None:
    wq = JobSpec.from_job(job(parallelism=3))
    assert (wq.completions, wq.parallelism) == (None, 3)
    idx = JobSpec.from_job(
        job(
            completions=3,
            completionMode="Indexed",
            restartPolicy="OnFailure",
            activeDeadlineSeconds=5,
        )
    )
    assert (idx.indexed, idx.restart_policy, idx.active_deadline) == (True, "OnFailure", 5.0)


NEVER = JobSpec.from_job(job(backoffLimit=2))
ON_FAILURE = JobSpec.from_job(job(backoffLimit=2, restartPolicy="OnFailure"))
ON_FAILURE_0 = JobSpec.from_job(job(backoffLimit=0, restartPolicy="OnFailure"))
PARALLEL = JobSpec.from_job(job(completions=5, parallelism=2))
WORK_QUEUE = JobSpec.from_job(job(parallelism=3))
SUSPENDED = JobSpec.from_job(job(suspend=True))

FAILED_BACKOFF = Decision(
    finish=("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
)
FAILED_DEADLINE = Decision(
    finish=("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
)
COMPLETE = Decision(
    finish=("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
)


@pytest.mark.parametrize(
    ("spec", "counts", "expected"),
    [
        (NEVER, (0, 0, 0, 0, False), Decision(create=1)),
        (NEVER, (0, 0, 1, 0, False), Decision(create=0)),
        (NEVER, (0, 2, 0, 0, False), Decision(create=1)),  # 2 failures <= backoffLimit 2
        (NEVER, (0, 3, 0, 0, False), FAILED_BACKOFF),
        (NEVER, (1, 0, 0, 0, False), COMPLETE),
        (NEVER, (0, 0, 1, 0, True), FAILED_DEADLINE),
        (NEVER, (0, 3, 0, 0, True), FAILED_BACKOFF),  # backoff is checked first
        (ON_FAILURE, (0, 0, 1, 1, False), Decision(create=0)),
        (ON_FAILURE, (0, 0, 1, 2, False), FAILED_BACKOFF),
        (ON_FAILURE_0, (0, 0, 1, 1, False), FAILED_BACKOFF),
        (ON_FAILURE_0, (0, 0, 1, 0, False), Decision(create=0)),
        (PARALLEL, (0, 0, 0, 0, False), Decision(create=2)),
        (PARALLEL, (4, 0, 0, 0, False), Decision(create=1)),
        (PARALLEL, (3, 0, 1, 0, False), Decision(create=1)),
        (PARALLEL, (5, 0, 0, 0, False), COMPLETE),
        (WORK_QUEUE, (0, 0, 1, 0, False), Decision(create=2)),
        (WORK_QUEUE, (1, 0, 0, 0, False), COMPLETE),
        (SUSPENDED, (0, 0, 0, 0, False), Decision()),
    ],
)
def test_decide(spec: JobSpec, counts: tuple[int, int, int, int, bool], expected: Decision) -> None:
    succeeded, failed, active, restarts, deadline = counts
    got = jobcontrol.decide(
        spec,
        succeeded=succeeded,
        failed=failed,
        active=active,
        restarts=restarts,
        deadline_exceeded=deadline,
    )
    assert got == expected


@pytest.mark.parametrize(
    ("base", "failures", "delay"),
    [(0, 3, 0.0), (10, 0, 0.0), (10, 1, 10.0), (10, 2, 20.0), (10, 3, 40.0), (10, 9, 360.0)],
)
def test_pod_backoff_delay(base: float, failures: int, delay: float) -> None:
    assert jobcontrol.pod_backoff_delay(base, failures) == delay


def test_set_condition_keeps_transition_time_when_status_is_unchanged() -> None:
    conds = jobcontrol.set_condition([], "Suspended", "True", "JobSuspended", "Job suspended", "t1")
    assert conds == [
        {
            "type": "Suspended",
            "status": "True",
            "lastProbeTime": "t1",
            "lastTransitionTime": "t1",
            "reason": "JobSuspended",
            "message": "Job suspended",
        }
    ]
    again = jobcontrol.set_condition(
        conds, "Suspended", "True", "JobSuspended", "Job suspended", "t2"
    )
    assert again[0]["lastTransitionTime"] == "t1"
    resumed = jobcontrol.set_condition(
        again, "Suspended", "False", "JobResumed", "Job resumed", "t3"
    )
    assert (resumed[0]["status"], resumed[0]["lastTransitionTime"]) == ("False", "t3")
    assert len(resumed) == 1


def test_finished_condition() -> None:
    assert jobcontrol.finished_condition({}) is None
    assert (
        jobcontrol.finished_condition({"conditions": [{"type": "FailureTarget", "status": "True"}]})
        is None
    )
    assert (
        jobcontrol.finished_condition({"conditions": [{"type": "Complete", "status": "True"}]})
        == "Complete"
    )


@pytest.mark.parametrize(
    ("indexes", "text"),
    [(set(), ""), ({0}, "0"), ({0, 1, 2}, "0-2"), ({0, 1, 2, 4, 6, 7}, "0-2,4,6-7")],
)
def test_completed_indexes_round_trip(indexes: set[int], text: str) -> None:
    assert jobcontrol.format_indexes(indexes) == text
    assert jobcontrol.parse_indexes(text) == indexes


def test_terminated_pod_status() -> None:
    term = podstatus.terminated_state(
        3, "bye", started_at="t0", finished_at="t1", container_id="kubesim://x"
    )
    status = podstatus.pod_status(
        [{"name": "main", "image": "busybox"}],
        phase="Failed",
        start_time="t0",
        state={"terminated": term},
        restarts=0,
        last_state=None,
        container_id="kubesim://x",
        now="t1",
    )
    assert status["phase"] == "Failed"
    cs = status["containerStatuses"][0]
    assert cs["name"] == "main"
    assert cs["state"]["terminated"] == {
        "exitCode": 3,
        "reason": "Error",
        "message": "bye",
        "startedAt": "t0",
        "finishedAt": "t1",
        "containerID": "kubesim://x",
    }
    assert cs["ready"] is False
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")


def test_running_pod_status_is_ready() -> None:
    status = podstatus.pod_status(
        [{"name": "main"}],
        phase="Running",
        start_time="t0",
        state={"running": {}},
        restarts=1,
        last_state={"terminated": {"exitCode": 1}},
        container_id="c",
        now="t1",
    )
    cs = status["containerStatuses"][0]
    assert (cs["ready"], cs["restartCount"], cs["lastState"]) == (
        True,
        1,
        {"terminated": {"exitCode": 1}},
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"


def test_success_reason_is_completed() -> None:
    term = podstatus.terminated_state(0, "", started_at="a", finished_at="b", container_id="c")
    assert term["reason"] == "Completed"
    assert "message" not in term


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("$(A)-$(B)", {"A": "1"}, "1-$(B)"),
        ("$$(A)", {"A": "1"}, "$(A)"),
        ("cost $5", {}, "cost $5"),
    ],
)
def test_expand_vars(text: str, env: dict[str, str], expected: str) -> None:
    assert localexec.expand_vars(text, env) == expected


def test_local_command_maps_the_termination_path() -> None:
    container = {
        "command": ["sh", "-c"],
        "args": ["echo $(GREETING) > /dev/termination-log"],
        "env": [
            {"name": "GREETING", "value": "hi"},
            {"name": "OUT", "value": "/dev/termination-log"},
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
    }
    argv, env = localexec.local_command(
        container, termination_file="/tmp/t", extra_env={"PATH": "/bin"}
    )
    assert argv == ["sh", "-c", "echo hi > /tmp/t"]
    assert env["GREETING"] == "hi"
    assert env["OUT"] == "/tmp/t"
    assert env["SECRET"] == ""
    assert env["KUBESIM_TERMINATION_MESSAGE_PATH"] == "/tmp/t"
    assert env["PATH"] == "/bin"


def test_local_command_custom_termination_path() -> None:
    container = {"command": ["cat", "/msg"], "terminationMessagePath": "/msg"}
    argv, _ = localexec.local_command(container, termination_file="/w/t", extra_env={})
    assert argv == ["cat", "/w/t"]


def test_log_tail() -> None:
    text = "".join(f"line {i}\n" for i in range(200))
    tail = localexec.log_tail(text)
    assert tail.splitlines()[-1] == "line 199"
    assert len(tail.splitlines()) == 80
    assert len(localexec.log_tail("x" * 5000)) == 2048


def test_pod_status_while_and_after_init_containers() -> None:
    waiting = {"waiting": {"reason": "PodInitializing"}}
    running_init = podstatus.init_container_status(
        {"name": "fetch", "image": "curl"},
        {"running": {"startedAt": "t0"}},
        restarts=0,
        last_state=None,
        container_id="kubesim://x-init0",
    )
    status = podstatus.pod_status(
        [{"name": "main", "image": "busybox"}],
        phase="Pending",
        start_time="t0",
        state=waiting,
        restarts=0,
        last_state=None,
        container_id="kubesim://x",
        now="t1",
        init_statuses=[running_init],
    )
    assert status["phase"] == "Pending"
    (init,) = status["initContainerStatuses"]
    assert (init["name"], init["ready"], init["started"]) == ("fetch", False, True)
    main = status["containerStatuses"][0]
    assert main["state"] == waiting and "containerID" not in main and main["imageID"] == ""
    conds = {c["type"]: c for c in status["conditions"]}
    assert (conds["Initialized"]["status"], conds["Initialized"]["reason"]) == (
        "False",
        "ContainersNotInitialized",
    )
    assert conds["Initialized"]["message"] == "containers with incomplete status: [fetch]"
    assert conds["Ready"]["message"] == "containers with unready status: [main]"

    term = podstatus.terminated_state(0, "", started_at="t0", finished_at="t1", container_id="c")
    done = podstatus.init_container_status(
        {"name": "fetch"}, {"terminated": term}, restarts=0, last_state=None, container_id="c"
    )
    assert done["ready"] is True
    after = podstatus.pod_status(
        [{"name": "main"}],
        phase="Running",
        start_time="t0",
        state={"running": {}},
        restarts=0,
        last_state=None,
        container_id="c",
        now="t1",
        init_statuses=[done],
    )
    assert {c["type"]: c["status"] for c in after["conditions"]}["Initialized"] == "True"


def test_pod_status_without_init_containers_has_no_init_statuses() -> None:
    status = podstatus.pod_status(
        [{"name": "main"}],
        phase="Running",
        start_time="t0",
        state={"running": {}},
        restarts=0,
        last_state=None,
        container_id="c",
        now="t1",
    )
    assert "initContainerStatuses" not in status
