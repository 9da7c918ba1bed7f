"""The fast paths of a review give the answers of the reference paths, on many inputs.

Covers, each as a differential test (the new path's output equals the reference's):
- validation: ``validate(obj)`` (steps vouched for by jobflow.validation.fast) against
  ``validate(obj, fast=False)`` (every step through pydantic and every rule): the same problems
  (code, path, message, order) and the same warnings, which also equal ``risks.risk_warnings``
  (the rules on their own). Corpora: every valid and invalid case of test_validation's RULES,
  the examples, the benchmark's flow, edge values around every bound the fast path checks
  (types, ranges, quantities, durations, templates), random corruptions of a rich flow, and the
  JobFlows inside the webhook's hostile corpus (tests/api/test_webhook_hostile.py).
- the webhook's parse: the body decoded by orjson or pydantic-core (webhook.routes) equals
  what the standard library's json gives, types included, on the hostile corpus's bodies, on
  bodies chosen for where parsers differ (big integers, NaN, BOM, UTF-16, 18 and 19 digits)
  and on random numbers; bodies they refuse go through the standard library as before.
- the size budget: orjson's serialisation stands in for pydantic_core's only where the verdict
  cannot differ (non-finite floats, dates, big integers).
- the source bound (jobflow.validation.sourcebound): ``validate(obj, source=text)`` (no
  serialisation when the text proves the object small) equals ``validate(obj)`` on every
  corpus above (``assert_same`` checks it with the object's JSON text, ASCII and UTF-8); the
  bound's expansion factor holds for every number literal of up to seven bytes and every string
  escape, and at the edge of the budget.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import json
import random
import re
from pathlib import Path
from typing import Any

import pydantic_core
import pytest
import yaml

from jobflow import validation
from jobflow.validation import fast, risks, sourcebound
from tests.fixtures.json_values import same_json
from tests.unit.test_validation import RULES, flow, job_template, step
from webhook import routes

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def assert_same(obj: Any) -> None:
    """The fast walk and the reference walk agree on problems and warnings."""
    quick: list[str] = []
    slow: list[str] = []
    got = validation.validate(obj, warnings=quick)
    want = validation.validate(obj, warnings=slow, fast=False)
    assert got == want, obj
    assert quick == slow, obj
    if isinstance(obj, dict):
        assert quick == risks.risk_warnings(obj)
    for text in _sources(obj):
        sourced: list[str] = []
        assert validation.validate(obj, warnings=sourced, source=text) == got, text
        assert sourced == quick


def _sources(obj: Any) -> list[bytes]:
    """The JSON texts ``obj`` decodes from (ASCII with escapes, and UTF-8), when it has any."""
    texts = []
    for ascii_only in (True, False):
        try:
            text = json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError):
            return []  # not JSON (a date from YAML, a circular structure)
        if not same_json(json.loads(text), obj):
            return []  # YAML's non-string keys become strings: another object
        texts.append(text)
    return texts


def rich_step(name: str = "b", *deps: str) -> dict[str, Any]:
    """A step with every field the fast path reads, each set to a valid value."""
    template = job_template(
        initContainers=[{"name": "init", "image": "busybox:1.36"}],
    )
    pod = template["spec"]["template"]["spec"]
    pod["containers"][0]["resources"] = {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    template["spec"]["backoffLimit"] = 0
    template["spec"]["activeDeadlineSeconds"] = 60
    return step(
        name,
        *deps,
        template=template,
        type="Job",
        message="m",
        continueOnFailure=False,
        timeoutSeconds=600,
        retryPolicy={
            "limit": 2,
            "backoff": {"type": "Exponential", "factor": 2.0, "duration": "10s"},
        },
    )


# Values at and around what the fast path decides on, of every JSON type.
EDGES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    2**31 - 1,
    2**31,
    30 * 24 * 3600,
    30 * 24 * 3600 + 1,
    2**63,
    0.0,
    0.5,
    1.0,
    2.0,
    float("nan"),
    float("inf"),
    "",
    " ",
    "x",
    "Job",
    "Manual",
    "Other",
    "Never",
    "OnFailure",
    "Always",
    "batch/v1",
    "v1",
    "0",
    "-1",
    "100m",
    "2Gi",
    "1e400",
    "1" * 65,
    "10s",
    "0s",
    "721h",
    "720h",
    "10",
    "busybox",
    "busybox:latest",
    "repo/image@sha256:0",
    "Bad_Name",
    "a" * 64,
    [],
    ["a"],
    [1],
    {},
    {"a": 1},
    {1: "x"},
    datetime.date(2024, 1, 1),
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def test_rich_step_is_valid_and_vouched_for() -> None:
    obj = flow(step("a"), rich_step("b", "a"))
    assert validation.validate(obj) == []
    assert fast.vouch_step(obj["spec"]["steps"][1], 1, None)
    assert_same(obj)


@pytest.mark.parametrize("row", RULES, ids=[r[0] for r in RULES])
def test_rules_table(row: Any) -> None:
    _, valid, invalid, _, _ = row
    for mutation in (valid, invalid):
        obj = flow(step("a"), rich_step("b", "a"))
        mutation(obj)
        assert_same(obj)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        assert_same(document)


GOOD_RESOURCES = {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}
GOOD_BACKOFF = {"type": "Fixed", "duration": "10s"}


def _kept_flow(resources: Any = None, backoff: Any = None) -> dict[str, Any]:
    template = job_template()
    template["spec"]["template"]["spec"]["containers"][0]["resources"] = copy.deepcopy(
        GOOD_RESOURCES if resources is None else resources
    )
    retry = {"limit": 1, "backoff": copy.deepcopy(GOOD_BACKOFF if backoff is None else backoff)}
    return flow(step("a", template=template, retryPolicy=retry))


@pytest.mark.parametrize(
    "resources",
    [
        {"requests": {"cpu": 1}, "limits": {"cpu": "2"}},
        {"requests": {"cpu": True}, "limits": {"cpu": "2"}},
        {"requests": {"cpu": 1.0}, "limits": {"cpu": 2}},
        {"requests": {"cpu": "1"}, "limits": {"cpu": "500m"}},
        {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}, "claims": []},
        {"requests": {1: "1"}, "limits": {"cpu": "2"}},
        GOOD_RESOURCES,
    ],
)
@pytest.mark.parametrize(
    "backoff",
    [
        {"type": "Fixed", "duration": 10},
        {"type": True, "duration": "10s"},
        {"type": "Fixed", "factor": 1},
        {"type": "Fixed", "duration": "0s"},
        {"type": "Linear"},
        {"type": "Fixed", 1: "10s"},
        GOOD_BACKOFF,
    ],
)
def test_kept_tables_stand_only_for_tables_of_the_same_texts(resources: Any, backoff: Any) -> None:
    """fast keeps the last resources and backoff tables of texts it vouched for and answers an
    equal table from them: a table of other types, or of other texts, is checked as ever."""
    assert validation.validate(_kept_flow()) == []  # both kept
    assert_same(_kept_flow(resources=resources))
    assert validation.validate(_kept_flow()) == []
    assert_same(_kept_flow(backoff=backoff))


def test_kept_tables_are_copies() -> None:
    """A flow's table, changed after its review, is read anew (the kept one is a copy)."""
    other = {"requests": {"cpu": "3"}}
    assert validation.validate(_kept_flow(other, {"type": "Linear"})) == []  # kept: these two
    obj = _kept_flow()
    assert validation.validate(obj) == []  # kept: obj's own tables (or copies of them)
    pod = obj["spec"]["steps"][0]["template"]["spec"]["template"]["spec"]
    pod["containers"][0]["resources"]["limits"]["cpu"] = "500m"
    assert [p.code for p in validation.validate(obj)] == ["limit-below-request"]
    assert validation.validate(_kept_flow(other, {"type": "Linear"})) == []
    obj = _kept_flow()
    assert validation.validate(obj) == []
    obj["spec"]["steps"][0]["retryPolicy"]["backoff"]["duration"] = "0s"
    assert [p.path for p in validation.validate(obj)] == [
        "spec.steps[0].retryPolicy.backoff.duration"
    ]


