"""Label and field selectors, parsed once and matched many times.

Label selectors follow the Kubernetes grammar: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``,
``k notin (a)``, ``k`` (exists) and ``!k`` (does not exist), joined by commas (AND). Field
selectors support ``=``, ``==`` and ``!=`` on any dotted path of the object (``metadata.name``,
``metadata.namespace``, ``involvedObject.uid``, ``status.phase``, ``spec.nodeName``...); a missing
field compares as the empty string, as the real server's field label conversion does.

``match_label_selector_object`` evaluates a ``metav1.LabelSelector`` object (``matchLabels`` and
``matchExpressions``), which webhooks' namespace/object selectors and Job selectors use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kubesim.errors import ApiError

_IN_RE = re.compile(
    r"^\s*(!?)\s*([^\s!=<>(),]+)\s*(?:(in|notin)\s*\(([^)]*)\)|(==|=|!=)\s*([^\s,]*))?\s*$"
)


# upstream validateLabelKey / validateLabelValue (k8s.io/apimachinery/pkg/labels/selector.go):
# a key is a qualified name (optional DNS-1123 subdomain prefix, a name part of at most 63), a
# value is empty or at most 63 alphanumerics, '-', '_' or '.', alphanumeric at both ends.
_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_KEY_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def _check_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if (prefix and (len(prefix) > 253 or not _PREFIX.match(prefix))) or not (
        len(name) <= 63 and _NAME_PART.match(name)
    ):
        raise ApiError(
            400,
            "BadRequest",
            f"unable to parse requirement: key: Invalid value: {key!r}: {_KEY_MESSAGE}",
        )


def _check_values(key: str, values: tuple[str, ...]) -> None:
    for i, value in enumerate(values):
        if len(value) > 63 or not _VALUE.match(value):
            raise ApiError(
                400,
                "BadRequest",
                f"unable to parse requirement: values[{i}][{key}]: Invalid value: {value!r}: "
                + _VALUE_MESSAGE,
            )


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        # "!=" and "notin" also match objects that lack the key (upstream semantics)
        return self.key not in labels or labels[self.key] not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (s.strip() for s in parts) if p]


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse a label selector string; raise ApiError 400 on a syntax error."""
    if not text:
        return ()
    reqs: list[Requirement] = []
    for part in _split_top_level(text):
        m = _IN_RE.match(part)
        if not m:
            raise ApiError(
                400, "BadRequest", f"unable to parse requirement: invalid label selector: {part!r}"
            )
        neg, key, setop, setvals, op, value = m.groups()
        _check_key(key)
        if neg:
            if setop or op:
                raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
            reqs.append(Requirement(key, "!exists"))
        elif setop:
            vals = tuple(v.strip() for v in setvals.split(",") if v.strip())
            _check_values(key, vals)
            reqs.append(Requirement(key, setop, vals))
        elif op:
            _check_values(key, (value,))
            reqs.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
        else:
            reqs.append(Requirement(key, "exists"))
    return tuple(reqs)


def labels_of(obj: Mapping[str, object]) -> Mapping[str, str]:
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        labels = meta.get("labels")
        if isinstance(labels, Mapping):
            return labels
    return {}


def match_labels(reqs: tuple[Requirement, ...], obj: Mapping[str, object]) -> bool:
    if not reqs:
        return True
    labels = labels_of(obj)
    return all(r.matches(labels) for r in reqs)


@dataclass(frozen=True)
class FieldRequirement:
    path: tuple[str, ...]
    negate: bool
    value: str


def parse_field_selector(text: str | None) -> tuple[FieldRequirement, ...]:
    if not text:
        return ()
    reqs: list[FieldRequirement] = []
    for part in _split_top_level(text):
        for op in ("!=", "==", "="):
            if op in part:
                key, _, value = part.partition(op)
                key = key.strip()
                if not key:
                    break
                reqs.append(FieldRequirement(tuple(key.split(".")), op == "!=", value.strip()))
                break
        else:
            raise ApiError(
                400, "BadRequest", f"invalid field selector: {part!r}: expected key=value"
            )
    return tuple(reqs)


def field_value(obj: Mapping[str, object], path: tuple[str, ...]) -> str:
    cur: object = obj
    for p in path:
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(p)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def match_fields(reqs: tuple[FieldRequirement, ...], obj: Mapping[str, object]) -> bool:
    for r in reqs:
        equal = field_value(obj, r.path) == r.value
        if equal == r.negate:
            return False
    return True


def compile_selectors(
    label_selector: str | None, field_selector: str | None
) -> Callable[[Mapping[str, object]], bool] | None:
    """One predicate for both selectors, or None when there is nothing to filter."""
    lreqs = parse_label_selector(label_selector)
    freqs = parse_field_selector(field_selector)
    if not lreqs and not freqs:
        return None

    def predicate(obj: Mapping[str, object]) -> bool:
        return match_labels(lreqs, obj) and match_fields(freqs, obj)

    return predicate


def match_label_selector_object(
    selector: Mapping[str, object] | None, labels: Mapping[str, str]
) -> bool:
    """Evaluate a metav1.LabelSelector; None or {} matches everything."""
    if not selector:
        return True
    ml = selector.get("matchLabels") or {}
    if isinstance(ml, Mapping):
        for k, v in ml.items():
            if labels.get(k) != v:
                return False
    exprs = selector.get("matchExpressions") or []
    if isinstance(exprs, list):
        for e in exprs:
            if not isinstance(e, Mapping):
                continue
            key = str(e.get("key", ""))
            op = str(e.get("operator", ""))
            vals = tuple(str(v) for v in (e.get("values") or []))
            mapped = {
                "In": "in",
                "NotIn": "notin",
                "Exists": "exists",
                "DoesNotExist": "!exists",
            }.get(op)
            if mapped is None or not Requirement(key, mapped, vals).matches(labels):
                return False
    return True
