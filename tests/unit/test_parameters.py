"""Parameters between steps (jobflow.parameters, jobflow.outputs, and the planner using them).

Covers: input resolution (literal value, stepOutputRef, the seed's ``step:$.path`` JSONPath,
configMapKeyRef as a kubelet env source with resourceTemplates renames, a missing source or
output); substitution of ``{{ parameters.<name> }}`` on the decoded template (values with
quotes, newlines, braces, ``$(VAR)`` and placeholder-looking text stay exact after the
kubelet's expansion and never break the structure; hyphenated names; blanks inside the braces; non-string leaves untouched; an unknown
name or a ConfigMap value outside command/args/env fails); env vars on every container (name
mangling, the user's own variable wins, ours first); termination message parsing; output
collection (default key, terminationMessageKey, jsonPath, optional, missing, the per-value
and per-flow caps); and through ``plan()``: outputs recorded in status and passed on, a missing
or oversized output fails the step (reason OutputError, message naming the cap), retried
under a retryPolicy; the controller reads the message of a one-container pod whatever the
container's name.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobflow import outputs, parameters
from jobflow.pods import pick_pod_details
from kubesim.runner import expand_vars
from tests.unit.planning_world import World, flow, job_template, step

# --- resolution --------------------------------------------------------------------------------


def with_inputs(*params: dict[str, Any]) -> dict[str, Any]:
    return {"name": "use", "inputs": {"parameters": list(params)}, "template": job_template()}


def resolve(step_spec: dict[str, Any], **kwargs: Any) -> parameters.Resolved:
    return parameters.resolve(
        step_spec,
        outputs=kwargs.get("outputs", {}),
        jobs=kwargs.get("jobs", {}),
        config_map_renames=kwargs.get("renames", {}),
    )


def test_literal_value() -> None:
    got = resolve(with_inputs({"name": "greeting", "value": 'say "hi"\n{x}'}))
    assert got.values == {"greeting": 'say "hi"\n{x}'}


def test_step_output_ref() -> None:
    source = {"stepOutputRef": {"step": "build", "parameter": "image-tag"}}
    got = resolve(
        with_inputs({"name": "tag", "valueFrom": source}),
        outputs={"build": {"image-tag": "v1.2"}},
    )
    assert got.values == {"tag": "v1.2"}


def test_step_output_ref_missing_names_step_and_parameter() -> None:
    source = {"stepOutputRef": {"step": "build", "parameter": "image-tag"}}
    with pytest.raises(parameters.ParameterError) as info:
        resolve(with_inputs({"name": "tag", "valueFrom": source}), outputs={"build": {}})
    assert "'build'" in str(info.value) and "'image-tag'" in str(info.value)


def test_seed_json_path_form_reads_the_upstream_job() -> None:
    job = {"status": {"succeeded": 1, "conditions": [{"type": "Complete"}]}}
    got = resolve(
        with_inputs(
            {"name": "n", "valueFrom": {"jsonPath": "build : $.status.succeeded"}},
            {"name": "c", "valueFrom": {"jsonPath": "build:$.status.conditions[0].type"}},
        ),
        jobs={"build": job},
    )
    assert got.values == {"n": "1", "c": "Complete"}


def test_seed_json_path_without_a_job_fails() -> None:
    with pytest.raises(parameters.ParameterError, match="has no Job"):
        resolve(with_inputs({"name": "n", "valueFrom": {"jsonPath": "build:$.status.x"}}))


def test_config_map_key_is_read_by_the_kubelet_with_the_real_name() -> None:
    source = {"configMapKeyRef": {"name": "settings", "key": "region"}}
    got = resolve(
        with_inputs({"name": "region", "valueFrom": source}),
        renames={"settings": "f-settings"},
    )
    assert got.values == {}
    assert got.kubelet == {"region": {"configMapKeyRef": {"name": "f-settings", "key": "region"}}}


def test_no_source_fails() -> None:
    with pytest.raises(parameters.ParameterError, match="no source"):
        resolve(with_inputs({"name": "x"}))


# --- substitution ------------------------------------------------------------------------------

TRICKY = [
    "quoted \"value\" and 'single'",
    "two\nlines\n",
    "{braces} and {{ not.a.placeholder }}",
    "{{ parameters.other }}",  # a value that looks like a placeholder is inserted as text
    '{"json": [1, 2]}',
    "back\\slash $(VAR) $$",
    "",
]


def template_with(*strings: str, note: str | None = None, **pod: Any) -> dict[str, Any]:
    """A Job template running ``sh -c *strings``; annotation ``note`` defaults to strings[0]."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"annotations": {"note": strings[0] if note is None else note}},
        "spec": {
            "backoffLimit": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "busybox", "command": ["sh", "-c", *strings]}
                    ],
                    **pod,
                }
            },
        },
    }


