"""What every store shares: the :class:`Store` interface the engine asks, the errors and the
summary of a build.

A store answers these questions, and the engine asks nothing else of it:

- ``current()``: the store to answer one question with (a database store switches to a newer
  build here; every other call of that question goes to the store returned);
- ``top(channel, query, n, within)``: at most ``n`` (row, score) pairs, best first — for a
  dense channel ``query`` is the question's vector (inner product on normalised vectors), for
  ``'lexical'`` the question's text (BM25). Rows outside ``within`` (from :meth:`restrict`)
  never appear, and the filter is applied inside the search, so a filter that keeps few
  documents still yields up to ``n`` rows;
- ``passages(rows)``: ``passages(rows)[i]`` is the passage at ``rows[i]``;
- ``best_sentence(channel, query, rows)``: for each row, the highest inner product of ``query``
  with one of its sentences' vectors;
- ``sentence_vectors(channel, rows)``: for each row, one vector per sentence of its passage
  (``len(passage.sentences)`` rows);
- ``restrict(doc_ids)``: a filter for ``top`` keeping those documents' passages;
- ``manifest``, ``documents``, ``stats`` (the corpus statistics the answer stage needs,
  computed at build time), ``size``, ``channels``, ``has_sentence_vectors(channel)``.

:class:`kzqa.stores.files.FileStore` is the embedded default (the files of an index folder);
:class:`kzqa.stores.postgres.PgStore` is the same in PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np

from ..channels.lexical import CorpusStats
from ..ingest.corpus import Document, Problem
from ..ingest.passages import Passage


class Store(Protocol):
    manifest: dict
    documents: Mapping[str, Document]
    stats: CorpusStats
    waits_on_server: bool  # True: calls wait on another process, so the engine may run them side by side

    @property
    def size(self) -> int: ...

    @property
    def channels(self) -> list[str]: ...

    def has_sentence_vectors(self, channel: str) -> bool: ...

    def current(self) -> "Store": ...

    def restrict(self, doc_ids: list[str]): ...

    def top(self, channel: str, query, n: int, within=None) -> list[tuple[int, float]]: ...

    def passages(self, rows: Sequence[int]) -> list[Passage]: ...

    def best_sentence(self, channel: str, query: np.ndarray, rows: Sequence[int]) -> list[float]: ...

    def sentence_vectors(self, channel: str, rows: Sequence[int]) -> list[np.ndarray]: ...


class IndexProblem(Exception):
    """An index that is missing, broken, stale or built with other models."""


T = TypeVar("T")


def half_size(sentence_vectors: np.ndarray) -> np.ndarray:
    """Sentence vectors as every store keeps them: float16, half the bytes of float32. Their
    components lie in [-1, 1], where float16 keeps 11 significant bits (a cosine moves by
    ~1e-4); a store hands them to the engine as float32, so the engine never sees the type."""
    return np.asarray(sentence_vectors, dtype=np.float16)


def start_each(make: Callable[[str], T], names: Sequence[str], pool: ThreadPoolExecutor) -> dict[str, Future[T]]:
    """``make(name)`` for every name, started at once on ``pool``; ``result[name].result()`` is
    its value (or raises its error). A store opens its question encoders this way while it reads
    its other files: onnxruntime builds a session with the GIL released, so two models open in
    about 0.6× the time of one after the other (0.16 s against 0.26 s here)."""
    return {name: pool.submit(make, name) for name in names}


@dataclass
class BuildSummary:
    index: str
    documents: int
    passages: int
    seconds: float
    problems: list[Problem] = field(default_factory=list)
    cut_sentences: int = 0
    words: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    embedded: int = 0  # passages embedded by this build (any channel)
    reused: int = 0  # passages whose vectors came from the cache
    resplit: int = 0  # documents split again (the others' passages were reused)
    repaired_words: int = 0  # glued words split in cleaning ('yearof' → 'year of')
    spread: dict = field(default_factory=dict)  # with --ray: the cluster and the chunks each node embedded

    def to_dict(self) -> dict:
        def stats(xs: list[int]) -> dict:
            if not xs:
                return {}
            a = np.asarray(xs)
            return {"min": int(a.min()), "median": float(np.median(a)), "mean": round(float(a.mean()), 1),
                    "p95": float(np.percentile(a, 95)), "max": int(a.max())}

        return {"index": self.index, "documents": self.documents, "passages": self.passages,
                "seconds": round(self.seconds, 2), "embedded": self.embedded, "reused": self.reused,
                "resplit_documents": self.resplit, "cut_sentences": self.cut_sentences,
                "repaired_words": self.repaired_words,
                "words": stats(self.words), "tokens": stats(self.tokens),
                "problems": [str(p) for p in self.problems], **({"ray": self.spread} if self.spread else {})}


# HNSW search breadth: recall@10 against exact search ≥ 0.95 on clustered test vectors needs ≥ 256
# (64: 0.73, 128: 0.88, 256: 0.96, 512: 0.99; tests/stores/test_files.py); at least 2n for top-n.
HNSW_EF_SEARCH = 256
