"""events.k8s.io/v1 Events as a view of core/v1 Events (one storage, as in kube-apiserver).

An Event written through either API is listed, watched and described through both: kubectl
describe (core/v1, ``involvedObject.*`` field selectors) shows events that a recorder wrote with
events.k8s.io/v1. The field mapping is upstream's conversion (pkg/apis/events/v1):
regarding <-> involvedObject, note <-> message, reportingController <-> reportingComponent,
deprecatedSource/FirstTimestamp/LastTimestamp/Count <-> source/firstTimestamp/lastTimestamp/count.
Deviation: a core Event without eventTime gets its last/first/creation time as eventTime in the
v1 view (upstream sends null, which the typed Python client cannot decode).
"""

from __future__ import annotations

from typing import Any

from kubesim.clone import clone

API_VERSION = "events.k8s.io/v1"
# (events.k8s.io/v1 field, core/v1 field); the other fields keep their names
_RENAMES = (
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
)
_TO_CORE = dict(_RENAMES)
_FROM_CORE = {core: new for new, core in _RENAMES}


def to_core(obj: dict[str, Any]) -> dict[str, Any]:
    out = {_TO_CORE.get(k, k): v for k, v in obj.items()}
    out["apiVersion"], out["kind"] = "v1", "Event"
    return out


def from_core(obj: dict[str, Any]) -> dict[str, Any]:
    out = {_FROM_CORE.get(k, k): clone(v) if k == "metadata" else v for k, v in obj.items()}
    out["apiVersion"], out["kind"] = API_VERSION, "Event"
    if not out.get("eventTime"):
        # a legacy Event has no eventTime; upstream sends null, which the typed Python client
        # rejects (the field is required in v1), so fall back to the Event's own timestamps
        when = (
            out.get("deprecatedLastTimestamp")
            or out.get("deprecatedFirstTimestamp")
            or (obj.get("metadata") or {}).get("creationTimestamp")
        )
        if isinstance(when, str) and when.endswith("Z") and "." not in when:
            when = when[:-1] + ".000000Z"
        out["eventTime"] = when
    return out


def core_field_selector(selector: str | None) -> str | None:
    """Rewrite an events.k8s.io field selector (``regarding.name=x``) to core field names."""
    if not selector:
        return selector
    parts = []
    for term in selector.split(","):
        for new, core in _RENAMES:
            if (
                term.startswith(new + ".")
                or term.startswith(new + "=")
                or term.startswith(new + "!")
            ):
                term = core + term[len(new) :]
                break
        parts.append(term)
    return ",".join(parts)