def test_big_tables_are_never_kept() -> None:
    """What is kept stays a few KB, whatever a flow holds (ARCHITECTURE: webhook caches are
    bounded in bytes): a table of many entries is checked and not kept."""
    big = {"requests": {f"example.com/r{i}": "1" for i in range(5000)}}
    assert validation.validate(_kept_flow(resources=big)) == []
    assert fast._kept_resources[0] != big
    big_backoff = {"type": "Fixed", **{f"x{i}": "1" for i in range(5000)}}
    assert_same(_kept_flow(backoff=big_backoff))
    assert fast._kept_backoff[0] != big_backoff


def test_tables_of_other_types_are_never_kept() -> None:
    """1 == 1.0 == True in Python: a table holding numbers is never kept, or the next one,
    equal in Python but holding True (no quantity), would be answered from it."""
    amounts = (1, True, "1", 1.0, True, 1, 2.0, 2, True, 0)
    for amount in amounts:  # one after the other: each may be answered from the one before
        assert_same(_kept_flow(resources={"requests": {"cpu": amount}, "limits": {"cpu": amount}}))
    for amount in amounts:
        assert_same(_kept_flow(backoff={"type": "Fixed", "duration": "10s", "factor": amount}))


def test_the_benchmark_flow() -> None:
    from bench.webhook import flow_review

    assert_same(json.loads(flow_review(20))["request"]["object"])


