"""Settings of the `zen-flow serve` process (webhook + controller), validated once at start-up.

Sources, lowest to highest precedence: field defaults, the environment (`ZEN_FLOW_<FIELD>`, e.g.
`ZEN_FLOW_WORKERS=8`), command-line flags (`--workers 8`). Flags are generated from the fields
(`add_arguments`), so a new setting is one field here with its description. A bad value stops
start-up with one line that names the source, the value and what is expected:
`zen-flow serve: --workers 0: must be at least 1`.

The object is frozen: the event loop and the controller threads share it without locks.

Controller seam (owned by the controller engineer, read here only): workers, kube_qps, kube_burst,
resync_period, leader_elect, lease_name, lease_namespace, lease_duration, renew_deadline,
retry_period, kubeconfig (None: in-cluster when KUBERNETES_SERVICE_HOST is set).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jobflow import artifacts

ENV_PREFIX = "ZEN_FLOW_"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_MAX_REQUEST_BYTES = (
    3 * 1024 * 1024
)  # the API server caps an object at ~3 MiB (etcd 1.5 MiB x2)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A setting that cannot be used; str() is the one line shown to the user."""


class LogFormat(StrEnum):
    AUTO = "auto"  # JSON when stderr is not a TTY (a container), text in a terminal
    JSON = "json"
    TEXT = "text"


def default_namespace(environ: Mapping[str, str] | None = None) -> str:
    """POD_NAMESPACE (downward API), else the service-account file, else "default"."""
    env = os.environ if environ is None else environ
    if env.get("POD_NAMESPACE"):
        return env["POD_NAMESPACE"]
    try:
        text = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        text = ""
    return text or "default"


