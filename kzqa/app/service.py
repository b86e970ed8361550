"""kzqa as a service other programs call, served by the chat's own process (the routes are handed
to Gradio's FastAPI app):

- ``/api/v1``: ``POST ask``, ``POST search``, ``GET documents``, ``GET documents/{id}``,
  ``POST feedback``, with named JSON fields; the OpenAPI schema at ``/api/v1/openapi.json``, human
  docs at ``/api/docs``;
- ``GET /healthz`` (the process is alive), ``GET /readyz`` (the index is loaded and answers; 503
  while it loads or when its database is unreachable), ``GET /metrics`` (Prometheus).

Errors are ``{"error": {"code": …, "message": …}}`` with their status: 400/422 bad input, 401 no or
wrong API key, 404, 413 body too large (the guard, before parsing), 429 rate limited (with
Retry-After), 503 not ready or too busy. Never an exception's text.

(No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations, which
name models defined inside :func:`service_routes`.)

With API keys (:class:`ServiceSettings.keys`, a :class:`kzqa.app.keys.KeyRing`), ``/api/v1`` needs
``Authorization: Bearer <key>``; keys are stored only as SHA-256 hashes. Each key (or each client address, without keys)
gets ``rate_limit`` requests (the ``limits`` library's moving window: never more than N in any
window); at most ``max_concurrent`` questions are answered at once and the rest wait up to
``queue_timeout`` seconds, then get 503.
"""

import asyncio
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Literal, Optional

from .._version import __version__
from ..backends import PendingEngine
from ..qa.engine import MAX_K, MAX_QUESTION_CHARS, QueryError
from ..qa.followup import resolve_conversation
from ..qa.retrieve import DEFAULT_MODE, MODES, Hit
from ..stores.base import IndexProblem
from .keys import KeyRing

log = logging.getLogger("kzqa.api")
request_log = logging.getLogger("kzqa.requests")

DEFAULT_RATE_LIMIT = "20/second"  # per key or client: one person asking never meets it
MAX_CONCURRENT = 4  # questions answered at once (as the chat)
QUEUE_TIMEOUT_S = 30.0  # how long a question waits for its turn before 503
DOCS_ASSETS = "/api/docs/assets"  # Swagger UI's script, style and icon, from the fastapi-offline wheel


# ---------------------------------------------------------------- settings, errors, metrics

@dataclass(frozen=True)
class ServiceSettings:
    keys: KeyRing | None = None  # None (or a ring without keys): /api/v1 needs no key
    rate_limit: str = DEFAULT_RATE_LIMIT
    max_concurrent: int = MAX_CONCURRENT
    queue_timeout: float = QUEUE_TIMEOUT_S
    log_questions: bool = False


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": " ".join(message.split())}}


ROUTES = ("/api/v1/ask", "/api/v1/search", "/api/v1/documents", "/api/v1/feedback", "/api/v1/openapi.json",
          "/api/docs", "/healthz", "/readyz", "/metrics", "/gradio_api/run/ask", "/gradio_api/run/search")


def route_label(path: str) -> str:
    """A request's route as a metric label (few values): '/api/v1/documents/{id}' for any
    document, '/api/docs' for the docs page and its files, the chat's own requests as 'chat'."""
    if path.startswith("/api/v1/documents/"):
        return "/api/v1/documents/{id}"
    if path.startswith("/api/docs"):
        return "/api/docs"
    path = path.rstrip("/") or "/"
    return path if path in ROUTES else "/api/v1/other" if path.startswith("/api/") else "chat"


