"""BM25 over passages with bm25s (English stemming and stopwords), and the corpus statistics
the answer stage scores sentences with.

``LexicalIndex.build(texts).top(query, n)`` lists (i, BM25 score of ``texts[i]``) for the ``n``
best texts with a positive score, best first.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .vocabulary import Vocabulary

SETTINGS = {"library": "bm25s", "method": "lucene", "k1": 1.2, "b": 0.75,
            "stemmer": "english", "stopwords": "en"}


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer(SETTINGS["stemmer"])


_WORD = re.compile(r"(?u)\b\w\w+\b")  # bm25s's (and scikit-learn's) token pattern


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    """bm25s's English stopwords, read from its ``stopwords.py`` without importing bm25s itself
    (whose ``__init__`` imports numba and scipy: ~0.15 s a cold start that only asks)."""
    import importlib.util

    assert SETTINGS["stopwords"] == "en"
    package = importlib.util.find_spec("bm25s")
    path = Path(package.submodule_search_locations[0]) / "stopwords.py"
    spec = importlib.util.spec_from_file_location("_kzqa_bm25s_stopwords", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return frozenset(module.STOPWORDS_EN)


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stopword-free, stemmed tokens of each text: exactly
    ``bm25s.tokenize(texts, stopwords="en", stemmer=english, return_ids=False)``, without its
    fixed cost of ~0.25 ms a call (progress bars, a stopword set per text), which the answer
    stage paid about 16 times a question. ``tests/channels/test_lexical.py`` holds the two equal."""
    stop = _stopwords()
    words = [[w for w in _WORD.findall(text.lower()) if w not in stop] for text in texts]
    unique = list(dict.fromkeys(w for ws in words for w in ws))
    stem = dict(zip(unique, _stemmer().stemWords(unique)))
    return [[stem[w] for w in ws] for ws in words]


