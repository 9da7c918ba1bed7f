"""Pod logs, kept per container: what ``GET .../pods/NAME/log`` reads and the Job runner writes.

A log belongs to an existing pod's container (the Store checks the pod and holds its lock for
every call here); no container means the pod's default one as kubectl picks it (the
``kubectl.kubernetes.io/default-container`` annotation, else the first app container), and a
container the pod lacks is 400. Logs go with the pod (dropped on its final removal) and are part
of the ``data_dir`` snapshot (``entries``/``restore``).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from kubesim import kinds

LogEntry = builtins.list[str]  # [namespace, pod, container, text], as a snapshot keeps it


def container_of(pod: dict[str, Any], container: str | None) -> str:
    """The container a log call means (400 for a container the pod lacks)."""
    if container is None:
        return kinds.default_container(pod)
    return kinds.log_container(pod, container)


class PodLogs:
    """(namespace, pod) -> container -> text; not locked itself (the Store's lock guards it)."""

    def __init__(self) -> None:
        self._logs: dict[tuple[str, str], dict[str, str]] = {}
        self.dirty = False  # changed since the last snapshot (kubesim.persistence)

    def set(
        self,
        pod: dict[str, Any],
        text: str,
        *,
        container: str | None = None,
        append: bool = False,
    ) -> None:
        """Replace (or ``append`` to) the log of one container of ``pod`` (the stored pod)."""
        c = container_of(pod, container)
        logs = self._logs.setdefault(_pod_key(pod), {})
        logs[c] = (logs.get(c, "") + text) if append else text
        self.dirty = True

    def get(self, pod: dict[str, Any], *, container: str | None = None) -> str:
        """The log of one container of ``pod`` ("" before it wrote anything)."""
        c = container_of(pod, container)
        return self._logs.get(_pod_key(pod), {}).get(c, "")

    def drop(self, namespace: str, name: str) -> None:
        self._logs.pop((namespace, name), None)

    def entries(self) -> builtins.list[LogEntry]:
        """Every container's log, in the snapshot's form."""
        return [
            [ns, n, c, t] for (ns, n), by_c in list(self._logs.items()) for c, t in by_c.items()
        ]

    def restore(
        self,
        entries: builtins.list[builtins.list[str]],
        find_pod: Callable[[str, str], dict[str, Any] | None],
    ) -> None:
        """Take back a snapshot's logs. An older snapshot kept one log per pod, the default
        container's; such a log outliving its pod is dropped (nothing can read it)."""
        for entry in entries:
            if len(entry) == 4:
                ns, n, c, text = entry
            else:
                ns, n, text = entry
                pod = find_pod(ns, n)
                if pod is None:
                    continue
                c = kinds.default_container(pod)
            self._logs.setdefault((ns, n), {})[c] = text


def _pod_key(pod: dict[str, Any]) -> tuple[str, str]:
    meta = pod["metadata"]
    return str(meta.get("namespace", "")), str(meta["name"])
