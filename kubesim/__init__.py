"""kubesim: an embedded Kubernetes API server that real kubectl and the official client accept.

``start()`` builds one cluster: a ``Store`` (the objects), ``Admission`` (webhook calls),
``Faults`` (injected errors), a ``JobRunner`` (Job controller + kubelet) and the HTTPS API
server, on its own event-loop thread. The returned ``Handle`` carries what a client needs
(``url``, ``kubeconfig`` path with mode 0600, ``ca_file``, ``token``) and the in-process parts
(``store``, ``faults``, ``admission``) for tests. kubesim imports nothing of zen-flow.

With ``data_dir`` the store is persisted there and the CA, serving certificate, token and
kubeconfig are kept too, so a restarted server keeps its objects and its clients' kubeconfig
stays valid (a restart on ``port=0`` still gets a new port; the kubeconfig is rewritten).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from kubesim import tls
from kubesim.auth import User, UsersError
from kubesim.errors import ApiError
from kubesim.resources import GVR
from kubesim.store import Store
from kubesim.strategies import Strategy

if TYPE_CHECKING:
    from aiohttp import web

    from kubesim.admission import Admission
    from kubesim.faults import Faults
    from kubesim.runner import JobRunner
    from kubesim.server import ApiServer

__all__ = ["GVR", "ApiError", "Handle", "Store", "Strategy", "User", "UsersError", "start"]

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 30.0  # seconds to wait for the server thread to bind
SHUTDOWN_TIMEOUT = 5.0  # seconds granted to in-flight requests on stop()


class Handle:
    """A running kubesim; ``stop()`` (or leaving the ``with`` block) shuts it down."""

    def __init__(self) -> None:
        self.url = ""
        self.host = ""
        self.port = 0
        self.kubeconfig = ""
        self.ca_file = ""
        self.token = ""
        self.users: dict[str, str] = {}  # user name -> bearer token (also a kubeconfig context)
        self.store: Store
        self.faults: Faults  # set by start()
        self.admission: Admission  # set by start()
        self.runner: JobRunner | None = None  # None with start(runner=False)
        self.server: ApiServer | None = None
        self.state_dir: Path
        self._owns_state_dir = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._app_runner: web.AppRunner | None = None

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.runner is not None:
            try:
                self.runner.stop()
            except Exception:
                log.exception("kubesim runner did not stop cleanly")
        loop = self._loop
        if loop is not None and self._thread is not None:
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                fut.result(timeout=SHUTDOWN_TIMEOUT + 5)
            except Exception:
                log.exception("kubesim server did not stop cleanly")
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=10)
        if self.server is not None:
            self.server.pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()
        if self._owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    async def _shutdown(self) -> None:
        if self.server is not None:
            self.server.shutdown()
        if self._app_runner is not None:
            await self._app_runner.cleanup()

    def __enter__(self) -> Handle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<kubesim {self.url} kubeconfig={self.kubeconfig}>"


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close the server loop without leaking sockets.

    A TLS connection whose client keeps it alive (the official client pools connections) is
    still waiting for the peer's close_notify when the app shuts down; abort what is left so
    no transport is garbage-collected open (a ResourceWarning, an error under pytest).
    """
    for transport in list(getattr(loop, "_transports", {}).values()):
        if transport is not None and not transport.is_closing():
            transport.abort()
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()


def _load_or_make_pki(state: Path, host: str, *, persist: bool) -> tuple[tls.Pki, str]:
    files = {n: state / n for n in ("ca.crt", "tls.crt", "tls.key", "token")}
    if persist and all(p.exists() for p in files.values()):
        pki = tls.Pki(
            files["ca.crt"].read_bytes(),
            files["tls.crt"].read_bytes(),
            files["tls.key"].read_bytes(),
        )
        return pki, files["token"].read_text().strip()
    pki = tls.make_pki([host])
    token = tls.new_token()
    tls.write_private(files["ca.crt"], pki.ca_pem)
    tls.write_private(files["tls.crt"], pki.cert_pem)
    tls.write_private(files["tls.key"], pki.key_pem)
    tls.write_private(files["token"], token)
    return pki, token


def _user_tokens(state: Path, users: list[User], *, persist: bool) -> list[User]:
    """The users with a token each: a generated one is kept in ``user-tokens.json`` with
    ``data_dir``, so a restarted server's kubeconfig contexts stay valid."""
    path = state / "user-tokens.json"
    kept: dict[str, str] = {}
    if persist and path.exists():
        with contextlib.suppress(OSError, ValueError):
            kept = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
    out = [
        u if u.token else dataclasses.replace(u, token=kept.get(u.name) or tls.new_token())
        for u in users
    ]
    if persist:
        tls.write_private(path, json.dumps({u.name: u.token for u in out}))
    return out