class LexicalIndex:
    def __init__(self, retriever):
        self.retriever = retriever

    @classmethod
    def build(cls, texts: list[str]) -> "LexicalIndex":
        import bm25s
        from bm25s.tokenization import Tokenized

        # Term ids in sorted order (bm25s numbers terms in set order, which differs from one
        # process to the next): the same texts always give byte-identical index files.
        tokens = tokenize(texts)
        vocab = {t: i for i, t in enumerate(sorted({t for ts in tokens for t in ts}))}
        retriever = bm25s.BM25(method=SETTINGS["method"], k1=SETTINGS["k1"], b=SETTINGS["b"])
        retriever.index(Tokenized(ids=[[vocab[t] for t in ts] for ts in tokens], vocab=vocab), show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        self.retriever.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex":
        """The index bm25s saved in ``folder``, read without importing bm25s (see :class:`SavedBM25`)."""
        return cls(SavedBM25.load(folder))

    def document_frequencies(self) -> dict[str, int]:
        """Texts containing each stemmed term, read off bm25s's term-by-document matrix."""
        counts = np.diff(np.asarray(self.retriever.scores["indptr"]))
        return {t: int(counts[i]) for t, i in self.retriever.vocab_dict.items() if t and i < len(counts)}

    def top(self, query: str, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """At most ``n`` (row, BM25 score) pairs with a positive score, best first, among the
        ``allowed`` rows (bm25s applies the mask while scoring). bm25s's own ``retrieve`` takes
        about 3 ms per question at 100,000 passages (thread pool and progress set-up); its
        ``get_scores`` plus a partial sort takes 0.15 ms, so this uses the latter."""
        vocab = self.retriever.vocab_dict
        terms = [t for t in tokenize([query])[0] if t in vocab]
        if not terms or n <= 0:
            return []
        mask = None
        if allowed is not None:
            mask = np.zeros(self.retriever.scores["num_docs"], dtype=np.float32)
            mask[np.asarray(allowed, dtype=np.int64)] = 1.0
        scores = np.asarray(self.retriever.get_scores(terms, weight_mask=mask), dtype=np.float32)
        n = min(n, int((scores > 0).sum()))
        if n <= 0:
            return []
        best = np.argpartition(-scores, n - 1)[:n]
        return sorted(((int(r), float(scores[r])) for r in best), key=lambda t: (-t[1], t[0]))


class SavedBM25:
    """A BM25 index that bm25s saved (``BM25.save``), read with NumPy alone and scored as bm25s's
    ``get_scores`` does (its lucene method: each query term's precomputed column of the
    term-by-document matrix summed, in float32, then multiplied by the weight mask); the same
    ``scores``, ``vocab_dict`` and ``get_scores`` as a ``bm25s.BM25``, without importing bm25s
    (numba, scipy: ~0.15 s of every cold start). ``tests/channels/test_lexical.py`` holds the
    scores equal to bm25s's."""

    FILES = ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy")

    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, num_docs: int,
                 vocab_dict: dict[str, int], dtype: str = "float32"):
        self.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": num_docs}
        self.vocab_dict, self.dtype = vocab_dict, dtype

    @classmethod
    def load(cls, folder: Path) -> "SavedBM25":
        import json

        folder = Path(folder)
        params = json.loads((folder / "params.index.json").read_text(encoding="utf-8"))
        if params.get("method") != SETTINGS["method"]:
            raise ValueError(f"{folder}: a BM25 index of method {params.get('method')!r}, not {SETTINGS['method']!r}")
        data, indices, indptr = (np.load(folder / name, allow_pickle=False) for name in cls.FILES)
        vocab = json.loads((folder / "vocab.index.json").read_text(encoding="utf-8"))
        return cls(data, indices, indptr, int(params["num_docs"]), vocab, params.get("dtype", "float32"))

    def get_scores(self, terms: list[str], weight_mask: np.ndarray | None = None) -> np.ndarray:
        data, indices, indptr = self.scores["data"], self.scores["indices"], self.scores["indptr"]
        scores = np.zeros(self.scores["num_docs"], dtype=np.dtype(self.dtype))
        for term in terms:
            t = self.vocab_dict.get(term)
            if t is not None:
                np.add.at(scores, indices[indptr[t]:indptr[t + 1]], data[indptr[t]:indptr[t + 1]])
        return scores * weight_mask if weight_mask is not None else scores


def lucene_idf(df, n: int):
    """bm25s's (Lucene's) inverse document frequency of terms found in ``df`` of ``n`` texts
    (``df`` a number or a NumPy array)."""
    return np.log(1 + (n - df + 0.5) / (df + 0.5))


@dataclass(frozen=True)
class CorpusStats:
    """What the answer stage needs to know about the whole corpus, computed once per index:
    ``df[t]`` = passages containing stemmed term ``t`` (of ``n``), ``words`` = every lower-cased
    word of the texts, titles, authors and publishers, ``genders[w]`` = 'f' or 'm' for a
    capitalised word (a person's name) that the corpus clearly refers to as she or he,
    ``avg_sentence_terms`` = mean stemmed-term count of a sentence (for sentence BM25)."""

    df: dict[str, int]
    n: int
    words: frozenset[str]
    genders: dict[str, str]
    avg_sentence_terms: float = 12.0
    common: frozenset[str] = frozenset()  # stemmed terms found in more than a quarter of the passages
    vocabulary: Vocabulary | None = None  # the words in the multilingual model (None without one)
    names: frozenset[str] = frozenset()  # lower-cased words written capitalised inside sentences (names)
    acronyms: frozenset[str] = frozenset()  # initials of the texts' names of several words ('CIS', 'AIIB')

    def to_dict(self) -> dict:
        """A JSON-ready copy: ``CorpusStats.from_dict(s.to_dict()) == s``."""
        return {"df": self.df, "n": self.n, "words": sorted(self.words), "genders": self.genders,
                "avg_sentence_terms": self.avg_sentence_terms, "common": sorted(self.common),
                "vocabulary": None if self.vocabulary is None else self.vocabulary.to_dict(),
                "names": sorted(self.names), "acronyms": sorted(self.acronyms)}

    @classmethod
    def from_dict(cls, data: dict) -> "CorpusStats":
        vocabulary = Vocabulary.from_dict(data["vocabulary"]) if data.get("vocabulary") else None
        return cls({str(k): int(v) for k, v in data["df"].items()}, int(data["n"]), frozenset(data["words"]),
                   dict(data["genders"]), float(data["avg_sentence_terms"]), frozenset(data["common"]), vocabulary,
                   frozenset(data.get("names", ())), frozenset(data.get("acronyms", ())))

    def stem(self, word: str) -> str:
        """The stemmed form of one word (as :func:`tokenize` stems it; '' for a stopword)."""
        terms = tokenize([word])[0]
        return terms[0] if terms else ""

    def idf(self, term: str) -> float:
        """BM25 (Lucene) inverse document frequency of a stemmed term."""
        return float(lucene_idf(self.df.get(term, 0), self.n))

    def bm25(self, query_terms: list[str], text_terms: list[str]) -> float:
        """BM25 of a short text (a sentence) for the query terms, with this corpus's IDF and
        bm25s's k1 and b (sentences are scored against the average sentence length)."""
        k1, b = SETTINGS["k1"], SETTINGS["b"]
        norm = k1 * (1 - b + b * len(text_terms) / max(self.avg_sentence_terms, 1.0))
        score = 0.0
        for t in set(query_terms):
            tf = text_terms.count(t)
            if tf:
                score += self.idf(t) * tf * (k1 + 1) / (tf + norm)
        return score


MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_PRONOUNS = {"she": "f", "her": "f", "herself": "f", "he": "m", "his": "m", "him": "m", "himself": "m"}


def _genders(sentences: list[str]) -> dict[str, str]:
    """Capitalised words that open a sentence as its subject ("Sayragul Sauytbay, …", never seen
    in lower case) followed by she/her or he/his/him in the rest of that sentence or the next,
    at least twice and 80% of the time one gender: the people the corpus calls she or he."""
    lower = {w for s in sentences for w in re.findall(r"\b[a-z][a-z’'\-]+", s)}
    # words used as adjectives or common nouns ('the Kazakh government', 'an ethnic Kazakh')
    lower |= {w.lower() for s in sentences for w in re.findall(r"\b(?:the|a|an|ethnic)\s+([A-Z][a-z’'\-]+)", s)}
    counts: dict[str, dict[str, int]] = {}
    for sentence, following in zip(sentences, sentences[1:] + [""]):
        subject = re.match(r"\s*((?:[A-Z][a-z’'\-]+\s+){0,2}[A-Z][a-z’'\-]+)\b(?!\s+[a-z]+\s+of\b)", sentence)
        if not subject:
            continue
        words = [w.lower() for w in subject.group(1).split()]
        words = [w for w in words if w not in lower and not re.fullmatch(MONTHS, w) and not w.endswith("ing")]
        after = sentence[subject.end():] + " " + following
        for p in re.findall(r"\b(she|her|herself|he|his|him|himself)\b", after.lower()):
            for word in words:
                tally = counts.setdefault(word, {"f": 0, "m": 0})
                tally[_PRONOUNS[p]] += 1
    return {word: g for word, c in counts.items() for g in ("f", "m")
            if c["f"] + c["m"] >= 2 and c[g] / (c["f"] + c["m"]) >= 0.8}



def corpus_stats(passage_texts: list[str], sentence_texts: list[str], other_texts: list[str],
                 df: dict[str, int] | None = None) -> CorpusStats:
    """Statistics of a corpus: passages (for df, unless given, e.g. from
    :meth:`LexicalIndex.document_frequencies`), their sentences in reading order (for the average
    length, from a sample of 20,000, and genders) and the documents' texts, titles, authors and
    publishers (words)."""
    if df is None:
        df = {}
        for terms in tokenize(passage_texts):
            for t in set(terms):
                df[t] = df.get(t, 0) + 1
    step = max(1, len(sentence_texts) // 20_000)
    lengths = [len(t) for t in tokenize(sentence_texts[::step])] if sentence_texts else [12]
    words = frozenset(w for text in other_texts for w in re.findall(r"[a-z]+", text.lower()))
    names = _names(other_texts)
    acronyms = frozenset(initials for text in other_texts for m in _MULTIWORD_NAME.finditer(text)
                         if len(initials := "".join(w[0] for w in m.group(0).split() if w[0].isupper())) >= 2)
    n = len(passage_texts)
    return CorpusStats(df, n, words, _genders(sentence_texts), float(np.mean(lengths)) if lengths else 12.0,
                       frozenset(t for t, d in df.items() if d > n / 4), names=names, acronyms=acronyms)


def _names(texts: list[str]) -> frozenset[str]:
    """Lower-cased words the texts write capitalised inside a sentence more often than in lower
    case (counting every form of the word: 'project', 'projects'): 'kazakhstan', 'bayterek',
    'nazarbayev', not 'project' (capitalised in titles: 'Project System')."""
    capitalised = Counter(m.group(1).lower() for text in texts for m in _NAME_INSIDE.finditer(text))
    lower = Counter(w for text in texts for w in re.findall(r"\b[a-z]+\b", text))
    stem = dict(zip(list(capitalised) + list(lower), _stemmer().stemWords(list(capitalised) + list(lower))))
    lower_by_stem = Counter()
    for w, n in lower.items():
        lower_by_stem[stem[w]] += n
    return frozenset(w for w, n in capitalised.items() if n > lower_by_stem[stem[w]])


# a name of several capitalised words ('Commonwealth of Independent States', 'Asian Infrastructure Investment Bank')
_MULTIWORD_NAME = re.compile(r"[A-Z][a-z]+(?:\s+(?:of\s+|and\s+|for\s+|the\s+)*[A-Z][a-z]+)+")
_NAME_INSIDE = re.compile(r"(?<=[\w,;:)] )([A-Z][a-z]+)\b")  # a capitalised word after a word, not a full stop
