"""Reaching the cluster a command names, and saying in one line what is wrong when it cannot
be used: the kubeconfig files as kubectl reads them (app.where), the client, the install check
(the JobFlow CRD is served and we may list flows), transient answers retried, and the words
for an unreachable, unauthorized or foreign server. Shared by `run`, `approve` and the
commands that act on existing flows.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Final, TypeVar

import yaml

from app import documents, where
from app.cli import CommandError
from controller import kube as kube_mod
from jobflow import names

EXIT_FAILED: Final = 1
# One-shot requests (check, create, approve) are tried this often on 5xx/429, pausing
# TRANSIENT_PAUSE x attempt seconds in between (0.5 + 1 + 1.5 s at most).
TRANSIENT_ATTEMPTS: Final = 4
TRANSIENT_PAUSE: Final = 0.5
T = TypeVar("T")
_kubeconfig_paths = where.kubeconfig_paths


def kubeconfig_namespace(kubeconfig: str | None, context: str | None) -> str | None:
    """The namespace of the kubeconfig's (current or given) context, as kubectl uses it.
    An unreadable kubeconfig has none here; ``connect`` says what is wrong with it."""
    for path in _kubeconfig_paths(kubeconfig):
        try:
            config = yaml.safe_load(path.read_text())
        except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8
            continue
        if not isinstance(config, dict):
            continue
        wanted = context or config.get("current-context")
        for entry in config.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name") == wanted:
                context_body = entry.get("context")
                ns = context_body.get("namespace") if isinstance(context_body, dict) else None
                return str(ns) if ns else None
    return None


def check_kubeconfig(kubeconfig: str | None, context: str | None = None) -> None:
    """Say in one line (exit 2) what is wrong with the kubeconfig file(s) before the client's
    loader reads them: its own errors are a UnicodeDecodeError, a "no such file" for a directory
    or "Invalid kube-config file. No configuration found." with no hint of what to do."""
    paths = _kubeconfig_paths(kubeconfig)
    contexts: list[str] = []
    if kubeconfig:
        if not paths[0].exists():
            raise CommandError(f"--kubeconfig {kubeconfig}: no such file; check the path")
    elif not any(p.exists() for p in paths) and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        looked = (
            f"KUBECONFIG names {', '.join(map(str, paths))}, and none exists"
            if os.environ.get("KUBECONFIG")
            else f"KUBECONFIG is not set and {paths[0]} does not exist"
        )
        raise CommandError(
            f"no kubeconfig found ({looked}); pass --kubeconfig PATH or set KUBECONFIG to the "
            "kubeconfig of your cluster"
        )
    for path in paths:
        label = f"--kubeconfig {kubeconfig}" if kubeconfig else f"kubeconfig {path}"
        if path.is_dir():
            raise CommandError(
                f"{label}: is a directory, not a kubeconfig file; pass the file (such as "
                f"{path / 'config'})"
            )
        if not path.exists():
            continue  # kubectl skips missing files of a KUBECONFIG list too
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise CommandError(f"{label}: cannot read it: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CommandError(
                f"{label}: not a kubeconfig (not UTF-8 text: a binary file?); pass the "
                "kubeconfig file kubectl uses"
            ) from None
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CommandError(f"{label}: {documents.describe_yaml_error(exc, text)}") from None
        if not isinstance(config, dict):
            raise CommandError(
                f"{label}: not a kubeconfig (no clusters, users and contexts in it); pass the "
                "kubeconfig file kubectl uses"
            )
        entries = config.get("contexts")
        if isinstance(entries, list):
            contexts += [str(e["name"]) for e in entries if isinstance(e, dict) and e.get("name")]
    where = ", ".join(str(p) for p in paths if p.exists())
    if context and where and context not in contexts:
        known = f"its contexts: {', '.join(contexts)}" if contexts else "it has no contexts"
        raise CommandError(
            f"--context {context}: no such context in {where} ({known}); list them with: "
            "kubectl config get-contexts"
        )


_OS_ERROR = re.compile(r"\[Errno -?\d+\] [^\"')]+")
_TLS_ERROR = re.compile(r"certificate verify failed[^\"')]*", re.IGNORECASE)
# What urllib3 says when the two ends disagree on TLS, and what a person should read instead.
_NOT_TLS = re.compile(
    r"wrong version number|record layer failure|packet length too long|unknown protocol"
    r"|http request",
    re.IGNORECASE,
)
_NO_ANSWER = re.compile(r"RemoteDisconnected|Connection aborted|BadStatusLine", re.IGNORECASE)
_MAX_REASON = 300  # characters of a client error kept in the one-line message


def brief(exc: BaseException) -> str:
    """The part of a client error a person needs (``[Errno 111] Connection refused``), on one
    line: urllib3 wraps the cause in the pool, URL and retry details."""
    text = " ".join(str(exc).split())
    if "SSL" in text and _NOT_TLS.search(text):
        return (
            "the server does not speak TLS (a plain-HTTP port?); check the server URL "
            "in the kubeconfig"
        )
    for pattern in (_OS_ERROR, _TLS_ERROR):
        found = pattern.search(text)
        if found:
            return found.group(0).strip()
    if _NO_ANSWER.search(text):
        return (
            "the server closed the connection without an answer (does it expect https://?); "
            "check the server URL in the kubeconfig"
        )
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def connect(kubeconfig: str | None, context: str | None) -> kube_mod.Kube:
    """A client of a real cluster; a bad kubeconfig or context is one CommandError line."""
    check_kubeconfig(kubeconfig, context)
    try:
        return kube_mod.Kube.connect(kubeconfig, context=context)
    except kube_mod.ConfigError as exc:
        raise CommandError(str(exc)) from None
    except Exception as exc:  # the kubernetes config loader's own errors: report, never trace
        where = f"--kubeconfig {kubeconfig}" if kubeconfig else "the default kubeconfig"
        if context:
            where += f" (context {context})"
        raise CommandError(f"cannot use {where}: {brief(exc)}") from None


def server_url(kube: kube_mod.Kube) -> str:
    return str(getattr(kube.api_client.configuration, "host", "") or "the cluster")


def unreachable(kube: kube_mod.Kube, exc: BaseException) -> CommandError:
    """The one line for a cluster that did not answer (run and approve say it alike)."""
    if isinstance(exc, kube_mod.ApiError) and exc.code == 401:
        return unauthorized(kube)
    return CommandError(
        f"cannot reach the cluster at {server_url(kube)}: {brief(exc)}", exit_code=EXIT_FAILED
    )


def unauthorized(kube: kube_mod.Kube) -> CommandError:
    """401: who you are was not accepted (403, Forbidden, is what you may do)."""
    return CommandError(
        f"the cluster at {server_url(kube)} did not accept the kubeconfig's credentials "
        "(401 Unauthorized: a wrong or expired token or client certificate); log in again or "
        "fix the user of the kubeconfig's context",
        exit_code=EXIT_FAILED,
    )


def retrying(call: Callable[[], T]) -> T:
    """``call()``, tried again when the server answered 5xx or 429 (a busy or restarting API
    server). No answer at all (connection refused) is final: the user has the wrong cluster."""
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            return call()
        except kube_mod.Transient as exc:
            if exc.code == 0 or attempt == TRANSIENT_ATTEMPTS:
                raise
            time.sleep(TRANSIENT_PAUSE * attempt)
    raise AssertionError("unreachable")  # the loop returns or raises


def check_installed(kube: kube_mod.Kube, namespace: str) -> None:
    """Fail with one line unless JobFlows are served and we may list them."""
    url = server_url(kube)
    try:
        retrying(
            lambda: kube.list_all(
                kube_mod.JOBFLOWS, namespace, field_selector="metadata.name=-", limit=1
            )
        )
    except kube_mod.NotFound as exc:
        if not exc.reason:  # a Kubernetes API server answers 404 with a Status (NotFound)
            raise CommandError(
                f"the server at {url} does not answer like a Kubernetes API server (HTTP 404 "
                "without a Status); check the server URL in the kubeconfig",
                exit_code=EXIT_FAILED,
            ) from None
        raise CommandError(
            f"zen-flow is not installed in the cluster at {url}: the JobFlow CRD "
            f"({names.CRD_NAME}) is missing; install zen-flow there first (docs/install.md), "
            "or leave out --kubeconfig/--context to use the embedded cluster",
            exit_code=EXIT_FAILED,
        ) from None
    except kube_mod.Forbidden as exc:
        if exc.code == 401:
            raise unauthorized(kube) from None
        raise CommandError(
            f"not allowed to list JobFlows in namespace {namespace} at {url}: {exc}; ask for "
            f"access (check with: kubectl auth can-i list jobflows -n {namespace})",
            exit_code=EXIT_FAILED,
        ) from None
    except kube_mod.ApiError as exc:
        raise unreachable(kube, exc) from None