def test_every_field_at_every_edge() -> None:
    base = flow(step("a"), rich_step("b", "a"), rich_step("c", "b"))
    step_paths = [p for p in _paths(base) if p[:3] == ("spec", "steps", 1)]
    for path in step_paths:
        for value in EDGES:
            obj = copy.deepcopy(base)
            node: Any = obj
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = copy.deepcopy(value)
            assert_same(obj)


def test_random_corruptions() -> None:
    rng = random.Random(14)
    base = flow(step("a"), rich_step("b", "a"), rich_step("c", "a", "b"), step("d", "c"))
    every = _paths(base)
    for _ in range(3000):
        obj = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(every)
            node: Any = obj
            try:
                for key in path[:-1]:
                    node = node[key]
                node[path[-1]] = copy.deepcopy(rng.choice(EDGES))
            except (KeyError, IndexError, TypeError):
                continue
        assert_same(obj)


def test_duplicate_names_cycles_and_placeholders_around_vouched_steps() -> None:
    placeholder = rich_step("p", "a")
    placeholder["template"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "echo",
        "{{ parameters.nope }}",
    ]
    cases = [
        flow(rich_step("a"), rich_step("a")),
        flow(rich_step("a", "b"), rich_step("b", "a")),
        flow(rich_step("a", "c"), rich_step("b", "a"), rich_step("c", "b")),
        flow(rich_step("a", "ghost", "a"), rich_step("b", "a", "a")),
        flow(rich_step("b", "a"), rich_step("a")),  # a dependency later in the list
        flow(step("a"), placeholder),
        flow(*[rich_step(f"s{i}", *(f"s{j}" for j in range(i))) for i in range(12)]),
    ]
    for obj in cases:
        assert_same(obj)


def test_sizes_near_the_limit_with_non_finite_numbers() -> None:
    filler = "x" * (validation.MAX_OBJECT_BYTES - 600)
    for extra in (-50, -10, -4, 0, 4, 10, 50):
        for value in (float("inf"), float("-inf"), float("nan"), None, 1e300):
            obj = flow(step("a", message=filler[: len(filler) + extra]))
            obj["spec"]["steps"][0]["template"]["spec"]["x"] = [value] * 20
            assert_same(obj)


def _hostile_bodies() -> list[bytes]:
    from tests.api import test_webhook_hostile as hostile

    bodies = []
    for case in hostile.corpus(random.Random(7)):
        if b"chunked" in case.head.lower():
            continue
        body = b"".join(case.parts())
        if len(body) <= 4 * 2**20:
            bodies.append(body)
    return bodies


def test_hostile_corpus_parses_and_validates_alike() -> None:
    reviewed = 0
    for body in _hostile_bodies():
        try:
            reference: Any = json.loads(body)
        except (ValueError, RecursionError):
            reference = routes._Refused
        try:
            decoded: Any = routes._decode(body)
        except routes._Refused:
            decoded = routes._Refused
        if decoded is routes._Refused or reference is routes._Refused:
            # refused by the stdlib (as before), or a lone surrogate the stdlib read but the
            # review refuses (as before)
            assert decoded is routes._Refused or reference is not routes._Refused
            continue
        assert same_json(decoded, reference)
        request = decoded.get("request") if isinstance(decoded, dict) else None
        obj = request.get("object") if isinstance(request, dict) else None
        if isinstance(obj, dict) and len(body) < 2**20:
            assert_same(obj)
            reviewed += 1
    assert reviewed > 100


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 18446744073709551616}',
        b'{"a": -9223372036854775809}',
        b'{"a": 1e400}',
        b'{"a": NaN, "b": -Infinity}',
        b'{"a": "\\udc80"}',
        b'{"a": 1, "a": 2}',
        b"\xef\xbb\xbf{}",
        '{"a": "é"}'.encode("utf-16"),
        b'{"a": 0.1, "b": 5e-324, "c": 1.7976931348623157e308, "d": -0.0, "e": 1E2}',
        b'{"a": 999999999999999999, "b": -999999999999999999}',  # 18 digits: orjson, exact
        b'{"a": 9999999999999999999, "b": -9999999999999999999}',  # 19: past int64
        b'{"a": -9223372036854775808, "b": 9223372036854775807}',
        b'{"a": "1234567890123456789", "b": 12345678901234567890123}',
        b'{"a": 1.2345678901234567890123e-300, "b": 123456789012345678901234.5}',
        b'{"a": 1e-400, "b": -0, "c": 0e0, "d": 1E+2}',
    ],
)
def test_bodies_parsers_read_differently_are_read_as_the_stdlib_reads_them(body: bytes) -> None:
    try:
        reference: Any = json.loads(body)
    except ValueError:
        reference = None
    try:
        decoded: Any = routes._decode(body)
    except routes._Refused:
        assert reference is not None  # only a lone surrogate is refused after json.loads
        return
    assert same_json(decoded, reference)


