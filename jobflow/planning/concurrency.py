"""Concurrency groups (``executionPolicy.concurrencyKey``), as pure functions over the flow and
its peers (the other flows of its namespace that the runtime indexes by key).

Flows of a group are ordered by (creationTimestamp, name). With Forbid, a flow that has not
started waits while an older unfinished, not invalid flow of the group exists; a newer flow of
the group with policy Replace makes an unfinished flow stop. A queued flow has no wake-up: the
runtime re-enqueues a group when one of its flows changes phase.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from jobflow import decoded, phases, status
from jobflow.phases import StepPhase
from jobflow.spec import FlowSpec
from jobflow.stepstate import StepState


def creation_key(obj: Mapping[str, object]) -> tuple[datetime, str]:
    meta = decoded.mapping(obj.get("metadata"))
    created = decoded.parse_time(meta.get("creationTimestamp")) or datetime.max.replace(tzinfo=UTC)
    return created, decoded.string(meta.get("name")) or ""


def group(
    obj: Mapping[str, object], flow: FlowSpec, peers: Sequence[Mapping[str, object]]
) -> list[Mapping[str, object]]:
    """The other live flows of ``flow``'s concurrency group ([] without a key)."""
    if flow.concurrency_key is None:
        return []
    own = creation_key(obj)
    out = []
    for peer in peers:
        meta = decoded.mapping(peer.get("metadata"))
        if meta.get("deletionTimestamp"):
            continue
        if decoded.string(meta.get("uid")) == flow.uid and flow.uid:
            continue
        if (
            decoded.string(meta.get("name")) == flow.name
            and (decoded.string(meta.get("namespace")) or flow.namespace) == flow.namespace
        ):
            continue
        peer_key = decoded.path(peer, "spec", "executionPolicy", "concurrencyKey")
        if peer_key != flow.concurrency_key or creation_key(peer) == own:
            continue
        out.append(peer)
    return out


def replacing_peer(
    obj: Mapping[str, object], flow: FlowSpec, peers: Sequence[Mapping[str, object]]
) -> str | None:
    """A newer flow of the group with policy Replace: this flow must stop."""
    own = creation_key(obj)
    for peer in group(obj, flow, peers):
        policy = decoded.path(peer, "spec", "executionPolicy", "concurrencyPolicy")
        if policy == "Replace" and creation_key(peer) > own:
            return decoded.string(decoded.path(peer, "metadata", "name")) or "?"
    return None


def blocking_peer(
    obj: Mapping[str, object],
    flow: FlowSpec,
    peers: Sequence[Mapping[str, object]],
    steps: Sequence[StepState],
) -> str | None:
    """With Forbid, an older unfinished flow of the group that this one must wait for."""
    if flow.concurrency_policy != "Forbid":
        return None
    prior = decoded.mapping(obj.get("status"))
    if prior.get("startTime") or any(s.attempts or s.phase != StepPhase.PENDING for s in steps):
        return None  # already started (even if that status write was lost): never queued
    own = creation_key(obj)
    older = [
        p
        for p in group(obj, flow, peers)
        if creation_key(p) < own
        and decoded.string(decoded.path(p, "status", "phase")) not in phases.TERMINAL_FLOW_PHASES
        # An invalid flow (Accepted=False) never runs: waiting for it would be forever.
        and status.condition_status(
            decoded.items(decoded.path(p, "status", "conditions")), status.ACCEPTED
        )
        != "False"
    ]
    if not older:
        return None
    first = min(older, key=creation_key)
    return decoded.string(decoded.path(first, "metadata", "name")) or "?"
