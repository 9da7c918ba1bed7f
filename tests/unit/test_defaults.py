"""jobflow.defaults: apply_defaults fills exactly DESIGN's defaults without touching its input;
default_patch expresses the same as RFC 6902 ops (applied here with a small applier and compared);
admission_patch (what the webhook stores) is exactly its part outside lists, never inside steps[];
parents that do not exist, explicit nulls, explicit zeros, wrong shapes, pointer escaping."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jobflow import defaults


def apply_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """A minimal RFC 6902 "add" applier (all default_patch emits), strict about parents."""
    doc = copy.deepcopy(doc)
    for op in ops:
        assert op["op"] == "add"
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
        parent = doc
        for token in tokens[:-1]:
            parent = parent[int(token)] if isinstance(parent, list) else parent[token]
        last = tokens[-1]
        if isinstance(parent, list):
            parent.insert(int(last), op["value"])
        else:
            assert isinstance(parent, dict), op  # the parent must exist
            parent[last] = op["value"]
    return doc


# DESIGN's executionPolicy defaults, written out here rather than read from jobflow.defaults so
# that a changed default fails these tests.
DEFAULT_POLICY = {
    "concurrencyPolicy": "Forbid",
    "ttlSecondsAfterFinished": 86400,
    "backoffLimit": 6,
}

# Every field set, zeros included: apply_defaults has nothing to add.
COMPLETE: dict[str, Any] = {
    "spec": {
        "executionPolicy": {
            "concurrencyPolicy": "Allow",
            "ttlSecondsAfterFinished": 0,
            "backoffLimit": 1,
        },
        "steps": [
            {"name": "a", "type": "Job", "retryPolicy": {"limit": 0, "backoff": {"factor": 3}}}
        ],
    }
}

CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "empty-policy-and-bare-step",
        {"spec": {"steps": [{"name": "a"}]}},
        {
            "spec": {
                "executionPolicy": DEFAULT_POLICY,
                "steps": [{"name": "a", "type": "Job"}],
            }
        },
    ),
    (
        "partial-policy",
        {"spec": {"executionPolicy": {"backoffLimit": 0}, "steps": []}},
        {
            "spec": {
                "executionPolicy": {
                    "backoffLimit": 0,
                    "concurrencyPolicy": "Forbid",
                    "ttlSecondsAfterFinished": 86400,
                },
                "steps": [],
            }
        },
    ),
    (
        "retry-without-limit",
        {
            "spec": {
                "executionPolicy": {},
                "steps": [{"name": "a", "type": "Manual", "retryPolicy": {"backoff": {}}}],
            }
        },
        {
            "spec": {
                "executionPolicy": DEFAULT_POLICY,
                "steps": [
                    {
                        "name": "a",
                        "type": "Manual",
                        "retryPolicy": {"limit": 3, "backoff": {"factor": 2.0}},
                    }
                ],
            }
        },
    ),
    ("explicit-zero-limit-kept", COMPLETE, copy.deepcopy(COMPLETE)),
    (
        "explicit-null-is-absent",
        {"spec": {"executionPolicy": None, "steps": [{"name": "a", "type": None}]}},
        {
            "spec": {
                "executionPolicy": DEFAULT_POLICY,
                "steps": [{"name": "a", "type": "Job"}],
            }
        },
    ),
    ("no-spec", {"metadata": {"name": "x"}}, {"metadata": {"name": "x"}}),
    (
        "wrong-shapes-left-alone",
        {"spec": {"executionPolicy": "x", "steps": ["a", {"name": "b", "retryPolicy": 5}]}},
        {
            "spec": {
                "executionPolicy": "x",
                "steps": ["a", {"name": "b", "type": "Job", "retryPolicy": 5}],
            }
        },
    ),
]


@pytest.mark.parametrize(
    ("obj", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_apply_defaults(obj: dict[str, Any], expected: dict[str, Any]) -> None:
    before = copy.deepcopy(obj)
    assert defaults.apply_defaults(obj) == expected
    assert obj == before  # input untouched


@pytest.mark.parametrize("obj", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_patch_produces_exactly_apply_defaults(obj: dict[str, Any]) -> None:
    patch = defaults.default_patch(obj)
    assert apply_patch(obj, patch) == defaults.apply_defaults(obj)
    # Defaulting is idempotent: nothing left to add afterwards.
    assert defaults.default_patch(defaults.apply_defaults(obj)) == []


@pytest.mark.parametrize("obj", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_admission_patch_is_the_part_outside_lists(obj: dict[str, Any]) -> None:
    stored = defaults.admission_patch(obj)
    assert stored == [op for op in defaults.default_patch(obj) if "/steps/" not in op["path"]]
    # What the controller sees is the same whether or not the step defaults were stored.
    assert defaults.apply_defaults(apply_patch(obj, stored)) == defaults.apply_defaults(obj)


def test_admission_patch_leaves_steps_as_written() -> None:
    obj = {
        "spec": {"executionPolicy": {}, "steps": [{"name": "a", "retryPolicy": {"backoff": {}}}]}
    }
    assert [op["path"] for op in defaults.admission_patch(obj)] == [
        "/spec/executionPolicy/concurrencyPolicy",
        "/spec/executionPolicy/ttlSecondsAfterFinished",
        "/spec/executionPolicy/backoffLimit",
    ]


def test_patch_for_missing_policy_is_one_op_for_the_parent() -> None:
    patch = defaults.default_patch({"spec": {"steps": [{"name": "a", "type": "Manual"}]}})
    assert patch == [
        {
            "op": "add",
            "path": "/spec/executionPolicy",
            "value": DEFAULT_POLICY,
        }
    ]


def test_pointer_escaping() -> None:
    assert defaults.escape_pointer_token("a/b~c") == "a~1b~0c"
    assert defaults.escape_pointer_token(3) == "3"
