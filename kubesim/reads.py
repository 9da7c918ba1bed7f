"""GET and LIST of resources (JSON or Table, selectors, pagination) and pod logs (tail,
follow), served inline on the event loop from the Store's stored objects."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from kubesim import kinds, selectors, tables
from kubesim.errors import ApiError, bad_request
from kubesim.servercore import TABLE_CONTENT_TYPE, Route, ServerCore, dumps

log = logging.getLogger(__name__)


LOG_FOLLOW_POLL = 0.1  # seconds between checks of a followed pod log


def log_finished(pod: Mapping[str, Any], container: str) -> bool:
    """Whether a followed log can grow no more: the pod is done, or the container terminated
    (an init container that finished while the pod runs on)."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return True
    for field in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(field) or []:
            if cs.get("name") == container:
                return "terminated" in (cs.get("state") or {})
    return False


def tail_lines(text: str, tail_lines: str | None) -> str:
    if tail_lines and tail_lines.lstrip("-").isdigit():
        n = int(tail_lines)
        if n >= 0:
            lines = text.splitlines(keepends=True)
            return "".join(lines[-n:]) if n else ""
    return text


class ReadHandlers(ServerCore):
    """Reads: get, list, pod logs."""

    def _get(self, request: web.Request, route: Route) -> web.Response:
        assert route.name is not None
        obj = self._out(route, self.store.get_ref(route.rt, route.name, route.namespace))
        if self._wants_table(request):
            table = tables.to_table(
                route.rt,
                [obj],
                resource_version=obj["metadata"].get("resourceVersion", ""),
                include_object=request.query.get("includeObject", "Metadata"),
            )
            return self._json(table, content_type=TABLE_CONTENT_TYPE)
        return self._json(obj)

    def _list(self, request: web.Request, route: Route) -> web.Response:
        q = request.query
        pred = selectors.compile_selectors(q.get("labelSelector"), self._field_selector(route, q))
        items, rv = self.store.list_refs(route.rt, route.namespace, pred)
        cont_in = q.get("continue")
        if cont_in:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont_in.encode()))
                start = (str(token["start"][0]), str(token["start"][1]))
                self.store.check_continue_rv(int(token["rv"]))
            except ApiError:
                raise
            except Exception as exc:
                raise bad_request("invalid continue token") from exc
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start
            ]
        limit = q.get("limit")
        cont_out = ""
        remaining = 0
        if limit and limit.isdigit() and int(limit) > 0 and len(items) > int(limit):
            n = int(limit)
            last = items[n - 1]["metadata"]
            remaining = len(items) - n
            items = items[:n]
            cont_out = base64.urlsafe_b64encode(
                dumps({"rv": rv, "start": [last.get("namespace", ""), last["name"]]})
            ).decode()
        rt = route.client_type
        items = [self._out(route, o) for o in items]
        if self._wants_table(request):
            table = tables.to_table(
                rt,
                items,
                resource_version=str(rv),
                cont=cont_out,
                include_object=q.get("includeObject", "Metadata"),
                remaining=remaining,
            )
            return self._json(table, content_type=TABLE_CONTENT_TYPE)
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if cont_out:
            meta["continue"] = cont_out
            meta["remainingItemCount"] = remaining
        return self._json(
            {
                "apiVersion": rt.api_version,
                "kind": rt.list_kind,
                "metadata": meta,
                "items": items,
            }
        )

    async def _log(self, request: web.Request, route: Route) -> web.StreamResponse:
        """One container's log (``?container=``, else the pod's only app container; 400 as
        upstream otherwise). ``follow`` streams what is appended until the container or the pod
        has finished, or its log starts over (a restarted container)."""
        assert route.name is not None and route.namespace is not None
        ns, name = route.namespace, route.name
        q = request.query
        pod = self.store.get_ref(route.rt, name, ns)
        container = kinds.log_container(pod, q.get("container"))
        text = self.store.get_pod_log(ns, name, container=container)
        if q.get("follow") not in ("true", "1"):
            return web.Response(
                text=tail_lines(text, q.get("tailLines")), content_type="text/plain"
            )
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        sent = tail_lines(text, q.get("tailLines"))
        await resp.write(sent.encode())
        offset = len(text)
        while not self.closing.is_set():
            try:
                pod = self.store.get_ref(route.rt, name, ns)
                text = self.store.get_pod_log(ns, name, container=container)
            except ApiError:
                break
            if len(text) < offset:
                break  # the container restarted: this stream was the previous instance's
            if len(text) > offset:
                await resp.write(text[offset:].encode())
                offset = len(text)
            if log_finished(pod, container):
                break
            await asyncio.sleep(LOG_FOLLOW_POLL)
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp
