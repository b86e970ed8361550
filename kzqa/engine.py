"""The engine behind the public API: an opened index, its models, ``search`` and ``ask``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .abstain import AbstainModel, decide, features, load_model, missing_detail
from .answer import PARTIAL, Answer, Candidate, SelectionParams, compose, partial_summary, select_sentences
from .corpus import Document
from .index import DENSE, LEXICAL, MULTILINGUAL, StoredIndex, open_index
from .lexical import CorpusStats, corpus_stats, tokenize
from .passages import Passage
from .question import analyse, topic_words
from .retrieve import (DEFAULT_MODE, MODES, SENTENCE_SUFFIX, FusionParams, Hit, detect_language,
                       normalise_query, rrf, top_k)

MAX_QUESTION_CHARS = 2000


class QueryError(ValueError):
    """A question that cannot be searched (empty, unknown mode …)."""


@dataclass
class Retrieval:
    """One search's internals, kept for composing the answer and for evaluation."""

    query: str
    lang: str
    mode: str
    hits: list[Hit]
    query_vectors: dict[str, np.ndarray]
    channel_scores: dict[str, np.ndarray]
    rankings: dict[str, list[int]]


class Engine:
    """Search and answer over one index. Thread-safe for concurrent readers."""

    def __init__(self, stored: StoredIndex, encoders: dict, fusion: FusionParams | None = None,
                 abstain: AbstainModel | None = None, selection: SelectionParams | None = None):
        self.stored = stored
        self.encoders = encoders
        self.fusion = fusion or FusionParams()
        self.abstain = abstain or load_model()
        self.selection = selection or SelectionParams()
        self.documents: dict[str, Document] = stored.documents
        self.passages: list[Passage] = stored.passages
        self.manifest = stored.manifest
        self._doc_of_row = np.array([p.doc_id for p in self.passages])
        self._rows = {p.passage_id: i for i, p in enumerate(self.passages)}
        counts = [len(p.sentences) for p in self.passages]
        self._sentence_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int)
        sentences = [p.text[s:e] for p in self.passages for s, e in p.sentences]
        self._sentence_terms = tokenize(sentences) if sentences else []
        self.stats: CorpusStats = corpus_stats(
            [p.text for p in self.passages], list(dict.fromkeys(sentences)),
            [f"{d.text}\n{d.title}\n{d.publisher or ''}\n{d.author or ''}" for d in self.documents.values()])

    # ------------------------------------------------------------ public

    @property
    def channels(self) -> list[str]:
        """Channels this index can rank with: the dense ones, their sentence-level variants
        (when sentence vectors are stored) and the lexical one."""
        sentence_level = [c + SENTENCE_SUFFIX for c in self.encoders
                          if len(self.stored.sentence_vectors.get(c, ())) and all(p.sentences for p in self.passages)]
        return list(self.encoders) + sentence_level + ([LEXICAL] if self.stored.lexical is not None else [])

    def search(self, query: str, k: int = 5, mode: str = DEFAULT_MODE,
               doc_ids: list[str] | None = None) -> list[Hit]:
        """The ``k`` passages most relevant to ``query``, best first.

        ``mode``: 'hybrid' (default: fused channels, weighted by the query's language),
        'dense', 'multilingual' or 'lexical'. ``doc_ids`` restricts the search to those documents.
        """
        return self.retrieve(query, k, mode, doc_ids).hits

    def ask(self, question: str, k: int = 5, mode: str = DEFAULT_MODE,
            doc_ids: list[str] | None = None) -> Answer:
        """An extractive answer with citations, or an abstention when the documents do not
        cover the question (``abstained``; the closest passages are in ``related``)."""
        question, notice = self.prepare_question(question)
        r = self.retrieve(question, k, mode, doc_ids)
        status, p, chosen, summary = self.decide(r)
        return compose(question, r.hits, chosen, status=status, summary=summary, mode=r.mode, lang=r.lang,
                       notice=notice, confidence=p)

    def decide(self, r: "Retrieval") -> tuple[str, float, list[Candidate], str | None]:
        """The answer's status, the probability that it is answered, the chosen sentences and
        (for 'partial') the one-sentence summary; :meth:`answer_features` gives the inputs."""
        analysis, chosen, feats = self.answer_features(r)
        status, p = decide(feats, self.abstain)
        summary = None
        if status == PARTIAL:
            top_terms = set(tokenize([" ".join(h.text for h in r.hits[:3])])[0])
            summary = partial_summary(topic_words(r.query, top_terms), missing_detail(analysis, feats))
        return status, p, chosen, summary

    def answer_features(self, r: "Retrieval"):
        """The question's analysis, the chosen sentences and the abstention features."""
        candidates = self._sentence_candidates(r)
        analysis = analyse(r.query, self.stats)
        chosen = select_sentences(r.hits, candidates, analysis, self.stats, r.lang, self.selection)

        def text(c: Candidate) -> str:
            return r.hits[c.hit_index].text[c.span[0]:c.span[1]]

        feats = features(analysis, r.lang, [h.text for h in r.hits], [(text(c), c.similarity) for c in candidates],
                         [(text(c), c.similarity) for c in chosen], self.stats, self.abstain.evidence_sentences)
        return analysis, chosen, feats

    @staticmethod
    def prepare_question(question: str) -> tuple[str, str | None]:
        """The question with whitespace normalised and cut to MAX_QUESTION_CHARS, and a notice
        if it was cut. Raises QueryError on an empty question."""
        if not isinstance(question, str):
            raise QueryError("the question must be text")
        question = normalise_query(question)
        if not question:
            raise QueryError("the question is empty: type a question about the documents")
        if len(question) > MAX_QUESTION_CHARS:
            return question[:MAX_QUESTION_CHARS], (
                f"The question was {len(question):,} characters long and was cut to the first "
                f"{MAX_QUESTION_CHARS:,}.")
        return question, None

    # ------------------------------------------------------------ internals

    def retrieve(self, query: str, k: int = 5, mode: str = DEFAULT_MODE,
                 doc_ids: list[str] | None = None) -> Retrieval:
        query, _ = self.prepare_question(query)
        mode = (mode or DEFAULT_MODE).lower()
        if mode not in MODES:
            raise QueryError(f"unknown mode '{mode}' (choose from: {', '.join(MODES)})")
        if mode != "hybrid" and mode not in self.channels:
            raise QueryError(f"this index has no '{mode}' channel (it has: {', '.join(self.channels)})")
        if k < 1:
            raise QueryError("k must be at least 1")
        allowed = None
        if doc_ids:
            unknown = sorted(set(doc_ids) - set(self.documents))
            if unknown:
                raise QueryError(f"unknown document(s): {', '.join(unknown)}")
            allowed = np.isin(self._doc_of_row, list(doc_ids))
        lang = detect_language(query)
        weights = self._weights(lang) if mode == "hybrid" else {mode: 1.0}
        vectors, scores = self._channel_scores(query, list(weights))
        depth = max(k, self.fusion.candidates)
        rankings = {c: top_k(s, depth, _positive(s, allowed) if c == LEXICAL else allowed)
                    for c, s in scores.items()}
        if mode == "hybrid":
            fused = rrf(rankings, weights, self.fusion.k0)
            order = sorted(fused, key=lambda i: (-fused[i], i))[:k]
            final = {i: fused[i] for i in order}
        else:
            final = {i: float(scores[mode][i]) for i in rankings[mode][:k]}
        hits = [self._hit(i, rank, score, scores) for rank, (i, score) in enumerate(final.items(), 1)]
        return Retrieval(query, lang, mode, hits, vectors, scores, rankings)

    def _weights(self, lang: str) -> dict[str, float]:
        """Fusion weights for the language, restricted to the channels this index has; a
        sentence-level channel without sentence vectors (BEIR corpora) falls back to its
        passage-level channel."""
        def available(group: str) -> dict[str, float]:
            weights: dict[str, float] = {}
            for c, w in self.fusion.weights(group).items():
                if c not in self.channels and c.endswith(SENTENCE_SUFFIX):
                    c = c.removesuffix(SENTENCE_SUFFIX)
                if c in self.channels and w > 0:
                    weights[c] = weights.get(c, 0.0) + w
            return weights

        # e.g. a Chinese question on an index without a multilingual channel: the English mix
        return available(lang) or available("en")

    def _channel_scores(self, query: str, channels: list[str]):
        """Query vectors per model and one score per passage per channel. 'X_sent' scores a
        passage by its sentence most similar to the query under model X."""
        vectors: dict[str, np.ndarray] = {}
        scores: dict[str, np.ndarray] = {}
        for c in channels:
            if c == LEXICAL:
                scores[c] = self.stored.lexical.scores(query)
                continue
            model = c.removesuffix(SENTENCE_SUFFIX)
            if model not in vectors:
                vectors[model] = self.encoders[model].encode_queries([query])[0]
            if c.endswith(SENTENCE_SUFFIX):
                sims = self.stored.sentence_vectors[model] @ vectors[model]
                scores[c] = np.maximum.reduceat(sims, self._sentence_offsets[:-1]).astype(np.float32)
            else:
                index = self.stored.vectors[c]
                d, i = index.search(vectors[c][None, :], index.ntotal)
                row = np.full(index.ntotal, -np.inf, dtype=np.float32)
                row[i[0][i[0] >= 0]] = d[0][i[0] >= 0]
                scores[c] = row
        return vectors, scores

    def _hit(self, row: int, rank: int, score: float, scores: dict[str, np.ndarray]) -> Hit:
        p = self.passages[row]
        doc = self.documents[p.doc_id]
        return Hit(text=p.text, doc_id=p.doc_id, title=p.title, section=p.section, url=doc.url,
                   score=float(score), passage_id=p.passage_id, start=p.start, end=p.end, rank=rank,
                   channel_scores={c: float(s[row]) for c, s in scores.items()},
                   publisher=doc.publisher, date=doc.date)

    def row_of(self, passage_id: str) -> int:
        return self._rows[passage_id]

    def _sentence_candidates(self, r: Retrieval) -> list[Candidate]:
        """Every sentence of the retrieved passages with its signals: cosine under each model
        whose question vector the search computed, BM25 against the question, and its
        passage's rank. ``similarity`` is the cosine in the model that reads the question's
        language (encoded now if the search did not)."""
        primary = MULTILINGUAL if r.lang != "en" and MULTILINGUAL in self.encoders else DENSE
        if primary not in r.query_vectors:
            r.query_vectors[primary] = self.encoders[primary].encode_queries([r.query])[0]
        models = [m for m in r.query_vectors if len(self.stored.sentence_vectors.get(m, ()))]
        query_terms = tokenize([r.query])[0]
        out = []
        for h_index, hit in enumerate(r.hits):
            row = self.row_of(hit.passage_id)
            lo, hi = self._sentence_offsets[row], self._sentence_offsets[row + 1]
            sims, context = {}, {}
            for m in models:
                vecs = self.stored.sentence_vectors[m][lo:hi].astype(np.float32)
                sims[m] = vecs @ r.query_vectors[m]
                window = vecs + np.vstack([vecs[:1], vecs[:-1]])  # with the sentence before it
                context[m] = (window @ r.query_vectors[m]) / np.maximum(np.linalg.norm(window, axis=1), 1e-9)
            for j, span in enumerate(self.passages[row].sentences):
                signals = {m: float(sims[m][j]) for m in models}
                signals.update({m + "_context": float(context[m][j]) for m in models})
                signals["lexical"] = self.stats.bm25(query_terms, self._sentence_terms[lo + j])
                signals["passage"] = -float(h_index + 1)
                out.append(Candidate(h_index, tuple(span), signals.get(primary, 0.0), signals))
        return out


def _positive(scores: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    ok = scores > 0
    return ok if allowed is None else ok & allowed


def load(path: str | Path | None = None, check: bool = True, **params) -> Engine:
    """Open an index ($KZQA_INDEX, else the project's ``embeddings/``) and its models.
    Raises IndexProblem with the rebuild command if the index is missing, stale or broken."""
    stored, encoders = open_index(path, check=check)
    return Engine(stored, encoders, **params)