# -- the source bound (jobflow.validation.sourcebound) ---------------------------------------------
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?\Z")


def _expands_within_bound(source: bytes) -> bool:
    written = pydantic_core.to_json(pydantic_core.from_json(source), fallback=str)
    return len(written) * sourcebound.EXPANSION_DENOMINATOR <= (
        len(source) * sourcebound.EXPANSION_NUMERATOR
    )


def test_every_short_number_literal_serialises_within_the_bound() -> None:
    # Lengths 1-7 over the characters that make the longest outputs (1e15 -> 18 bytes); past
    # seven bytes a float's output (at most 24 bytes) is at most 3x its source.
    checked = worst = 0
    for length in range(1, 8):
        for chars in itertools.product("0159-.e+", repeat=length):
            literal = "".join(chars)
            if not _NUMBER.match(literal):
                continue
            checked += 1
            assert _expands_within_bound(literal.encode()), literal
            value = json.loads(literal)
            written = len(pydantic_core.to_json(value))
            worst = max(worst, written * 2 // len(literal))
            if isinstance(value, float) and len(literal) >= 8:
                assert written <= 24
    assert checked > 10_000
    assert worst == 9  # 1e15: 4.5x, the factor the bound is built on
    for literal in (b"1e999", b"-1e999", b"NaN", b"-Infinity", b"1E15", b"-1e15", b"1e-5"):
        assert _expands_within_bound(literal), literal


def test_every_string_character_and_escape_serialises_no_longer() -> None:
    escapes = [b'"\\%s"' % bytes([c]) for c in b'bfnrt/\\"']
    for code in range(0x10000):
        if 0xD800 <= code < 0xE000:
            continue  # surrogates: fits() declines a source with their escapes or raw bytes
        escapes.append(b'"\\u%04x"' % code)
        if code >= 0x20 and chr(code) not in '"\\':
            escapes.append(('"' + chr(code) + '"').encode())
    escapes.append(b'"\\ud83d\\ude00"')  # a pair: four bytes of UTF-8
    for text in escapes:
        written = pydantic_core.to_json(json.loads(text))
        assert len(written) <= len(text), text


def test_the_bound_at_the_edge_of_the_budget() -> None:
    limit = validation.MAX_OBJECT_BYTES
    edge = limit * sourcebound.EXPANSION_DENOMINATOR // sourcebound.EXPANSION_NUMERATOR
    # The worst text there is: nothing but 1e15s (4.5x each, 3.8x with their commas).
    numbers = b"[" + b",".join([b"1e15"] * ((edge - 2) // 5)) + b"]"
    body = numbers + b" " * (edge - len(numbers))
    assert len(body) == edge
    assert sourcebound.fits(body, limit)
    assert not sourcebound.fits(body + b" ", limit)
    assert len(pydantic_core.to_json(json.loads(body))) <= limit
    # A flow at the edge: with the source or without, the same answer.
    obj = flow(step("a"))
    obj["spec"]["steps"][0]["template"]["spec"]["x"] = [1e15] * ((edge - 600) // 5)
    text = json.dumps(obj, separators=(",", ":")).replace("1000000000000000.0", "1e15").encode()
    text += b" " * (edge - len(text))
    assert len(text) == edge and sourcebound.fits(text, limit)
    assert validation.validate(obj, source=text) == validation.validate(obj) == []
    # One past the edge, the object is serialised: a too-large one is still found.
    big = flow(step("a", message="x" * limit))
    assert not sourcebound.fits(json.dumps(big).encode(), limit)
    found = validation.validate(big, source=json.dumps(big).encode())
    assert [p.code for p in found] == ["too-large"]


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": "\\udc80"}',  # a lone surrogate escape: the serialisation must say invalid-text
        b'{"a": "\\uDBFF\\uDFFF"}',  # a pair, declined all the same (cheap to serialise)
        b'{"a": "\xed\xa0\x80"}',  # raw surrogate bytes, which json.loads reads
        '{"a": "é"}'.encode("utf-16"),  # not UTF-8: the byte scans would not see escapes
        '{"a": "x"}'.encode("utf-32"),
    ],
)
def test_sources_the_bound_declines(text: bytes) -> None:
    assert not sourcebound.fits(text, validation.MAX_OBJECT_BYTES)


def test_a_lone_surrogate_is_still_invalid_text_with_a_source() -> None:
    obj = flow(step("a", message="\udc80"))
    text = json.dumps(obj).encode()
    want = validation.validate(obj)
    assert [p.code for p in want] == ["invalid-text"]
    assert validation.validate(obj, source=text) == want


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'{"a": "{{ parameters.x }}"}', True),
        (b'{"a": "\\u007b{ parameters.x }}"}', True),
        (b'{"a": "{\\u007B parameters.x }}"}', True),
        (b'{"a": "{ {", "b": [{"c": {}}]}', False),
        (b'{"a": "\\u0026\\u003c"}', False),
    ],
)
def test_placeholders_are_seen_through_escapes(text: bytes, expected: bool) -> None:
    assert sourcebound.may_have_placeholders(text) is expected


