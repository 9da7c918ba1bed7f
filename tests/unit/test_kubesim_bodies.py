"""kubesim decodes JSON request bodies mostly with orjson (``servercore.loads``): every body
decodes to what json.loads gives (types included: an integer past 64 bits stays an int, NaN
and Infinity are read), and a body json.loads refuses is refused with json.loads' own error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubesim.servercore import loads
from tests.fixtures.json_values import same_json

JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=False),
        st.text(max_size=8),
    ),
    lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=4), kids, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(JSON, st.booleans())
def test_a_body_decodes_as_json_loads_decodes_it(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert same_json(loads(body), json.loads(body))


@pytest.mark.parametrize(
    "body",
    [
        b'{"n": 18446744073709551616}',
        b"[-9223372036854775809, 12345678901234567890123]",
        b'{"x": NaN, "y": -Infinity, "z": 1e400}',
        b'"\\ud800"',
        b'\xef\xbb\xbf{"bom": 1}',
        '{"utf16": 1}'.encode("utf-16"),
        b'{"a": 1, "a": 2}',
    ],
)
def test_what_orjson_reads_otherwise_or_refuses_is_json_loads_result(body: bytes) -> None:
    assert same_json(loads(body), json.loads(body))


@pytest.mark.parametrize("body", [b"[1, 2", b"{'a': 1}", b"", b"nul"])
def test_an_invalid_body_raises_json_loads_error(body: bytes) -> None:
    with pytest.raises(ValueError) as ours:
        loads(body)
    with pytest.raises(ValueError) as plain:
        json.loads(body)
    assert str(ours.value) == str(plain.value)