def start(
    *,
    exec_mode: str = "sim",
    host: str = "127.0.0.1",
    port: int = 0,
    data_dir: str | Path | None = None,
    runner: bool = True,
    auth: bool = True,
    state_dir: str | Path | None = None,
    users: Iterable[User] = (),
    kinds: Iterable[Strategy] = (),
) -> Handle:
    """Start a kubesim cluster and return its Handle once it accepts connections.

    ``exec_mode``: "sim" (simulated Jobs) or "local" (run container commands as processes).
    ``data_dir``: persist objects (and keep the CA/token) there. ``runner=False`` serves the API
    without a Job runner. ``auth=False`` accepts requests without the bearer token (as the
    admin; a known user's token still identifies that user). ``users``: more identities
    (``kubesim.User(name, groups, uid, token)``); each gets a kubeconfig context named after it
    and ``Handle.users[name]`` is its token (generated when not given, kept with ``data_dir``).
    ``kinds``: strategies (``kubesim.Strategy``) of kinds to serve besides the built-in ones
    (see README, "Adding a kind"). Raises ``UsersError`` for a bad user list.

    The process's cyclic garbage collector thresholds are raised (never lowered) to
    ``kubesim.gcsettings.THRESHOLDS``: see that module.
    """
    from kubesim import auth as auth_mod
    from kubesim import gcsettings

    checked = auth_mod.check_users(users, reserved=(auth_mod.ADMIN_NAME, "kubesim"))
    gcsettings.tune()  # the collector's thresholds for a process that keeps a cluster's objects
    h = Handle()
    persist = data_dir is not None
    if state_dir is not None:
        h.state_dir = Path(state_dir)
    elif data_dir is not None:
        h.state_dir = Path(data_dir) / "kubesim"
    else:
        h.state_dir = Path(tempfile.mkdtemp(prefix="kubesim-"))
        h._owns_state_dir = True
    h.state_dir.mkdir(parents=True, exist_ok=True)
    pki, token = _load_or_make_pki(h.state_dir, host, persist=persist)
    h.token = token
    checked = _user_tokens(h.state_dir, checked, persist=persist)
    h.users = {u.name: u.token for u in checked}
    h.ca_file = str(h.state_dir / "ca.crt")
    cert_file, key_file = h.state_dir / "tls.crt", h.state_dir / "tls.key"
    h.store = Store(
        data_dir=Path(data_dir) / "store" if data_dir is not None else None, kinds=kinds
    )

    # imported here: `import kubesim` (for GVR, Store, tls) does not load aiohttp
    from kubesim.admission import Admission
    from kubesim.faults import Faults
    from kubesim.server import ApiServer

    h.faults = Faults()
    h.admission = Admission(h.store)
    h.server = server = ApiServer(
        h.store,
        token=token if auth else None,
        users=checked,
        admission=h.admission,
        faults=h.faults,
        server_address=f"{host}:{port}",
    )
    ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ssl_ctx.load_cert_chain(str(cert_file), str(key_file))

    ready = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        from aiohttp import web

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        h._loop = loop
        try:
            app_runner = web.AppRunner(
                server.app(),
                access_log=None,
                handle_signals=False,
                shutdown_timeout=SHUTDOWN_TIMEOUT,
            )
            loop.run_until_complete(app_runner.setup())
            site = web.TCPSite(
                app_runner,
                host,
                port,
                ssl_context=ssl_ctx,
                backlog=1024,
            )
            loop.run_until_complete(site.start())
            h._app_runner = app_runner
            h.port = int(app_runner.addresses[0][1])  # the port bound for port=0
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            _close_loop(loop)

    h._thread = threading.Thread(target=serve, name="kubesim-server", daemon=True)
    h._thread.start()
    if not ready.wait(STARTUP_TIMEOUT) or failure:
        h.store.close()
        if failure:
            raise RuntimeError(
                f"kubesim could not listen on {host}:{port}: {failure[0]}"
            ) from failure[0]
        raise RuntimeError("kubesim did not start in time")
    h.host = host
    url_host = f"[{host}]" if ":" in host else host
    h.url = f"https://{url_host}:{h.port}"
    server.server_address = f"{host}:{h.port}"
    kc = h.state_dir / "kubeconfig"
    tls.write_private(
        kc, tls.kubeconfig_yaml(url=h.url, ca_pem=pki.ca_pem, token=token, users=h.users)
    )
    h.kubeconfig = str(kc)
    if runner:
        from kubesim.runner import JobRunner

        work = h.state_dir / "runner"
        work.mkdir(exist_ok=True)
        h.runner = JobRunner(h.store, exec_mode=exec_mode, work_dir=work)
        h.runner.start()
    log.info("kubesim started", extra={"url": h.url, "kubeconfig": h.kubeconfig})
    return h