def test_escaped_placeholders_are_checked_as_plain_ones() -> None:
    obj = flow(step("a"))
    obj["spec"]["steps"][0]["template"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "echo",
        "{{ parameters.nope }}",
    ]
    want = validation.validate(obj)
    assert want  # an undeclared parameter
    text = json.dumps(obj).replace("{{", "\\u007b\\u007B").encode()
    assert json.loads(text) == obj
    assert validation.validate(obj, source=text) == want


def test_random_numbers_parse_as_the_stdlib_reads_them() -> None:
    rng = random.Random(15)
    for _ in range(3000):
        numbers = []
        for _ in range(20):
            digits = str(rng.randint(0, 10 ** rng.randint(1, 24)))
            sign = rng.choice(["", "-"])
            kind = rng.randint(0, 3)
            if kind == 0:
                numbers.append(sign + digits)
            elif kind == 1:
                numbers.append(f"{sign}{digits}.{rng.randint(0, 10 ** rng.randint(1, 20))}")
            elif kind == 2:
                numbers.append(f"{sign}{digits[:1]}e{rng.randint(-330, 310)}")
            else:
                numbers.append(repr(rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-30, 30)))
        body = ('{"n": [' + ", ".join(numbers) + "]}").encode()
        assert same_json(routes._decode(body), json.loads(body)), body


def test_encoded_answers_are_the_models_bytes() -> None:
    # webhook.review.encode writes answers without status with orjson: the same bytes.
    from webhook import review

    rng = random.Random(16)
    alphabet = ['"', "\\", "\n", "\x01", "\x7f", "é", "\u2028", "😀", "a", "/", "<"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(300)]
    answers = [review.allow("\udc80"), review.deny("u", "no", warnings=["w"])]
    for i, text in enumerate(texts):
        answers.append(review.allow(text or "u", warnings=texts[i : i + i % 3]))
        answers.append(review.allow_with_patch(text or "u", [{"op": "add", "path": "/" + text}]))
    for answer in answers:
        assert review.encode(answer) == review.AdmissionReviewResponse(response=answer).to_json()


def test_a_deferred_graph_is_the_graph_of_the_steps() -> None:
    # check_steps skips the graph when every step is vouched for and depends only on earlier
    # ones; a check that reads ctx.graph still gets it, the same as built from the steps.
    from bench.webhook import flow_review
    from jobflow import dag
    from jobflow.validation import context, steps

    cases = [
        json.loads(flow_review(20))["request"]["object"],
        flow(rich_step("a"), rich_step("b", "a", "a"), rich_step("a", "a")),  # repeat, duplicate
        flow(rich_step("a", "b"), rich_step("b")),  # a later step: the graph is built at once
    ]
    for obj in cases:
        listed = obj["spec"]["steps"]
        ctx = context.Context(obj)
        steps.check_steps(ctx, listed)
        assert ctx.graph == dag.from_steps(listed)
        assert_same(obj)
