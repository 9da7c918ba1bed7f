"""The whole of zen-flow on one machine: kubesim + our webhook + our controller, in this process.

```
start()
 ├─ kubesim.start(exec_mode, data_dir)       HTTPS API server + Job runner (sim | local)
 ├─ certs.authority.write_bundle(...)        own CA + serving cert for 127.0.0.1 (CA kept)
 ├─ install the JobFlow CRD                  create, or replace when it exists (data_dir)
 ├─ serve.Servers(settings, controller)      webhook + probes sockets bound (port 0)
 ├─ install the webhook configurations       url clientConfig -> https://127.0.0.1:<port>
 └─ serve.RunningServers(servers)            servers, then the controller (no leader election)
```
The order is what keeps it correct: the CRD is served before the controller lists JobFlows, and
the webhook configurations are (re)written after the webhook's socket is bound (so the URL is
right) and before any client of ours can create a JobFlow. The webhooks use failurePolicy Fail:
with ``data_dir`` the stored configurations of the previous process point at a dead port until
this process rewrites them, which it does before the cluster is handed out.

Used by `zen-flow serve --embedded` (foreground until SIGINT/SIGTERM, prints the kubeconfig path)
and by `zen-flow run` without --kubeconfig/--context (a private cluster for one run).

With ``data_dir`` everything that must outlive the process lives there: kubesim's objects, CA,
token and kubeconfig (``<data_dir>/kubesim``, ``<data_dir>/store``) and the webhook's CA
(``<data_dir>/webhook``), so a restarted process serves the same objects to the same kubeconfig.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Final

from prometheus_client import CollectorRegistry

import kubesim
from app import serve
from app import settings as settings_mod
from app.logging import configure as configure_logging
from app.settings import Settings, SettingsError
from certs import authority
from controller import kube as kube_mod
from controller import runner as controller_runner
from jobflow import crd as crd_mod
from kubesim import auth as kubesim_auth
from webhook import configuration as webhook_configuration

log = logging.getLogger(__name__)

EXEC_MODES: Final = ("sim", "local")
LOOPBACK: Final = "127.0.0.1"
CRDS: Final = kube_mod.Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False
)
WEBHOOK_RESOURCES: Final = {
    "MutatingWebhookConfiguration": kube_mod.Resource(
        "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", namespaced=False
    ),
    "ValidatingWebhookConfiguration": kube_mod.Resource(
        "admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", namespaced=False
    ),
}
# Seconds to wait for the CRD to be served and for the controller's caches to sync. kubesim
# does both in milliseconds; the bound only turns a hang into one clear error.
READY_TIMEOUT: Final = 20.0
# Seconds granted to in-flight reconciles and requests when the embedded cluster stops: it is a
# local toy, a quick stop matters more than a graceful drain.
STOP_TIMEOUT: Final = 3.0
# Settings that differ from a deployed `serve` when nobody asked otherwise: loopback only, any
# free port (several embedded clusters may run at once), no Lease (one process owns the cluster).
EMBEDDED_DEFAULTS: Final[dict[str, Any]] = {
    "webhook_host": LOOPBACK,
    "webhook_port": 0,
    "metrics_host": LOOPBACK,
    "metrics_port": 0,
    "leader_elect": False,
    "lease_namespace": "default",
    "shutdown_timeout": STOP_TIMEOUT,
}


class EmbeddedError(RuntimeError):
    """The embedded cluster could not start; str() is the one line shown to the user."""


def _write_private(path: Path, data: bytes) -> None:
    authority.write_atomic(path, data, mode=authority.PRIVATE_MODE)


def _create_or_replace(kube: kube_mod.Kube, res: kube_mod.Resource, body: dict[str, Any]) -> None:
    """Create a cluster-scoped object, or replace the stored one (a restart with data_dir)."""
    name = body["metadata"]["name"]
    try:
        kube.create(res, None, body)
        return
    except kube_mod.AlreadyExists:
        pass
    current = kube.get(res, None, name)
    updated = {**body, "metadata": {**body["metadata"], **_version_of(current)}}
    kube.replace(res, None, name, updated)


def _version_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {"resourceVersion": (obj.get("metadata") or {}).get("resourceVersion")}


def _wait(predicate: Callable[[], bool], *, what: str, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except kube_mod.ApiError as exc:
            last = exc
        time.sleep(0.02)
    raise EmbeddedError(
        f"the embedded cluster did not get ready: {what}" + (f" ({last})" if last else "")
    )


def settings_for(base: Settings | None = None, *, explicit: set[str] | None = None) -> Settings:
    """``base`` (default: the defaults) with the embedded defaults for every field not in
    ``explicit`` (the fields the user set by flag or environment)."""
    values = (base or Settings.model_validate({})).model_dump()
    for name, value in EMBEDDED_DEFAULTS.items():
        if name not in (explicit or set()):
            values[name] = value
    values["embedded"] = True
    values["kubeconfig"] = None  # set once kubesim has written it
    return Settings.model_validate(values)


class Cluster:
    """A running embedded zen-flow. ``stop()`` (or leaving the ``with`` block) ends it all."""

    def __init__(
        self,
        *,
        exec_mode: str = "sim",
        data_dir: Path | None = None,
        kubeconfig_out: Path | None = None,
        settings: Settings | None = None,
        users: Sequence[Any] = (),
    ) -> None:
        """``users``: more kubesim identities (``kubesim.User``), one kubeconfig context each."""
        if exec_mode not in EXEC_MODES:
            raise EmbeddedError(f"--exec {exec_mode}: must be one of {', '.join(EXEC_MODES)}")
        self.exec_mode = exec_mode
        self.data_dir = data_dir
        self.users = tuple(users)
        self._temp_dir: Path | None = None
        self._kubesim: Any = None
        self._kube: kube_mod.Kube | None = None
        self._running: serve.RunningServers | None = None
        self._stopped = False
        try:
            self._start(settings or settings_for(), kubeconfig_out)
        except BaseException:
            self.stop()
            raise

    # -- start -------------------------------------------------------------------------------
    def _start(self, settings: Settings, kubeconfig_out: Path | None) -> None:
        if self.data_dir is not None:
            try:
                self.data_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EmbeddedError(
                    f"--data-dir {self.data_dir}: cannot create it: {exc.strerror}"
                ) from None
            cert_dir = self.data_dir / "webhook"
        else:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="zen-flow-embedded-"))
            cert_dir = self._temp_dir / "webhook"
        try:
            self._kubesim = kubesim.start(
                exec_mode=self.exec_mode, data_dir=self.data_dir, users=self.users
            )
        except (RuntimeError, OSError, ValueError) as exc:
            raise EmbeddedError(f"cannot start the embedded cluster: {exc}") from None
        self.kubeconfig = Path(self._kubesim.kubeconfig)
        self.url: str = self._kubesim.url
        # The CA key is kept so a restart with data_dir re-issues from the same CA.
        try:
            authority.write_bundle(
                cert_dir, dns_names=["localhost"], ip_addresses=[LOOPBACK], keep_ca_key=True
            )
        except (OSError, authority.CertificateError) as exc:
            raise EmbeddedError(
                f"cannot write the webhook certificate to {cert_dir}: {exc}"
            ) from None
        settings = Settings.model_validate(
            {**settings.model_dump(), "cert_dir": cert_dir, "kubeconfig": self.kubeconfig}
        )
        self.settings = settings
        self._kube = kube_mod.Kube.connect(str(self.kubeconfig), qps=0)
        self._install_crd(self._kube)

        registry = CollectorRegistry()
        controller = (
            controller_runner.from_settings(settings, registry=registry)
            if settings.runs_controller
            else None  # --webhook-only: flows are admitted but nothing runs them
        )
        try:
            servers = serve.Servers(settings, controller=controller, registry=registry)
        except serve.ServeError as exc:
            raise EmbeddedError(str(exc)) from None
        self.webhook_url = f"https://{LOOPBACK}:{servers.webhook_port}"
        self.metrics_url = f"http://{LOOPBACK}:{servers.metrics_port}"
        ca_bundle = (cert_dir / authority.CA_CERT_FILE).read_bytes()
        for body in webhook_configuration.configurations(ca_bundle=ca_bundle, url=self.webhook_url):
            _create_or_replace(self._kube, WEBHOOK_RESOURCES[body["kind"]], body)
        self._running = serve.RunningServers(servers)
        if controller is not None:
            _wait(controller.is_ready, what="the controller's caches did not sync")
        if kubeconfig_out is not None:
            try:
                _write_private(kubeconfig_out, self.kubeconfig.read_bytes())
            except OSError as exc:
                raise EmbeddedError(
                    f"--kubeconfig-out {kubeconfig_out}: cannot write: {exc.strerror}"
                ) from None
            self.kubeconfig = kubeconfig_out
        log.info(
            "embedded cluster ready",
            extra={"url": self.url, "webhook": self.webhook_url, "exec": self.exec_mode},
        )

    @staticmethod
    def _install_crd(kube: kube_mod.Kube) -> None:
        _create_or_replace(kube, CRDS, crd_mod.crd())

        def served() -> bool:
            kube.list_all(kube_mod.JOBFLOWS, "default", limit=1)
            return True

        _wait(served, what="the JobFlow CRD is not served")

    # -- use ---------------------------------------------------------------------------------
    @property
    def kubesim(self) -> Any:
        """The kubesim Handle (``store``, ``faults``, ``runner``): for in-process tests."""
        return self._kubesim

    def connect(self) -> kube_mod.Kube:
        """A new client of this cluster (the caller closes it)."""
        return kube_mod.Kube.connect(str(self.kubeconfig), qps=0)

    # -- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._running is not None:
            self._running.stop()
        if self._kube is not None:
            self._kube.close()
        if self._kubesim is not None:
            self._kubesim.stop()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start(
    *,
    exec_mode: str = "sim",
    data_dir: Path | None = None,
    kubeconfig_out: Path | None = None,
    settings: Settings | None = None,
    users: Sequence[Any] = (),
) -> Cluster:
    """Start an embedded cluster and return it once a JobFlow can be created and will run."""
    return Cluster(
        exec_mode=exec_mode,
        data_dir=data_dir,
        kubeconfig_out=kubeconfig_out,
        settings=settings,
        users=users,
    )


# -- `zen-flow serve --embedded` -------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags only `serve --embedded` reads (`--embedded` itself is a Settings field)."""
    group = parser.add_argument_group("embedded cluster (with --embedded)")
    group.add_argument(
        "--exec",
        dest="exec_mode",
        choices=EXEC_MODES,
        default="sim",
        help="sim: Jobs are simulated from annotations (default); local: run each container's "
        "command as a local process (only for flows you trust)",
    )
    group.add_argument(
        "--kubeconfig-out",
        metavar="PATH",
        type=Path,
        help="also write the cluster's kubeconfig to PATH (mode 0600)",
    )
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        type=Path,
        help="keep the cluster's state in DIR so it survives a restart (default: in memory)",
    )
    group.add_argument(
        "--token-auth-file",
        metavar="FILE",
        help='more users, as the API server\'s static token file (token,user,uid,"g1,g2" per '
        "line); each gets a kubeconfig context named after it (kubectl --context alice)",
    )


