"""jobflow.validation: every rule with a valid and an invalid case, asserted on code and path.

Covers: shape (unknown fields, required fields, types, enums), identity (apiVersion, kind,
metadata.name), size budget (steps, bytes), steps (names, duplicates, dependencies, cycles
reported once with the full path), Job templates (kind, apiVersion, restartPolicy,
containers, resources, Job backoffLimit / activeDeadlineSeconds), Manual steps, reserved labels,
timeouts, retry policies (limit, factor, Go durations and bounds), executionPolicy ranges,
podFailurePolicy, resourceTemplates, `when` (CEL syntax, variables, ancestors), parameters and
artifacts (names, sources, references to ancestors, S3 refused), all problems reported at once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from jobflow import quantities, validation
from jobflow.errors import Problem


def job_template(**pod: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "true"]}],
    }
    spec.update(pod)
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": spec}}}


def step(name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "template": job_template()}
    if deps:
        out["dependencies"] = list(deps)
    out.update(fields)
    return out


def flow(*steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "workflow.kube-zen.io/v1alpha1",
        "kind": "JobFlow",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {"steps": list(steps) or [step("a"), step("b", "a")], **spec},
    }


def codes_and_paths(problems: list[Problem]) -> set[tuple[str, str]]:
    return {(p.code, p.path) for p in problems}


Mutation = Callable[[dict[str, Any]], None]


def at(path: str, value: Any) -> Mutation:
    """Set a dotted path (list indices as numbers) in the flow."""

    def mutate(obj: dict[str, Any]) -> None:
        parts = path.split(".")
        node: Any = obj
        for part in parts[:-1]:
            key: Any = int(part) if part.isdigit() else part
            if isinstance(node, dict) and key not in node:
                node[key] = {}
            node = node[key]
        last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
        node[last] = value

    return mutate


def drop(path: str) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        parts = path.split(".")
        node: Any = obj
        for part in parts[:-1]:
            node = node[int(part) if part.isdigit() else part]
        del node[parts[-1]]

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(obj)

    return mutate


POD = "spec.steps.0.template.spec.template.spec"
PPOD = "spec.steps[0].template.spec.template.spec"

# (id, valid mutation, invalid mutation, expected code, expected path)
RULES: list[tuple[str, Mutation, Mutation, str, str]] = [
    (
        "api-version",
        at("apiVersion", "workflow.kube-zen.io/v1alpha1"),
        at("apiVersion", "workflow.kube-zen.io/v1"),
        "invalid-api-version",
        "apiVersion",
    ),
    ("kind", at("kind", "JobFlow"), at("kind", "Job"), "invalid-kind", "kind"),
    (
        "flow-name",
        at("metadata.name", "nightly.etl-1"),
        at("metadata.name", "Nightly_ETL"),
        "invalid-name",
        "metadata.name",
    ),
    (
        # Not hashed into the label: refused with the limit and the reason (issue 13, item 5).
        "flow-name-length",
        at("metadata.name", "a" * 63),
        at("metadata.name", "nightly." + "a" * 56),
        "name-too-long",
        "metadata.name",
    ),
    (
        "flow-name-required",
        at("metadata", {"generateName": "run-"}),
        at("metadata", {}),
        "required-field",
        "metadata.name",
    ),
    (
        "unknown-field",
        at("spec.steps.0.continueOnFailure", True),
        at("spec.steps.0.dependsOn", ["x"]),
        "unknown-field",
        "spec.steps[0].dependsOn",
    ),
    (
        "unknown-field-policy",
        at("spec.executionPolicy.backoffLimit", 1),
        at("spec.executionPolicy.retries", 1),
        "unknown-field",
        "spec.executionPolicy.retries",
    ),
    (
        "required-step-name",
        at("spec.steps.0.name", "a"),
        drop("spec.steps.0.name"),
        "required-field",
        "spec.steps[0].name",
    ),
    (
        "type-int",
        at("spec.steps.0.timeoutSeconds", 30),
        at("spec.steps.0.timeoutSeconds", "30"),
        "invalid-type",
        "spec.steps[0].timeoutSeconds",
    ),
    (
        "type-bool",
        at("spec.suspend", False),
        at("spec.suspend", "yes"),
        "invalid-type",
        "spec.suspend",
    ),
    (
        "enum-step-type",
        at("spec.steps.0.type", "Job"),
        at("spec.steps.0.type", "Task"),
        "invalid-value",
        "spec.steps[0].type",
    ),
    (
        "enum-concurrency",
        at("spec.executionPolicy.concurrencyPolicy", "Replace"),
        at("spec.executionPolicy.concurrencyPolicy", "Queue"),
        "invalid-value",
        "spec.executionPolicy.concurrencyPolicy",
    ),
    (
        "enum-backoff-type",
        at("spec.steps.0.retryPolicy", {"backoff": {"type": "Linear"}}),
        at("spec.steps.0.retryPolicy", {"backoff": {"type": "Random"}}),
        "invalid-value",
        "spec.steps[0].retryPolicy.backoff.type",
    ),
    ("no-steps", at("spec.steps", [step("only")]), at("spec.steps", []), "no-steps", "spec.steps"),
    (
        "step-name",
        at("spec.steps.1.name", "b2"),
        at("spec.steps.1.name", "Build_Step"),
        "invalid-step-name",
        "spec.steps[1].name",
    ),
    (
        "step-name-length",
        at("spec.steps.1.name", "b" * 63),
        at("spec.steps.1.name", "b" * 64),
        "invalid-step-name",
        "spec.steps[1].name",
    ),
    (
        "step-name-dots",
        at("spec.steps.1.name", "b-1"),
        at("spec.steps.1.name", "b.1"),
        "invalid-step-name",
        "spec.steps[1].name",
    ),
    (
        "duplicate-step",
        at("spec.steps.1.name", "b"),
        at("spec.steps.1.name", "a"),
        "duplicate-step-name",
        "spec.steps[1].name",
    ),
    (
        "unknown-dependency",
        at("spec.steps.1.dependencies", ["a"]),
        at("spec.steps.1.dependencies", ["a", "missing"]),
        "unknown-dependency",
        "spec.steps[1].dependencies[1]",
    ),
    (
        "empty-dependency",
        at("spec.steps.1.dependencies", []),
        at("spec.steps.1.dependencies", [""]),
        "unknown-dependency",
        "spec.steps[1].dependencies[0]",
    ),
    (
        "self-dependency",
        at("spec.steps.0.dependencies", []),
        at("spec.steps.0.dependencies", ["a"]),
        "self-dependency",
        "spec.steps[0].dependencies[0]",
    ),
    (
        "cycle",
        at("spec.steps.0.dependencies", []),
        at("spec.steps.0.dependencies", ["b"]),
        "dependency-cycle",
        "spec.steps[0].dependencies",
    ),
    (
        "template-required",
        both(at("spec.steps.0.type", "Manual"), drop("spec.steps.0.template")),
        drop("spec.steps.0.template"),
        "template-required",
        "spec.steps[0].template",
    ),
    (
        "manual-no-template",
        at("spec.steps.1", {"name": "b", "type": "Manual"}),
        at("spec.steps.1.type", "Manual"),
        "manual-step-template",
        "spec.steps[1].template",
    ),
    (
        "template-kind",
        at("spec.steps.0.template.kind", "Job"),
        at("spec.steps.0.template.kind", "Pod"),
        "invalid-template-kind",
        "spec.steps[0].template.kind",
    ),
    (
        "template-api-version",
        drop("spec.steps.0.template.apiVersion"),
        at("spec.steps.0.template.apiVersion", "batch/v2"),
        "invalid-template-api-version",
        "spec.steps[0].template.apiVersion",
    ),
    (
        "template-pod-spec",
        at("spec.steps.0.template.spec.parallelism", 1),
        at("spec.steps.0.template.spec", {}),
        "invalid-template",
        "spec.steps[0].template.spec.template.spec",
    ),
    (
        "restart-policy",
        at(f"{POD}.restartPolicy", "OnFailure"),
        at(f"{POD}.restartPolicy", "Always"),
        "invalid-restart-policy",
        f"{PPOD}.restartPolicy",
    ),
    (
        "restart-policy-missing",
        at(f"{POD}.restartPolicy", "Never"),
        drop(f"{POD}.restartPolicy"),
        "invalid-restart-policy",
        f"{PPOD}.restartPolicy",
    ),
    (
        "containers",
        at(f"{POD}.containers.0.name", "main"),
        at(f"{POD}.containers", []),
        "containers-required",
        f"{PPOD}.containers",
    ),
    (
        "container-name",
        at(f"{POD}.containers.0.name", "worker"),
        drop(f"{POD}.containers.0.name"),
        "container-name-required",
        f"{PPOD}.containers[0].name",
    ),
    (
        "container-name-format",
        at(f"{POD}.containers.0.name", "worker-1"),
        at(f"{POD}.containers.0.name", "Worker_1"),
        "invalid-container-name",
        f"{PPOD}.containers[0].name",
    ),
    (
        "container-image",
        at(f"{POD}.containers.0.image", "alpine:3"),
        at(f"{POD}.containers.0.image", ""),
        "container-image-required",
        f"{PPOD}.containers[0].image",
    ),
    (
        "init-container-image",
        at(f"{POD}.initContainers", [{"name": "i", "image": "busybox"}]),
        at(f"{POD}.initContainers", [{"name": "i"}]),
        "container-image-required",
        f"{PPOD}.initContainers[0].image",
    ),
    (
        "resource-quantity",
        at(f"{POD}.containers.0.resources", {"requests": {"cpu": "100m"}}),
        at(f"{POD}.containers.0.resources", {"requests": {"cpu": "lots"}}),
        "invalid-resource-quantity",
        f"{PPOD}.containers[0].resources.requests.cpu",
    ),
    (
        "resource-negative",
        at(f"{POD}.containers.0.resources", {"limits": {"memory": "1Gi"}}),
        at(f"{POD}.containers.0.resources", {"limits": {"memory": "-1Gi"}}),
        "invalid-resource-quantity",
        f"{PPOD}.containers[0].resources.limits.memory",
    ),
    (
        "limit-below-request",
        at(
            f"{POD}.containers.0.resources",
            {"requests": {"memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        ),
        at(
            f"{POD}.containers.0.resources",
            {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}},
        ),
        "limit-below-request",
        f"{PPOD}.containers[0].resources.limits.memory",
    ),
    (
        "job-backoff-limit",
        at("spec.steps.0.template.spec.backoffLimit", 0),
        at("spec.steps.0.template.spec.backoffLimit", -1),
        "invalid-job-backoff-limit",
        "spec.steps[0].template.spec.backoffLimit",
    ),
    (
        "job-deadline",
        at("spec.steps.0.template.spec.activeDeadlineSeconds", 60),
        at("spec.steps.0.template.spec.activeDeadlineSeconds", 0),
        "invalid-job-active-deadline",
        "spec.steps[0].template.spec.activeDeadlineSeconds",
    ),
    (
        "reserved-label",
        at("spec.steps.0.metadata", {"labels": {"team": "data"}}),
        at("spec.steps.0.metadata", {"labels": {"workflow.kube-zen.io/step": "x"}}),
        "reserved-label",
        "spec.steps[0].metadata.labels.workflow.kube-zen.io/step",
    ),
    (
        "timeout-max",
        at("spec.steps.0.timeoutSeconds", 2_592_000),
        at("spec.steps.0.timeoutSeconds", 2_592_001),
        "invalid-timeout",
        "spec.steps[0].timeoutSeconds",
    ),
    (
        "timeout-positive",
        at("spec.steps.0.timeoutSeconds", 1),
        at("spec.steps.0.timeoutSeconds", 0),
        "invalid-timeout",
        "spec.steps[0].timeoutSeconds",
    ),
    (
        "retry-limit",
        at("spec.steps.0.retryPolicy", {"limit": 0}),
        at("spec.steps.0.retryPolicy", {"limit": -1}),
        "invalid-retry-limit",
        "spec.steps[0].retryPolicy.limit",
    ),
    (
        "backoff-factor",
        at("spec.steps.0.retryPolicy", {"backoff": {"factor": 1.0}}),
        at("spec.steps.0.retryPolicy", {"backoff": {"factor": 0.5}}),
        "invalid-backoff-factor",
        "spec.steps[0].retryPolicy.backoff.factor",
    ),
    (
        "duration-syntax",
        at("spec.steps.0.retryPolicy", {"backoff": {"duration": "1m30s"}}),
        at("spec.steps.0.retryPolicy", {"backoff": {"duration": "90 seconds"}}),
        "invalid-duration",
        "spec.steps[0].retryPolicy.backoff.duration",
    ),
    (
        "duration-max",
        at("spec.steps.0.retryPolicy", {"backoff": {"duration": "720h"}}),
        at("spec.steps.0.retryPolicy", {"backoff": {"duration": "720h1s"}}),
        "invalid-duration",
        "spec.steps[0].retryPolicy.backoff.duration",
    ),
    (
        "duration-positive",
        at("spec.steps.0.retryPolicy", {"backoff": {"duration": "500ms"}}),
        at("spec.steps.0.retryPolicy", {"backoff": {"duration": "0s"}}),
        "invalid-duration",
        "spec.steps[0].retryPolicy.backoff.duration",
    ),
    (
        "ttl",
        at("spec.executionPolicy.ttlSecondsAfterFinished", 0),
        at("spec.executionPolicy.ttlSecondsAfterFinished", -5),
        "invalid-ttl",
        "spec.executionPolicy.ttlSecondsAfterFinished",
    ),
    (
        "flow-backoff-limit",
        at("spec.executionPolicy.backoffLimit", 0),
        at("spec.executionPolicy.backoffLimit", -1),
        "invalid-backoff-limit",
        "spec.executionPolicy.backoffLimit",
    ),
    (
        "active-deadline",
        at("spec.executionPolicy.activeDeadlineSeconds", 1),
        at("spec.executionPolicy.activeDeadlineSeconds", 0),
        "invalid-active-deadline",
        "spec.executionPolicy.activeDeadlineSeconds",
    ),
    (
        "concurrency-key",
        at("spec.executionPolicy.concurrencyKey", "nightly"),
        at("spec.executionPolicy.concurrencyKey", ""),
        "invalid-concurrency-key",
        "spec.executionPolicy.concurrencyKey",
    ),
    (
        "pfp-rules",
        at(
            "spec.executionPolicy.podFailurePolicy",
            {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [137]}}]},
        ),
        at("spec.executionPolicy.podFailurePolicy", {"rules": []}),
        "empty-pod-failure-policy",
        "spec.executionPolicy.podFailurePolicy.rules",
    ),
    (
        "pfp-values",
        at(
            "spec.executionPolicy.podFailurePolicy",
            {
                "rules": [
                    {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [0, 255]}}
                ]
            },
        ),
        at(
            "spec.executionPolicy.podFailurePolicy",
            {"rules": [{"action": "Count", "onExitCodes": {"operator": "NotIn", "values": []}}]},
        ),
        "empty-exit-codes",
        "spec.executionPolicy.podFailurePolicy.rules[0].onExitCodes.values",
    ),
    (
        "pfp-exit-code",
        at(
            "spec.executionPolicy.podFailurePolicy",
            {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}}]},
        ),
        at(
            "spec.executionPolicy.podFailurePolicy",
            {
                "rules": [
                    {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1, 256]}}
                ]
            },
        ),
        "invalid-exit-code",
        "spec.executionPolicy.podFailurePolicy.rules[0].onExitCodes.values[1]",
    ),
    (
        "pfp-action",
        at(
            "spec.executionPolicy.podFailurePolicy",
            {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}}]},
        ),
        at(
            "spec.executionPolicy.podFailurePolicy",
            {"rules": [{"action": "Retry", "onExitCodes": {"operator": "In", "values": [1]}}]},
        ),
        "invalid-value",
        "spec.executionPolicy.podFailurePolicy.rules[0].action",
    ),
    (
        "pfp-container",
        at(
            "spec.executionPolicy.podFailurePolicy",
            {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "main", "operator": "In", "values": [1]},
                    }
                ]
            },
        ),
        at(
            "spec.executionPolicy.podFailurePolicy",
            {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "Main!", "operator": "In", "values": [1]},
                    }
                ]
            },
        ),
        "invalid-container-name",
        "spec.executionPolicy.podFailurePolicy.rules[0].onExitCodes.containerName",
    ),
]

PVC = {
    "metadata": {"name": "data"},
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
}


def with_pvc(change: Callable[[dict[str, Any]], None]) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        pvc = copy.deepcopy(PVC)
        change(pvc)
        obj["spec"]["resourceTemplates"] = {"volumeClaimTemplates": [pvc]}

    return mutate


VCT = "spec.resourceTemplates.volumeClaimTemplates[0]"
RULES += [
    (
        "pvc-name",
        with_pvc(at("metadata.name", "data")),
        with_pvc(at("metadata", {})),
        "resource-template-name-required",
        f"{VCT}.metadata.name",
    ),
    (
        "pvc-name-format",
        with_pvc(at("metadata.name", "data-1")),
        with_pvc(at("metadata.name", "Data_1")),
        "invalid-resource-template-name",
        f"{VCT}.metadata.name",
    ),
    (
        "pvc-kind",
        with_pvc(at("kind", "PersistentVolumeClaim")),
        with_pvc(at("kind", "Pod")),
        "invalid-resource-template-kind",
        f"{VCT}.kind",
    ),
    (
        "pvc-access-modes",
        with_pvc(at("spec.accessModes", ["ReadWriteMany"])),
        with_pvc(at("spec.accessModes", [])),
        "pvc-access-modes-required",
        f"{VCT}.spec.accessModes",
    ),
    (
        "pvc-storage",
        with_pvc(at("spec.resources.requests.storage", "10Mi")),
        with_pvc(at("spec.resources.requests", {})),
        "pvc-storage-required",
        f"{VCT}.spec.resources.requests.storage",
    ),
    (
        "pvc-storage-zero",
        with_pvc(at("spec.resources.requests.storage", "1")),
        with_pvc(at("spec.resources.requests.storage", "0")),
        "invalid-resource-quantity",
        f"{VCT}.spec.resources.requests.storage",
    ),
    (
        "configmap-duplicate",
        at(
            "spec.resourceTemplates",
            {
                "configMapTemplates": [
                    {"metadata": {"name": "c1"}, "data": {"k": "v"}},
                    {"metadata": {"name": "c2"}},
                ]
            },
        ),
        at(
            "spec.resourceTemplates",
            {"configMapTemplates": [{"metadata": {"name": "c1"}}, {"metadata": {"name": "c1"}}]},
        ),
        "duplicate-resource-template-name",
        "spec.resourceTemplates.configMapTemplates[1].metadata.name",
    ),
    # when
    (
        "when-literal",
        at("spec.steps.1.when", "never"),
        at("spec.steps.1.when", "steps['a'].phase =="),
        "invalid-when",
        "spec.steps[1].when",
    ),
    (
        "when-cel",
        at("spec.steps.1.when", "steps['a'].phase == 'Succeeded' && flow.name != ''"),
        at("spec.steps.1.when", "step['a'].phase == 'Succeeded'"),
        "when-unknown-variable",
        "spec.steps[1].when",
    ),
    (
        "when-ancestor",
        at("spec.steps.1.when", "steps.a.phase != 'Failed'"),
        at("spec.steps.0.when", "steps['b'].phase == 'Succeeded'"),
        "when-references-non-ancestor",
        "spec.steps[0].when",
    ),
    (
        "when-unknown-step",
        at("spec.steps.1.when", "steps[\"a\"].phase == 'Succeeded'"),
        at("spec.steps.1.when", "steps['zz'].phase == 'Succeeded'"),
        "when-unknown-step",
        "spec.steps[1].when",
    ),
    (
        "when-dynamic",
        at("spec.steps.1.when", "steps['a'].phase in ['Succeeded', 'Skipped']"),
        at("spec.steps.1.when", "steps[flow.name].phase == 'Succeeded'"),
        "when-dynamic-reference",
        "spec.steps[1].when",
    ),
]

OUT_A = {"parameters": [{"name": "version"}], "artifacts": [{"name": "report", "path": "/out/r"}]}


# Artifacts travel through spec.workspace: flows that declare them need one.
WORKSPACE = {
    "volumeClaimTemplate": {
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }
}


def ws(mutation: Mutation) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        obj["spec"]["workspace"] = copy.deepcopy(WORKSPACE)
        mutation(obj)

    return mutate


def with_io(inputs: dict[str, Any]) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        obj["spec"]["workspace"] = copy.deepcopy(WORKSPACE)
        obj["spec"]["steps"][0]["outputs"] = copy.deepcopy(OUT_A)
        obj["spec"]["steps"][1]["inputs"] = inputs

    return mutate


IN = "spec.steps[1].inputs"
RULES += [
    (
        "param-name",
        with_io({"parameters": [{"name": "v.1", "value": "x"}]}),
        with_io({"parameters": [{"name": "V_1", "value": "x"}]}),
        "invalid-parameter-name",
        f"{IN}.parameters[0].name",
    ),
    (
        "param-duplicate",
        with_io({"parameters": [{"name": "p", "value": "x"}, {"name": "q", "value": "y"}]}),
        with_io({"parameters": [{"name": "p", "value": "x"}, {"name": "p", "value": "y"}]}),
        "duplicate-parameter-name",
        f"{IN}.parameters[1].name",
    ),
    (
        "param-source",
        with_io({"parameters": [{"name": "p", "value": ""}]}),
        with_io({"parameters": [{"name": "p"}]}),
        "parameter-source-required",
        f"{IN}.parameters[0]",
    ),
    (
        "param-both",
        with_io({"parameters": [{"name": "p", "value": "x"}]}),
        with_io(
            {
                "parameters": [
                    {
                        "name": "p",
                        "value": "x",
                        "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}},
                    }
                ]
            }
        ),
        "parameter-multiple-sources",
        f"{IN}.parameters[0]",
    ),
    (
        "value-from-empty",
        with_io(
            {
                "parameters": [
                    {"name": "p", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
                ]
            }
        ),
        with_io({"parameters": [{"name": "p", "valueFrom": {}}]}),
        "value-from-source-required",
        f"{IN}.parameters[0].valueFrom",
    ),
    (
        "value-from-two",
        with_io({"parameters": [{"name": "p", "valueFrom": {"jsonPath": "a:$.succeeded"}}]}),
        with_io(
            {
                "parameters": [
                    {
                        "name": "p",
                        "valueFrom": {
                            "jsonPath": "a:$.succeeded",
                            "configMapKeyRef": {"name": "c", "key": "k"},
                        },
                    }
                ]
            }
        ),
        "value-from-multiple-sources",
        f"{IN}.parameters[0].valueFrom",
    ),
    (
        "key-ref",
        with_io(
            {
                "parameters": [
                    {
                        "name": "p",
                        "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}},
                    }
                ]
            }
        ),
        with_io(
            {
                "parameters": [
                    {"name": "p", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": ""}}}
                ]
            }
        ),
        "invalid-key-ref",
        f"{IN}.parameters[0].valueFrom.configMapKeyRef.key",
    ),
    (
        "key-ref-required",
        with_io(
            {
                "parameters": [
                    {
                        "name": "p",
                        "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}},
                    }
                ]
            }
        ),
        with_io(
            {"parameters": [{"name": "p", "valueFrom": {"configMapKeyRef": {"name": "settings"}}}]}
        ),
        "required-field",
        f"{IN}.parameters[0].valueFrom.configMapKeyRef.key",
    ),
    (
        "json-path",
        with_io({"parameters": [{"name": "p", "valueFrom": {"jsonPath": "a:$.succeeded"}}]}),
        with_io({"parameters": [{"name": "p", "valueFrom": {"jsonPath": "$.succeeded"}}]}),
        "invalid-json-path",
        f"{IN}.parameters[0].valueFrom.jsonPath",
    ),
    (
        "json-path-ancestor",
        with_io({"parameters": [{"name": "p", "valueFrom": {"jsonPath": "a:$.succeeded"}}]}),
        with_io({"parameters": [{"name": "p", "valueFrom": {"jsonPath": "b:$.succeeded"}}]}),
        "input-references-non-ancestor",
        f"{IN}.parameters[0].valueFrom.jsonPath",
    ),
    (
        "step-output-ref",
        with_io(
            {
                "parameters": [
                    {
                        "name": "p",
                        "valueFrom": {"stepOutputRef": {"step": "a", "parameter": "version"}},
                    }
                ]
            }
        ),
        with_io(
            {
                "parameters": [
                    {
                        "name": "p",
                        "valueFrom": {"stepOutputRef": {"step": "a", "parameter": "nope"}},
                    }
                ]
            }
        ),
        "unknown-output-parameter",
        f"{IN}.parameters[0].valueFrom.stepOutputRef.parameter",
    ),
    (
        "step-output-ref-step",
        with_io(
            {
                "parameters": [
                    {
                        "name": "p",
                        "valueFrom": {"stepOutputRef": {"step": "a", "parameter": "version"}},
                    }
                ]
            }
        ),
        with_io(
            {
                "parameters": [
                    {
                        "name": "p",
                        "valueFrom": {"stepOutputRef": {"step": "ghost", "parameter": "version"}},
                    }
                ]
            }
        ),
        "input-unknown-step",
        f"{IN}.parameters[0].valueFrom.stepOutputRef.step",
    ),
    (
        "artifact-name",
        with_io({"artifacts": [{"name": "r", "from": "a/report"}]}),
        with_io({"artifacts": [{"name": "R!", "from": "a/report"}]}),
        "invalid-artifact-name",
        f"{IN}.artifacts[0].name",
    ),
    (
        "artifact-path",
        with_io({"artifacts": [{"name": "r", "from": "a/report", "path": "/in/r"}]}),
        with_io({"artifacts": [{"name": "r", "from": "a/report", "path": "/in/../etc"}]}),
        "invalid-artifact-path",
        f"{IN}.artifacts[0].path",
    ),
    (
        "artifact-source",
        with_io({"artifacts": [{"name": "r", "http": {"url": "https://x/y"}}]}),
        with_io({"artifacts": [{"name": "r"}]}),
        "artifact-source-required",
        f"{IN}.artifacts[0]",
    ),
    (
        "artifact-both",
        with_io({"artifacts": [{"name": "r", "from": "a"}]}),
        with_io({"artifacts": [{"name": "r", "from": "a", "http": {"url": "https://x/y"}}]}),
        "artifact-multiple-sources",
        f"{IN}.artifacts[0]",
    ),
    (
        "artifact-from",
        with_io({"artifacts": [{"name": "r", "from": "a/report"}]}),
        with_io({"artifacts": [{"name": "r", "from": "a/report/x"}]}),
        "invalid-artifact-from",
        f"{IN}.artifacts[0].from",
    ),
    (
        "artifact-from-declared",
        with_io({"artifacts": [{"name": "r", "from": "a/report"}]}),
        with_io({"artifacts": [{"name": "r", "from": "a/other"}]}),
        "unknown-output-artifact",
        f"{IN}.artifacts[0].from",
    ),
    (
        "artifact-url",
        with_io({"artifacts": [{"name": "r", "http": {"url": "http://h/f"}}]}),
        with_io({"artifacts": [{"name": "r", "http": {"url": "ftp://h/f"}}]}),
        "invalid-artifact-url",
        f"{IN}.artifacts[0].http.url",
    ),
    (
        "output-json-path",
        at(
            "spec.steps.0.outputs",
            {"parameters": [{"name": "n", "valueFrom": {"jsonPath": "$.succeeded"}}]},
        ),
        at(
            "spec.steps.0.outputs",
            {"parameters": [{"name": "n", "valueFrom": {"jsonPath": "succeeded"}}]},
        ),
        "invalid-json-path",
        "spec.steps[0].outputs.parameters[0].valueFrom.jsonPath",
    ),
    (
        "output-artifact-path",
        ws(at("spec.steps.0.outputs", {"artifacts": [{"name": "r", "path": "/out/r"}]})),
        ws(at("spec.steps.0.outputs", {"artifacts": [{"name": "r", "path": "out/r"}]})),
        "invalid-artifact-path",
        "spec.steps[0].outputs.artifacts[0].path",
    ),
    (
        "output-artifact-archive",
        ws(
            at(
                "spec.steps.0.outputs",
                {"artifacts": [{"name": "r", "path": "/o", "archive": {"format": "zip"}}]},
            )
        ),
        ws(
            at(
                "spec.steps.0.outputs",
                {"artifacts": [{"name": "r", "path": "/o", "archive": {"format": "rar"}}]},
            )
        ),
        "invalid-value",
        "spec.steps[0].outputs.artifacts[0].archive.format",
    ),
    (
        "output-s3",
        ws(
            at(
                "spec.steps.0.outputs",
                {"artifacts": [{"name": "r", "path": "/out/r", "optional": True}]},
            )
        ),
        ws(
            at(
                "spec.steps.0.outputs",
                {"artifacts": [{"name": "r", "path": "/out/r", "s3": {"bucket": "b"}}]},
            )
        ),
        "unsupported-s3",
        "spec.steps[0].outputs.artifacts[0].s3",
    ),
]


# --- data passing: workspace, artifact mounts, optional outputs (H8) ---------------------------


def both(*mutations: Mutation) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(obj)

    return mutate


ARTIFACT_OUT = {"artifacts": [{"name": "report", "path": "/out/report"}]}
ARTIFACT_IN = {"artifacts": [{"name": "report", "from": "a/report", "path": "/in/report"}]}
RULES += [
    (
        "workspace-for-output-artifact",
        ws(at("spec.steps.0.outputs", ARTIFACT_OUT)),
        at("spec.steps.0.outputs", ARTIFACT_OUT),
        "workspace-required",
        "spec.steps[0].outputs.artifacts[0]",
    ),
    (
        "workspace-for-input-artifact",
        ws(both(at("spec.steps.0.outputs", ARTIFACT_OUT), at("spec.steps.1.inputs", ARTIFACT_IN))),
        both(
            at("spec.steps.0.outputs", ARTIFACT_OUT),
            at("spec.steps.1.inputs", ARTIFACT_IN),
        ),
        "workspace-required",
        "spec.steps[1].inputs.artifacts[0].from",
    ),
    (
        "http-input-needs-no-workspace",
        at("spec.steps.1.inputs", {"artifacts": [{"name": "d", "http": {"url": "https://x/d"}}]}),
        at("spec.steps.1.inputs", {"artifacts": [{"name": "d", "http": {"url": "ftp://x/d"}}]}),
        "invalid-artifact-url",
        "spec.steps[1].inputs.artifacts[0].http.url",
    ),
    (
        "workspace-storage",
        ws(at("spec.steps.0.outputs", ARTIFACT_OUT)),
        both(
            ws(at("spec.steps.0.outputs", ARTIFACT_OUT)),
            at("spec.workspace.volumeClaimTemplate.spec.resources", {}),
        ),
        "pvc-storage-required",
        "spec.workspace.volumeClaimTemplate.spec.resources.requests.storage",
    ),
    (
        "workspace-kind",
        ws(at("spec.steps.0.outputs", ARTIFACT_OUT)),
        ws(
            both(
                at("spec.steps.0.outputs", ARTIFACT_OUT),
                at("spec.workspace.volumeClaimTemplate.kind", "ConfigMap"),
            )
        ),
        "invalid-resource-template-kind",
        "spec.workspace.volumeClaimTemplate.kind",
    ),
    (
        "workspace-name-conflict",
        ws(
            at(
                "spec.resourceTemplates",
                {"volumeClaimTemplates": [dict(PVC, metadata={"name": "data"})]},
            )
        ),
        ws(
            at(
                "spec.resourceTemplates",
                {"volumeClaimTemplates": [dict(PVC, metadata={"name": "workspace"})]},
            )
        ),
        "workspace-name-conflict",
        "spec.resourceTemplates.volumeClaimTemplates[0].metadata.name",
    ),
    (
        "duplicate-artifact-path",
        ws(
            at(
                "spec.steps.0.outputs",
                {"artifacts": [{"name": "a", "path": "/out/a"}, {"name": "b", "path": "/out/b"}]},
            )
        ),
        ws(
            at(
                "spec.steps.0.outputs",
                {"artifacts": [{"name": "a", "path": "/out/a"}, {"name": "b", "path": "/out/a/"}]},
            )
        ),
        "duplicate-artifact-path",
        "spec.steps[0].outputs.artifacts[1].path",
    ),
    (
        "reserved-volume-name",
        ws(
            both(
                at("spec.steps.0.outputs", ARTIFACT_OUT),
                at(
                    "spec.steps.0.template.spec.template.spec.volumes",
                    [{"name": "cache", "emptyDir": {}}],
                ),
            )
        ),
        ws(
            both(
                at("spec.steps.0.outputs", ARTIFACT_OUT),
                at(
                    "spec.steps.0.template.spec.template.spec.volumes",
                    [{"name": "zen-workspace", "emptyDir": {}}],
                ),
            )
        ),
        "reserved-volume-name",
        "spec.steps[0].template.spec.template.spec.volumes[0].name",
    ),
    (
        "artifact-path-vs-template-mount",
        ws(
            both(
                at("spec.steps.0.outputs", ARTIFACT_OUT),
                at(
                    "spec.steps.0.template.spec.template.spec.containers.0.volumeMounts",
                    [{"name": "cache", "mountPath": "/cache"}],
                ),
            )
        ),
        ws(
            both(
                at("spec.steps.0.outputs", ARTIFACT_OUT),
                at(
                    "spec.steps.0.template.spec.template.spec.containers.0.volumeMounts",
                    [{"name": "cache", "mountPath": "/out/report/"}],
                ),
            )
        ),
        "duplicate-artifact-path",
        "spec.steps[0].template.spec.template.spec.containers[0].volumeMounts[0].mountPath",
    ),
    (
        "optional-output",
        at("spec.steps.0.outputs", {"parameters": [{"name": "v", "optional": True}]}),
        at("spec.steps.0.outputs", {"parameters": [{"name": "v", "optional": "yes"}]}),
        "invalid-type",
        "spec.steps[0].outputs.parameters[0].optional",
    ),
]


def test_base_flow_is_valid() -> None:
    assert validation.validate(flow()) == []


@pytest.mark.parametrize(
    ("valid", "code", "path"), [(r[1], r[3], r[4]) for r in RULES], ids=[r[0] for r in RULES]
)
def test_rule_accepts_valid_case(valid: Mutation, code: str, path: str) -> None:
    obj = flow()
    valid(obj)
    assert validation.validate(obj) == []


@pytest.mark.parametrize(
    ("invalid", "code", "path"), [(r[2], r[3], r[4]) for r in RULES], ids=[r[0] for r in RULES]
)
def test_rule_rejects_invalid_case(invalid: Mutation, code: str, path: str) -> None:
    obj = flow()
    invalid(obj)
    problems = validation.validate(obj)
    assert (code, path) in codes_and_paths(problems), problems
    assert all(p.message for p in problems)


def test_every_problem_is_reported_at_once() -> None:
    obj = flow(
        step("a", "ghost", timeoutSeconds=0),
        step("a"),
        {"name": "c", "type": "Manual", "when": "steps['d'].phase == 'x'"},
        step("d", retryPolicy={"limit": -1}),
    )
    obj["apiVersion"] = "v1"
    got = codes_and_paths(validation.validate(obj))
    assert got >= {
        ("invalid-api-version", "apiVersion"),
        ("unknown-dependency", "spec.steps[0].dependencies[0]"),
        ("invalid-timeout", "spec.steps[0].timeoutSeconds"),
        ("duplicate-step-name", "spec.steps[1].name"),
        ("when-references-non-ancestor", "spec.steps[2].when"),
        ("invalid-retry-limit", "spec.steps[3].retryPolicy.limit"),
    }


def test_cycle_is_reported_once_with_its_full_path() -> None:
    obj = flow(step("a", "c"), step("b", "a"), step("c", "b"), step("d", "a"))
    problems = [p for p in validation.validate(obj) if p.code == "dependency-cycle"]
    assert len(problems) == 1
    assert problems[0].path == "spec.steps[0].dependencies"
    assert "a -> c -> b -> a" in problems[0].message


def test_two_separate_cycles_are_two_problems() -> None:
    obj = flow(step("a", "b"), step("b", "a"), step("c", "d"), step("d", "c"))
    messages = [p.message for p in validation.validate(obj) if p.code == "dependency-cycle"]
    assert len(messages) == 2
    assert "a -> b -> a" in messages[0] and "c -> d -> c" in messages[1]


def test_transitive_ancestor_is_allowed_in_when() -> None:
    obj = flow(step("a"), step("b", "a"), step("c", "b", when="steps['a'].phase == 'Succeeded'"))
    assert validation.validate(obj) == []


def test_too_many_steps_names_the_limit() -> None:
    steps = [{"name": f"s{i}", "type": "Manual"} for i in range(validation.MAX_STEPS + 1)]
    problems = validation.validate(flow(*steps))
    assert [p.code for p in problems] == ["too-many-steps"]
    assert str(validation.MAX_STEPS) in problems[0].message


def test_max_steps_is_accepted() -> None:
    steps = [{"name": f"s{i}", "type": "Manual"} for i in range(validation.MAX_STEPS)]
    assert validation.validate(flow(*steps)) == []


def test_too_large_names_the_limit() -> None:
    big = "x" * (validation.MAX_OBJECT_BYTES + 1)
    obj = flow(step("a", message=big))
    problems = validation.validate(obj)
    assert [p.code for p in problems] == ["too-large"]
    assert str(validation.MAX_OBJECT_BYTES) in problems[0].message


def test_not_an_object() -> None:
    assert [p.code for p in validation.validate(["nope"])] == ["not-an-object"]  # type: ignore[arg-type]


def test_wrong_types_everywhere_never_raise() -> None:
    for spec in (
        {"steps": "a"},
        {"steps": [1, None, "x"]},
        {"steps": [{"name": 3, "dependencies": "a"}]},
        {"executionPolicy": [], "steps": [{"name": "a", "template": []}]},
        None,
        7,
    ):
        obj = {
            "apiVersion": "workflow.kube-zen.io/v1alpha1",
            "kind": "JobFlow",
            "metadata": {"name": "x"},
            "spec": spec,
        }
        problems = validation.validate(obj)
        assert problems, spec
        assert all(p.code and p.message for p in problems)


def test_wrong_type_is_reported_once() -> None:
    obj = flow()
    obj["spec"]["steps"][0]["timeoutSeconds"] = "30"
    problems = [p for p in validation.validate(obj) if "timeoutSeconds" in p.path]
    assert [p.code for p in problems] == ["invalid-type"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("10s", 10),
        ("1m30s", 90),
        ("1.5h", 5400),
        ("500ms", 0.5),
        ("-2m", -120),
        ("1h2m3s4ms", 3723.004),
        ("", None),
        ("10", None),
        ("1d", None),
        ("s", None),
        ("1m30", None),
    ],
)
def test_go_durations(text: str, seconds: float | None) -> None:
    parsed = quantities.parse_duration(text)
    assert (None if parsed is None else float(parsed)) == seconds


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", 0.1),
        ("1Gi", 2**30),
        ("2", 2),
        ("1e3", 1000),
        ("1.5k", 1500),
        ("512Mi", 2**29),
        ("abc", None),
        ("1Xi", None),
        ("", None),
        (float("nan"), None),
        ("1e999999", None),
        ("1" * 1_000_001, None),  # Decimal overflow once crashed a review (an internal error)
        ("1" * 65, None),  # longer than any quantity: not parsed, not cached
        (True, None),
    ],
)
def test_quantities(text: object, value: float | None) -> None:
    parsed = quantities.parse_quantity(text)
    assert (None if parsed is None else float(parsed)) == value


def test_plain_step_fast_path_agrees_with_the_model() -> None:
    from jobflow.model import Step

    samples: list[object] = [
        {"name": "a"},
        {"name": "a", "dependencies": ["b"], "template": {"kind": "Job"}, "type": "Manual"},
        {"name": "a", "message": "m", "continueOnFailure": False},
        {"name": 1},
        {"name": "a", "dependencies": "b"},
        {"name": "a", "dependencies": [1]},
        {"name": "a", "type": "Other"},
        {"name": "a", "template": []},
        {"name": "a", "message": 3},
        {"name": "a", "continueOnFailure": "yes"},
        {"name": "a", "extra": 1},
        {},
        [],
    ]
    for sample in samples:
        try:
            Step.model_validate(sample)
            model_ok = True
        except ValueError:
            model_ok = False
        uses_other_fields = (
            isinstance(sample, dict) and not sample.keys() <= validation._PLAIN_STEP_KEYS
        )
        if validation._is_plain_step(sample):
            assert model_ok, sample
        else:
            # The fast path may only decline a step the model rejects or one with other fields.
            assert not model_ok or uses_other_fields, sample


def test_placeholders_must_name_an_input() -> None:
    obj = flow(step("a"))
    container = obj["spec"]["steps"][0]["template"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["sh", "-c", "echo {{ parameters.ver }}"]
    container["env"] = [{"name": "X", "value": "{{parameters.other}}"}]
    obj["spec"]["steps"][0]["inputs"] = {"parameters": [{"name": "ver", "value": "1"}]}
    problems = validation.validate(obj)
    pod = "spec.steps[0].template.spec.template.spec"
    assert codes_and_paths(problems) == {
        ("unknown-parameter-reference", f"{pod}.containers[0].env[0].value")
    }
    obj["spec"]["steps"][0]["inputs"]["parameters"].append({"name": "other", "value": "2"})
    assert validation.validate(obj) == []


def test_random_corruptions_never_raise() -> None:
    """Any field replaced by any JSON/YAML value gives problems, never an exception."""
    import datetime
    import random

    weird: list[Any] = [
        None,
        1,
        -1,
        2**40,
        1.5,
        True,
        "",
        "x",
        [],
        {},
        [1, "a"],
        {"a": 1},
        {1: 2},
        datetime.date(2024, 1, 1),
        "{{ parameters.x }}",
        float("nan"),
    ]
    base = flow(
        step("a"),
        step(
            "b",
            "a",
            when="steps['a'].phase == 'Succeeded'",
            retryPolicy={"limit": 1, "backoff": {"duration": "1s"}},
            inputs={
                "parameters": [{"name": "p", "value": "v"}],
                "artifacts": [{"name": "r", "from": "a"}],
            },
            outputs={"parameters": [{"name": "o"}], "artifacts": [{"name": "z", "path": "/z"}]},
        ),
        executionPolicy={
            "podFailurePolicy": {
                "rules": [{"action": "Count", "onExitCodes": {"operator": "In", "values": [1]}}]
            }
        },
        resourceTemplates={
            "volumeClaimTemplates": [copy.deepcopy(PVC)],
            "configMapTemplates": [{"metadata": {"name": "c"}}],
        },
    )

    def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        found = [prefix] if prefix else []
        items = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for key, value in items:
            found += paths(value, (*prefix, key))
        return found

    every = paths(base)
    rng = random.Random(7)
    for _ in range(1500):
        obj = copy.deepcopy(base)
        path = rng.choice(every)
        node: Any = obj
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = copy.deepcopy(rng.choice(weird))
        for problem in validation.validate(obj):
            assert problem.code and problem.message


def test_lone_surrogate_is_a_problem_not_a_crash() -> None:
    # A JSON "\udc80" escape decodes to a str that UTF-8 cannot encode (found by the webhook fuzz).
    problems = validation.validate(flow(step("\udc80")))
    assert codes_and_paths(problems) == {("invalid-text", "")}


def test_distinct_when_text_has_a_budget_per_flow() -> None:
    from jobflow import conditions

    long_when = " || ".join(
        ["steps['a'].phase == 'Succeeded'"] * 40
    )  # ~1.3 KB each, distinct below
    count = conditions.MAX_TOTAL_LENGTH // len(long_when) + 5
    steps = [step("a")] + [
        step(f"s{i}", "a", when=f"{long_when} || flow.name == '{i}'") for i in range(count)
    ]
    problems = validation.validate(flow(*steps))
    assert [p.code for p in problems] == ["when-total-too-long"]
    # The same condition on every step counts once.
    same = [step("a")] + [step(f"s{i}", "a", when=long_when) for i in range(count)]
    assert validation.validate(flow(*same)) == []


def test_when_is_type_checked_against_the_declared_context() -> None:
    producer = step("a")
    producer["outputs"] = {"parameters": [{"name": "version"}]}
    cases = {
        "steps['a'].outputs.parameters['version'] == '1'": [],
        "steps.a.outputs.parameters.version == '1'": [],
        "steps['a'].outputs.parameters['verison'] == '1'": ["when-unknown-output"],
        "steps['a'].phse == 'Succeeded'": ["when-unknown-field"],
        "steps['a'].phase": ["when-not-bool"],
        "steps['a'].phase == 3": ["invalid-when"],
    }
    for when, codes in cases.items():
        problems = validation.validate(flow(producer, step("b", "a", when=when)))
        assert [p.code for p in problems] == codes, (when, problems)
        assert all(p.path == "spec.steps[1].when" for p in problems)
    problems = validation.validate(
        flow(producer, step("b", "a", when="steps['a'].outputs.parameters['nope'] == 'x'"))
    )
    assert "declares no output parameter 'nope' (it declares: version)" in problems[0].message