@dataclass
class Metrics:
    """The Prometheus instruments of one server (its own registry)."""

    registry: object = None
    requests: object = None
    latency: object = None
    answers: object = None
    passages: object = None
    build_seconds: object = None
    index: object = None

    @classmethod
    def create(cls) -> "Metrics":
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

        registry = CollectorRegistry()
        return cls(
            registry,
            Counter("kzqa_http_requests", "HTTP requests by route and status", ["route", "status"], registry=registry),
            Histogram("kzqa_request_seconds", "Time to answer a search or ask request", ["route"], registry=registry,
                      buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)),
            Counter("kzqa_answers", "Answers by status", ["status"], registry=registry),
            Gauge("kzqa_index_passages", "Passages in the serving index", registry=registry),
            Gauge("kzqa_index_build_seconds", "How long the serving index took to build", registry=registry),
            Info("kzqa_index", "The serving index: generation, created_at, store", registry=registry),
        )

    def refresh_index(self, manifest: dict, passages: int) -> None:
        store = manifest.get("store") or {}
        self.passages.set(passages)
        self.build_seconds.set(manifest.get("build_seconds", math.nan))
        self.index.info({"generation": str(store.get("generation", manifest.get("created_at", ""))),
                         "created_at": str(manifest.get("created_at", "")), "store": str(store.get("kind", "files"))})


def log_requests_to_stderr() -> None:
    """The per-request JSON lines on stderr, one a line, as they are (no prefix)."""
    if not request_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        request_log.addHandler(handler)
        request_log.setLevel(logging.INFO)
        request_log.propagate = False