class Settings(BaseModel):
    """Every knob of `zen-flow serve`; field descriptions become the flags' help."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    # -- webhook (HTTPS) and probes/metrics (HTTP) --------------------------------------------
    webhook_host: str = Field("0.0.0.0", description="address the HTTPS webhook listens on")
    webhook_port: int = Field(
        9443, ge=0, le=65535, description="HTTPS webhook port (0: any free port)"
    )
    metrics_host: str = Field("0.0.0.0", description="address of /healthz, /readyz, /metrics")
    metrics_port: int = Field(
        8080, ge=0, le=65535, description="HTTP probes/metrics port (0: any free port)"
    )
    cert_dir: Path = Field(
        Path("/etc/zen-flow/certs"),
        description="directory holding tls.crt and tls.key (re-read when they change)",
    )
    cert_reload_interval: float = Field(
        1.0, gt=0, le=300, description="seconds between checks of the TLS files"
    )
    max_request_bytes: int = Field(
        DEFAULT_MAX_REQUEST_BYTES,
        ge=1024,
        description="largest AdmissionReview body accepted (413 above)",
    )
    # The API server gives up on a webhook call after its timeoutSeconds (5 in the chart, 30 at
    # most): a body still arriving after 10 s has nobody waiting for the answer.
    body_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="seconds a client has to send a whole AdmissionReview body (400 after)",
    )
    # uvicorn closes a connection that stays idle after a response, but not one that never
    # finishes a request head: without this, a client sending nothing after the TLS handshake
    # (or a byte at a time) holds a connection and a file descriptor for good.
    header_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="seconds a client has to send a whole request head (connection closed after)",
    )
    shutdown_timeout: float = Field(
        20.0, ge=0, le=300, description="seconds to finish in-flight work after SIGTERM"
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_format: LogFormat = Field(LogFormat.AUTO, description="auto, json or text")

    # -- what runs -------------------------------------------------------------------------------
    webhook_only: bool = Field(
        False, description="serve the webhook and probes without the controller"
    )
    embedded: bool = Field(False, description="run against an embedded kubesim cluster")
    kubeconfig: Path | None = Field(
        None, description="kubeconfig file (default: in-cluster config, else $KUBECONFIG)"
    )

    # -- controller (read by controller/) ---------------------------------------------------------
    workers: int = Field(4, ge=1, le=256, description="reconcile worker threads")
    kube_qps: float = Field(50.0, gt=0, description="steady API request rate of the controller")
    kube_burst: int = Field(100, ge=1, description="API request burst of the controller")
    resync_period: float = Field(300.0, ge=0, description="seconds between full resyncs (0: never)")
    leader_elect: bool = Field(True, description="take a Lease before reconciling")
    lease_name: str = Field("zen-flow-leader", min_length=1, description="name of the leader Lease")
    lease_namespace: str = Field(
        default_factory=default_namespace,
        min_length=1,
        description="namespace of the Lease (default: POD_NAMESPACE, service account, default)",
    )
    lease_duration: float = Field(
        15.0, gt=0, description="seconds a Lease is valid without renewal"
    )
    renew_deadline: float = Field(10.0, gt=0, description="seconds the leader may fail to renew")
    retry_period: float = Field(2.0, gt=0, description="seconds between Lease attempts")
    max_active_jobs: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="cap on unfinished Jobs of all flows at once, shared fairly among flows"
        " (0: no cap)",
    )
    artifact_fetch_image: str = Field(
        artifacts.DEFAULT_FETCH_IMAGE,
        min_length=1,
        description="image of the init container that downloads http input artifacts (curl)",
    )

    @model_validator(mode="after")
    def _check_relations(self) -> Settings:
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log_level: must be DEBUG, INFO, WARNING or ERROR")
        if self.kube_burst < self.kube_qps:
            raise ValueError("kube_burst: must be at least kube_qps")
        if not self.renew_deadline < self.lease_duration:
            raise ValueError("renew_deadline: must be shorter than lease_duration")
        if not self.retry_period < self.renew_deadline:
            raise ValueError("retry_period: must be shorter than renew_deadline")
        if self.kubeconfig is not None and not self.kubeconfig.is_file():
            raise ValueError(f"kubeconfig: {self.kubeconfig} does not exist or is not a file")
        return self

    # -- derived ---------------------------------------------------------------------------------
    @property
    def tls_cert_file(self) -> Path:
        return self.cert_dir / "tls.crt"

    @property
    def tls_key_file(self) -> Path:
        return self.cert_dir / "tls.key"

    @property
    def in_cluster(self) -> bool:
        return (
            self.kubeconfig is None
            and not self.embedded
            and "KUBERNETES_SERVICE_HOST" in os.environ
        )

    @property
    def runs_controller(self) -> bool:
        return not self.webhook_only


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _env(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _is_bool(name: str) -> bool:
    return Settings.model_fields[name].annotation in (bool, "bool")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field; absent flags are not set, so env and defaults apply."""
    for name, field in Settings.model_fields.items():
        help_text = f"{field.description} [env {_env(name)}]"
        if _is_bool(name):
            parser.add_argument(
                _flag(name),
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            parser.add_argument(
                _flag(name),
                dest=name,
                metavar=name.upper(),
                default=argparse.SUPPRESS,
                help=help_text,
            )


def _parse_env_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{_env(name)}={text!r}: must be true or false")


def load(
    flags: Mapping[str, Any] | argparse.Namespace | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from defaults < environment < flags; raises SettingsError (one line)."""
    env = os.environ if environ is None else environ
    given = vars(flags) if isinstance(flags, argparse.Namespace) else dict(flags or {})
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    for name in Settings.model_fields:
        if _env(name) in env:
            text = env[_env(name)]
            values[name] = _parse_env_bool(name, text) if _is_bool(name) else text
            source[name] = f"{_env(name)}={text!r}"
        if name in given and given[name] is not None:
            values[name] = given[name]
            source[name] = f"{_flag(name)} {given[name]!r}" if not _is_bool(name) else _flag(name)
    if "lease_namespace" not in values:
        values["lease_namespace"] = default_namespace(env)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(_one_line(exc, source)) from None


def _one_line(exc: ValidationError, source: Mapping[str, str]) -> str:
    error = exc.errors(include_url=False)[0]
    loc = [str(p) for p in error["loc"]]
    message = str(error["msg"])
    if loc:
        name = loc[0]
    else:  # a relation check: "field: message"
        name, _, message = message.removeprefix("Value error, ").partition(": ")
    where = source.get(name, _flag(name) if name in Settings.model_fields else name)
    message = message.replace("Input should be", "must be")
    return f"{where}: {message}"
