"""Validation of a whole JobFlow object: the webhook's ``/validate`` and ``zen-flow validate``.

``validate(obj)`` takes the decoded JSON object and returns every problem it finds (``[]``
means valid); it never raises on bad input. Two layers:

1. Shape: the pydantic model (``jobflow.model``, strict) reports unknown fields, missing
   required fields, wrong types and values outside an enumeration, each with its path.
2. Meaning: the rules of DESIGN section 3 and the seed's webhook rules, walked over the raw
   dict. These read a field only when it has the right type, so a wrong-typed field is reported
   once (by layer 1), never twice.

Paths use the kubectl notation ``spec.steps[2].dependencies[0]``; codes are stable kebab-case
strings (the tests and tools match on codes, people read messages).

Cost: O(size of the object) plus O(V + E) for the graph; the bench (``bench/validate.py``)
compares a 10,000-step flow with stdlib ``graphlib`` on the same graph.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Final

import pydantic
import pydantic_core

from jobflow import artifacts, conditions, dag, names, quantities
from jobflow.errors import Problem
from jobflow.model import JobFlow, Step

# etcd refuses requests over 1.5 MiB by default (--max-request-bytes); an object near that
# also makes every watch event and status write heavy.
MAX_OBJECT_BYTES: Final = 1536 * 1024
# Each step is a status entry, events and at least one Job; past this a flow is better split.
MAX_STEPS: Final = 2000
MAX_STEP_TIMEOUT_SECONDS: Final = 30 * 24 * 3600  # the seed's bound: 30 days
MAX_BACKOFF_SECONDS: Final = 720 * 3600  # the seed's bound: 720h
MAX_INT32: Final = 2**31 - 1
MAX_EXIT_CODE: Final = 255
DNS1123_LABEL_MAX: Final = 63
DNS1123_SUBDOMAIN_MAX: Final = 253

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# DESIGN's one substitution syntax: {{ parameters.<name> }} in string fields of a template.
_PLACEHOLDER = re.compile(r"\{\{\s*parameters\.([A-Za-z0-9_.-]+?)\s*\}\}")
# Step fields that need no checks beyond their JSON type (template aside, checked by rules).
_PLAIN_STEP_KEYS: Final = frozenset(
    {"name", "dependencies", "template", "type", "message", "continueOnFailure"}
)
_RESERVED_LABELS: Final = frozenset(
    {names.LABEL_FLOW, names.LABEL_STEP, names.LABEL_ATTEMPT, names.LABEL_MANAGED_BY}
)


# --- small readers: a value of the expected type, or None --------------------------------


_EMPTY: Final[Mapping[str, object]] = {}
# dict first: decoded JSON is always a dict, and the Mapping ABC check costs ~10x more.
_MAPPING: Final = (dict, Mapping)


def _map(value: object) -> Mapping[str, object] | None:
    if isinstance(value, _MAPPING):
        return value
    return None


def _list(value: object) -> list[object] | None:
    return value if isinstance(value, list) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    # bool is an int in Python but not in JSON.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# --- value checks shared by the rules ---------------------------------------------------------


def is_dns1123_label(text: str) -> bool:
    return len(text) <= DNS1123_LABEL_MAX and _DNS1123_LABEL.fullmatch(text) is not None


def is_dns1123_subdomain(text: str) -> bool:
    return len(text) <= DNS1123_SUBDOMAIN_MAX and _DNS1123_SUBDOMAIN.fullmatch(text) is not None


def _dns_subdomain_message(what: str, text: str) -> str:
    return (
        f"{what} {text!r} must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.',"
        f" starting and ending with a letter or digit, at most {DNS1123_SUBDOMAIN_MAX} characters"
    )


def _is_clean_path(path: str) -> bool:
    return path.startswith("/") and ".." not in path.split("/")


# --- layer 1: shape -------------------------------------------------------------------------


def _loc_to_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _is_plain_step(step: object) -> bool:
    """True when a step uses only the simple fields, each with a valid JSON type.

    Such a step needs no pydantic pass: this check gives the same verdict for it at a fraction
    of the cost (a test keeps the two in agreement). Big generated flows are made of these.
    """
    if type(step) is not dict or not step.keys() <= _PLAIN_STEP_KEYS:
        return False
    get = step.get
    if type(get("name")) is not str:
        return False
    deps = get("dependencies")
    if deps is not None:
        if type(deps) is not list:
            return False
        for dep in deps:
            if type(dep) is not str:
                return False
    step_type = get("type")
    template = get("template")
    message = get("message")
    flag = get("continueOnFailure")
    # Template keys are not checked here: JSON keys are strings, and the API server's schema
    # checks a Job's fields when the Job is created.
    return (
        (step_type is None or step_type == "Job" or step_type == "Manual")
        and (template is None or type(template) is dict)
        and (message is None or type(message) is str)
        and (flag is None or type(flag) is bool)
    )


def _pydantic_problems(
    model: type[pydantic.BaseModel], value: object, prefix: tuple[int | str, ...]
) -> list[Problem]:
    try:
        model.model_validate(value)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False)
    else:
        return []
    problems: list[Problem] = []
    for error in errors:
        loc = (*prefix, *error["loc"])
        path = _loc_to_path(loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            problems.append(
                Problem("unknown-field", path, f"unknown field {str(loc[-1])!r}; check spelling")
            )
        elif kind == "missing":
            problems.append(Problem("required-field", path, "required field is missing"))
        elif kind in ("enum", "literal_error"):
            expected = error.get("ctx", {}).get("expected", "")
            problems.append(
                Problem("invalid-value", path, f"must be one of {expected}; got {error['input']!r}")
            )
        else:
            wanted = error["msg"].replace("Input should be ", "must be ")
            got = _json_type(error["input"])
            problems.append(Problem("invalid-type", path, f"{wanted}; got {got}"))
    return problems


def _shape_problems(obj: Mapping[str, object]) -> list[Problem]:
    """Shape problems of everything but the steps when ``spec.steps`` is a list.

    Steps are checked one by one in ``_Validator.check_steps`` (the fast check first, pydantic
    only for a step it cannot vouch for), in the same pass as the other step rules.
    """
    spec = obj.get("spec")
    steps = spec.get("steps") if isinstance(spec, Mapping) else None
    if not isinstance(spec, Mapping) or not isinstance(steps, list):
        return _pydantic_problems(JobFlow, obj, ())
    return _pydantic_problems(JobFlow, {**obj, "spec": {**spec, "steps": []}}, ())


# --- layer 2: meaning ------------------------------------------------------------------------


class _StepPath:
    """``spec.steps[i]``, formatted only when a problem needs it (hot path of big flows)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __format__(self, spec: str) -> str:
        return f"spec.steps[{self.index}]"


