"""Warnings: valid but risky choices, one short sentence each (the webhook returns them to
kubectl, which prints them; they never change the decision).

``validate(obj, warnings=...)`` collects them during its own walk of the steps (the fast path in
``jobflow.validation.fast`` adds those of a step it vouches for, ``step_warnings`` those of any
other step), so a review reads each step once. ``risk_warnings`` is the same rules on their own:
for an object validation stops early on (over a size limit), and as the reference the tests
hold the walk to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from jobflow import decoded

_STEP_PATH = re.compile(r"spec\.steps\[(\d+)\]")


def flow_warnings(obj: Mapping[str, object]) -> list[str]:
    """The warnings about the flow as a whole (they come before the steps')."""
    found: list[str] = []
    policy = decoded.path(obj, "spec", "executionPolicy")
    if isinstance(policy, Mapping):
        if policy.get("ttlSecondsAfterFinished") == 0:
            found.append(
                "spec.executionPolicy.ttlSecondsAfterFinished is 0: the flow, its Jobs and their "
                "logs are deleted as soon as it finishes"
            )
        if policy.get("concurrencyPolicy") == "Replace" and not policy.get("concurrencyKey"):
            found.append(
                "spec.executionPolicy.concurrencyPolicy Replace has no effect without "
                "spec.executionPolicy.concurrencyKey"
            )
    return found


def is_floating_image(image: str) -> bool:
    """No tag, or :latest (a digest pins it)."""
    if "@" in image:
        return False
    last = image.rsplit("/", 1)[-1]
    return ":" not in last or last.endswith(":latest")


def timeout_without_retry(index: int) -> str:
    return (
        f"spec.steps[{index}].timeoutSeconds is set without a retryPolicy: a timed-out step fails"
        " at once; add a retryPolicy to retry it"
    )


def backoff_multiplies(index: int, job_backoff: int) -> str:
    return (
        f"spec.steps[{index}].template.spec.backoffLimit {job_backoff} multiplies the retryPolicy:"
        " every step attempt may restart its pod that often; remove it to let the retryPolicy"
        " count"
    )


def floating_image(index: int, container: int, image: str) -> str:
    return (
        f"spec.steps[{index}].template.spec.template.spec.containers[{container}].image"
        f" {image!r} has no tag or uses :latest; a retry may run a different image"
    )


def step_warnings(step: object, index: int, found: list[str]) -> None:
    """Append the warnings of one step (any value: a wrong shape has none)."""
    if not isinstance(step, Mapping):
        return
    retry = step.get("retryPolicy")
    if step.get("timeoutSeconds") is not None and not isinstance(retry, Mapping):
        found.append(timeout_without_retry(index))
    template = step.get("template")
    job_backoff = decoded.path(template, "spec", "backoffLimit")
    if isinstance(retry, Mapping) and isinstance(job_backoff, int) and job_backoff > 0:
        found.append(backoff_multiplies(index, job_backoff))
    containers = decoded.path(template, "spec", "template", "spec", "containers")
    if not isinstance(containers, list):
        return
    for cindex, container in enumerate(containers):
        if not isinstance(container, Mapping):
            continue
        image = container.get("image")
        if isinstance(image, str) and image and is_floating_image(image):
            found.append(floating_image(index, cindex, image))


def moved_to_finally(text: str, count: int) -> str:
    """``text`` (a path or a message) about the step list ``spec.steps + spec.finally`` that
    validation checks as one, with each ``spec.steps[k]`` past the ``count`` DAG steps named as
    it was written: ``spec.finally[k - count]``."""

    def rename(match: re.Match[str]) -> str:
        k = int(match.group(1))
        return f"spec.finally[{k - count}]" if k >= count else match.group(0)

    return _STEP_PATH.sub(rename, text)


def risk_warnings(obj: Mapping[str, object]) -> list[str]:
    """Every warning of ``obj``, in order: the flow's, then each step's, then each finally
    step's."""
    found = flow_warnings(obj)
    steps = decoded.path(obj, "spec", "steps")
    dag = steps if isinstance(steps, list) else []
    for index, step in enumerate(dag):
        step_warnings(step, index, found)
    final = decoded.path(obj, "spec", "finally")
    if isinstance(final, list) and final:
        extra: list[str] = []
        for index, step in enumerate(final, start=len(dag)):
            step_warnings(step, index, extra)
        found.extend(moved_to_finally(w, len(dag)) for w in extra)
    return found
