"""HTTP hardening of the search service, as one ASGI middleware wrapped around the app.

- **Body limit on every body**: a ``Content-Length`` over the limit is refused before reading
  (413), and a chunked body (no length) is counted while the app reads it and refused as soon as
  it passes the limit, so a 100 MB chunked upload never sits in memory.
- **Security headers** on every response: ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: no-referrer``, ``X-Frame-Options: DENY`` and a Content-Security-Policy that
  allows only this origin's scripts and styles (``frame-ancestors 'none'``). ``/docs`` and
  ``/redoc`` (served offline, see ``routes/docs.py``) start their bundles with an inline script,
  which their own policy allows.
- **Reports are sandboxed**: anything under ``/reports/`` is HTML derived from user data (Evidently
  drift reports embed labels); it is served with ``Content-Security-Policy: sandbox allow-scripts``,
  so it runs in an opaque origin: no access to the dashboard's origin (its token form, storage or
  authenticated requests), no dialogs, no forms, no top-level navigation, and never framed.
- **Actors redacted** on pages anyone can read: ``user@host:PID`` (the default actor of a CLI
  process) is shown as ``user@…`` in HTML and JSON answers to GET requests; the CLI and the
  registry keep the full value.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

APP_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# Swagger UI and ReDoc start from an inline script; ReDoc also renders in a blob: worker.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
            "base-uri 'none'; frame-ancestors 'none'")
# Opaque origin: the report's own scripts (its charts) run, nothing else is allowed.
REPORT_CSP = "sandbox allow-scripts; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_PATHS = ("/docs", "/redoc")
REPORT_PREFIX = "/reports/"
_ACTOR = re.compile(rb"\b([A-Za-z0-9._-]+)@[A-Za-z0-9._-]+:\d+\b")
_REDACTED_TYPES = (b"text/html", b"application/json")
_NO_REDACT_PREFIXES = ("/static", "/docs-assets", "/openapi.json", REPORT_PREFIX)


def redact_actors(body: bytes) -> bytes:
    """``root@host:1234`` -> ``root@…`` (host names and process ids are nobody's business)."""
    return _ACTOR.sub("\\1@\u2026".encode(), body)


def csp_for(path: str) -> str:
    if path.startswith(REPORT_PREFIX):
        return REPORT_CSP
    if path in DOCS_PATHS:
        return DOCS_CSP
    return APP_CSP


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the limit. An HTTPException, so FastAPI's body
    parsing re-raises it (it turns other errors into a 400) and the app answers 413 itself."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


class SecurityMiddleware:
    """Body limit, security headers, sandboxed reports and redacted actors (see the module doc)."""

    def __init__(self, app: Any, *, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_body:
            await _too_large(send, self._message(int(length)), scope["path"])
            return

        path = scope["path"]
        redact = scope["method"] == "GET" and not path.startswith(_NO_REDACT_PREFIXES)
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self._message(None))
            return message

        held: dict[str, Any] = {}

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = dict(message)
                message["headers"] = _with_security_headers(message.get("headers") or [], path)
                content_type = dict(message["headers"]).get(b"content-type", b"")
                if redact and content_type.startswith(_REDACTED_TYPES):
                    held["start"], held["body"] = message, []  # buffered: pages and JSON are small
                    return
            elif message["type"] == "http.response.body" and "start" in held:
                held["body"].append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = redact_actors(b"".join(held.pop("body")))
                start = held.pop("start")
                start["headers"] = [(k, v) for k, v in start["headers"] if k != b"content-length"]
                start["headers"].append((b"content-length", str(len(body)).encode()))
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge as e:
            if started:
                raise
            await _too_large(send, e.detail, path)

    def _message(self, length: int | None) -> str:
        size = f"of {length} bytes " if length is not None else "(chunked) "
        return f"request body {size}exceeds {self.max_body} bytes; send fewer queries per request"


def _with_security_headers(headers: list[tuple[bytes, bytes]], path: str) -> list[tuple[bytes, bytes]]:
    ours = {
        b"content-security-policy": csp_for(path).encode(),
        b"x-content-type-options": b"nosniff",
        b"x-frame-options": b"DENY",
        b"referrer-policy": b"no-referrer",
    }
    return [(k, v) for k, v in headers if k.lower() not in ours] + list(ours.items())


async def _too_large(send: Send, detail: str, path: str) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": _with_security_headers([
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")], path)})
    await send({"type": "http.response.body", "body": body})
