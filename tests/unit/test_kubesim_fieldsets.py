"""kubesim's field sets and the Update entries of managedFields, computed the cheap way
(``fieldsets.fields_of``, ``fieldsets.changes``, entries that own none of an update's changes
kept as they are) against the plain definitions they replace: ``encode(leaves(obj))``, and
the leaves of both objects compared, every entry decoded and encoded again. Objects are drawn
by hypothesis from a vocabulary that hits map lists (containers by name, ports by
containerPort/protocol), sets (finalizers), atomic lists, empty maps and lists, and the
status/metadata split of the status subresource."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from kubesim import fieldsets, managed
from kubesim.fieldsets import Path, decode, encode, leaves
from kubesim.writerules import same_but_volatile

SCALARS = st.one_of(st.integers(-3, 3), st.sampled_from(["a", "b", "", "k:x"]), st.booleans())
NAMES = st.sampled_from(["main", "side", "init"])


def containers() -> st.SearchStrategy[list[dict[str, Any]]]:
    port = st.fixed_dictionaries(
        {"containerPort": st.integers(1, 3)},
        optional={"protocol": st.sampled_from(["TCP", "UDP"]), "name": SCALARS},
    )
    container = st.fixed_dictionaries(
        {"name": NAMES},
        optional={
            "image": SCALARS,
            "ports": st.lists(port, max_size=3),
            "args": st.lists(SCALARS, max_size=2),
            "resources": st.just({}),
            "env": st.lists(st.fixed_dictionaries({"name": NAMES, "value": SCALARS}), max_size=2),
        },
    )
    return st.lists(container, max_size=3)


def objects() -> st.SearchStrategy[dict[str, Any]]:
    meta = st.fixed_dictionaries(
        {"name": st.just("o")},
        optional={
            "labels": st.dictionaries(st.sampled_from(["x", "y", "k:z"]), SCALARS, max_size=3),
            "annotations": st.dictionaries(st.sampled_from(["p", "q"]), SCALARS, max_size=2),
            "finalizers": st.lists(st.sampled_from(["f/a", "f/b"]), max_size=3),
            "ownerReferences": st.lists(
                st.fixed_dictionaries({"uid": st.sampled_from(["u1", "u2"]), "name": SCALARS}),
                max_size=2,
            ),
            "resourceVersion": st.just("7"),
        },
    )
    spec = st.fixed_dictionaries(
        {},
        optional={
            "containers": containers(),
            "replicas": SCALARS,
            "selector": st.dictionaries(st.sampled_from(["m", "n"]), SCALARS, max_size=2),
            "nested": st.recursive(
                SCALARS,
                lambda kids: st.one_of(
                    st.lists(kids, max_size=2),
                    st.dictionaries(st.sampled_from(["a", "b", "k:c"]), kids, max_size=2),
                ),
                max_leaves=6,
            ),
        },
    )
    status = st.fixed_dictionaries(
        {},
        optional={
            "phase": SCALARS,
            "conditions": st.lists(
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["Ready", "Done"])}, optional={"status": SCALARS}
                ),
                max_size=2,
            ),
        },
    )
    return st.fixed_dictionaries(
        {"apiVersion": st.just("v1"), "kind": st.just("Thing"), "metadata": meta},
        optional={"spec": spec, "status": status},
    )


def plain_changes(
    new: dict[str, Any], old: dict[str, Any], *, has_status: bool, subresource: str | None
) -> tuple[set[Path], set[Path]]:
    new_leaves = leaves(new, has_status=has_status, subresource=subresource)
    old_leaves = leaves(old, has_status=has_status, subresource=subresource)
    changed = {p for p, v in new_leaves.items() if p not in old_leaves or old_leaves[p] != v}
    return changed, set(old_leaves) - set(new_leaves)


def plain_record_update(
    new: dict[str, Any], old: dict[str, Any] | None, *, manager: str, subresource: str | None
) -> None:
    """managedFields' Update entry as kubesim computed it before: every entry decoded, the
    changes taken out, the manager's entry given them, every entry encoded again."""
    new_leaves = leaves(new, has_status=True, subresource=subresource)
    old_leaves = leaves(old, has_status=True, subresource=subresource) if old else {}
    changed = {p for p, v in new_leaves.items() if p not in old_leaves or old_leaves[p] != v}
    removed = set(old_leaves) - set(new_leaves)
    source = old if old is not None else new
    entries = [
        (dict(e), decode(e.get("fieldsV1"))) for e in source["metadata"].get("managedFields") or []
    ]
    for _e, paths in entries:
        paths -= changed | removed
    key = (manager, "Update", subresource or "")
    mine = next(
        (p for e, p in entries if (e["manager"], e["operation"], e.get("subresource", "")) == key),
        None,
    )
    if mine is None:
        entry = {"manager": manager, "operation": "Update", "apiVersion": "v1"}
        if subresource:
            entry["subresource"] = subresource
        mine = set()
        entries.append((entry, mine))
    if changed:
        mine |= changed
        for e, p in entries:
            if p is mine:
                e["time"] = "T"
    out = []
    for e, paths in entries:
        if paths:
            out.append({**e, "fieldsType": "FieldsV1", "fieldsV1": encode(paths)})
    new["metadata"]["managedFields"] = out
    if not out:
        del new["metadata"]["managedFields"]


def record(new: dict[str, Any], old: dict[str, Any] | None, manager: str, sub: str | None) -> None:
    managed.record_update(
        new, old, manager=manager, api_version="v1", has_status=True, subresource=sub
    )


def untimed(obj: dict[str, Any]) -> str:
    """The managedFields as JSON text (key order counts), times left out."""
    entries = obj["metadata"].get("managedFields")
    if entries is None:
        return "none"
    return json.dumps([{k: v for k, v in e.items() if k != "time"} for e in entries])


