"""`zen-flow run --logs-dir DIR`: keep every step's logs in files when the run ends.

An embedded cluster stops with the command, and its pods' logs with it; on a real cluster a
flow's TTL (or a step timeout) deletes them later. With ``--logs-dir`` the run writes, before
anything stops, one file per pod: ``DIR/<flow>/<step>-<attempt>.log`` (attempt 1-based, as the
display's ``step#2``), the whole log of its main container, and says where on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from app.cli import CommandError
from controller import kube as kube_mod
from jobflow import names


def save(kube: kube_mod.Kube, keys: Sequence[tuple[str, str]], directory: str) -> int:
    """Write the logs of the pods of ``keys``; returns how many files were written."""
    root = Path(directory)
    written = 0
    for namespace, flow in keys:
        selector = f"{names.LABEL_FLOW}={names.label_value(flow)}"
        pods = kube.list_all(kube_mod.PODS, namespace, label_selector=selector)["items"]
        for pod in pods:
            meta = pod.get("metadata") or {}
            labels = meta.get("labels") or {}
            attempt = str(labels.get(names.LABEL_ATTEMPT, "0"))
            number = int(attempt) + 1 if attempt.isdigit() else 1
            try:
                text = kube.pod_log(namespace, str(meta.get("name")))
            except kube_mod.ApiError:
                continue  # not started, or gone: nothing to keep
            target = root / flow / f"{labels.get(names.LABEL_STEP, 'unknown')}-{number}.log"
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            except OSError as exc:
                raise CommandError(
                    f"--logs-dir {directory}: cannot write {target}: {exc}"
                ) from None
            written += 1
    print(f"zen-flow run: kept {written} step log(s) in {root}", file=sys.stderr, flush=True)
    return written
