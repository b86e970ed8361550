"""``kzqa.connect(url, api_key=…)``: a running kzqa server used like ``kzqa.load()``.

The object it returns has the engine's ``search()``, ``ask()`` and ``documents``, returning the
same :class:`Hit`, :class:`Answer` and :class:`Document` dataclasses, so code written against the
local engine runs against a server unchanged. A request the server refuses as made (bad input,
a missing or wrong key, an unknown document, too large, rate limited) raises
:class:`QueryError` with the server's message; a server that cannot answer (unreachable, not
ready, its index unavailable) raises :class:`IndexProblem`. A reply 429 (rate limited) or 503
(busy, loading) that says when to come back (Retry-After, at most MAX_WAIT_S) is retried after
that wait, up to ``retries`` times.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from .ingest.corpus import Document, Section
from .qa.answer import Answer
from .qa.engine import QueryError
from .qa.retrieve import DEFAULT_MODE, Hit
from .stores.base import IndexProblem

REFUSED = (400, 401, 403, 404, 405, 409, 413, 422, 429)  # the request, not the server, is at fault
MAX_WAIT_S = 10.0  # the longest Retry-After the client waits out by itself


class RemoteEngine:
    """A kzqa server's REST API (/api/v1) with the engine's interface."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0, retries: int = 3):
        import httpx

        self.url, self.retries = url.rstrip("/"), retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=timeout)
        self._documents: RemoteDocuments | None = None

    def _call(self, method: str, path: str, **kwargs) -> dict:
        import httpx

        for attempt in range(self.retries + 1):
            try:
                reply = self._http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise IndexProblem(f"the kzqa server at {self.url} cannot be reached ({type(exc).__name__})") from None
            wait = _retry_after(reply)
            if wait is None or attempt == self.retries:
                break
            time.sleep(wait)
        if reply.status_code < 400:
            return reply.json()
        try:
            message = reply.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {reply.status_code}"
        if reply.status_code == 429 and reply.headers.get("retry-after"):
            message += f" (retry after {reply.headers['retry-after']} s)"
        raise (QueryError if reply.status_code in REFUSED else IndexProblem)(f"{message} [{self.url}]")

    def search(self, question: str, k: int = 5, mode: str = DEFAULT_MODE,
               doc_ids: list[str] | None = None) -> list[Hit]:
        """The k passages most relevant to ``question``, best first (as :meth:`Engine.search`)."""
        body = {"query": question, "k": k, "mode": mode, "doc_ids": doc_ids}
        return [Hit.from_dict(h) for h in self._call("POST", "/search", json=body)["hits"]]

    def ask(self, question: str, k: int = 5, mode: str = DEFAULT_MODE,
            doc_ids: list[str] | None = None) -> Answer:
        """An extractive answer with citations, or a declined one (as :meth:`Engine.ask`)."""
        body = {"question": question, "k": k, "mode": mode, "doc_ids": doc_ids}
        return Answer.from_dict(self._call("POST", "/ask", json=body))

    @property
    def documents(self) -> Mapping[str, Document]:
        """The server's documents by id; each one's text is fetched when it is first read."""
        if self._documents is None:
            self._documents = RemoteDocuments(self)
        return self._documents

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RemoteEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _retry_after(reply) -> float | None:
    """How long to wait before asking again, for a 429 or 503 that says so (and not too long)."""
    if reply.status_code not in (429, 503):
        return None
    try:
        wait = float(reply.headers.get("retry-after", ""))
    except ValueError:
        return None
    return wait if 0 <= wait <= MAX_WAIT_S else None


class RemoteDocuments(Mapping):
    """The documents of a server, as ``engine.documents`` is: a mapping id → Document."""

    def __init__(self, remote: RemoteEngine):
        self._remote = remote
        self._ids = [d["doc_id"] for d in remote._call("GET", "/documents")["documents"]]
        self._read: dict[str, Document] = {}

    def __getitem__(self, doc_id: str) -> Document:
        if doc_id not in self._ids:
            raise KeyError(doc_id)
        if doc_id not in self._read:
            data = self._remote._call("GET", f"/documents/{doc_id}", params={"text": "true"})
            self._read[doc_id] = Document(
                doc_id=data["doc_id"], path="", text=data["text"], title=data["title"],
                sections=[Section(**s) for s in data["sections"]],
                **{k: data.get(k) for k in ("author", "publisher", "date", "url", "language")})
        return self._read[doc_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def connect(url: str, api_key: str | None = None, timeout: float = 60.0, retries: int = 3) -> RemoteEngine:
    """A running kzqa server at ``url`` (e.g. "http://127.0.0.1:7860"), used like ``kzqa.load()``."""
    return RemoteEngine(url, api_key=api_key, timeout=timeout, retries=retries)


__all__ = ["RemoteEngine", "connect"]