_REQUEST_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class RequestLog:
    """ASGI middleware: one JSON log line per request (id, method, route, status, milliseconds;
    the question only with ``log_questions``), the request id echoed in ``X-Request-ID`` (the
    client's own when it sent a short plain one), and the request counted in ``metrics``."""

    def __init__(self, app, metrics: Metrics, log_questions: bool = False):
        self.app, self.metrics, self.log_questions = app, metrics, log_questions

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if 0 < len(given) <= 64 and set(given) <= _REQUEST_ID_OK else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started, status = time.perf_counter(), 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": list(message.get("headers") or [])
                           + [(b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = route_label(scope["path"])
            self.metrics.requests.labels(route, str(status)).inc()
            line = {"request_id": request_id, "method": scope["method"], "route": route, "path": scope["path"][:200],
                    "status": status, "ms": round(1000 * (time.perf_counter() - started), 1),
                    "client": (scope.get("client") or ("", 0))[0]}
            question = scope["state"].get("question")
            if self.log_questions and question is not None:
                line["question"] = question
            request_log.info(json.dumps(line, ensure_ascii=False))


# ---------------------------------------------------------------- the API


def readiness(engine) -> tuple[bool, str]:
    """(ready, why not): the index has loaded and its store answers (a database reachable)."""
    if isinstance(engine, PendingEngine):
        if not engine.wait(0):
            return False, "the index is still loading"
        try:
            engine.get()
        except Exception:
            log.warning("the index could not be loaded", exc_info=True)
            return False, "the index could not be loaded (the server log has the cause)"
    try:
        _ = engine.manifest  # a database store looks for a newer generation: it must answer
    except Exception as exc:
        log.warning("the index does not answer: %s", exc)
        return False, "the index is temporarily unavailable"
    return True, ""


# Swagger UI as axe-core finds it lacks a page language, a name for its servers list, keyboard
# access to its scrolling examples, and contrast on its version badges, links and method
# badges and its Authorize button; the docs page adds them (checked in Chromium by
# tests/app/test_ui_browser.py).
DOCS_STYLE = """<style>
.swagger-ui .info .title small, .swagger-ui .info .title small.version-stamp { background: #3b4151; }
.swagger-ui .info .title small pre { color: #fff; }
.swagger-ui .info a, .swagger-ui .info .url, .swagger-ui a.nostyle span { color: #1d4f91; }
.swagger-ui .opblock.opblock-post .opblock-summary-method { background: #1e7b4f; color: #fff; }
.swagger-ui .opblock.opblock-get .opblock-summary-method { background: #1d5fa6; color: #fff; }
.swagger-ui .json-schema-2020-12-expand-deep-button { color: #505050; }
.swagger-ui .btn.authorize { border-color: #1e7b4f; color: #1e7b4f; }
.swagger-ui .btn.authorize svg { fill: #1e7b4f; }
</style>"""
DOCS_SCRIPT = """<script>
new MutationObserver(() => {
  const servers = document.getElementById('servers');
  if (servers && !servers.hasAttribute('aria-label')) servers.setAttribute('aria-label', 'Server');
  // examples scroll sideways: keyboard users reach them
  document.querySelectorAll('pre.microlight:not([tabindex])').forEach(pre => pre.setAttribute('tabindex', '0'));
}).observe(document.body, {childList: true, subtree: true});
</script>"""


def accessible_docs(html: str) -> str:
    """Swagger UI's page with a language, the style and the script of DOCS_STYLE/DOCS_SCRIPT."""
    return (html.replace("<html>", '<html lang="en">', 1).replace("</head>", DOCS_STYLE + "</head>", 1)
            .replace("</body>", DOCS_SCRIPT + "</body>", 1))


def service_routes(engine, feedback, settings: ServiceSettings, metrics: Metrics) -> list:
    """The routes of the service (a Mount for /api/v1 and the top-level ones), for a FastAPI
    app's ``routes``; ``engine`` is an Engine or a PendingEngine."""
    from importlib.resources import files

    from fastapi import Depends, FastAPI, Query, Request, Security
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from limits import parse
    from limits.storage import MemoryStorage
    from limits.strategies import MovingWindowRateLimiter
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    limit = parse(settings.rate_limit)
    limiter = MovingWindowRateLimiter(MemoryStorage())
    turns: dict[str, asyncio.Semaphore] = {}

    Mode = Literal[tuple(MODES)]  # type: ignore[valid-type]

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")

    class AskIn(Strict):
        question: str = Field(min_length=1, max_length=4 * MAX_QUESTION_CHARS,
                              description=f"The question (cut to {MAX_QUESTION_CHARS} characters, with a notice).")
        k: int = Field(5, ge=1, le=MAX_K, description="Passages to answer from.")
        mode: Mode = Field(DEFAULT_MODE, description="Retrieval mode.")
        doc_ids: list[str] | None = Field(None, max_length=10_000, description="Only these documents.")
        history: list[str] | None = Field(None, max_length=100, description=(
            "Earlier questions of the conversation, oldest first: a follow-up ('Why was he detained?') is "
            "searched with their topic, as the chat does."))

    class SearchIn(Strict):
        query: str = Field(min_length=1, max_length=4 * MAX_QUESTION_CHARS)
        k: int = Field(5, ge=1, le=MAX_K)
        mode: Mode = DEFAULT_MODE
        doc_ids: list[str] | None = Field(None, max_length=10_000)

    class FeedbackIn(Strict):
        vote: Literal["up", "down"]
        question: str = Field(max_length=4 * MAX_QUESTION_CHARS)
        answer: str = Field("", max_length=100_000)
        resolved_query: str | None = Field(None, max_length=4 * MAX_QUESTION_CHARS)
        passage_ids: list[str] = Field(default_factory=list, max_length=MAX_K)
        mode: Mode = DEFAULT_MODE
        abstained: bool = False
        answer_id: str | None = Field(None, max_length=64, description="A later vote with the same id replaces it.")

    class ShortOut(BaseModel):
        text: str
        marker: int
        start: int
        end: int

    class AnswerOut(BaseModel):
        question: str
        status: Literal["answered", "partial", "not_covered"]
        summary: str | None
        text: str
        abstained: bool
        citations: list[Hit]  # the dataclass itself: its fields are the JSON's
        related: list[Hit]
        mode: str
        lang: str
        notice: str | None
        confidence: float
        quotes: list[list[str | int]]
        short: ShortOut | None

    class SearchOut(BaseModel):
        query: str
        hits: list[Hit]

    class SectionOut(BaseModel):
        title: str
        start: int
        end: int

    class DocumentOut(BaseModel):
        doc_id: str
        title: str
        author: str | None
        publisher: str | None
        date: str | None
        url: str | None
        language: str | None
        sections: list[SectionOut]
        text: str | None = None

    class DocumentsOut(BaseModel):
        documents: list[DocumentOut]

    class FeedbackOut(BaseModel):
        id: int

    class ErrorOut(BaseModel):
        error: dict[str, str]

    def ready_engine():
        ok, why = readiness(engine)
        if not ok:
            raise ApiError(503, "not_ready", why, {"Retry-After": "5"})
        return engine.get() if isinstance(engine, PendingEngine) else engine

    bearer = HTTPBearer(auto_error=False, description="An API key made by `kzqa keys create`, needed when "
                        "the server runs with keys (KZQA_API_KEYS or --api-keys)")

    def client_of(request: Request, credentials: Optional[HTTPAuthorizationCredentials] = Security(bearer)) -> str:
        """Who a request counts against: its key (by hash) or its address; 401 for a missing
        or wrong key when keys are on."""
        if settings.keys is None or not settings.keys.enabled:
            return "addr:" + (request.client.host if request.client else "unknown")
        key = credentials.credentials if credentials is not None else ""
        if not key.strip():
            raise ApiError(401, "unauthorized", "an API key is needed: send 'Authorization: Bearer <key>'",
                           {"WWW-Authenticate": "Bearer"})
        hashed = settings.keys.accepts(key)
        if hashed is None:
            raise ApiError(401, "unauthorized", "the API key is not valid (revoked or mistyped)",
                           {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return "key:" + hashed

    def limited(who: str = Depends(client_of)) -> str:
        if not limiter.hit(limit, "api", who):
            reset = limiter.get_window_stats(limit, "api", who).reset_time
            wait = max(1, math.ceil(reset - time.time()))
            raise ApiError(429, "rate_limited", f"more than {settings.rate_limit} requests: wait {wait} s",
                           {"Retry-After": str(wait)})
        return who

    async def in_turn(call):
        """``call()`` in a worker thread once one of the ``max_concurrent`` turns is free, or 503
        after ``queue_timeout`` seconds of waiting."""
        loop_turns = turns.setdefault("turns", asyncio.Semaphore(settings.max_concurrent))
        try:
            await asyncio.wait_for(loop_turns.acquire(), settings.queue_timeout)
        except asyncio.TimeoutError:
            raise ApiError(503, "busy", f"all {settings.max_concurrent} answering slots stayed busy for "
                                        f"{settings.queue_timeout:g} s: try again", {"Retry-After": "5"}) from None
        try:
            return await run_in_threadpool(call)
        except QueryError as exc:
            raise ApiError(422, "bad_request", str(exc)) from None
        except IndexProblem as exc:
            log.warning("the API could not answer: %s", exc)
            raise ApiError(503, "unavailable", "the index is temporarily unavailable; try again",
                           {"Retry-After": "5"}) from None
        finally:
            loop_turns.release()

    api = FastAPI(title="kzqa", version=__version__, openapi_url="/openapi.json", docs_url=None, redoc_url=None,
                  description="Cited answers from the documents on Kazakhstan–China relations. Errors are "
                              '{"error": {"code", "message"}}.',
                  responses={401: {"model": ErrorOut}, 422: {"model": ErrorOut}, 429: {"model": ErrorOut},
                             503: {"model": ErrorOut}})

    @api.exception_handler(ApiError)
    async def on_api_error(request, exc: ApiError):
        return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=exc.headers)

    @api.exception_handler(RequestValidationError)
    async def on_invalid(request, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse(error_body("bad_json", "the body must be a JSON object"), 400)
        said = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg', '')}"
                         for e in errors[:5])
        return JSONResponse(error_body("invalid", said), 422)

    @api.exception_handler(StarletteHTTPException)
    async def on_http(request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code)

    @api.exception_handler(Exception)
    async def on_crash(request, exc: Exception):
        log.exception("the API failed")
        return JSONResponse(error_body("internal", "the request could not be answered (the server logged the "
                                                   "cause)"), 500)

    @api.post("/ask", response_model=AnswerOut, summary="Answer a question with quoted, cited sentences")
    async def ask(body: AskIn, request: Request, who: str = Depends(limited)):
        ready = ready_engine()
        request.scope["state"]["question"] = body.question
        question = resolve_conversation(list(body.history or []), body.question)

        def answer():
            return ready.ask(question, k=body.k, mode=body.mode, doc_ids=body.doc_ids)

        started = time.perf_counter()
        result = await in_turn(answer)
        metrics.latency.labels("/api/v1/ask").observe(time.perf_counter() - started)
        metrics.answers.labels(result.status).inc()
        return result.to_dict()

    @api.post("/search", response_model=SearchOut, summary="The k most relevant passages, best first")
    async def search(body: SearchIn, request: Request, who: str = Depends(limited)):
        ready = ready_engine()
        request.scope["state"]["question"] = body.query
        started = time.perf_counter()
        hits = await in_turn(lambda: ready.search(body.query, k=body.k, mode=body.mode, doc_ids=body.doc_ids))
        metrics.latency.labels("/api/v1/search").observe(time.perf_counter() - started)
        return {"query": ready.prepare_question(body.query)[0], "hits": [h.to_dict() for h in hits]}

    def document_out(d, text: bool) -> dict:
        out = {k: getattr(d, k) for k in ("doc_id", "title", "author", "publisher", "date", "url", "language")}
        out["sections"] = [s.__dict__ for s in d.sections]
        out["text"] = d.text if text else None
        return out

    @api.get("/documents", response_model=DocumentsOut, summary="The documents of the index (metadata, sections)")
    async def documents(who: str = Depends(limited)):
        ready = ready_engine()
        return {"documents": [document_out(d, False) for d in ready.documents.values()]}

    @api.get("/documents/{doc_id}", response_model=DocumentOut, summary="One document; its text with ?text=true")
    async def document(doc_id: str, text: bool = Query(False), who: str = Depends(limited)):
        ready = ready_engine()
        if doc_id not in ready.documents:
            raise ApiError(404, "not_found", f"no document '{doc_id[:100]}' in this index")
        return document_out(ready.documents[doc_id], text)

    @api.post("/feedback", response_model=FeedbackOut, summary="A vote (thumbs up or down) on an answer")
    async def vote(body: FeedbackIn, who: str = Depends(limited)):
        data = body.model_dump()
        data["resolved_query"] = data["resolved_query"] or data["question"]
        try:
            row = await run_in_threadpool(lambda: feedback.record(**data))
        except (IndexProblem, OSError) as exc:
            log.warning("feedback could not be saved: %s", exc)
            raise ApiError(503, "unavailable", "the vote could not be stored right now; try again") from None
        return {"id": row}

    def healthz(request):
        return JSONResponse({"status": "alive"})

    def readyz(request):
        ok, why = readiness(engine)
        if not ok:
            return JSONResponse(error_body("not_ready", why), 503, headers={"Retry-After": "5"})
        return JSONResponse({"status": "ready", "passages": engine.manifest.get("counts", {}).get("passages")})

    def scrape(request):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if readiness(engine)[0]:
            metrics.refresh_index(engine.manifest, int(engine.manifest.get("counts", {}).get("passages", 0)))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def docs(request):  # Swagger UI 5 from the fastapi-offline wheel: no CDN, works offline
        page = get_swagger_ui_html(openapi_url="/api/v1/openapi.json", title="kzqa API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
                                   swagger_ui_parameters={"deepLinking": False})
        return HTMLResponse(accessible_docs(page.body.decode()))

    swagger_files = StaticFiles(directory=str(files("fastapi_offline") / "static"))
    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", scrape),
            Route("/api/docs", docs), Mount(DOCS_ASSETS, app=swagger_files), Mount("/api/v1", app=api)]


__all__ = ["ApiError", "Metrics", "RequestLog", "ServiceSettings", "error_body", "log_requests_to_stderr",
           "readiness", "route_label", "service_routes"]
