"""webhook.nesting: the depth of a JSON body measured on its bytes, before any parser.

Covers: for random JSON (strings holding brackets, quotes, backslashes and escaped quotes; keys
too; compact and indented; ASCII-escaped or raw UTF-8) `too_deep` agrees with the real depth at
every limit around it, and `where_too_deep` finds the first bracket past the limit exactly when
there is one; the shapes the scan takes shortcuts for (a run of opening brackets, many shallow
towers, bracket-only strings, kubectl's last-applied annotation) and the worst ones (10^5 deep,
unbalanced, unterminated strings, a trailing backslash) give the right answer.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook import nesting

tricky_text = st.text(alphabet='[]{}"\\ a\u00e9\u2028', max_size=8)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(tricky_text, children, max_size=3)
    ),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=500, deadline=None)
@given(value=values, ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_agrees_with_the_real_depth(value: Any, *, ascii_only: bool, indent: int | None) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    real = depth(value)
    for limit in {0, 1, max(0, real - 1), real, real + 1}:
        assert nesting.too_deep(body, limit) is (real > limit), (body, limit)
        where = nesting.where_too_deep(body, limit)
        assert (where is not None) is (real > limit)
        if where is not None:
            assert body[where : where + 1] in (b"[", b"{")
            assert depth(value) > limit


@pytest.mark.parametrize(
    ("body", "deep", "where"),
    [
        (b"[" * 100_000 + b"]" * 100_000, True, nesting.MAX_DEPTH),
        (b"[" * 100_000, True, nesting.MAX_DEPTH),
        (b'{"a":' * 101 + b"1" + b"}" * 101, True, 500),
        (b'{"a":' * 100 + b"1" + b"}" * 100, False, None),
        ((b"[" * 99 + b"]" * 99 + b",") * 300, False, None),
        (b"[" + b'"[[[[",' * 1000 + b"1]", False, None),
        (b"[" + b'"\\"[[[[\\\\",' * 1000 + b"1]", False, None),
        (b'["' + b"[" * 1000, False, None),  # an unterminated string holds the brackets
        (b"[" * 50 + b'"\\', False, None),
        (b'"' + b"\\" * 1001 + b'"', False, None),
    ],
    ids=[
        "arrays-1e5",
        "unbalanced-1e5",
        "objects-101",
        "objects-100",
        "towers-99",
        "bracket-strings",
        "escaped-quotes",
        "unterminated-string",
        "trailing-backslash",
        "backslash-run",
    ],
)
def test_shapes(body: bytes, *, deep: bool, where: int | None) -> None:
    assert nesting.too_deep(body) is deep
    assert nesting.where_too_deep(body) == where


def zigzag(levels: int) -> Any:
    """``levels`` nested arrays, each holding an empty object before the next: no run of
    opening brackets longer than two, so only the depth itself can tell."""
    value: Any = 1
    for _ in range(levels):
        value = [{}, value]
    return value


@pytest.mark.parametrize("prefix", [0, 1, 31, 32, 63, 64, 65, 500])
@pytest.mark.parametrize("levels", [97, 98, 99, 100, 101])
def test_deep_parts_after_shallow_ones(prefix: int, levels: int) -> None:
    """The chunked bound (``_shallow``) carries the depth from chunk to chunk: a deep part
    crossing a chunk boundary after ``prefix`` shallow objects is measured exactly."""
    value = [*([{}] * prefix), zigzag(levels), *([{}] * prefix)]
    body = json.dumps(value, separators=(",", ":")).encode()
    assert nesting.too_deep(body) is (depth(value) > nesting.MAX_DEPTH)
    assert (nesting.where_too_deep(body) is not None) is (depth(value) > nesting.MAX_DEPTH)


@pytest.mark.parametrize("run", [40, 41])
def test_a_chunk_that_reaches_exactly_past_the_limit(run: int) -> None:
    """Marks whose second chunk starts at depth 60 with ``run`` opening brackets before any
    closing one: 60 + 41 is one past the limit, found; 60 + 40 is the limit, passed."""
    marks = "[[]" * 34 + "[" * 26  # 128 bytes (one chunk) ending at depth 60
    marks += "[" * run + "]" * (128 - run)  # the second chunk
    marks += "]" * (60 + run - (128 - run))  # closing what is left
    body = marks.replace("][", "],[").encode()
    real = depth(json.loads(body))
    assert real == 60 + run
    assert nesting.too_deep(body) is (real > nesting.MAX_DEPTH)


def test_kubectl_last_applied_annotation_is_one_string() -> None:
    flow: dict[str, Any] = {"spec": {"steps": [{"name": "a", "x": [[[[{"y": [1]}]]]]}] * 50}}
    flow["metadata"] = {
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(flow)}
    }
    body = json.dumps({"request": {"object": flow}}).encode()
    # {} > request > object > spec > steps[] > step > x [[[[ > {y} > [1]: 12 levels; the
    # annotation's copy (one string) adds none.
    assert not nesting.too_deep(body, 12)
    assert nesting.too_deep(body, 11)
