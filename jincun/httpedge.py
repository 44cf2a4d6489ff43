"""The HTTP edge both the gateway and the cloud put in front of their routes.

- Body limits, enforced before anything parses a body: a declared Content-Length over the route's limit is
  answered 413 at once, and a body that grows past it while streaming is cut off with 413.
- JSON nesting depth: a body that nests deeper than MAX_DEPTH gets 400, never a RecursionError and a 500.
  Bodies up to DEPTH_SCAN_BYTES are scanned here; a larger body (only a route with a bigger limit takes one)
  is left to its parser, and a RecursionError from any route is answered 400 by the handler below.
- Validation errors that never echo the input: FastAPI's 422 repeats each bad value (`input`), so a 50 MB
  post got a 200 MB answer. The answer keeps the type, location and message of at most MAX_ERRORS errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping

MAX_DEPTH = 32
DEPTH_SCAN_BYTES = 64 * 1024
MAX_ERRORS = 20
LOC_CHARS = 64

_KEEP_ONLY_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"\\')
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_PAIR = re.compile(rb"\[\]|\{\}")
_OPENS = re.compile(rb"[\[{]{%d}" % (MAX_DEPTH + 1))


def too_deep(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when the JSON text nests arrays/objects deeper than `limit` (strings are skipped).

    Works on the brackets alone, each step in C: drop everything but brackets, quotes and backslashes, drop
    escapes and strings, then peel innermost `[]`/`{}` pairs once per level.
    """
    opens = _OPENS if limit == MAX_DEPTH else re.compile(rb"[\[{]{%d}" % (limit + 1))
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    br = data.translate(None, _KEEP_ONLY_STRUCTURE)
    if b"\\" in br:
        br = _ESCAPE.sub(b"", data).translate(None, _KEEP_ONLY_STRUCTURE)
    br = _STRING.sub(b"", br)
    for _ in range(limit + 1):
        if not br:
            return False
        if opens.search(br):
            return True
        br, n = _PAIR.subn(b"", br)
        if not n:
            return False  # unbalanced: the parser will refuse it
    return bool(br)


Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class BodyGuard:
    """ASGI middleware: body limit per route (longest matching path prefix) and the JSON depth bound."""

    def __init__(self, app, *, default: int, limits: Mapping[str, int] | None = None, counters=None,
                 own_depth: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.default = default
        self.limits = sorted((limits or {}).items(), key=lambda kv: -len(kv[0]))
        self.counters = counters
        self.own_depth = own_depth

    def limit_for(self, path: str) -> int:
        """The body limit of a path: the longest configured prefix, else the default."""
        return next((n for prefix, n in self.limits if path.startswith(prefix)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(send, 413, f"body is over {limit} bytes", "body_too_large")
            return
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(send, 413, f"body is over {limit} bytes", "body_too_large")
                return
            chunks.append(chunk)
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        ctype = headers.get(b"content-type", b"")
        if (b"json" in ctype and size <= DEPTH_SCAN_BYTES and scope["path"] not in self.own_depth
                and too_deep(body)):
            await self._refuse(send, 400, f"JSON nests deeper than {MAX_DEPTH} levels", "body_too_deep")
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()
        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, status: int, detail: str, counter: str) -> None:
        if self.counters is not None:
            self.counters.inc(counter)
        data = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": data})


def _text(s: str) -> str:
    """Text that can be written as UTF-8: a lone surrogate (a JSON key may hold one) becomes its escape."""
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def safe_errors(errors) -> list[dict]:
    """Validation errors without the values that failed (and with short locations), at most MAX_ERRORS."""
    out = []
    for e in list(errors)[:MAX_ERRORS]:
        loc = [x if isinstance(x, int) else _text(str(x)[:LOC_CHARS]) for x in e.get("loc", ())][:8]
        out.append({"type": e.get("type"), "loc": loc, "msg": _text(str(e.get("msg", ""))[:200])})
    return out


def install(app, *, default: int, limits: Mapping[str, int] | None = None, counters=None,
            own_depth: frozenset[str] = frozenset()) -> None:
    """Put the body guard in front of a FastAPI app and answer its 422s and RecursionErrors safely.

    `own_depth` names the paths whose handler bounds the nesting itself, item by item (the cloud's ingest
    answers a deep item on its own, so that one bad item does not refuse a station's whole batch).
    """
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": safe_errors(exc.errors())}, status_code=422)

    @app.exception_handler(RecursionError)
    async def _deep(_request, _exc: RecursionError) -> JSONResponse:
        if counters is not None:
            counters.inc("body_too_deep")
        return JSONResponse({"detail": "input nests too deep"}, status_code=400)

    app.add_middleware(BodyGuard, default=default, limits=dict(limits or {}), counters=counters,
                       own_depth=frozenset(own_depth))
    _document_422(app)


def _document_422(app) -> None:
    """Say in the OpenAPI schema what a 422 carries: field errors (type, loc, msg) or one sentence.

    Routes refuse a request they understood but cannot take with a sentence (an unknown station, a batch
    that is not JSON); FastAPI's generated schema knows only the list of field errors.
    """
    make = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = make()
            comps = schema.get("components", {}).get("schemas", {})
            detail = comps.get("HTTPValidationError", {}).get("properties", {}).get("detail")
            if detail is not None and "anyOf" not in detail:
                comps["HTTPValidationError"]["properties"]["detail"] = {
                    "anyOf": [detail, {"type": "string"}], "title": "Detail"}
            app.openapi_schema = schema
        return app.openapi_schema
    app.openapi = openapi
