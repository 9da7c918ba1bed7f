"""Events, core/v1 and events.k8s.io/v1 (two views of one storage through HTTP, see
``kubesim/events.py``): times normalized to RFC 3339, a core Event names its involved object,
and kubectl's event columns (LAST SEEN, TYPE, REASON, OBJECT, MESSAGE; the name is wide)."""

from __future__ import annotations

from typing import Any

from kubesim import errors
from kubesim.errors import Cause
from kubesim.kinds import normalize_time
from kubesim.resources import ResourceType, builtin_type
from kubesim.strategies.base import Strategy
from kubesim.tables import (
    NAME_COLUMN,
    Column,
    ColumnDefinition,
    Getter,
    age,
    col,
    created,
    field,
    name_cell,
)


def _type(group: str) -> ResourceType:
    return builtin_type(
        group,
        "v1",
        "events",
        "Event",
        short_names=("ev",),
        description="Event is a report of an event somewhere in the cluster.",
    )


CORE_TYPE = _type("")
EVENTS_V1_TYPE = _type("events.k8s.io")


def _default_event(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if "reason" in obj:
        obj.setdefault("type", "Normal")
    for f in ("eventTime", "firstTimestamp", "lastTimestamp"):
        if f in obj:
            obj[f] = normalize_time(obj[f])


def _default_new_event(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    for f in ("eventTime", "deprecatedFirstTimestamp", "deprecatedLastTimestamp"):
        if f in obj:
            obj[f] = normalize_time(obj[f])
    series = obj.get("series")
    if isinstance(series, dict) and "lastObservedTime" in series:
        series["lastObservedTime"] = normalize_time(series["lastObservedTime"])


def _validate_event(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    io = obj.get("involvedObject")
    if not isinstance(io, dict):
        return [errors.required("involvedObject")]
    ns = (obj.get("metadata") or {}).get("namespace")
    if io.get("namespace") and ns and io.get("namespace") != ns:
        return [
            errors.invalid_value(
                "involvedObject.namespace", io.get("namespace"), "does not match event.namespace"
            )
        ]
    return []


def _event_object(obj: dict[str, Any]) -> str:
    io = obj.get("involvedObject") or obj.get("regarding") or {}
    return f"{str(io.get('kind', '')).lower()}/{io.get('name', '')}"


def _event_last_seen(obj: dict[str, Any]) -> str | None:
    for f in ("lastTimestamp", "eventTime", "deprecatedLastTimestamp", "firstTimestamp"):
        v = obj.get(f) or (field(obj, "series", "lastObservedTime") if f == "eventTime" else None)
        if v:
            return age(v)
    return created(obj)


_EVENT_COLUMNS: list[Column] = [
    (col("Last Seen"), _event_last_seen),
    (col("Type"), lambda o: o.get("type")),
    (col("Reason"), lambda o: o.get("reason")),
    (col("Object"), _event_object),
    (col("Message"), lambda o: o.get("message") or o.get("note")),
]


class EventStrategy(Strategy):
    """core/v1 Events."""

    types = (CORE_TYPE,)

    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        _default_event(obj, old)
        return []

    def validate(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[Cause]:
        return _validate_event(obj, old)

    def table(self, rt: ResourceType) -> tuple[list[ColumnDefinition], list[Getter]]:
        # the name is a wide column of events (kubectl shows LAST SEEN, TYPE, REASON ... first)
        wide_name: ColumnDefinition = {**NAME_COLUMN, "priority": 1}
        defs = [d for d, _fn in _EVENT_COLUMNS] + [wide_name]
        return defs, [fn for _d, fn in _EVENT_COLUMNS] + [name_cell]


class EventsV1Strategy(EventStrategy):
    """events.k8s.io/v1 Events."""

    types = (EVENTS_V1_TYPE,)

    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        _default_new_event(obj, old)
        return []

    def validate(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[Cause]:
        return []


STRATEGY = EventStrategy()
EVENTS_V1_STRATEGY = EventsV1Strategy()
