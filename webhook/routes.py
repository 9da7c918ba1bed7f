"""HTTP layer of the webhook: POST /validate and POST /mutate (AdmissionReview v1).

Answers, in the order they are decided:
- 415 when Content-Type is not application/json (the API server always sends it);
- 413 when Content-Length, or the body actually streamed, exceeds `max_request_bytes`; the
  stream is cut at the limit while it is read (chunked or not), so a client that lies about (or
  omits) Content-Length cannot make the server buffer more than the limit;
- 400 when the whole body has not arrived within `body_timeout` seconds (a stalled or trickled
  upload cannot hold a connection and its buffered bytes for good);
- 400 when arrays and objects nest deeper than `nesting.MAX_DEPTH` (100) levels, found by a
  byte scan before json.loads (webhook/nesting.py says why 100 and what it costs);
- 400 when the body is not JSON or not an AdmissionReview v1 with a `request.uid`;
- otherwise 200 with an AdmissionReview whose `response.uid` echoes the request.
A refusal before the body was read to its end (415, 413, the timeout) is a lingering close: the
whole answer goes out at once with `Connection: close`; then at most `DRAIN_BYTES` more of the
body are read and dropped; past that nothing more is read (the sender meets TCP backpressure);
after `DRAIN_SECONDS` the connection is closed. A body that ends within the drain closes
cleanly; otherwise the close resets the connection, which makes the client's kernel discard
what it has not read yet, so a client that reads while it sends has that second to read the
answer. Without the close, uvicorn would read and drop the rest of the body on a kept-alive
connection, however long it is (an endless chunked upload, a Content-Length of 1 TB).
Invariant: no input yields a 5xx. A failure inside a review (a bug) is caught here, logged once
with the uid, and answered as a denial with `status.code` 500, so the API server shows the user
a message (and applies failurePolicy Fail) instead of a failed call. Anything else that fails
while a request is read (no review to answer yet) is a logged 400.

Error bodies are metav1.Status objects, which is what Kubernetes clients expect to parse.
Parsing and reviewing large bodies run in a worker thread so a multi-megabyte flow cannot stall
the event loop (which also serves the probes); small ones run inline, which is faster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable

import anyio
import anyio.to_thread
import orjson
import pydantic_core
from fastapi import FastAPI, Response
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from webhook import handlers, nesting, review
from webhook.deadlines import BodyDeadlines
from webhook.metrics import AdmissionMetrics

logger = logging.getLogger(__name__)

INLINE_LIMIT = 64 * 1024  # bytes; a 20-step flow is ~10 KiB, reviews below this take < 1 ms
# After a refusal that leaves the body unread: how much more of it is read and dropped before
# the connection closes. Enough for a client still sending to read the answer; little next to
# the limit.
DRAIN_BYTES = 1024 * 1024
DRAIN_SECONDS = 1.0
JSON_MEDIA_TYPE = "application/json"
_JSON_CONTENT_TYPE = (b"content-type", JSON_MEDIA_TYPE.encode())
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# Digits as "0", everything else as " ": a run of 19 "0"s is a run of 19 digits (~6 us for a
# 12 KB body; a regular expression takes ~110 us).
_DIGIT_RUNS = bytes(ord("0") if chr(c).isdigit() and c < 128 else ord(" ") for c in range(256))
_LONG_DIGITS = b"0" * 19

# A review: the request, and the body it was decoded from.
Handler = Callable[[review.AdmissionRequest, bytes], review.AdmissionResponse]


class _LingeringResponse(Response):
    """The answer at once; then up to DRAIN_BYTES of the body read and dropped, then nothing
    more read until DRAIN_SECONDS have passed; then a close."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body, "more_body": True})
        dropped = 0
        with anyio.move_on_after(DRAIN_SECONDS):
            while True:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break  # the body ended (or the client left): the close will be clean
                dropped += len(message.get("body", b""))
                if dropped > DRAIN_BYTES:
                    await anyio.sleep(DRAIN_SECONDS)  # read no more; ends with the scope
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _Refused(Exception):
    def __init__(self, code: int, reason: str, message: str, *, unread: bool = False) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.unread = unread  # refused before the body ended: answer with a lingering close

    def response(self) -> Response:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.unread:
            return _LingeringResponse(
                json.dumps(body),
                status_code=self.code,
                media_type=JSON_MEDIA_TYPE,
                headers={"Connection": "close"},
            )
        return Response(json.dumps(body), status_code=self.code, media_type=JSON_MEDIA_TYPE)


