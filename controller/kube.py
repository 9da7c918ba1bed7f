"""The Kubernetes API as the controller sees it: the ONLY module in controller/ importing `kubernetes`.

Design:
- The official client builds the connection (kubeconfig or in-cluster service account: TLS, CA,
  bearer token, exec plugins) and its `ApiClient.call_api` sends requests. We skip its model
  (de)serialisation and its REST layer: objects are plain JSON dicts, encoded with orjson and
  sent on connections of the client's urllib3 pool, framed by h11 (controller.transport;
  streams stay on urllib3), decoded once with orjson (``decode``).
  That keeps the controller's per-request CPU small and lets custom and built-in kinds share one
  code path.
- Every failure is mapped once onto our own hierarchy, and the class says what happens next
  (``ApiError.retryable``, read by ``policy``, the one error policy of the controller): Transient
  (5xx, 429, timeouts, connection errors), Conflict (a stale read) and Unauthorized (401: the
  credentials are re-read) mean "retry later", after the server's `Retry-After` when it sent one
  (`ApiError.retry_after`); NotFound / AlreadyExists / Gone / Invalid / Forbidden are the
  server's answer for good: sending the same request again gets the same answer.
- A token bucket caps the request rate (QPS with a burst), like client-go's client-side limiter,
  so a burst of reconciles cannot flood the API server. Long-running watch streams take one token
  when they open.
- Each request is reported to an observer as (verb, code) so metrics can count API requests
  without this module knowing about Prometheus.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from controller import transport
from controller.ratelimit import TokenBucket

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]
RequestObserver = Callable[[str, str], None]  # (verb, code) -> None

# Reads that outlive this are treated as a stalled connection (Transient), not waited on forever.
DEFAULT_REQUEST_TIMEOUT = 30.0
# A server's Retry-After is honoured up to this many seconds (a bogus huge value must not park a
# flow for hours; our own backoff takes over after that).
RETRY_AFTER_MAX = 60.0

# Slack added to a watch's server-side timeoutSeconds before the client gives up on the socket.
WATCH_READ_SLACK = 15.0


def decode(data: bytes) -> Any:
    """An API server's JSON answer, with orjson (~2x json.loads; its cache of object keys also
    makes the keys of every cached object one string each). What orjson refuses (NaN, numbers
    past a double) json.loads reads as before. orjson reads an integer past 64 bits as a float:
    the API server never sends one (it stores such numbers as float64 itself)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _encode(body: Any) -> bytes:
    # orjson (~4x json.dumps); a value it does not write (an integer past 64 bits, a
    # non-JSON type) goes the slow way with the same output.
    try:
        return orjson.dumps(body)
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(body, separators=(",", ":")).encode()


def _timeout(value: float | tuple[float, float]) -> urllib3.Timeout:
    """The client's reading of ``_request_timeout``: a total, or (connect, read)."""
    if isinstance(value, tuple):
        return urllib3.Timeout(connect=value[0], read=value[1])
    return urllib3.Timeout(total=value)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
class ApiError(Exception):
    """An API request failed. ``code`` is the HTTP status (0 when no response arrived)."""

    retryable = False

    def __init__(
        self, message: str, *, code: int = 0, reason: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        # seconds the server asked us to wait (429/5xx ``Retry-After``); None when it did not say
        self.retry_after = retry_after


class NotFound(ApiError):
    """404: the object (or its namespace) does not exist."""


class AlreadyExists(ApiError):
    """409 AlreadyExists on create: an object with that name exists."""


class Conflict(ApiError):
    """409 Conflict: a stale resourceVersion; re-read and try again."""

    retryable = True


class Gone(ApiError):
    """410: the resourceVersion is too old (watch/list must start over)."""


class Invalid(ApiError):
    """400/422: the request or object was rejected as malformed or invalid."""


class Forbidden(ApiError):
    """403: refused by RBAC (fix the service account's permissions), by an admission policy
    (a validating webhook such as Kyverno or Gatekeeper), or by a ResourceQuota."""


class Unauthorized(Forbidden):
    """401: the credentials were not accepted. Tokens expire and are re-read (see
    ``CREDENTIAL_REFRESH_INTERVAL``), so the same request may succeed later."""

    retryable = True


class Transient(ApiError):
    """5xx, 429, timeouts, connection errors: the same request may succeed later."""

    retryable = True


class Policy(StrEnum):
    """What the controller does about a failed request (``policy``)."""

    # The same request may succeed later: back off per key (no sooner than Retry-After).
    RETRY = "retry"
    # Refused for good: a Job create fails its step (the planner's CreateRejected); anything
    # else waits for a person (RBAC, an object in the way) and is retried no sooner than
    # REFUSED_RETRY_AFTER, logged as an error.
    REFUSED = "refused"


# A refused request gets the same answer until someone changes something: retrying it at the
# per-key backoff's milliseconds would only add load.
REFUSED_RETRY_AFTER = 5.0


def policy(error: ApiError) -> Policy:
    """The controller's one error policy, decided by the error's class (``retryable``)."""
    return Policy.RETRY if error.retryable else Policy.REFUSED


class ConfigError(Exception):
    """The kubeconfig (or in-cluster configuration) cannot be used: a user's mistake, permanent."""


def _retry_after(header: str | None, details: Any) -> float | None:
    """The wait a 429/5xx asks for: the ``Retry-After`` header (delta-seconds, as kube-apiserver
    sends it) or else the Status body's ``details.retryAfterSeconds``; None when neither says."""
    for raw in (header, details.get("retryAfterSeconds") if isinstance(details, dict) else None):
        if raw is None:
            continue
        try:
            seconds = float(raw)
        except (TypeError, ValueError):
            continue  # an HTTP-date or junk: fall back to our own backoff
        if seconds >= 0 and math.isfinite(seconds):
            return min(seconds, RETRY_AFTER_MAX)
    return None


def _error_for(
    code: int, body: bytes | str | None, fallback: str, *, retry_after_header: str | None = None
) -> ApiError:
    message, reason, details = fallback, "", None
    if body:
        try:
            status = json.loads(body)
            message = str(status.get("message") or fallback)
            reason = str(status.get("reason") or "")
            details = status.get("details")
        except (ValueError, AttributeError):
            message = (body.decode(errors="replace") if isinstance(body, bytes) else body)[:300]
    cls: type[ApiError]
    if code == 404:
        cls = NotFound
    elif code == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
    elif code == 410:
        cls = Gone
    elif code in (400, 422):
        cls = Invalid
    elif code == 401:
        cls = Unauthorized
    elif code == 403:
        cls = Forbidden
    else:
        cls = Transient
    retry_after = _retry_after(retry_after_header, details) if cls is Transient else None
    return cls(message, code=code, reason=reason, retry_after=retry_after)


# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Resource:
    """One API resource: where its collection lives."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


JOBFLOWS = Resource("workflow.kube-zen.io", "v1alpha1", "jobflows")
JOBS = Resource("batch", "v1", "jobs")
PODS = Resource("", "v1", "pods")
EVENTS = Resource("", "v1", "events")
LEASES = Resource("coordination.k8s.io", "v1", "leases")
PVCS = Resource("", "v1", "persistentvolumeclaims")
CONFIGMAPS = Resource("", "v1", "configmaps")

# Kinds a plan may ask us to create as resourceTemplates, by (apiVersion, kind).
RESOURCE_BY_KIND: Mapping[tuple[str, str], Resource] = {
    ("v1", "PersistentVolumeClaim"): PVCS,
    ("v1", "ConfigMap"): CONFIGMAPS,
    ("batch/v1", "Job"): JOBS,
}

# Every (apiGroup, resource, verbs) the controller uses. The Helm chart's RBAC must grant exactly
# these (a chart test compares the two); keep this table in step with the calls in controller/.
REQUIRED_PERMISSIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("workflow.kube-zen.io", "jobflows", ("get", "list", "watch", "delete")),
    ("workflow.kube-zen.io", "jobflows/status", ("get", "update")),
    ("batch", "jobs", ("get", "list", "watch", "create", "delete")),
    ("", "pods", ("list",)),
    ("", "events", ("create",)),
    ("", "persistentvolumeclaims", ("get", "create")),
    ("", "configmaps", ("get", "create")),
    ("coordination.k8s.io", "leases", ("get", "create", "update")),
)


# --------------------------------------------------------------------------------------------
# Watch stream
# --------------------------------------------------------------------------------------------
class WatchStream:
    """Iterates (type, object) events of one watch request; ``close()`` from another thread ends
    the iteration promptly (it shuts the socket down)."""

    def __init__(self, response: urllib3.BaseHTTPResponse, on_error: Callable[[], None]) -> None:
        self._response = response
        self._on_error = on_error
        self._closed = False

    def __iter__(self) -> Iterator[tuple[str, JSONDict]]:
        buf = b""
        try:
            for chunk in self._response.stream(65536, decode_content=True):
                buf += chunk
                # One event per line ("\n"-terminated JSON); a chunk may hold several or a part.
                while True:
                    nl = buf.find(b"\n")
                    if nl < 0:
                        break
                    line, buf = buf[:nl], buf[nl + 1 :]
                    if line.strip():
                        event = decode(line)
                        yield str(event.get("type", "")), event.get("object") or {}
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if not self._closed:
                self._on_error()
                raise Transient(f"watch stream broken: {exc}") from exc
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._response.shutdown()
        except Exception:  # best effort: the socket may already be gone
            log.debug("watch shutdown failed", exc_info=True)
        self._response.release_conn()


# The kubeconfig/in-cluster loaders install a hook that re-reads the credentials before EVERY
# request (and re-sets the host, which scans the environment for proxies): ~0.3 ms of CPU per
# request, a fifth of the client's cost. Tokens from exec plugins, OIDC and projected service
# accounts live for many minutes, so re-reading them once a minute keeps them fresh.
CREDENTIAL_REFRESH_INTERVAL = 60.0


def _throttle_refresh_hook(cfg: k8s_client.Configuration) -> None:
    if cfg.refresh_api_key_hook is None:
        return
    state: dict[str, Any] = {"hook": cfg.refresh_api_key_hook, "last": float("-inf")}
    lock = threading.Lock()

    def throttled(conf: k8s_client.Configuration) -> None:
        with lock:
            now = time.monotonic()
            if now - state["last"] < CREDENTIAL_REFRESH_INTERVAL:
                return
            state["last"] = now
            state["hook"](conf)
            # the loader's hook re-installs itself on every call: keep ours in front of it
            if conf.refresh_api_key_hook is not throttled:
                state["hook"] = conf.refresh_api_key_hook
                conf.refresh_api_key_hook = throttled

    cfg.refresh_api_key_hook = throttled


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------
class Kube:
    """Thin JSON client over ``kubernetes.client.ApiClient``. Thread-safe (urllib3 pool)."""

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        *,
        qps: float = 50.0,
        burst: int = 100,
        observer: RequestObserver | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self.api_client = api_client
        self._transport: transport.Transport | None = None
        self._transport_lock = threading.Lock()
        self._prefix = 0
        self.limiter = TokenBucket(qps, burst)
        self.observer = observer
        self.request_timeout = request_timeout

    # -- construction --------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        kubeconfig: str | None = None,
        *,
        context: str | None = None,
        qps: float = 50.0,
        burst: int = 100,
        observer: RequestObserver | None = None,
        pool_size: int = 16,
    ) -> Kube:
        """Build a client from a kubeconfig file, or from the in-cluster service account when
        ``kubeconfig`` is None and we run in a pod, else from the default kubeconfig."""
        cfg = k8s_client.Configuration()
        try:
            if kubeconfig:
                k8s_config.load_kube_config(
                    config_file=kubeconfig, context=context, client_configuration=cfg
                )
            else:
                try:
                    k8s_config.load_incluster_config(client_configuration=cfg)
                except k8s_config.ConfigException:
                    k8s_config.load_kube_config(context=context, client_configuration=cfg)
        except (k8s_config.ConfigException, OSError, ValueError) as exc:
            # The loader's own errors (missing file, no current-context, bad YAML): wrapped once
            # so every entry point reports them in one line.
            where = f"kubeconfig {kubeconfig}" if kubeconfig else "the default kubeconfig"
            if context:
                where += f" (context {context})"
            raise ConfigError(f"cannot use {where}: {' '.join(str(exc).split())}") from exc
        # Enough pooled connections for every worker plus the watches, so none waits on a socket.
        cfg.connection_pool_maxsize = pool_size
        _throttle_refresh_hook(cfg)
        return cls(k8s_client.ApiClient(cfg), qps=qps, burst=burst, observer=observer)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self.api_client.close()

    # -- plumbing ------------------------------------------------------------------------
    def _observe(self, verb: str, code: int | str) -> None:
        if self.observer is not None:
            self.observer(verb, str(code))

    def _prepare(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None,
        content_type: str | None,
        has_body: bool,
        accept: str,
    ) -> tuple[str, dict[str, str]]:
        """The URL and headers (credentials included) of a request, as the client builds them."""
        self.limiter.acquire()
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        elif has_body:
            headers["Content-Type"] = "application/json"
        _, url, headers, _, _ = self.api_client.param_serialize(
            method,
            path,
            query_params=query or None,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        return url, headers

    def _check(
        self, verb: str, method: str, path: str, status: int, data: bytes, retry_after: str | None
    ) -> None:
        self._observe(verb, status)
        if status >= 300:
            raise _error_for(
                status,
                data,
                f"{method} {path}: HTTP {status}",
                retry_after_header=retry_after,
            )

    def _send(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        timeout: float | tuple[float, float] | None = None,
        accept: str = "application/json",
    ) -> urllib3.BaseHTTPResponse:
        """A streamed request (watch, pod log) on the client's urllib3 pool."""
        url, headers = self._prepare(
            method, path, query=query, content_type=None, has_body=False, accept=accept
        )
        try:
            response = self._urlopen(
                method,
                url,
                headers=headers,
                timeout=_timeout(timeout or self.request_timeout),
                preload_content=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self._observe(verb, "error")
            raise Transient(f"{method} {path}: {exc}") from exc
        if response.status >= 300:
            try:
                data = response.data
            finally:
                response.release_conn()
            self._check(
                verb, method, path, response.status, data, response.headers.get("Retry-After")
            )
        self._observe(verb, response.status)
        return response

    def _direct(self) -> transport.Transport | None:
        """The lean transport to the API server (controller.transport), or None through a
        proxy (the PoolManager then routes every request itself, as before)."""
        if self._transport is not None:
            return self._transport
        manager = self.api_client.rest_client.pool_manager
        if isinstance(manager, urllib3.ProxyManager):
            return None
        with self._transport_lock:  # the first requests of several threads: one transport
            if self._transport is None:
                host: str = self.api_client.configuration.host
                origin = urllib3.util.parse_url(host)
                self._prefix = len(f"{origin.scheme}://{origin.netloc}")  # before it is seen
                self._transport = transport.Transport(
                    manager.connection_from_url(host),
                    host=str(origin.netloc),
                    max_idle=self.api_client.configuration.connection_pool_maxsize,
                )
        return self._transport

    def _urlopen(self, method: str, url: str, **kwargs: Any) -> urllib3.BaseHTTPResponse:
        """The request through the client's PoolManager (streams, and any request through a
        proxy)."""
        manager = self.api_client.rest_client.pool_manager
        response: urllib3.BaseHTTPResponse = manager.request(method, url, **kwargs)
        return response

    def _exchange(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> bytes:
        """A request whose whole answer is read: its body (an error answer raises)."""
        url, headers = self._prepare(
            method,
            path,
            query=query,
            content_type=content_type,
            has_body=body is not None,
            accept="application/json",
        )
        data = None if body is None else _encode(body)
        lean = self._direct()
        host: str = self.api_client.configuration.host
        try:
            if lean is not None and url.startswith(host):
                answer = lean.request(
                    method, url[self._prefix :], headers, data, timeout=self.request_timeout
                )
                status, content, retry_after = (
                    answer.status,
                    answer.body,
                    answer.headers.get("retry-after"),
                )
            else:
                response = self._urlopen(
                    method, url, body=data, headers=headers, timeout=_timeout(self.request_timeout)
                )
                status, content = response.status, response.data
                retry_after = response.headers.get("Retry-After")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self._observe(verb, "error")
            raise Transient(f"{method} {path}: {exc}") from exc
        self._check(verb, method, path, status, content, retry_after)
        return content

    def _json(self, verb: str, method: str, path: str, **kwargs: Any) -> JSONDict:
        data = self._exchange(verb, method, path, **kwargs)
        if not data:
            return {}
        result: JSONDict = decode(data)
        return result

    # -- verbs ---------------------------------------------------------------------------
    def get(
        self, res: Resource, namespace: str | None, name: str, *, subresource: str | None = None
    ) -> JSONDict:
        return self._json("get", "GET", res.path(namespace, name, subresource))

    def list_all(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
        each: Callable[[JSONDict], JSONDict] | None = None,
    ) -> JSONDict:
        """List every matching object (following ``continue`` pages). Returns a dict with
        ``items`` and ``metadata.resourceVersion`` (that of the first page, as client-go).
        ``each`` maps every item as its page arrives (a cache keeps a smaller form: the whole
        page is not held in full while the next is read)."""
        query: list[tuple[str, Any]] = [("limit", limit)]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        items: list[JSONDict] = []
        rv = ""
        cont = ""
        while True:
            page = self.list_page(res, namespace, query=query, cont=cont)
            listed = page.get("items") or []
            items.extend(listed if each is None else map(each, listed))
            del listed
            meta = page.get("metadata") or {}
            rv = rv or str(meta.get("resourceVersion") or "")
            cont = str(meta.get("continue") or "")
            if not cont:
                return {"items": items, "metadata": {"resourceVersion": rv}}

    def list_page(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        query: list[tuple[str, Any]] | None = None,
        cont: str = "",
    ) -> JSONDict:
        """One page of a LIST (``query`` holds limit and selectors; ``cont`` the continue token)."""
        q = list(query or []) + ([("continue", cont)] if cont else [])
        return self._json("list", "GET", res.path(namespace), query=q)

    def create(self, res: Resource, namespace: str | None, body: Mapping[str, Any]) -> JSONDict:
        return self._json("create", "POST", res.path(namespace), body=dict(body))

    def replace(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        body: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> JSONDict:
        """PUT (optimistic concurrency: a stale metadata.resourceVersion raises Conflict)."""
        return self._json("update", "PUT", res.path(namespace, name, subresource), body=dict(body))

    def patch(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        patch_type: str = "application/merge-patch+json",
    ) -> JSONDict:
        return self._json(
            "patch",
            "PATCH",
            res.path(namespace, name, subresource),
            body=body,
            content_type=patch_type,
        )

    def delete(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str | None = None,
        uid: str | None = None,
    ) -> None:
        """DELETE; ``uid`` adds a precondition so a re-created namesake is never deleted."""
        body: JSONDict | None = None
        if propagation_policy or uid:
            body = {"apiVersion": "v1", "kind": "DeleteOptions"}
            if propagation_policy:
                body["propagationPolicy"] = propagation_policy
            if uid:
                body["preconditions"] = {"uid": uid}
        self._json("delete", "DELETE", res.path(namespace, name), body=body)

    def pod_log(self, namespace: str, name: str, *, container: str | None = None) -> str:
        """The whole log of a pod's container as text (used by `zen-flow run`, not the
        controller, which reads outcomes from status only)."""
        query = [("container", container)] if container else None
        path = PODS.path(namespace, name, "log")
        response = self._send("get", "GET", path, query=query, accept="text/plain, */*")
        try:
            data = response.data
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Transient(f"GET {path}: reading the body failed: {exc}") from exc
        finally:
            response.release_conn()
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")

    def watch(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> WatchStream:
        """Open a watch from ``resource_version`` with bookmarks; iterate the returned stream."""
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", timeout_seconds),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        response = self._send(
            "watch",
            "GET",
            res.path(namespace),
            query=query,
            timeout=(10.0, timeout_seconds + WATCH_READ_SLACK),
        )
        return WatchStream(response, on_error=lambda: self._observe("watch", "error"))
