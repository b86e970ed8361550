"""BM25 over passages with bm25s (English stemming and stopwords).

``LexicalIndex.build(texts).scores(query)[i]`` is the BM25 score of ``texts[i]``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

SETTINGS = {"library": "bm25s", "method": "lucene", "k1": 1.2, "b": 0.75,
            "stemmer": "english", "stopwords": "en"}


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer(SETTINGS["stemmer"])


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stopword-free, stemmed tokens of each text."""
    import bm25s

    return bm25s.tokenize(texts, stopwords=SETTINGS["stopwords"], stemmer=_stemmer(),
                          return_ids=False, show_progress=False)


class LexicalIndex:
    def __init__(self, retriever):
        self.retriever = retriever

    @classmethod
    def build(cls, texts: list[str]) -> "LexicalIndex":
        import bm25s

        retriever = bm25s.BM25(method=SETTINGS["method"], k1=SETTINGS["k1"], b=SETTINGS["b"])
        retriever.index(tokenize(texts), show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        self.retriever.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex":
        import bm25s

        return cls(bm25s.BM25.load(str(folder), show_progress=False, allow_pickle=False))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every indexed text for ``query`` (all zeros if no term is known)."""
        vocab = self.retriever.vocab_dict
        terms = [t for t in tokenize([query])[0] if t in vocab]
        if not terms:
            return np.zeros(self.retriever.scores["num_docs"], dtype=np.float32)
        return np.asarray(self.retriever.get_scores(terms), dtype=np.float32)
