"""What the web app lets in, in front of Gradio (an ASGI middleware).

- **No uploads**: the app takes no files, so every ``…/upload`` request is refused (403) before
  anything is written to disk.
- **Only /ask and /search by name**: ``/gradio_api/run/NAME`` and ``/gradio_api/call/NAME`` serve
  ``ask`` and ``search`` only; a body naming a function by ``fn_index`` is refused, so the chat's
  private functions run only through the chat's own queue.
- **Clean 4xx for bad input**: the body of an /ask or /search call is checked here — JSON, a
  ``data`` list of the question then optional k and mode (defaults filled in), a question that
  can be searched, a whole k, a known mode — and anything wrong is answered with a 4xx and one
  line, ``{"error": "…"}``, never a Python object or a traceback.
- **Nothing left behind**: :func:`private_temp_folder` gives the server a temporary folder of its
  own, removed when it stops.
- **REST bodies at most MAX_BODY**: a POST to ``/api/…`` larger than 64 KB is answered 413 (in the
  API's ``{"error": {"code", "message"}}`` form) before it is parsed.
- **Login throttled per client address**: at most LOGIN_RATE attempts (the ``limits`` library's
  moving window) on ``/login``; then 429 with one line.

``Guard(app, check)`` wraps the ASGI ``app``; ``check(question, k, mode)`` raises ValueError with the
message for the client (the engine's own checks).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

ENDPOINTS = ("ask", "search")
DEFAULTS = (5, "hybrid")  # k and mode when a call leaves them out
MAX_BODY = 64 * 1024  # bytes of a call's body (a question is at most a few thousand characters)
LOGIN_RATE = "10/minute"
_CALL = re.compile(r"(?:/gradio_api)?/(?:run|call)/([^/]+)/?")


def private_temp_folder() -> Path:
    """A new folder for this server's temporary files (inside $GRADIO_TEMP_DIR when set), made
    Gradio's through $GRADIO_TEMP_DIR; the server removes it when it stops. Call it before
    Gradio is imported, which reads the variable once."""
    folder = Path(tempfile.mkdtemp(prefix="kzqa-gradio-", dir=os.environ.get("GRADIO_TEMP_DIR") or None))
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def _reply(status: int, message: str, code: str | None = None):
    """A JSON error reply: ``{"error": "…"}``, or the REST API's ``{"error": {"code", "message"}}``
    when a ``code`` is given."""
    said = " ".join(message.split())
    body = json.dumps({"error": {"code": code, "message": said} if code else said}, ensure_ascii=False).encode()

    async def send_reply(send) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return send_reply


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def checked_body(raw: bytes, check: Callable[[object, object, object], None]) -> bytes:
    """The body of an /ask or /search call with k and mode filled in, or BadRequest saying what
    is wrong with it."""
    try:
        body = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest(400, 'the body must be JSON: {"data": ["your question", k, mode]}') from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise BadRequest(400, 'the body must be a JSON object with a "data" list: {"data": ["your question", k, mode]}')
    if "fn_index" in body:
        raise BadRequest(400, "fn_index is not accepted: call /gradio_api/run/ask or /gradio_api/run/search by name")
    data = body["data"]
    if not data:
        raise BadRequest(422, '"data" is empty: give the question first, then optionally k and mode')
    if len(data) > 1 + len(DEFAULTS):
        raise BadRequest(422, f'"data" holds {len(data)} values; at most 3 are taken: the question, k and mode')
    data = data + list(DEFAULTS[len(data) - 1:])
    try:
        check(*data)
    except ValueError as exc:
        raise BadRequest(422, str(exc)) from None
    return json.dumps({**body, "data": data}).encode()


class Guard:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app, check: Callable[[object, object, object], None], login_rate: str = LOGIN_RATE):
        from limits import parse
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self.app, self.check = app, check
        self.login_limit = parse(login_rate)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if path.rstrip("/").endswith("/upload"):
            return await _reply(403, "this app takes no files: uploads are refused")(send)
        if path.rstrip("/").endswith("/login") and method == "POST":
            client = (scope.get("client") or ("unknown", 0))[0]
            if not self.limiter.hit(self.login_limit, "login", client):
                return await _reply(429, f"too many login attempts from {client}: wait a minute")(send)
        if path.startswith("/api/") and method in ("POST", "PUT", "PATCH"):
            try:  # the REST API parses its own bodies, once they are known to be small enough
                body = await _read_body(receive, _declared_length(scope))
            except BadRequest as exc:
                return await _reply(exc.status, str(exc), "too_large" if exc.status == 413 else "bad_request")(send)
            return await self.app(scope, _replay(body, receive), send)
        match = _CALL.fullmatch(path)
        if match and method == "POST":
            if match.group(1) not in ENDPOINTS:
                return await _reply(404, f"no endpoint '{match.group(1)[:40]}': call /gradio_api/run/ask or "
                                         "/gradio_api/run/search")(send)
            try:
                body = checked_body(await _read_body(receive), self.check)
            except BadRequest as exc:
                return await _reply(exc.status, str(exc))(send)
            return await self.app(_with_length(scope, len(body)), _replay(body, receive), send)
        return await self.app(scope, receive, send)


def _declared_length(scope) -> int | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _read_body(receive, declared: int | None = None) -> bytes:
    """The request's body, or BadRequest 413 as soon as it is known to exceed MAX_BODY (from its
    Content-Length before anything is read, else while reading)."""
    if declared is not None and declared > MAX_BODY:
        raise BadRequest(413, f"the body is larger than {MAX_BODY // 1024} KB")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest(400, "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest(413, f"the body is larger than {MAX_BODY // 1024} KB")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """A ``receive`` that hands on ``body`` once, then waits on the client's own (disconnects)."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _with_length(scope: dict, length: int) -> dict:
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
    return {**scope, "headers": headers + [(b"content-length", str(length).encode())]}