class _Validator:
    """One pass over one object; collects problems in document order (roughly)."""

    def __init__(self, obj: Mapping[str, object], *, has_placeholders: bool = True) -> None:
        self.obj = obj
        # False when the serialised object contains no "{{": the template walk is skipped.
        self.has_placeholders = has_placeholders
        self.problems: list[Problem] = []
        self.graph: dag.Graph | None = None
        self._ancestry: dag.Ancestry | None = None
        self.outputs: dict[str, tuple[set[str], set[str]]] = {}  # step -> (params, artifacts)
        self.has_workspace = False  # spec.workspace declared (artifacts need it)

    def add(self, code: str, path: str, message: str) -> None:
        self.problems.append(Problem(code, path, message))

    def is_ancestor(self, ancestor: str, of: str) -> bool:
        if self.graph is None:
            return False
        if self._ancestry is None:
            self._ancestry = dag.Ancestry(self.graph)
        return self._ancestry.is_ancestor(ancestor, of)

    # -- top level

    def run(self) -> None:
        obj = self.obj
        api_version = obj.get("apiVersion")
        if api_version != names.API_VERSION:
            self.add(
                "invalid-api-version",
                "apiVersion",
                f"must be {names.API_VERSION!r}; got {api_version!r}",
            )
        kind = obj.get("kind")
        if kind != names.KIND:
            self.add("invalid-kind", "kind", f"must be {names.KIND!r}; got {kind!r}")
        self.check_metadata(_map(obj.get("metadata")))
        spec = _map(obj.get("spec"))
        if spec is None:
            return
        policy = _map(spec.get("executionPolicy"))
        if policy is not None:
            self.check_execution_policy(policy)
        templates = _map(spec.get("resourceTemplates"))
        if templates is not None:
            self.check_resource_templates(templates)
        workspace = _map(spec.get("workspace"))
        self.has_workspace = workspace is not None
        if workspace is not None:
            self.check_workspace(workspace, templates)
        steps = _list(spec.get("steps"))
        if steps is not None:
            self.check_steps(steps)

    def check_metadata(self, meta: Mapping[str, object] | None) -> None:
        name = _str(meta.get("name")) if meta is not None else None
        generate = _str(meta.get("generateName")) if meta is not None else None
        if not name and not generate:
            self.add(
                "required-field", "metadata.name", "a JobFlow needs metadata.name (or generateName)"
            )
        elif name and not is_dns1123_subdomain(name):
            self.add("invalid-name", "metadata.name", _dns_subdomain_message("name", name))

    def check_execution_policy(self, policy: Mapping[str, object]) -> None:
        base = "spec.executionPolicy"
        ttl = _int(policy.get("ttlSecondsAfterFinished"))
        if ttl is not None and not 0 <= ttl <= MAX_INT32:
            self.add(
                "invalid-ttl",
                f"{base}.ttlSecondsAfterFinished",
                f"must be between 0 and {MAX_INT32} seconds; got {ttl}",
            )
        limit = _int(policy.get("backoffLimit"))
        if limit is not None and not 0 <= limit <= MAX_INT32:
            self.add(
                "invalid-backoff-limit",
                f"{base}.backoffLimit",
                f"must be between 0 and {MAX_INT32}; got {limit}",
            )
        deadline = _int(policy.get("activeDeadlineSeconds"))
        if deadline is not None and deadline <= 0:
            self.add(
                "invalid-active-deadline",
                f"{base}.activeDeadlineSeconds",
                f"must be greater than 0 seconds; got {deadline}",
            )
        key = _str(policy.get("concurrencyKey"))
        if key is not None and not 0 < len(key) <= DNS1123_SUBDOMAIN_MAX:
            self.add(
                "invalid-concurrency-key",
                f"{base}.concurrencyKey",
                f"must be 1 to {DNS1123_SUBDOMAIN_MAX} characters (omit it for no group)",
            )
        pfp = _map(policy.get("podFailurePolicy"))
        if pfp is not None:
            self.check_pod_failure_policy(pfp, f"{base}.podFailurePolicy")

    def check_pod_failure_policy(self, pfp: Mapping[str, object], base: str) -> None:
        rules = _list(pfp.get("rules"))
        if rules is None:
            return
        if not rules:
            self.add("empty-pod-failure-policy", f"{base}.rules", "needs at least one rule")
        for i, rule in enumerate(rules):
            entry = _map(rule)
            on_exit = _map(entry.get("onExitCodes")) if entry is not None else None
            if on_exit is None:
                continue
            path = f"{base}.rules[{i}].onExitCodes"
            container = _str(on_exit.get("containerName"))
            if container is not None and not is_dns1123_label(container):
                self.add(
                    "invalid-container-name",
                    f"{path}.containerName",
                    f"{container!r} is not a valid container name (DNS-1123 label)",
                )
            values = _list(on_exit.get("values"))
            if values is None:
                continue
            if not values:
                self.add("empty-exit-codes", f"{path}.values", "needs at least one exit code")
            for j, value in enumerate(values):
                code = _int(value)
                if code is not None and not 0 <= code <= MAX_EXIT_CODE:
                    self.add(
                        "invalid-exit-code",
                        f"{path}.values[{j}]",
                        f"exit codes are 0..{MAX_EXIT_CODE}; got {code}",
                    )

    def check_resource_templates(self, templates: Mapping[str, object]) -> None:
        base = "spec.resourceTemplates"
        for field, kind, check in (
            ("volumeClaimTemplates", "PersistentVolumeClaim", self.check_pvc),
            ("configMapTemplates", "ConfigMap", None),
        ):
            items = _list(templates.get(field))
            if items is None:
                continue
            seen: dict[str, int] = {}
            for i, item in enumerate(items):
                resource = _map(item)
                path = f"{base}.{field}[{i}]"
                if resource is None:
                    continue
                declared = resource.get("kind")
                if declared is not None and declared != kind:
                    self.add(
                        "invalid-resource-template-kind",
                        f"{path}.kind",
                        f"must be {kind!r} (or omitted); got {declared!r}",
                    )
                meta = _map(resource.get("metadata"))
                name = _str(meta.get("name")) if meta is not None else None
                if not name:
                    self.add(
                        "resource-template-name-required",
                        f"{path}.metadata.name",
                        f"a {kind} template needs metadata.name (created as <flow>-<name>)",
                    )
                elif not is_dns1123_subdomain(name):
                    self.add(
                        "invalid-resource-template-name",
                        f"{path}.metadata.name",
                        _dns_subdomain_message("name", name),
                    )
                elif name in seen:
                    self.add(
                        "duplicate-resource-template-name",
                        f"{path}.metadata.name",
                        f"{name!r} is already used by {field}[{seen[name]}]",
                    )
                else:
                    seen[name] = i
                if check is not None:
                    check(resource, path)

    def check_pvc(self, pvc: Mapping[str, object], path: str) -> None:
        spec = _map(pvc.get("spec"))
        modes = _list(spec.get("accessModes")) if spec is not None else None
        if not modes:
            self.add(
                "pvc-access-modes-required",
                f"{path}.spec.accessModes",
                "a PersistentVolumeClaim needs at least one access mode, e.g. [ReadWriteOnce]",
            )
        resources = _map(spec.get("resources")) if spec is not None else None
        requests = _map(resources.get("requests")) if resources is not None else None
        storage = requests.get("storage") if requests is not None else None
        if storage is None:
            self.add(
                "pvc-storage-required",
                f"{path}.spec.resources.requests.storage",
                "a PersistentVolumeClaim needs a storage request, e.g. 1Gi",
            )
            return
        amount = quantities.parse_quantity(storage)
        if amount is None or amount <= 0:
            self.add(
                "invalid-resource-quantity",
                f"{path}.spec.resources.requests.storage",
                f"must be a positive quantity such as 1Gi; got {storage!r}",
            )

    # -- steps

    def check_steps(self, steps: list[object]) -> None:
        base = "spec.steps"
        if not steps:
            self.add("no-steps", base, "a JobFlow needs at least one step")
        if len(steps) > MAX_STEPS:
            self.add(
                "too-many-steps",
                base,
                f"{len(steps)} steps exceed the limit of {MAX_STEPS}; split the flow",
            )
        decoded: list[Mapping[str, object]] = []
        pairs: list[tuple[str, list[str]]] = []
        first_index: dict[str, int] = {}
        rich: list[int] = []  # steps with fields beyond the plain ones: checked after the graph
        for i, item in enumerate(steps):
            if not _is_plain_step(item):
                self.problems.extend(_pydantic_problems(Step, item, ("spec", "steps", i)))
            step = _map(item) or _EMPTY
            decoded.append(step)
            self.check_step_kind(step, i)
            if not step.keys() <= _PLAIN_STEP_KEYS:
                rich.append(i)
            deps = step.get("dependencies")
            dep_names = [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []
            name = step.get("name")
            if not isinstance(name, str):
                pairs.append(("", dep_names))
                continue
            pairs.append((name, dep_names))
            if not is_dns1123_label(name):
                self.add(
                    "invalid-step-name",
                    f"{base}[{i}].name",
                    f"step name {name!r} must be a DNS-1123 label: lower-case letters, digits"
                    f" and '-', starting and ending with a letter or digit, at most"
                    f" {DNS1123_LABEL_MAX} characters",
                )
            if name in first_index:
                self.add(
                    "duplicate-step-name",
                    f"{base}[{i}].name",
                    f"step name {name!r} is already used by spec.steps[{first_index[name]}]",
                )
                continue
            first_index[name] = i
            if "outputs" in step:
                self.outputs[name] = _declared_outputs(step)
        self.graph = dag.build(pairs)
        # A step whose edges are fewer than its list entries has an unknown, self or repeated
        # dependency (or a non-string one): only those are looked at one by one.
        suspicious = [
            i for i, (_, deps) in enumerate(pairs) if len(deps) != len(self.graph.deps[i])
        ]
        self.check_dependencies(decoded, first_index, suspicious)
        for component in dag.cycles(self.graph):
            start = self.graph.index[component[0]]
            self.add(
                "dependency-cycle",
                f"{base}[{start}].dependencies",
                f"dependency cycle: {dag.format_cycle(component)} (each step depends on the"
                " next); remove one of these dependencies",
            )
        for i in rich:
            self.check_step_fields(decoded[i], i)

    def check_dependencies(
        self,
        steps: Sequence[Mapping[str, object]],
        first_index: Mapping[str, int],
        indices: Sequence[int],
    ) -> None:
        for i in indices:
            step = steps[i]
            deps = _list(step.get("dependencies"))
            if not deps:
                continue
            own = step.get("name")
            for j, dep in enumerate(deps):
                if not isinstance(dep, str) or (dep in first_index and dep != own):
                    continue
                path = f"spec.steps[{i}].dependencies[{j}]"
                if dep == own:
                    self.add("self-dependency", path, f"step {dep!r} cannot depend on itself")
                else:
                    what = "an empty name" if not dep else f"{dep!r}"
                    self.add(
                        "unknown-dependency",
                        path,
                        f"depends on {what}, which is not a step of this flow",
                    )

    def check_step_kind(self, step: Mapping[str, object], index: int) -> None:
        """Type and template rules (need no graph). Hot path: paths are built on failure only."""
        step_type = step.get("type")
        template = step.get("template")
        if step_type == "Manual":
            if template is not None:
                self.add(
                    "manual-step-template",
                    f"spec.steps[{index}].template",
                    "a Manual step waits for approval and runs nothing; remove its template",
                )
        elif step_type is None or step_type == "Job":
            if template is None:
                self.add(
                    "template-required",
                    f"spec.steps[{index}].template",
                    "a Job step needs a template (a batch/v1 Job); use type: Manual for an"
                    " approval step",
                )
            elif isinstance(template, _MAPPING):
                self.check_template(template, index)
                if self.has_placeholders:
                    self.check_placeholders(step, template, index)

    def check_step_fields(self, step: Mapping[str, object], index: int) -> None:
        """The rules of the other step fields (metadata, timeout, retries, when, data)."""
        get = step.get
        base = f"spec.steps[{index}]"
        name = _str(get("name")) or ""
        meta = _map(get("metadata"))
        labels = _map(meta.get("labels")) if meta is not None else None
        if labels is not None:
            for key in labels:
                if key in _RESERVED_LABELS:
                    self.add(
                        "reserved-label",
                        f"{base}.metadata.labels.{key}",
                        f"label {key!r} is set by zen-flow and cannot be overridden",
                    )
        timeout = _int(get("timeoutSeconds"))
        if timeout is not None and not 0 < timeout <= MAX_STEP_TIMEOUT_SECONDS:
            self.add(
                "invalid-timeout",
                f"{base}.timeoutSeconds",
                f"must be between 1 and {MAX_STEP_TIMEOUT_SECONDS} seconds (30 days); got"
                f" {timeout}",
            )
        retry = _map(get("retryPolicy"))
        if retry is not None:
            self.check_retry_policy(retry, f"{base}.retryPolicy")
        when = _str(get("when"))
        if when is not None:
            self.check_when(when, name, f"{base}.when")
        inputs = _map(get("inputs"))
        if inputs is not None:
            self.check_inputs(inputs, name, f"{base}.inputs")
        outputs = _map(get("outputs"))
        if outputs is not None:
            self.check_outputs(outputs, f"{base}.outputs")
        if inputs is not None or outputs is not None:
            self.check_artifact_mounts(step, base)

    def check_template(self, template: Mapping[str, object], index: int) -> None:
        step_path = _StepPath(index)
        get = template.get
        kind = get("kind")
        if kind != "Job":
            self.add(
                "invalid-template-kind",
                f"{step_path}.template.kind",
                f"must be 'Job'; got {kind!r}",
            )
        api_version = get("apiVersion")
        if api_version is not None and api_version != "batch/v1":
            self.add(
                "invalid-template-api-version",
                f"{step_path}.template.apiVersion",
                f"must be 'batch/v1' (or omitted); got {api_version!r}",
            )
        job_spec = _map(get("spec"))
        if job_spec is None:
            self.add("invalid-template", f"{step_path}.template.spec", "the Job needs a spec")
            return
        raw_limit = job_spec.get("backoffLimit")
        if raw_limit is not None:
            limit = _int(raw_limit)
            if limit is None or limit < 0:
                self.add(
                    "invalid-job-backoff-limit",
                    f"{step_path}.template.spec.backoffLimit",
                    f"must be an integer >= 0; got {raw_limit!r}",
                )
        raw_deadline = job_spec.get("activeDeadlineSeconds")
        if raw_deadline is not None:
            deadline = _int(raw_deadline)
            if deadline is None or deadline <= 0:
                self.add(
                    "invalid-job-active-deadline",
                    f"{step_path}.template.spec.activeDeadlineSeconds",
                    f"must be an integer > 0; got {raw_deadline!r}",
                )
        pod_template = _map(job_spec.get("template"))
        pod = _map(pod_template.get("spec")) if pod_template is not None else None
        if pod is None:
            self.add(
                "invalid-template",
                f"{step_path}.template.spec.template.spec",
                "the Job template needs spec.template.spec (a pod spec with containers)",
            )
            return
        restart = pod.get("restartPolicy")
        if restart != "Never" and restart != "OnFailure":
            got = "it is missing" if restart is None else f"got {restart!r}"
            self.add(
                "invalid-restart-policy",
                f"{step_path}.template.spec.template.spec.restartPolicy",
                f"a Job's pods need restartPolicy Never or OnFailure; {got}",
            )
        containers = pod.get("containers")
        if not containers or not isinstance(containers, list):
            if not containers:
                self.add(
                    "containers-required",
                    f"{step_path}.template.spec.template.spec.containers",
                    "the pod spec needs at least one container (name and image)",
                )
            containers = []
        init = pod.get("initContainers")
        for field, items in (("containers", containers), ("initContainers", init)):
            if not isinstance(items, list):
                continue
            for i, container in enumerate(items):
                if isinstance(container, _MAPPING):
                    self.check_container(container, step_path, field, i)

    def check_placeholders(
        self, step: Mapping[str, object], template: Mapping[str, object], index: int
    ) -> None:
        """Every ``{{ parameters.<name> }}`` in the template names an input of the step."""
        inputs = _map(step.get("inputs"))
        declared: set[str] = set()
        for item in (_list(inputs.get("parameters")) if inputs is not None else None) or []:
            entry = _map(item)
            name = _str(entry.get("name")) if entry is not None else None
            if name is not None:
                declared.add(name)
        stack: list[tuple[object, tuple[str | int, ...]]] = [(template, ())]
        while stack:
            node, where = stack.pop()
            if isinstance(node, str):
                if "{{" not in node:
                    continue
                for match in _PLACEHOLDER.finditer(node):
                    if match.group(1) not in declared:
                        self.add(
                            "unknown-parameter-reference",
                            f"spec.steps[{index}].template{_format_path(where)}",
                            f"{match.group(0)!r} names no input parameter of this step; declare"
                            f" {match.group(1)!r} in inputs.parameters",
                        )
            elif isinstance(node, dict):
                stack.extend((value, (*where, key)) for key, value in reversed(node.items()))
            elif isinstance(node, list):
                stack.extend((value, (*where, i)) for i, value in reversed(list(enumerate(node))))

    def check_container(
        self, container: Mapping[str, object], step_path: _StepPath, field: str, index: int
    ) -> None:
        name = container.get("name")
        image = container.get("image")
        resources = container.get("resources")
        if (
            isinstance(name, str)
            and isinstance(image, str)
            and image.strip()
            and resources is None
            and is_dns1123_label(name)
        ):
            return  # the common case, checked without building a path
        path = f"{step_path}.template.spec.template.spec.{field}[{index}]"
        if not isinstance(name, str) or not name:
            self.add("container-name-required", f"{path}.name", "each container needs a name")
        elif not is_dns1123_label(name):
            self.add(
                "invalid-container-name",
                f"{path}.name",
                f"{name!r} is not a valid container name (DNS-1123 label)",
            )
        if not isinstance(image, str) or not image.strip():
            self.add("container-image-required", f"{path}.image", "each container needs an image")
        resources_map = _map(resources)
        if resources_map is not None:
            self.check_resources(resources_map, f"{path}.resources")

    def check_resources(self, resources: Mapping[str, object], path: str) -> None:
        parsed: dict[str, dict[str, Decimal]] = {}
        for part in ("requests", "limits"):
            table = _map(resources.get(part))
            parsed[part] = {}
            if table is None:
                continue
            for resource, raw in table.items():
                amount = quantities.parse_quantity(raw)
                if amount is None or amount <= 0:
                    self.add(
                        "invalid-resource-quantity",
                        f"{path}.{part}.{resource}",
                        f"must be a positive quantity such as 500m or 1Gi; got {raw!r}",
                    )
                else:
                    parsed[part][resource] = amount
        for resource, limit in parsed["limits"].items():
            request = parsed["requests"].get(resource)
            if request is not None and limit < request:
                self.add(
                    "limit-below-request",
                    f"{path}.limits.{resource}",
                    f"the {resource} limit is below its request",
                )

    def check_retry_policy(self, retry: Mapping[str, object], base: str) -> None:
        limit = _int(retry.get("limit"))
        if limit is not None and not 0 <= limit <= MAX_INT32:
            self.add(
                "invalid-retry-limit",
                f"{base}.limit",
                f"must be between 0 (no retries) and {MAX_INT32}; got {limit}",
            )
        backoff = _map(retry.get("backoff"))
        if backoff is None:
            return
        factor = _number(backoff.get("factor"))
        if factor is not None and factor < 1.0:
            self.add(
                "invalid-backoff-factor", f"{base}.backoff.factor", f"must be >= 1.0; got {factor}"
            )
        duration = _str(backoff.get("duration"))
        if duration is not None:
            seconds = quantities.parse_duration(duration)
            if seconds is None:
                self.add(
                    "invalid-duration",
                    f"{base}.backoff.duration",
                    f"{duration!r} is not a duration; use e.g. 10s, 1m30s or 2h",
                )
            elif not 0 < seconds <= MAX_BACKOFF_SECONDS:
                self.add(
                    "invalid-duration",
                    f"{base}.backoff.duration",
                    f"must be greater than 0 and at most 720h; got {duration!r}",
                )

    def check_when(self, when: str, step: str, path: str) -> None:
        if conditions.literal_value(when) is not None:
            return
        # The largest collection the expression can iterate: a step's declared outputs.
        largest = max((len(params) for params, _ in self.outputs.values()), default=0)
        try:
            refs = conditions.check(when, max_collection=largest)
        except conditions.ConditionError as exc:
            self.add(exc.code, path, str(exc))
            return
        if refs.is_dynamic:
            self.add(
                "when-dynamic-reference",
                path,
                "refer to steps by literal name, e.g. steps['build'].phase",
            )
        for ref in refs.steps:
            self.check_step_reference(ref, step, path, code_prefix="when")

    def check_step_reference(self, ref: str, step: str, path: str, *, code_prefix: str) -> None:
        graph = self.graph
        if graph is None:
            return
        if ref not in graph.index:
            self.add(f"{code_prefix}-unknown-step", path, f"{ref!r} is not a step of this flow")
        elif not self.is_ancestor(ref, step):
            self.add(
                f"{code_prefix}-references-non-ancestor",
                path,
                f"step {ref!r} is not a dependency (direct or transitive) of {step!r}; add it to"
                " dependencies",
            )

    # -- data passing (parameters, artifacts)

    def check_inputs(self, inputs: Mapping[str, object], step: str, base: str) -> None:
        seen: set[str] = set()
        for i, item in enumerate(_list(inputs.get("parameters")) or []):
            param = _map(item)
            if param is not None:
                self.check_input_parameter(param, step, f"{base}.parameters[{i}]", seen)
        seen = set()
        for i, item in enumerate(_list(inputs.get("artifacts")) or []):
            artifact = _map(item)
            if artifact is not None:
                self.check_input_artifact(artifact, step, f"{base}.artifacts[{i}]", seen)

    def check_name(self, item: Mapping[str, object], path: str, seen: set[str], what: str) -> None:
        name = _str(item.get("name"))
        if name is None:
            return
        if not is_dns1123_subdomain(name):
            self.add(f"invalid-{what}-name", f"{path}.name", _dns_subdomain_message(what, name))
        elif name in seen:
            self.add(f"duplicate-{what}-name", f"{path}.name", f"{what} {name!r} is declared twice")
        seen.add(name)

    def check_input_parameter(
        self, param: Mapping[str, object], step: str, path: str, seen: set[str]
    ) -> None:
        self.check_name(param, path, seen, "parameter")
        has_value = param.get("value") is not None
        value_from = _map(param.get("valueFrom"))
        if has_value and param.get("valueFrom") is not None:
            self.add("parameter-multiple-sources", path, "set either value or valueFrom, not both")
        elif not has_value and param.get("valueFrom") is None:
            self.add("parameter-source-required", path, "set value or valueFrom")
        if value_from is None:
            return
        vpath = f"{path}.valueFrom"
        sources = [
            key
            for key in ("jsonPath", "configMapKeyRef", "secretKeyRef", "stepOutputRef")
            if value_from.get(key) is not None
        ]
        if not sources:
            self.add(
                "value-from-source-required",
                vpath,
                "set one of stepOutputRef, configMapKeyRef, secretKeyRef or jsonPath",
            )
        elif len(sources) > 1:
            self.add("value-from-multiple-sources", vpath, f"set only one of {', '.join(sources)}")
        for key in ("configMapKeyRef", "secretKeyRef"):
            ref = _map(value_from.get(key))
            if ref is None:
                continue
            ref_name = _str(ref.get("name"))
            if ref_name is not None and not is_dns1123_subdomain(ref_name):
                self.add(
                    "invalid-key-ref",
                    f"{vpath}.{key}.name",
                    _dns_subdomain_message("name", ref_name),
                )
            if _str(ref.get("key")) == "":
                self.add("invalid-key-ref", f"{vpath}.{key}.key", "key must not be empty")
        json_path = _str(value_from.get("jsonPath"))
        if json_path is not None:
            self.check_input_json_path(json_path, step, f"{vpath}.jsonPath")
        step_ref = _map(value_from.get("stepOutputRef"))
        if step_ref is not None:
            ref_step = _str(step_ref.get("step"))
            ref_param = _str(step_ref.get("parameter"))
            if ref_step is not None:
                before = len(self.problems)
                self.check_step_reference(
                    ref_step, step, f"{vpath}.stepOutputRef.step", code_prefix="input"
                )
                declared = self.outputs.get(ref_step)
                if (
                    len(self.problems) == before
                    and ref_param is not None
                    and declared is not None
                    and ref_param not in declared[0]
                ):
                    self.add(
                        "unknown-output-parameter",
                        f"{vpath}.stepOutputRef.parameter",
                        f"step {ref_step!r} declares no output parameter {ref_param!r}",
                    )

    def check_input_json_path(self, json_path: str, step: str, path: str) -> None:
        prefix, colon, expr = json_path.partition(":")
        if not colon:
            self.add(
                "invalid-json-path",
                path,
                "an input jsonPath reads another step's Job: write '<step>:$.status...'",
            )
            return
        if not is_dns1123_subdomain(prefix) or not expr.startswith("$"):
            self.add(
                "invalid-json-path",
                path,
                f"{json_path!r} must look like '<step>:$.expression'",
            )
            return
        self.check_step_reference(prefix, step, path, code_prefix="input")

    def check_input_artifact(
        self, artifact: Mapping[str, object], step: str, path: str, seen: set[str]
    ) -> None:
        self.check_name(artifact, path, seen, "artifact")
        target = _str(artifact.get("path"))
        if target is not None and not _is_clean_path(target):
            self.add(
                "invalid-artifact-path",
                f"{path}.path",
                f"must be an absolute path without '..'; got {target!r}",
            )
        source = _str(artifact.get("from"))
        http = _map(artifact.get("http"))
        if artifact.get("from") is not None and artifact.get("http") is not None:
            self.add("artifact-multiple-sources", path, "set either from or http, not both")
        elif artifact.get("from") is None and artifact.get("http") is None:
            self.add("artifact-source-required", path, "set from (<step>/<artifact>) or http")
        if source is not None:
            parts = source.split("/")
            if len(parts) > 2 or not all(is_dns1123_subdomain(p) for p in parts):
                self.add(
                    "invalid-artifact-from",
                    f"{path}.from",
                    f"must be '<step>' or '<step>/<artifact>'; got {source!r}",
                )
            else:
                self.require_workspace(f"{path}.from")
                before = len(self.problems)
                self.check_step_reference(parts[0], step, f"{path}.from", code_prefix="input")
                declared = self.outputs.get(parts[0])
                if (
                    len(parts) == 2
                    and len(self.problems) == before
                    and declared is not None
                    and parts[1] not in declared[1]
                ):
                    self.add(
                        "unknown-output-artifact",
                        f"{path}.from",
                        f"step {parts[0]!r} declares no output artifact {parts[1]!r}",
                    )
        if http is not None:
            url = _str(http.get("url"))
            if url is not None and not url.startswith(("http://", "https://")):
                self.add(
                    "invalid-artifact-url",
                    f"{path}.http.url",
                    f"must start with http:// or https://; got {url!r}",
                )

    def check_outputs(self, outputs: Mapping[str, object], base: str) -> None:
        seen: set[str] = set()
        for i, item in enumerate(_list(outputs.get("parameters")) or []):
            param = _map(item)
            if param is None:
                continue
            path = f"{base}.parameters[{i}]"
            self.check_name(param, path, seen, "parameter")
            value_from = _map(param.get("valueFrom"))
            if value_from is None:
                continue
            json_path = _str(value_from.get("jsonPath"))
            key = _str(value_from.get("terminationMessageKey"))
            if json_path is not None and key is not None:
                self.add(
                    "value-from-multiple-sources",
                    f"{path}.valueFrom",
                    "set only one of jsonPath, terminationMessageKey",
                )
            if json_path is not None and not json_path.startswith("$"):
                self.add(
                    "invalid-json-path",
                    f"{path}.valueFrom.jsonPath",
                    f"an output jsonPath reads the step's own Job and starts with '$'; got"
                    f" {json_path!r}",
                )
            if key == "":
                self.add(
                    "invalid-value",
                    f"{path}.valueFrom.terminationMessageKey",
                    "must not be empty",
                )
        seen = set()
        for i, item in enumerate(_list(outputs.get("artifacts")) or []):
            artifact = _map(item)
            if artifact is None:
                continue
            path = f"{base}.artifacts[{i}]"
            self.check_name(artifact, path, seen, "artifact")
            self.require_workspace(path)
            target = _str(artifact.get("path"))
            if target is not None and not _is_clean_path(target):
                self.add(
                    "invalid-artifact-path",
                    f"{path}.path",
                    f"must be an absolute path without '..'; got {target!r}",
                )
            if artifact.get("s3") is not None:
                self.add(
                    "unsupported-s3",
                    f"{path}.s3",
                    "S3 artifacts are not supported yet; remove s3 (artifacts travel between"
                    " steps through spec.workspace)",
                )

    # -- workspace and artifact mounts (jobflow.artifacts wires them into the Jobs)

    def check_workspace(
        self, workspace: Mapping[str, object], templates: Mapping[str, object] | None
    ) -> None:
        base = "spec.workspace.volumeClaimTemplate"
        claim = _map(workspace.get("volumeClaimTemplate"))
        if claim is None:
            return  # the shape check reports a missing or non-object template
        declared = claim.get("kind")
        if declared is not None and declared != "PersistentVolumeClaim":
            self.add(
                "invalid-resource-template-kind",
                f"{base}.kind",
                f"must be 'PersistentVolumeClaim' (or omitted); got {declared!r}",
            )
        self.check_pvc(claim, base)
        for i, item in enumerate(
            (_list(templates.get("volumeClaimTemplates")) if templates is not None else None) or []
        ):
            entry = _map(item)
            meta = _map(entry.get("metadata")) if entry is not None else None
            if meta is not None and meta.get("name") == artifacts.WORKSPACE:
                self.add(
                    "workspace-name-conflict",
                    f"spec.resourceTemplates.volumeClaimTemplates[{i}].metadata.name",
                    f"{artifacts.WORKSPACE!r} is the name of spec.workspace's claim"
                    " (<flow>-workspace); rename this template",
                )

    def require_workspace(self, path: str) -> None:
        if not self.has_workspace:
            self.add(
                "workspace-required",
                path,
                "artifacts travel through the flow's workspace volume: declare"
                " spec.workspace.volumeClaimTemplate (a PersistentVolumeClaim)",
            )

    def check_artifact_mounts(self, step: Mapping[str, object], base: str) -> None:
        """Artifact paths of one step are distinct mount points; our volume names are free."""
        mounts: dict[str, str] = {}
        for side in ("inputs", "outputs"):
            container = _map(step.get(side))
            items = _list(container.get("artifacts")) if container is not None else None
            for i, item in enumerate(items or []):
                artifact = _map(item)
                if artifact is None:
                    continue
                target = (
                    artifacts.input_path(artifact)
                    if side == "inputs"
                    else _str(artifact.get("path"))
                )
                if not target:
                    continue
                path = f"{base}.{side}.artifacts[{i}].path"
                normalised = target.rstrip("/") or "/"
                if normalised in mounts:
                    self.add(
                        "duplicate-artifact-path",
                        path,
                        f"{target!r} is already the path of {mounts[normalised]}; each artifact"
                        " needs its own directory",
                    )
                else:
                    mounts[normalised] = f"{base}.{side}.artifacts[{i}]"
        if not mounts:
            return
        template = _map(step.get("template"))
        job_spec = _map(template.get("spec")) if template is not None else None
        pod = _map(job_spec.get("template")) if job_spec is not None else None
        pod_spec = _map(pod.get("spec")) if pod is not None else None
        volumes = _list(pod_spec.get("volumes")) if pod_spec is not None else None
        for i, item in enumerate(volumes or []):
            volume = _map(item)
            name = volume.get("name") if volume is not None else None
            if name in artifacts.RESERVED_VOLUMES:
                self.add(
                    "reserved-volume-name",
                    f"{base}.template.spec.template.spec.volumes[{i}].name",
                    f"volume name {name!r} is used by zen-flow for artifacts; rename it",
                )
        # Kubernetes refuses a pod whose container mounts two volumes at one path.
        containers = _list(pod_spec.get("containers")) if pod_spec is not None else None
        for c, item in enumerate(containers or []):
            container = _map(item)
            own = _list(container.get("volumeMounts")) if container is not None else None
            for m, mount_item in enumerate(own or []):
                mount = _map(mount_item)
                mount_path = _str(mount.get("mountPath")) if mount is not None else None
                if mount_path is not None and (mount_path.rstrip("/") or "/") in mounts:
                    self.add(
                        "duplicate-artifact-path",
                        f"{base}.template.spec.template.spec.containers[{c}].volumeMounts[{m}]"
                        ".mountPath",
                        f"{mount_path!r} is also the path of"
                        f" {mounts[mount_path.rstrip('/') or '/']}, which zen-flow mounts there;"
                        " use another path",
                    )


def _declared_outputs(step: Mapping[str, object]) -> tuple[set[str], set[str]]:
    outputs = _map(step.get("outputs"))
    if outputs is None:
        return set(), set()
    found: tuple[set[str], set[str]] = (set(), set())
    for slot, field in enumerate(("parameters", "artifacts")):
        for item in _list(outputs.get(field)) or []:
            entry = _map(item)
            name = _str(entry.get("name")) if entry is not None else None
            if name is not None:
                found[slot].add(name)
    return found


def _format_path(parts: Sequence[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _size_problems(size: int) -> list[Problem]:
    if size <= MAX_OBJECT_BYTES:
        return []
    return [
        Problem(
            "too-large",
            "",
            f"the JobFlow is {size} bytes serialised, over the limit of {MAX_OBJECT_BYTES}"
            " bytes (1.5 MiB, what etcd accepts); move data to ConfigMaps or split the flow",
        )
    ]


def validate(obj: Mapping[str, object]) -> list[Problem]:
    """Every problem of a JobFlow object (decoded JSON); ``[]`` means valid."""
    if not isinstance(obj, Mapping):
        return [Problem("not-an-object", "", "a JobFlow must be a JSON/YAML object")]
    # One serialisation serves the size budget and the placeholder pre-check. pydantic_core is
    # ~3x faster than json.dumps; non-JSON values from YAML (dates) count as their string form.
    try:
        data = pydantic_core.to_json(obj, fallback=str)
    except pydantic_core.PydanticSerializationError:
        # Only text that UTF-8 cannot encode (a lone surrogate from a JSON "\udc80" escape)
        # gets here; the API server would refuse to store it too, so nothing else is checked.
        return [
            Problem(
                "invalid-text",
                "",
                "the JobFlow contains text that is not valid Unicode (a lone surrogate escape);"
                " remove the \\udXXX escape",
            )
        ]
    problems = _size_problems(len(data))
    if problems:
        # The API server would refuse to store it whatever else it says; checking the rest
        # (thousands of steps, each `when` compiled) would only spend time on a lost cause.
        return problems
    problems.extend(_shape_problems(obj))
    validator = _Validator(obj, has_placeholders=b"{{" in data)
    validator.run()
    problems.extend(validator.problems)
    return problems