@settings(max_examples=300, deadline=None)
@given(objects(), st.sampled_from([None, "status"]))
def test_fields_of_is_encode_of_leaves_key_for_key(obj: dict[str, Any], sub: str | None) -> None:
    fast = fieldsets.fields_of(obj, has_status=True, subresource=sub)
    plain = encode(set(leaves(obj, has_status=True, subresource=sub)))
    assert json.dumps(fast) == json.dumps(plain)  # the same keys in the same order


@settings(max_examples=300, deadline=None)
@given(objects(), objects(), st.sampled_from([None, "status"]), st.booleans())
def test_changes_are_the_leaves_compared(
    new: dict[str, Any], old: dict[str, Any], sub: str | None, share: bool
) -> None:
    if share and "spec" in old:
        new["spec"] = old["spec"]  # a subtree shared with the stored object, as updates do
    assert fieldsets.changes(new, old, has_status=True, subresource=sub) == plain_changes(
        new, old, has_status=True, subresource=sub
    )


@settings(max_examples=300, deadline=None)
@given(objects(), objects(), objects(), st.sampled_from([None, "status"]))
def test_update_entries_match_decoding_and_encoding_every_entry(
    first: dict[str, Any], second: dict[str, Any], third: dict[str, Any], sub: str | None
) -> None:
    """Three writes by two managers (a create, then updates through either subresource): the
    entries, their order and their content are those of the plain computation, and the
    stored object's entries are never changed in place."""
    fast_objs: list[dict[str, Any]] = []
    plain_objs: list[dict[str, Any]] = []
    for i, (obj, manager, s) in enumerate(
        [(first, "a", None), (second, "b", sub), (third, "a", sub)]
    ):
        fast, plain = copy.deepcopy(obj), copy.deepcopy(obj)
        for o in (fast, plain):
            o["metadata"].pop("managedFields", None)
        old_fast = fast_objs[-1] if i else None
        frozen = json.dumps(old_fast) if old_fast else ""
        record(fast, old_fast, manager, s if i else None)
        plain_record_update(
            plain, plain_objs[-1] if i else None, manager=manager, subresource=s if i else None
        )
        assert untimed(fast) == untimed(plain)
        if old_fast is not None:
            assert json.dumps(old_fast) == frozen  # the previous object is as it was
        fast_objs.append(fast)
        plain_objs.append(plain)


def test_an_entry_the_update_does_not_touch_is_kept_as_it_is() -> None:
    """A status write by the controller keeps the spec owner's entry itself (not re-encoded),
    and moves the status fields it changed to its own entry with a new time."""
    obj = {"apiVersion": "v1", "kind": "T", "metadata": {"name": "o"}, "spec": {"a": 1, "b": [1]}}
    record(obj, None, "creator", None)
    (creator,) = obj["metadata"]["managedFields"]
    written = {**obj, "metadata": dict(obj["metadata"]), "status": {"phase": "Running"}}
    record(written, obj, "controller", "status")
    entries = written["metadata"]["managedFields"]
    assert entries[0] is creator
    assert (entries[1]["manager"], entries[1]["subresource"]) == ("controller", "status")
    assert decode(entries[1]["fieldsV1"]) == {("status", "phase")}
    again = {**written, "metadata": dict(written["metadata"]), "status": {"phase": "Done"}}
    record(again, written, "creator", "status")  # the creator takes the phase over
    assert [e["manager"] for e in again["metadata"]["managedFields"]] == ["creator", "creator"]
    assert again["metadata"]["managedFields"][0] is creator


def test_a_write_is_a_no_op_when_only_the_resource_version_and_entry_times_differ() -> None:
    entry = {"manager": "a", "operation": "Update", "time": "T1", "fieldsV1": {"f:spec": {}}}
    cur = {"metadata": {"name": "o", "resourceVersion": "5", "managedFields": [entry]}, "spec": {}}
    retimed = {**entry, "time": "T2"}
    same = {"metadata": {"name": "o", "managedFields": [retimed]}, "spec": {}}
    assert same_but_volatile(same, cur)
    assert same_but_volatile({**cur, "metadata": {**cur["metadata"]}}, cur)  # entries shared
    moved = {**retimed, "fieldsV1": {"f:status": {}}}
    assert not same_but_volatile({**same, "metadata": {"name": "o", "managedFields": [moved]}}, cur)
    assert not same_but_volatile({**same, "metadata": {"name": "o"}}, cur)  # entries gone
    assert not same_but_volatile({**same, "spec": {"x": 1}}, cur)
    labelled = {"name": "o", "labels": {"a": "b"}, "managedFields": [entry]}
    assert not same_but_volatile({**same, "metadata": labelled}, cur)
    assert same_but_volatile({"spec": {}}, {"metadata": {}, "spec": {}})


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.dictionaries(
            st.text(max_size=6),
            st.one_of(
                st.text(max_size=8),
                st.integers(-(2**70), 2**70),
                st.booleans(),
                st.none(),
                st.floats(allow_nan=False),
            ),
            max_size=3,
        ),
        st.text(max_size=10),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False),
    )
)
@example("\x7f")
@example({"name": "\u2028", "port": 2**64})
@example({"b": '\x01\n\t"\\', "a": None})
def test_path_element_text_is_json_dumps_text(value: Any) -> None:
    """Map-list item keys and set values (``k:{...}``, ``v:...``) as json.dumps writes them:
    non-ASCII and control characters escaped, floats and big integers as Python writes them."""
    assert fieldsets.key_text(value) == json.dumps(value, sort_keys=True, separators=(",", ":"))