def _explicit_fields(args: argparse.Namespace) -> set[str]:
    given = {name for name, value in vars(args).items() if value is not None}
    from_env = {
        name
        for name in Settings.model_fields
        if f"{settings_mod.ENV_PREFIX}{name.upper()}" in os.environ
    }
    return (given | from_env) & set(Settings.model_fields)


def serve_command(args: argparse.Namespace) -> int:
    """`zen-flow serve --embedded`: run until SIGINT/SIGTERM; returns the exit code."""
    prog = "zen-flow serve"
    try:
        base = settings_mod.load(args)
    except SettingsError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if base.kubeconfig is not None:
        print(
            f"{prog}: --kubeconfig and --embedded exclude each other; the embedded cluster "
            "writes its own kubeconfig (use --kubeconfig-out PATH to choose where)",
            file=sys.stderr,
        )
        return 2
    settings = settings_for(base, explicit=_explicit_fields(args))
    try:
        users = kubesim_auth.read_token_file(args.token_auth_file) if args.token_auth_file else []
    except kubesim.UsersError as exc:
        print(f"{prog}: --token-auth-file: {exc}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, fmt=settings.log_format.value)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        cluster = start(
            exec_mode=args.exec_mode,
            data_dir=args.data_dir,
            kubeconfig_out=args.kubeconfig_out,
            settings=settings,
            users=users,
        )
    except EmbeddedError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    with cluster:
        print(f"zen-flow embedded cluster ready at {cluster.url} (jobs: {cluster.exec_mode})")
        print(f"kubeconfig: {cluster.kubeconfig}")
        print(f"webhook: {cluster.webhook_url}  probes and metrics: {cluster.metrics_url}")
        print(f"  kubectl --kubeconfig {cluster.kubeconfig} get jobflows")
        print("press Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
        with contextlib.suppress(BrokenPipeError):
            print("stopping the embedded cluster", flush=True)
    return 0
