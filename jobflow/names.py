"""Names, labels and annotation keys shared by the webhook, the controller and the CLI.

Invariants:
- ``job_name`` is a pure function of (flow name, flow uid, step, attempt): a reconcile pass that
  runs twice computes the same name and finds the Job already there (adoption, not duplication).
- Every name it returns is a valid DNS-1123 label of at most 63 characters, because the Job
  controller copies the Job name into the ``job-name`` label of its pods (a label value is
  limited to 63 characters; the seed's ``<flow>-<step>-<uid8>`` broke on long names).
- Two different attempts (or steps, or flows with different uids) never share a name: the
  suffix carries the attempt number and a hash of (uid, step, attempt).
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Final

GROUP: Final = "workflow.kube-zen.io"
VERSION: Final = "v1alpha1"
KIND: Final = "JobFlow"
LIST_KIND: Final = "JobFlowList"
PLURAL: Final = "jobflows"
SINGULAR: Final = "jobflow"
SHORT_NAMES: Final = ("jf", "flow")
API_VERSION: Final = f"{GROUP}/{VERSION}"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

LABEL_FLOW: Final = "workflow.kube-zen.io/flow"
LABEL_STEP: Final = "workflow.kube-zen.io/step"
LABEL_ATTEMPT: Final = "workflow.kube-zen.io/attempt"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "zen-flow"
# Kueue's labels on a Job (sigs.k8s.io/kueue pkg/controller/constants): the LocalQueue it is
# submitted to, and its WorkloadPriorityClass. zen-flow sets them from queueName and
# priorityClassName; Kueue's webhook then suspends the Job until the queue admits it.
LABEL_KUEUE_QUEUE: Final = "kueue.x-k8s.io/queue-name"
LABEL_KUEUE_PRIORITY: Final = "kueue.x-k8s.io/priority-class"
# One annotation per Manual step on the JobFlow: "<prefix><step>": "true" approves, "false"
# rejects. The seed used "workflow.kube-zen.io/approved/<step>", which has two slashes and is
# rejected by the API server.
APPROVE_ANNOTATION_PREFIX: Final = "approve.workflow.kube-zen.io/"

# Kubernetes limits: a label value and a DNS-1123 label are at most 63 characters.
MAX_LABEL_LENGTH: Final = 63
# A DNS-1123 subdomain (the name of most objects: JobFlows, ConfigMaps, Secrets) is at most 253.
MAX_SUBDOMAIN_LENGTH: Final = 253
# A JobFlow's own name is at most 63 (validation refuses longer ones): it is the LABEL_FLOW value
# of every Job and pod, so `-l workflow.kube-zen.io/flow=<name>` must find them.
MAX_FLOW_NAME_LENGTH: Final = MAX_LABEL_LENGTH
# Hex digits of sha256 kept in generated names: 8 hex = 32 bits, collisions only matter between
# the attempts of one flow, which also differ in the visible attempt number.
_HASH_LENGTH: Final = 8

_NOT_LABEL_CHARS = re.compile(r"[^a-z0-9-]+")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def is_dns1123_label(text: str) -> bool:
    """Lower-case letters, digits and '-', alphanumeric at both ends, at most 63 characters."""
    return len(text) <= MAX_LABEL_LENGTH and _DNS1123_LABEL.fullmatch(text) is not None


def is_dns1123_subdomain(text: str) -> bool:
    """DNS-1123 labels joined by '.', at most 253 characters in all."""
    return len(text) <= MAX_SUBDOMAIN_LENGTH and _DNS1123_SUBDOMAIN.fullmatch(text) is not None


def approve_annotation(step: str) -> str:
    """The annotation key that approves (``"true"``) or rejects (``"false"``) a Manual step."""
    return f"{APPROVE_ANNOTATION_PREFIX}{step}"


def _digest(*parts: str) -> str:
    joined = "\x00".join(parts).encode()
    return hashlib.sha256(joined).hexdigest()[:_HASH_LENGTH]


def _label_safe(text: str) -> str:
    """Lower-case and map every character outside [a-z0-9-] to '-' (dots included)."""
    return _NOT_LABEL_CHARS.sub("-", text.lower())


# Every pass names the Jobs of its running and starting steps (a sha256 each): a pure function
# of its arguments, so recent answers are kept (~200 bytes each; a pass reuses its own).
JOB_NAME_CACHE = 1024


@functools.lru_cache(maxsize=JOB_NAME_CACHE)
def job_name(flow_name: str, flow_uid: str, step: str, attempt: int) -> str:
    """The deterministic name of the Job that runs ``attempt`` (0-based) of ``step``.

    Shape: ``<flow>-<step>-<attempt>-<hash8>``. When ``<flow>-<step>`` does not fit in the 63
    characters, the longer of the two is cut first and neither below half of the room, so a
    long flow name never hides the step (``kubectl get jobs`` shows both). The hash covers the
    uid, so a flow deleted and re-created under the same name does not collide with Jobs of its
    predecessor that are still being garbage-collected.

    The controller finds a step's Jobs by their labels, never by this name, so a change of the
    cut (this one, from "flow first") cannot make it start a second Job for an attempt.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    suffix = f"-{attempt}-{_digest(flow_uid, step, str(attempt))}"
    flow_part, step_part = _label_safe(flow_name), _label_safe(step)
    room = MAX_LABEL_LENGTH - len(suffix) - 1  # for both parts, less the '-' between them
    if len(flow_part) + len(step_part) > room:
        half = room // 2
        if len(step_part) <= room - half:
            flow_part = flow_part[: room - len(step_part)]
        elif len(flow_part) <= half:
            step_part = step_part[: room - len(flow_part)]
        else:
            flow_part, step_part = flow_part[:half], step_part[: room - half]
    # A DNS-1123 label must start and end with an alphanumeric character.
    prefix = "-".join(p for p in (flow_part.strip("-"), step_part.strip("-")) if p) or "job"
    return f"{prefix}{suffix}"


def label_value(value: str) -> str:
    """``value`` if it fits in a label value, else a readable cut plus a hash of the whole.

    Flow names are DNS-1123 subdomains (up to 253 characters, dots allowed) but label values
    stop at 63; the controller selects a flow's Jobs by ``LABEL_FLOW=label_value(flow name)``.
    """
    if len(value) <= MAX_LABEL_LENGTH and _LABEL_VALUE.fullmatch(value):
        return value
    suffix = f"-{_digest(value)}"
    prefix = _label_safe(value)[: MAX_LABEL_LENGTH - len(suffix)].strip("-") or "x"
    return f"{prefix}{suffix}"


def resource_name(flow_name: str, template_name: str) -> str:
    """The real name of a resourceTemplates object: ``<flow>-<name>``."""
    return f"{flow_name}-{template_name}"


_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