def _content_headers(scope: Scope) -> tuple[str, str | None]:
    """Content-Type ("" when absent) and Content-Length (None when absent), the first of each
    (header names arrive lower-cased, as ASGI says)."""
    media: str | None = None
    declared: str | None = None
    for key, value in scope["headers"]:
        if key == b"content-type":
            if media is None:
                media = value.decode("latin-1")
        elif key == b"content-length" and declared is None:
            declared = value.decode("latin-1")
    return media or "", declared


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, never holding more than ``limit`` bytes of it."""
    content_type, declared = _content_headers(scope)
    media = content_type.split(";", 1)[0].strip().lower()
    if media != JSON_MEDIA_TYPE:
        raise _Refused(
            415,
            "UnsupportedMediaType",
            f"content type {media or 'none'!r} is not supported; send application/json",
            unread=True,
        )
    if declared is not None:
        if not declared.strip().isdigit():
            raise _Refused(400, "BadRequest", "Content-Length is not a number", unread=True)
        if int(declared) > limit:
            raise _Refused(
                413,
                "RequestEntityTooLarge",
                f"body of {int(declared)} bytes exceeds the limit of {limit} bytes",
                unread=True,
            )
    chunks: list[bytes] = []
    total = 0
    while True:  # the ASGI messages themselves: no Request, no async generator per request
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                total += len(chunk)
                if total > limit:
                    raise _Refused(
                        413,
                        "RequestEntityTooLarge",
                        f"body exceeds the limit of {limit} bytes",
                        unread=True,
                    )
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        elif kind == "http.disconnect":
            raise ClientDisconnect()


async def _read_in_time(
    scope: Scope, receive: Receive, limit: int, deadlines: BodyDeadlines
) -> bytes:
    """The body, or a refusal once ``deadlines.seconds`` have passed (webhook.deadlines)."""
    task: asyncio.Task[object] = asyncio.current_task()  # type: ignore[assignment]
    deadlines.start(task)
    try:
        body = await _read_body(scope, receive, limit)
    except asyncio.CancelledError:
        if not deadlines.finish(task):
            raise  # not ours: the server stopping
        task.uncancel()
        raise _Refused(
            400,
            "BadRequest",
            f"the body did not arrive within {deadlines.seconds:g} s",
            unread=True,
        ) from None
    except BaseException:
        deadlines.finish(task)
        raise
    deadlines.finish(task)
    return body


def _has_lone_surrogate(body: bytes, data: object) -> bool:
    # JSON may escape a UTF-16 surrogate on its own ("\udc80"); that is no Unicode text, no API
    # server sends it (Go writes U+FFFD), and much of Python (UTF-8 encoding, pydantic-core)
    # cannot handle it. The byte scan keeps the common case free of a second encoding pass.
    if _SURROGATE_ESCAPE.search(body) is None:
        return False
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


def _decode(body: bytes) -> object:
    """The body's JSON, parsed once, as json.loads reads it (types included).

    1. orjson (~1.5x pydantic-core's parser on a review) when no integer can be past 64 bits:
       it reads such an integer as a float. A run of 19 digits or more anywhere (in a string
       too: the scan does not know) sends the body to step 2; below that every integer is
       within [-(10**18 - 1), 10**18 - 1], which orjson reads exactly. What orjson refuses (NaN,
       Infinity, 1e400, a lone surrogate, a byte-order mark, UTF-16) goes to step 2 too.
    2. pydantic-core's parser (jiter): integers of any size, NaN and Infinity, as json.loads.
       Its string cache stays off: the strings it keeps, made while a huge body filled the
       heap, pinned ~14 MiB of pymalloc arenas over the hostile corpus
       (tests/api/test_webhook_hostile.py).
    3. What both refuse but json.loads reads (a byte-order mark, UTF-16, lone surrogates)
       goes through the standard library exactly as before, so no body is answered
       differently. tests/unit/test_validation_fast.py holds the three to json.loads."""
    if _LONG_DIGITS not in body.translate(_DIGIT_RUNS):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    try:
        return pydantic_core.from_json(body, cache_strings=False)
    except ValueError:
        pass
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise _Refused(400, "BadRequest", "body is not JSON") from None
    if _has_lone_surrogate(body, data):
        raise _Refused(400, "BadRequest", "body is not valid Unicode text (lone surrogate escape)")
    return data


def _parse(body: bytes) -> review.AdmissionRequest:
    if nesting.too_deep(body):
        offset = nesting.where_too_deep(body)
        if offset is not None:  # else malformed: json.loads says so below
            raise _Refused(
                400,
                "BadRequest",
                f"body nests arrays and objects deeper than {nesting.MAX_DEPTH} levels (at byte "
                f"{offset}); a JobFlow needs about 20",
            )
    data = _decode(body)
    try:
        return review.AdmissionReviewRequest.model_validate(data).request
    except (ValidationError, RecursionError) as exc:
        where = "body"
        if isinstance(exc, ValidationError) and exc.errors():
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            where = f"{where}: {first['msg']}"
        raise _Refused(
            400,
            "BadRequest",
            f"body is not an AdmissionReview (apiVersion admission.k8s.io/v1 with request.uid): {where}",
        ) from None


def _result(answer: review.AdmissionResponse) -> str:
    if answer.allowed:
        return "allowed"
    return "error" if answer.status is not None and answer.status.code >= 500 else "denied"


def _review(
    handler: Handler, request: review.AdmissionRequest, body: bytes, webhook: str
) -> tuple[bytes, str]:
    try:
        answer = handler(request, body)
        return review.encode(answer), _result(answer)
    except (SystemExit, KeyboardInterrupt, GeneratorExit, asyncio.CancelledError):
        raise  # requests to stop and task cancellation are not review failures
    except BaseException:  # request boundary (native panics too): answer, log the bug once
        logger.exception(
            "review failed",
            extra={"webhook": webhook, "uid": request.uid, "operation": request.operation},
        )
        answer = review.deny(
            request.uid,
            "internal error in the zen-flow webhook; see its log",
            code=500,
            reason="InternalError",
        )
        return review.encode(answer), _result(answer)


def _validate(request: review.AdmissionRequest, body: bytes) -> review.AdmissionResponse:
    return handlers.review_validate(request, source=body)


def _mutate(request: review.AdmissionRequest, _body: bytes) -> review.AdmissionResponse:
    return handlers.review_mutate(request)


class _AsgiEndpoint:
    """An ASGI app Starlette's Route calls as it is (a plain function it would wrap in
    request_response, which builds a Request and exception handlers per request)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def add_routes(
    app: FastAPI, *, max_request_bytes: int, body_timeout: float, metrics: AdmissionMetrics
) -> dict[str, ASGIApp]:
    """Add POST /validate and /mutate to ``app``; everything they need is passed in. Returns
    the endpoints by path: plain ASGI apps an app may also call directly (app.main does).

    Added to the app itself, not through include_router: FastAPI keeps an included router as
    one opaque entry that the metrics middleware flattens again on every request (~0.1 ms).
    """
    router = app.router

    deadlines = BodyDeadlines(body_timeout)

    def endpoint(handler: Handler, webhook: str) -> ASGIApp:
        async def review_request(scope: Scope, receive: Receive) -> bytes | Response:
            try:
                body = await _read_in_time(scope, receive, max_request_bytes, deadlines)
                started = time.perf_counter()
                if len(body) <= INLINE_LIMIT:
                    parsed = _parse(body)
                else:
                    parsed = await anyio.to_thread.run_sync(_parse, body)
            except _Refused as refused:
                metrics.reject(webhook=webhook, code=refused.code)
                logger.info(
                    "request refused",
                    extra={"webhook": webhook, "code": refused.code, "reason": refused.message},
                )
                return refused.response()
            if len(body) <= INLINE_LIMIT:
                encoded, result = _review(handler, parsed, body, webhook)
            else:
                encoded, result = await anyio.to_thread.run_sync(
                    _review, handler, parsed, body, webhook
                )
            metrics.observe(
                webhook=webhook,
                operation=parsed.operation,
                result=result,
                seconds=time.perf_counter() - started,
            )
            if result != "allowed":
                logger.info(
                    "review denied",
                    extra={
                        "webhook": webhook,
                        "uid": parsed.uid,
                        "operation": parsed.operation,
                        "namespace": parsed.namespace,
                        "flow": parsed.name,
                    },
                )
            return encoded

        async def serve(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                answer = await review_request(scope, receive)
            except ClientDisconnect:
                answer = Response(status_code=400)  # nobody is left to read it
            except Exception:  # request boundary: reviews already answer their own failures
                logger.exception("request failed", extra={"webhook": webhook})
                answer = _Refused(400, "BadRequest", "the request could not be read").response()
            if isinstance(answer, Response):
                await answer(scope, receive, send)
                return
            # What Response(answer, media_type=JSON_MEDIA_TYPE) sends, without building one.
            headers = [(b"content-length", b"%d" % len(answer)), _JSON_CONTENT_TYPE]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": answer})

        return _AsgiEndpoint(serve)

    # Plain ASGI routes: the endpoints read the ASGI messages themselves, so neither FastAPI's
    # dependency solving (~15 us) nor Starlette's Request and exception-handler wrapping per
    # request would buy anything.
    endpoints: dict[str, ASGIApp] = {}
    for path, handler, webhook in (
        ("/validate", _validate, "validate"),
        ("/mutate", _mutate, "mutate"),
    ):
        endpoints[path] = endpoint(handler, webhook)
        router.routes.append(Route(path, endpoints[path], methods=["POST"], name=webhook))
    return endpoints
