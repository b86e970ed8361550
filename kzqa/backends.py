"""Where an index lives: files in a folder (the embedded default) or a PostgreSQL database.

``load()`` and ``build()`` pick the place: a ``db`` URL (or ``$KZQA_DATABASE_URL`` when no
folder is given) means PostgreSQL (:mod:`kzqa.stores.postgres`), anything else the folder
(:mod:`kzqa.stores.files`). Search and answers are the same either way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from .channels.encoders import MULTILINGUAL_MODEL
from .ingest.passages import ChunkParams
from .qa.engine import Engine
from .stores.base import BuildSummary, IndexProblem
from .stores.building import Embedding
from .stores.files import open_index
from .stores.filewrite import build as build_files
from .stores.postgres import (
    ENV_URL,
    build_db,
    database_url,
    is_database_url,
    open_database,
)


def _database(path: str | Path | None, db: str | None) -> str | None:
    """The database URL to use, or None for files; IndexProblem if ``db`` is not a URL."""
    if db is not None and not is_database_url(db):
        raise IndexProblem("--db must be a PostgreSQL connection string: a postgresql:// URL or 'host=… dbname=…' "
                           "(the value given is not shown: it may hold a password)")
    return db if db is not None else (database_url() if path is None else None)


def load(path: str | Path | None = None, check: bool = True, db: str | None = None, **params) -> Engine:
    """Open an index and its models: the database at ``db`` (or ``$KZQA_DATABASE_URL`` when
    ``path`` is not given), else the folder ``path`` ($KZQA_INDEX, else the project's
    ``embeddings/``). Raises IndexProblem with the rebuild command if the index is missing,
    stale or broken, or the database cannot be reached."""
    url = _database(path, db)
    store, encoders = open_database(url, check=check) if url else open_index(path, check=check)
    return Engine(store, encoders, **params)


def build(corpus: str | Path = "corpus", index: str | Path | None = None, model: str | None = None,
          multilingual_model: str | None = MULTILINGUAL_MODEL, params: ChunkParams | None = None,
          index_type: str = "auto", progress: bool = False, db: str | None = None, device: str = "cpu",
          ray: str | None = None, sentence_vectors: str = "all") -> BuildSummary:
    """Build the index of ``corpus`` into the folder ``index`` or, given ``db`` (or
    ``$KZQA_DATABASE_URL`` when ``index`` is not given), into that database; atomically either
    way. ``device``: cpu, cuda or auto (the GPU when torch sees one); ``ray``: the address of a Ray
    cluster to embed on ('auto': a local one); ``sentence_vectors``: which channels keep sentence
    vectors for quoting ('all', 'dense' or 'none'; fewer: a smaller, faster build). See :func:`kzqa.stores.filewrite.build` for the
    other parameters (``index_type`` is FAISS's)."""
    url = _database(index, db)
    where = Embedding(device=device, ray=ray, sentence_vectors=sentence_vectors)  # checks the choice
    if ray:  # fail before reading the corpus when the cluster is not there
        from .channels.rayspread import connect

        connect(ray)
    if url:
        return build_db(url, corpus, model=model, multilingual_model=multilingual_model, params=params,
                        progress=progress, where=where)
    return build_files(corpus, index, model=model, multilingual_model=multilingual_model, params=params,
                       index_type=index_type, progress=progress, where=where)


class PendingEngine:
    """An engine being loaded in a background thread (e.g. while the web framework imports).
    ``get()`` waits for it and re-raises a loading error; any other attribute is the engine's."""

    def __init__(self, load_engine: Callable[[], Engine]):
        self._done = threading.Event()
        self._engine: Engine | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(load_engine,), name="kzqa-load", daemon=True).start()

    def _run(self, load_engine: Callable[[], Engine]) -> None:
        try:
            self._engine = load_engine()
        except BaseException as exc:  # handed to whoever waits
            self._error = exc
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once loading has ended (successfully or not)."""
        return self._done.wait(timeout)

    def get(self) -> Engine:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._engine

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.get(), name)


def load_in_background(path: str | Path | None = None, db: str | None = None, warm: bool = False,
                       **params) -> PendingEngine:
    """Start :func:`load` in a thread and return at once; with ``warm``, :meth:`Engine.warm_up`
    runs there too, so that the first user's question pays neither the models' first run nor
    the Chinese word list."""
    def load_and_warm() -> Engine:
        engine = load(path, db=db, **params)
        if warm:
            try:
                engine.warm_up()
            except Exception:  # noqa: BLE001 — a failing question fails for users too, who are told why
                logging.getLogger("kzqa").debug("the warm-up failed", exc_info=True)
        return engine

    return PendingEngine(load_and_warm)


__all__ = ["ENV_URL", "PendingEngine", "build", "load", "load_in_background"]
