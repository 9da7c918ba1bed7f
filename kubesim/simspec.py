"""`sim` mode (pure): what a simulated container run does, from the `kubesim.io/` annotations of a
Job, its pod template or a bare pod (duration, exit code, failing attempts, log, termination
message, pod back-off; see RUNNER.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kubesim.podstatus import Outcome

ANN_DURATION = "kubesim.io/duration"
ANN_EXIT_CODE = "kubesim.io/exit-code"
ANN_FAIL_ATTEMPTS = "kubesim.io/fail-attempts"
ANN_FAIL_EXIT_CODE = "kubesim.io/fail-exit-code"
ANN_ATTEMPT_KEY = "kubesim.io/attempt-key"
ANN_LOG = "kubesim.io/log"
ANN_TERMINATION_MESSAGE = "kubesim.io/termination-message"
ANN_POD_BACKOFF = "kubesim.io/pod-backoff"


class AnnotationError(ValueError):
    """A kubesim.io/ annotation has a value the runner cannot use."""


@dataclass(frozen=True)
class SimSpec:
    """What a simulated container run does, from the kubesim.io/ annotations."""

    duration: float = 0.0
    exit_code: int = 0
    fail_attempts: int = 0
    fail_exit_code: int = 1
    attempt_key: str = ""
    log: str = ""
    termination_message: str = ""
    pod_backoff: float = 0.0

    @classmethod
    def from_annotations(
        cls,
        job_annotations: Mapping[str, str],
        template_annotations: Mapping[str, str],
        *,
        job_name: str,
    ) -> SimSpec:
        """Template annotations override the Job's; raise AnnotationError on a bad value."""
        ann = {**job_annotations, **template_annotations}

        def number(key: str, default: float, *, integer: bool = False) -> float:
            raw = ann.get(key)
            if raw is None or str(raw).strip() == "":
                return default
            try:
                value = int(str(raw)) if integer else float(str(raw))
            except ValueError:
                kind = "an integer" if integer else "a number of seconds"
                raise AnnotationError(f"annotation {key}={raw!r} must be {kind}") from None
            if value < 0 or value != value or value == float("inf"):
                raise AnnotationError(f"annotation {key}={raw!r} must be >= 0 and finite")
            return value

        exit_code = int(number(ANN_EXIT_CODE, 0, integer=True))
        fail_exit = int(number(ANN_FAIL_EXIT_CODE, 1, integer=True))
        if exit_code > 255 or fail_exit > 255 or fail_exit == 0:
            raise AnnotationError(
                f"annotations {ANN_EXIT_CODE} must be 0..255 and {ANN_FAIL_EXIT_CODE} 1..255"
            )
        return cls(
            duration=number(ANN_DURATION, 0.0),
            exit_code=exit_code,
            fail_attempts=int(number(ANN_FAIL_ATTEMPTS, 0, integer=True)),
            fail_exit_code=fail_exit,
            attempt_key=str(ann.get(ANN_ATTEMPT_KEY) or job_name),
            log=str(ann.get(ANN_LOG, "")),
            termination_message=str(ann.get(ANN_TERMINATION_MESSAGE, "")),
            pod_backoff=number(ANN_POD_BACKOFF, 0.0),
        )

    def outcome(self, attempt: int) -> Outcome:
        """Exit code and message of the ``attempt``-th run (1-based) of this attempt key."""
        if attempt <= self.fail_attempts:
            return Outcome(self.fail_exit_code, self.termination_message)
        return Outcome(self.exit_code, self.termination_message)
