"""jobflow.names: Job names (<= 63, DNS-1123 label, deterministic, distinct per attempt/step/uid,
readable prefix), label values for long flow names, approval annotation keys."""

from __future__ import annotations

import re

import pytest

from jobflow import names

LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@pytest.mark.parametrize(
    ("flow", "step"),
    [
        ("etl", "extract"),
        ("a" * 253, "b" * 63),
        ("my.flow.v2", "step-1"),
        ("x", "y"),
        ("f" * 60, "s"),
    ],
)
@pytest.mark.parametrize("attempt", [0, 1, 17, 1000])
def test_job_name_is_a_short_label(flow: str, step: str, attempt: int) -> None:
    name = names.job_name(flow, "uid-1234", step, attempt)
    assert len(name) <= 63
    assert LABEL.fullmatch(name), name


def test_job_name_is_readable_and_deterministic() -> None:
    name = names.job_name("etl", "0a1b", "extract", 2)
    assert name.startswith("etl-extract-2-")
    assert name == names.job_name("etl", "0a1b", "extract", 2)


def test_job_names_are_distinct() -> None:
    seen = {
        names.job_name(flow, uid, step, attempt)
        for flow in ("f", "f" * 80)
        for uid in ("u1", "u2")
        for step in ("s" * 63, "s" * 62 + "t")
        for attempt in range(20)
    }
    assert len(seen) == 2 * 2 * 2 * 20


@pytest.mark.parametrize(
    ("flow", "step", "shown"),
    [
        ("f" * 63, "extract", ("f" * 44, "extract")),  # a short step is kept whole
        ("etl", "s" * 63, ("etl", "s" * 48)),  # a short flow is kept whole
        ("f" * 63, "s" * 63, ("f" * 25, "s" * 26)),  # both long: each keeps half the room
    ],
)
def test_a_long_flow_name_never_hides_the_step(
    flow: str, step: str, shown: tuple[str, str]
) -> None:
    name = names.job_name(flow, "uid", step, 0)
    assert len(name) == 63
    assert name.startswith(f"{shown[0]}-{shown[1]}-0-"), name


def test_negative_attempt_is_a_bug() -> None:
    with pytest.raises(ValueError):
        names.job_name("f", "u", "s", -1)


def test_label_value() -> None:
    assert names.label_value("etl") == "etl"
    long = "a." * 100
    value = names.label_value(long)
    assert len(value) <= 63 and LABEL.fullmatch(value)
    assert value == names.label_value(long) != names.label_value(long + "b")


def test_constants_and_annotation() -> None:
    assert names.API_VERSION == "workflow.kube-zen.io/v1alpha1"
    assert names.approve_annotation("deploy") == "approve.workflow.kube-zen.io/deploy"
    assert names.resource_name("flow", "data") == "flow-data"
