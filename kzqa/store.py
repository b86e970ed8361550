"""Where passages and their vectors live: one small interface between the engine and storage.

A store answers five questions, and the engine asks nothing else of it:

- ``top(channel, query, n, allowed)``: at most ``n`` (row, score) pairs, best first — for a
  dense channel ``query`` is the question's vector (inner product on normalised vectors), for
  ``'lexical'`` the question's text (BM25). Rows outside ``allowed`` (an array of rows, from
  :meth:`rows_of`) never appear, and the filter is applied inside the search, so a filter that
  keeps few documents still yields up to ``n`` rows;
- ``passage(row)`` and ``sentence_vectors(channel, row)``: the passage and one vector per
  sentence of it (``len(passage.sentences)`` rows);
- ``rows_of(doc_ids)`` and ``row_of(passage_id)``;
- ``stats``: the corpus statistics the answer stage needs (computed at build time).

:class:`FileStore` is the embedded default: the FAISS, bm25s, JSONL and ``.npy`` files of an
index folder (see :mod:`kzqa.index`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .corpus import Document
from .lexical import CorpusStats
from .passages import Passage

# A filter keeping at most this many rows is searched exactly among them (vectors read back from
# the index); a wider one goes through FAISS's own ID selector.
EXACT_FILTER_ROWS = 50_000
# HNSW search breadth: recall@10 against exact search ≥ 0.95 on clustered test vectors needs ≥ 256
# (64: 0.73, 128: 0.88, 256: 0.96, 512: 0.99; tests/test_store.py); at least 2n for top-n.
HNSW_EF_SEARCH = 256


class Store(Protocol):
    manifest: dict
    documents: dict[str, Document]
    stats: CorpusStats

    @property
    def size(self) -> int: ...

    @property
    def channels(self) -> list[str]: ...

    def has_sentence_vectors(self, channel: str) -> bool: ...

    def top(self, channel: str, query, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]: ...

    def passage(self, row: int) -> Passage: ...

    def sentence_vectors(self, channel: str, row: int) -> np.ndarray: ...

    def rows_of(self, doc_ids: list[str]) -> np.ndarray: ...

    def row_of(self, passage_id: str) -> int: ...


class FileStore:
    """The files of one index folder, opened by :func:`kzqa.index.open_index`."""

    def __init__(self, path, manifest: dict, documents: dict[str, Document], passages: list[Passage],
                 vectors: dict, sentence_vectors: dict[str, np.ndarray], lexical, stats: CorpusStats):
        self.path = path
        self.manifest = manifest
        self.documents = documents
        self.passages = passages
        self.vectors = vectors  # channel → faiss index
        self._sentence_vectors = sentence_vectors
        self.lexical = lexical
        self.stats = stats
        counts = [len(p.sentences) for p in passages]
        self._sentence_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._doc_of_row = np.array([p.doc_id for p in passages])
        self._rows = {p.passage_id: i for i, p in enumerate(passages)}

    @property
    def size(self) -> int:
        return len(self.passages)

    @property
    def channels(self) -> list[str]:
        return list(self.vectors) + (["lexical"] if self.lexical is not None else [])

    def has_sentence_vectors(self, channel: str) -> bool:
        vectors = self._sentence_vectors.get(channel)
        return vectors is not None and len(vectors) > 0 and all(p.sentences for p in self.passages)

    def top(self, channel: str, query, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        if n <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        if channel == "lexical":
            return self.lexical.top(query, n, allowed)
        return faiss_top(self.vectors[channel], np.asarray(query, dtype=np.float32), n, allowed)

    def passage(self, row: int) -> Passage:
        return self.passages[row]

    def sentence_vectors(self, channel: str, row: int) -> np.ndarray:
        lo, hi = self._sentence_offsets[row], self._sentence_offsets[row + 1]
        return np.asarray(self._sentence_vectors[channel][lo:hi], dtype=np.float32)

    def rows_of(self, doc_ids: list[str]) -> np.ndarray:
        return np.flatnonzero(np.isin(self._doc_of_row, list(doc_ids))).astype(np.int64)

    def row_of(self, passage_id: str) -> int:
        return self._rows[passage_id]


def faiss_top(index, q: np.ndarray, n: int, allowed: np.ndarray | None = None,
              exact_limit: int = EXACT_FILTER_ROWS) -> list[tuple[int, float]]:
    """Top-n (row, score) of a FAISS inner-product index, best first, restricted to ``allowed``
    inside the search: exactly among them when they are at most ``exact_limit`` rows, else
    through FAISS's ID selector (HNSW searched with breadth max(HNSW_EF_SEARCH, 2n))."""
    import faiss

    n = min(n, index.ntotal if allowed is None else len(allowed))
    if n <= 0:
        return []
    if allowed is not None and len(allowed) <= exact_limit:
        vecs = index.reconstruct_batch(np.asarray(allowed, dtype=np.int64))
        scores = vecs @ q
        best = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        return sorted(((int(allowed[i]), float(scores[i])) for i in best), key=lambda t: (-t[1], t[0]))
    params = None
    if allowed is not None:
        selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        hnsw = _hnsw_of(index)
        params = (faiss.SearchParametersHNSW(sel=selector, efSearch=max(HNSW_EF_SEARCH, 2 * n)) if hnsw is not None
                  else faiss.SearchParameters(sel=selector))
    elif _hnsw_of(index) is not None:
        params = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, 2 * n))
    d, i = index.search(q[None, :], n, params=params) if params is not None else index.search(q[None, :], n)
    return [(int(row), float(score)) for row, score in zip(i[0], d[0]) if row >= 0]


def _hnsw_of(index):
    """The HNSW graph of an HNSW index (None for other index types)."""
    import faiss

    try:
        return faiss.downcast_index(index).hnsw
    except AttributeError:
        return None