@pytest.mark.parametrize("value", TRICKY)
def test_substitution_keeps_values_exact(value: str) -> None:
    inputs = parameters.Resolved(values={"the-value": value, "other": "O"}, kubelet={})
    out = parameters.apply(
        template_with("echo {{ parameters.the-value }}!", "{{parameters.the-value}}"), inputs
    )
    container = out["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    # What the process sees after the kubelet's $(VAR) expansion (kubesim implements it the
    # same way) is the value itself, even for a value containing "$(VAR)" or "$$".
    env = {"VAR": "expanded!", "THE_VALUE": "wrong"}
    seen = [expand_vars(arg, env) for arg in container["command"]]
    assert seen == ["sh", "-c", f"echo {value}!", value]
    assert [expand_vars(e["value"], env) for e in container["env"]] == [value, "O"]
    # Fields the kubelet does not expand get the value as it is.
    assert out["metadata"]["annotations"]["note"] == f"echo {value}!"  # type: ignore[index]
    # Structure and non-string leaves are untouched; the output is still plain JSON.
    assert out["spec"]["backoffLimit"] == 2  # type: ignore[index]
    assert json.loads(json.dumps(out)) == out


@settings(max_examples=200, deadline=None)
@given(
    value=st.text(st.characters(exclude_categories=["Cs"])),
    name=st.from_regex(r"[a-z]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True),
)
def test_any_value_arrives_exactly(value: str, name: str) -> None:
    inputs = parameters.Resolved(values={name: value}, kubelet={})
    placeholder = "{{ parameters." + name + " }}"
    template = template_with(f"<{placeholder}>", note=placeholder.replace(" ", ""))
    out = parameters.apply(template, inputs)
    container = out["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    env = {parameters.env_name(name): "not this", "HOME": "/root"}
    assert expand_vars(container["command"][2], env) == f"<{value}>"
    assert [expand_vars(e["value"], env) for e in container["env"]] == [value]
    assert out["metadata"]["annotations"]["note"] == value  # type: ignore[index]


def test_blanks_inside_braces_and_several_per_string() -> None:
    inputs = parameters.Resolved(values={"a": "1", "b-c": "2"}, kubelet={})
    out = parameters.apply(
        template_with("{{parameters.a}}-{{   parameters.b-c   }}-{{ parameters.a }}"), inputs
    )
    command = out["spec"]["template"]["spec"]["containers"][0]["command"]  # type: ignore[index]
    assert command[2] == "1-2-1"


def test_unknown_placeholder_is_an_error_never_a_literal() -> None:
    inputs = parameters.Resolved(values={"a": "1"}, kubelet={})
    with pytest.raises(parameters.ParameterError) as info:
        parameters.apply(template_with("echo {{ parameters.nope }}"), inputs)
    assert "nope" in str(info.value) and "template.metadata.annotations" in str(info.value)


def test_kubelet_value_becomes_a_var_reference_in_command_only() -> None:
    source = {"configMapKeyRef": {"name": "cm", "key": "k"}}
    inputs = parameters.Resolved(values={}, kubelet={"my-region": source})
    out = parameters.apply(template_with("echo {{ parameters.my-region }}", note=""), inputs)
    container = out["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["command"][2] == "echo $(MY_REGION)"
    assert container["env"][0] == {"name": "MY_REGION", "valueFrom": source}
    with pytest.raises(parameters.ParameterError, match="command, args or env"):
        parameters.apply(
            template_with("x", note="", nodeSelector={"zone": "{{ parameters.my-region }}"}),
            inputs,
        )


@pytest.mark.parametrize(
    ("name", "env"),
    [("version", "VERSION"), ("image-tag", "IMAGE_TAG"), ("a.b", "A_B"), ("1st", "P_1ST")],
)
def test_env_names(name: str, env: str) -> None:
    assert parameters.env_name(name) == env


def test_every_container_gets_the_inputs_as_env_and_user_vars_win() -> None:
    inputs = parameters.Resolved(values={"image-tag": "v2", "mode": 'a "b"\nc'}, kubelet={})
    template = template_with(
        "x",
        initContainers=[{"name": "init", "image": "busybox"}],
    )
    containers = template["spec"]["template"]["spec"]["containers"]
    containers.append(
        {"name": "side", "image": "busybox", "env": [{"name": "MODE", "value": "mine"}]}
    )
    out = parameters.apply(template, inputs)
    pod = out["spec"]["template"]["spec"]  # type: ignore[index]
    by_name = {c["name"]: c["env"] for c in [*pod["initContainers"], *pod["containers"]]}
    assert by_name["init"] == [
        {"name": "IMAGE_TAG", "value": "v2"},
        {"name": "MODE", "value": 'a "b"\nc'},
    ]
    assert by_name["main"] == by_name["init"]
    # The user's own MODE is kept and comes after ours.
    assert by_name["side"] == [
        {"name": "IMAGE_TAG", "value": "v2"},
        {"name": "MODE", "value": "mine"},
    ]


# --- outputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("version=1.2\nrows = 42\n", {"version": "1.2", "rows": "42"}),
        ("url=http://x/?a=b", {"url": "http://x/?a=b"}),
        (
            '{"multi": "a\\nb", "n": 3, "o": {"k": [1]}}',
            {"multi": "a\nb", "n": "3", "o": '{"k":[1]}'},
        ),
        ("garbage", {}),
        ("", {}),
    ],
)
def test_parse_termination_message(text: str, parsed: dict[str, str]) -> None:
    assert outputs.parse_termination_message(text) == parsed


def producer(*params: dict[str, Any]) -> dict[str, Any]:
    return {"name": "build", "outputs": {"parameters": list(params)}}


JOB = {"status": {"succeeded": 1, "completionTime": "2026-01-01T00:00:05Z"}}


def test_collect_sources() -> None:
    spec = producer(
        {"name": "version"},
        {"name": "rows", "valueFrom": {"terminationMessageKey": "row-count"}},
        {"name": "done", "valueFrom": {"jsonPath": "$.status.completionTime"}},
        {"name": "maybe", "optional": True},
    )
    got = outputs.collect(spec, job=JOB, termination_message="version=1.4\nrow-count=42")
    assert got == {"version": "1.4", "rows": "42", "done": "2026-01-01T00:00:05Z"}


def test_collect_missing_names_each_output() -> None:
    spec = producer({"name": "version"}, {"name": "n", "valueFrom": {"jsonPath": "$.status.x"}})
    with pytest.raises(outputs.OutputError) as info:
        outputs.collect(spec, job=JOB, termination_message="other=1")
    assert "'version'" in str(info.value) and "'n'" in str(info.value)


def test_collect_unreadable_pod_says_so() -> None:
    with pytest.raises(outputs.OutputError, match="termination message was empty"):
        outputs.collect(producer({"name": "v"}), job=JOB, termination_message=None)


def test_value_cap_names_the_cap() -> None:
    big = "x" * (outputs.MAX_VALUE_BYTES + 1)
    with pytest.raises(outputs.OutputError, match=f"cap of {outputs.MAX_VALUE_BYTES} bytes"):
        outputs.collect(
            producer({"name": "v"}), job=JOB, termination_message=json.dumps({"v": big})
        )
    exact = "é" * (outputs.MAX_VALUE_BYTES // 2)
    got = outputs.collect(producer({"name": "v"}), job=JOB, termination_message=f"v={exact}")
    assert got == {"v": exact}


def test_flow_budget_names_the_cap() -> None:
    chunk = {"v": "x" * 4000}
    outputs.check_flow_budget(chunk, [chunk] * 10)
    with pytest.raises(outputs.OutputError, match=f"cap of {outputs.MAX_FLOW_BYTES} bytes"):
        outputs.check_flow_budget(chunk, [chunk] * 16)


# --- through the planner -----------------------------------------------------------------------


def passing_flow(**producer_fields: Any) -> dict[str, object]:
    source = {"stepOutputRef": {"step": "build", "parameter": "image-tag"}}
    return flow(
        step("build", outputs={"parameters": [{"name": "image-tag"}]}, **producer_fields),
        step(
            "deploy",
            "build",
            inputs={"parameters": [{"name": "image-tag", "valueFrom": source}]},
            template=template_with("deploy {{ parameters.image-tag }}"),
        ),
    )


def finish_build(world: World, message: str, attempt: int = 0) -> None:
    world.advance(5)
    world.finish(world.job_of("build", attempt), ok=True, exit_code=0, message=message)
    world.reconcile()


def test_output_is_recorded_and_reaches_the_next_job() -> None:
    world = World(passing_flow())
    world.reconcile()
    finish_build(world, json.dumps({"image-tag": 'v1 "rc"\n{2}'}))
    assert world.step_status("build")["outputs"] == {"parameters": {"image-tag": 'v1 "rc"\n{2}'}}
    (deploy,) = world.jobs_of("deploy")
    container = deploy["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["command"][2] == 'deploy v1 "rc"\n{2}'
    assert {"name": "IMAGE_TAG", "value": 'v1 "rc"\n{2}'} in container["env"]


def test_missing_output_fails_the_step() -> None:
    world = World(passing_flow())
    world.reconcile()
    finish_build(world, "something=else")
    build = world.step_status("build")
    assert (build["phase"], build["reason"]) == ("Failed", outputs.OUTPUT_ERROR)
    assert "image-tag" in str(build["message"])
    assert world.step_status("deploy")["phase"] == "Skipped"
    assert world.phase == "Failed"


def test_oversized_output_fails_with_the_cap_and_is_retried() -> None:
    world = World(passing_flow(retryPolicy={"limit": 1}))
    world.reconcile()
    finish_build(world, "image-tag=" + "x" * (outputs.MAX_VALUE_BYTES + 10))
    build = world.step_status("build")
    assert build["reason"] == "RetryBackoff"
    assert f"cap of {outputs.MAX_VALUE_BYTES} bytes" in str(build["message"])
    world.advance(60)
    world.reconcile()
    finish_build(world, "image-tag=v3", attempt=1)
    assert world.step_status("build")["outputs"] == {"parameters": {"image-tag": "v3"}}
    assert world.step_status("deploy")["phase"] == "Running"


# --- the controller reading a succeeded pod ------------------------------------------------------


def test_controller_reads_the_message_of_a_one_container_pod() -> None:
    terminated = {"exitCode": 0, "reason": "Completed", "message": "version=3"}
    pod = {
        "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [{"name": "worker", "state": {"terminated": terminated}}],
        },
    }
    details = pick_pod_details([pod], container="main")
    assert (details.exit_code, details.termination_message) == (0, "version=3")
