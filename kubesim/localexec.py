"""`local` mode (pure): how a container becomes a local process: `$(VAR)` expansion, env,
volume mounts mapped to host directories, the termination message file, and the log tail kept
by FallbackToLogsOnError. Running the process is the runner's (one thread per pod)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

MAX_TERMINATION_MESSAGE = 4096  # upstream truncates termination messages to 4 KiB
FALLBACK_LOG_BYTES = 2048  # FallbackToLogsOnError keeps at most this much of the log tail
FALLBACK_LOG_LINES = 80
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
TERMINATION_ENV = "KUBESIM_TERMINATION_MESSAGE_PATH"
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion in command/args: defined vars are replaced, ``$$`` is a
    literal ``$``, undefined references stay as written."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(sub, text)


def local_mounts(
    pod_spec: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    claim_dir: Callable[[str], Path],
    pod_dir: Path,
) -> dict[str, str]:
    """mountPath -> host directory for the container's PVC and emptyDir mounts (local mode).

    A PersistentVolumeClaim is the directory ``claim_dir(claimName)``, shared by every pod that
    mounts the claim (so a file one step writes is there for the next); an emptyDir lives in
    the pod's own directory. ``subPath`` is a directory below it, created as the kubelet does,
    unless it already is a file (an init container's download): then the mount is that file,
    as the kubelet's single-file bind mount. Other volume kinds are not mapped. ``readOnly`` is
    not enforced.
    """
    sources: dict[str, Path] = {}
    for volume in pod_spec.get("volumes") or []:
        if not isinstance(volume, Mapping) or not volume.get("name"):
            continue
        name = str(volume["name"])
        claim = volume.get("persistentVolumeClaim")
        if isinstance(claim, Mapping) and claim.get("claimName"):
            sources[name] = claim_dir(str(claim["claimName"]))
        elif "emptyDir" in volume:
            sources[name] = pod_dir / "volumes" / name
    out: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        if not isinstance(mount, Mapping):
            continue
        base = sources.get(str(mount.get("name")))
        mount_path = str(mount.get("mountPath") or "")
        if base is None or not mount_path.startswith("/"):
            continue
        host = base / str(mount.get("subPath") or "").strip("/")
        if not host.is_file():  # a file (written by an init container) is bind-mounted as is
            host.mkdir(parents=True, exist_ok=True)
        out[mount_path.rstrip("/") or "/"] = str(host)
    return out


def _path_rewriter(paths: Mapping[str, str]) -> Callable[[str], str]:
    """Replace each path (whole path components only) by its host path, longest first."""
    if not paths:
        return lambda text: text
    ordered = sorted(paths, key=len, reverse=True)
    pattern = re.compile("(?:" + "|".join(re.escape(p) for p in ordered) + r")(?![A-Za-z0-9_.\-])")
    return lambda text: pattern.sub(lambda m: paths[m.group(0)], text)


def local_command(
    container: Mapping[str, Any],
    *,
    termination_file: str,
    extra_env: Mapping[str, str],
    mounts: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """argv and environment for running ``container`` locally.

    The container's terminationMessagePath is mapped to ``termination_file``: it is exported as
    $KUBESIM_TERMINATION_MESSAGE_PATH and literal occurrences of the path in command, args and
    env values are replaced, so ``echo done > /dev/termination-log`` works unchanged. Volume
    mount paths (``mounts``: mountPath -> host directory, see ``local_mounts``) are replaced the
    same way, so ``cat /inputs/report/file`` reads the file another pod wrote to its claim.
    """
    tpath = str(container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)
    rewrite = _path_rewriter({**(mounts or {}), tpath: termination_file})
    env: dict[str, str] = dict(extra_env)
    for item in container.get("env") or []:
        if isinstance(item, Mapping) and item.get("name"):
            value = str(item.get("value") or "")
            env[str(item["name"])] = rewrite(expand_vars(value, env))
    env[TERMINATION_ENV] = termination_file
    argv = [str(a) for a in (container.get("command") or [])]
    argv += [str(a) for a in (container.get("args") or [])]
    argv = [rewrite(expand_vars(a, env)) for a in argv]
    return argv, env


def log_tail(text: str) -> str:
    """What FallbackToLogsOnError keeps of a log: the last 80 lines, at most 2 KiB."""
    lines = text.splitlines()[-FALLBACK_LOG_LINES:]
    tail = "\n".join(lines)
    return tail[-FALLBACK_LOG_BYTES:]
