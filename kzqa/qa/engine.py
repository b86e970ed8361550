"""The engine behind the public API: a store, its models, ``search`` and ``ask``.

Retrieval works on candidates: every channel asks the store for its top ``FusionParams.candidates``
rows (the document filter applied inside), the sentence-level channels score only the union of
those rows, and fusion and answer composition see nothing else.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import TypeVar

import numpy as np

from ..channels.lexical import CorpusStats, tokenize
from ..channels.vocabulary import MappedWord, map_words, warm_up
from ..ingest.corpus import Document
from ..ingest.passages import Passage
from ..stores.base import Store
from ..stores.manifest import DENSE, LEXICAL, MULTILINGUAL
from .abstain import AbstainModel, decide, features, load_model, missing_detail
from .answer import (
    PARTIAL,
    Answer,
    Candidate,
    SelectionParams,
    compose,
    is_reference,
    missing_parts_summary,
    partial_summary,
    select_sentences,
    sentence_before,
    sentence_text,
)
from .question import analyse, asks_about_sources, offer_span, short_kind, topic_words
from .retrieve import (
    DEFAULT_MODE,
    MODES,
    SENTENCE_SUFFIX,
    FusionParams,
    Hit,
    detect_language,
    normalise_query,
    rrf,
)

MAX_QUESTION_CHARS = 2000
MAX_K = 1000  # passages one call may ask for
MAX_DOC_IDS = 10_000
# lone surrogates and control characters other than tab/newline/CR (whitespace is normalised)
_UNPRINTABLE = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def ranked(scored) -> list[tuple[int, float]]:
    """(row, score) pairs best first, equal scores in row order (whichever store produced them)."""
    return sorted(((int(r), float(s)) for r, s in scored), key=lambda t: (-t[1], t[0]))


T = TypeVar("T")

WARM_UP_QUESTION = "What do the documents say about this?"  # any question: it runs every model once


@lru_cache(maxsize=1)
def _side_pool() -> ThreadPoolExecutor:
    """One worker thread that encodes a lone question's second model beside the first."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="kzqa-encode")


@lru_cache(maxsize=1)
def _store_pool() -> ThreadPoolExecutor:
    """Threads that wait on a database server's answers (each thread keeps its own connection)."""
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="kzqa-store")


def _run_each(calls: dict[str, Callable[[], T]], side_by_side: bool) -> dict[str, T]:
    """Each call's result by name: one after another, or (``side_by_side``) all at once on the
    store pool, for stores whose calls wait on a server rather than on this process's cores."""
    if not side_by_side or len(calls) < 2:
        return {name: call() for name, call in calls.items()}
    futures = {name: _store_pool().submit(call) for name, call in calls.items()}
    return {name: f.result() for name, f in futures.items()}


class QueryError(ValueError):
    """A question that cannot be searched (empty, unknown mode …)."""


def check_k_and_mode(k, mode) -> tuple[int, str]:
    """``k`` and ``mode`` as the search uses them, or QueryError: ``k`` a whole number from 1
    to MAX_K (not a bool), ``mode`` one of MODES in any case (None: the default). Whether the
    index has that mode's channel is :meth:`Engine.check_request`'s to say."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise QueryError(f"k must be a whole number from 1 to {MAX_K:,} (got {k!r:.40})")
    mode = DEFAULT_MODE if mode is None else mode
    if not isinstance(mode, str) or mode.lower() not in MODES:
        raise QueryError(f"unknown mode {mode!r:.40} (choose from: {', '.join(MODES)})")
    return int(k), mode.lower()


@dataclass
class Retrieval:
    """One search's internals, kept for composing the answer and for evaluation."""

    query: str
    lang: str
    mode: str
    hits: list[Hit]
    query_vectors: dict[str, np.ndarray]
    candidates: dict[str, list[tuple[int, float]]]  # channel → (row, score), best first
    store: Store  # the store the search read (answer composition reads the same one)
    rows: list[int]  # rows[i] is the store row of hits[i]


class Engine:
    """Search and answer over one index. Thread-safe for concurrent readers."""

    def __init__(self, store: Store, encoders: dict, fusion: FusionParams | None = None,
                 abstain: AbstainModel | None = None, selection: SelectionParams | None = None):
        self.store = store
        self.encoders = encoders
        self.fusion = fusion or FusionParams()
        self.abstain = abstain or load_model()
        self.selection = selection or SelectionParams()
        self._in_flight = 0  # questions being encoded now (decides whether models run side by side)
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Run every model once, and start loading the Chinese word list (jieba, ~0.5 s) in a
        thread of its own ('kzqa-jieba'), so that no user's first question pays for them: for a
        server, before its first user (``kzqa serve`` does it while Gradio imports). A one-off
        ``kzqa ask`` skips it: its own question loads what it needs."""
        self.ask(WARM_UP_QUESTION)
        if MULTILINGUAL in self.encoders:
            threading.Thread(target=warm_up, name="kzqa-jieba", daemon=True).start()

    @property
    def documents(self) -> Mapping[str, Document]:
        return self.store.current().documents

    @property
    def manifest(self) -> dict:
        return self.store.current().manifest

    @property
    def stats(self) -> CorpusStats:
        return self.store.current().stats

    @property
    def passages(self) -> list[Passage]:
        """Every passage, in store order (reads them all: for tools and tests, not for queries)."""
        store = self.store.current()
        return store.passages(range(store.size))

    # ------------------------------------------------------------ public

    @property
    def channels(self) -> list[str]:
        """Channels this index can rank with: the dense ones, their sentence-level variants
        (when sentence vectors are stored) and the lexical one."""
        store = self.store.current()
        sentence_level = [c + SENTENCE_SUFFIX for c in self.encoders if store.has_sentence_vectors(c)]
        return list(self.encoders) + sentence_level + ([LEXICAL] if LEXICAL in store.channels else [])

    def search(self, query: str, k: int = 5, mode: str = DEFAULT_MODE,
               doc_ids: list[str] | None = None) -> list[Hit]:
        """The ``k`` passages most relevant to ``query``, best first.

        ``mode``: 'hybrid' (default: fused channels, weighted by the query's language),
        'dense', 'multilingual' or 'lexical'. ``doc_ids`` (a list of ids) restricts the search to
        those documents. ``k`` is a whole number from 1 to MAX_K. Anything else, and a question
        with nothing left after :meth:`prepare_question`, raises QueryError saying what is wrong.
        """
        return self.retrieve(query, k, mode, doc_ids).hits

    def ask(self, question: str, k: int = 5, mode: str = DEFAULT_MODE,
            doc_ids: list[str] | None = None) -> Answer:
        """An extractive answer with citations, or an abstention when the documents do not
        cover the question (``abstained``; the closest passages are in ``related``)."""
        question, notice = self.prepare_question(question)
        r = self.retrieve(question, k, mode, doc_ids)
        status, p, chosen, summary, short = self.decide(r)
        related = r.hits if asks_about_sources(question) else [h for h in r.hits if not is_reference(h.section, "")]
        return compose(question, r.hits, chosen, status=status, summary=summary, short=short, related=related,
                       mode=r.mode, lang=r.lang, notice=notice, confidence=self.abstain.confidence(p))

    def decide(self, r: "Retrieval") -> tuple[str, float, list[Candidate], str | None, tuple[int, int] | None]:
        """The answer's status, the probability that it is answered, the chosen sentences,
        (for 'partial') the one-sentence summary and the offsets of the direct answer in the
        first chosen sentence; :meth:`answer_features` gives the inputs."""
        analysis, chosen, feats = self.answer_features(r)
        status, p = decide(feats, self.abstain)
        summary = None
        if status == PARTIAL:
            top_terms = set(tokenize([" ".join(h.text for h in r.hits[:3])])[0])
            summary = (missing_parts_summary(analysis, [sentence_text(r.hits, c) for c in chosen], r.store.stats)
                       or partial_summary(topic_words(r.query, top_terms), missing_detail(analysis, feats)))
        short = None
        kind = short_kind(analysis)
        if chosen and kind:
            short = offer_span(kind, sentence_text(r.hits, chosen[0]), r.query, r.store.stats.common)
        return status, p, chosen, summary, short

    def answer_features(self, r: "Retrieval"):
        """The question's analysis, the chosen sentences and the abstention features. Lines of
        reference lists are no candidates unless the question asks about sources or authors."""
        candidates = self._sentence_candidates(r)
        if not asks_about_sources(r.query):
            candidates = [c for c in candidates
                          if not is_reference(r.hits[c.hit_index].section, sentence_text(r.hits, c))]
        stats = r.store.stats
        analysis = analyse(r.query, stats, self.map_question(r))
        chosen = select_sentences(r.hits, candidates, analysis, stats, r.lang, self.selection)
        feats = features(analysis, r.lang, [h.text for h in r.hits],
                         [(sentence_text(r.hits, c), c.similarity) for c in candidates],
                         [(sentence_text(r.hits, c), c.similarity) for c in chosen], stats,
                         self.abstain.evidence_sentences,
                         before=self._context_before(r, candidates, chosen))
        return analysis, chosen, feats

    @staticmethod
    def _context_before(r: "Retrieval", candidates: list[Candidate], chosen: list[Candidate]) -> str:
        """What a reader of the first chosen sentence has just read: its document's title and
        publisher, its section heading and the sentence before it."""
        if not chosen:
            return ""
        hit = r.hits[chosen[0].hit_index]
        return f"{hit.title}. {hit.publisher or ''}. {hit.section}. {sentence_before(r.hits, candidates, chosen[0])}"

    def map_question(self, r: "Retrieval") -> list[MappedWord] | None:
        """A non-English question's content words with the corpus words nearest to them (None
        for English questions, and when the index has no multilingual vocabulary)."""
        vocabulary = r.store.stats.vocabulary
        if r.lang == "en" or vocabulary is None or MULTILINGUAL not in self.encoders:
            return None
        return map_words(vocabulary, self.encoders[MULTILINGUAL], r.query, r.lang)

    @staticmethod
    def prepare_question(question: str) -> tuple[str, str | None]:
        """The question as searched, and a notice if it was cut. Raises QueryError when it is
        not text or nothing is left of it.

        In order: at most ``4 × MAX_QUESTION_CHARS`` characters are looked at (so the cost
        does not grow with the input), lone surrogates (undecodable bytes, e.g. from a
        non-UTF-8 terminal) and control characters other than whitespace are removed,
        whitespace runs become one space, and the result is cut to ``MAX_QUESTION_CHARS``."""
        if not isinstance(question, str):
            raise QueryError(f"the question must be text, not {type(question).__name__}")
        raw_length = len(question)
        question = normalise_query(_UNPRINTABLE.sub("", question[:4 * MAX_QUESTION_CHARS]))
        if not question:
            raise QueryError("the question is empty: type a question about the documents")
        if len(question) > MAX_QUESTION_CHARS or raw_length > 4 * MAX_QUESTION_CHARS:
            return question[:MAX_QUESTION_CHARS], (
                f"The question was {raw_length:,} characters long and was cut to the first "
                f"{MAX_QUESTION_CHARS:,}.")
        return question, None

    def check_request(self, k, mode, doc_ids) -> tuple[int, str, list[str] | None]:
        """``k``, ``mode`` and ``doc_ids`` as the search uses them, or QueryError saying what
        is wrong: ``k`` a whole number from 1 to MAX_K (not a bool), ``mode`` one of MODES
        (any case; None is the default) that this index has, ``doc_ids`` None or a list/tuple
        of known document ids (an empty one means every document)."""
        k, mode = check_k_and_mode(k, mode)
        if mode != "hybrid" and mode not in self.channels:
            raise QueryError(f"this index has no '{mode}' channel (it has: {', '.join(self.channels)})")
        if doc_ids is None:
            return int(k), mode, None
        if isinstance(doc_ids, str):
            raise QueryError(f"doc_ids must be a list of document ids, not one string: "
                             f"write [{doc_ids!r:.60}]")
        if not isinstance(doc_ids, (list, tuple)) or not all(isinstance(d, str) for d in doc_ids):
            raise QueryError("doc_ids must be a list of document ids (strings)")
        if len(doc_ids) > MAX_DOC_IDS:
            raise QueryError(f"doc_ids may name at most {MAX_DOC_IDS:,} documents (got {len(doc_ids):,})")
        return int(k), mode, list(doc_ids) or None

    # ------------------------------------------------------------ internals

    def retrieve(self, query: str, k: int = 5, mode: str = DEFAULT_MODE,
                 doc_ids: list[str] | None = None) -> Retrieval:
        query, _ = self.prepare_question(query)
        k, mode, doc_ids = self.check_request(k, mode, doc_ids)
        store = self.store.current()
        within = None
        if doc_ids:
            unknown = sorted(set(doc_ids) - set(store.documents))
            if unknown:
                shown = ", ".join(repr(d)[:60] for d in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
                raise QueryError(f"unknown document(s): {shown}")
            within = store.restrict(list(doc_ids))
        lang = detect_language(query)
        weights = self._weights(lang) if mode == "hybrid" else {mode: 1.0}
        vectors, candidates = self.candidates(store, query, list(weights), max(k, self.fusion.candidates), within)
        if mode == "hybrid":
            fused = rrf({c: [row for row, _ in cands] for c, cands in candidates.items()}, weights, self.fusion.k0)
            final = sorted(fused.items(), key=lambda t: (-t[1], t[0]))[:k]
        else:
            final = candidates[mode][:k]
        scores = {c: dict(cands) for c, cands in candidates.items()}
        rows = [row for row, _ in final]
        hits = [self._hit(store, p, row, rank, score, scores)
                for rank, (p, (row, score)) in enumerate(zip(store.passages(rows), final), 1)]
        return Retrieval(query, lang, mode, hits, vectors, candidates, store, rows)

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

    def candidates(self, store: Store, query: str, channels: list[str], n: int, within=None):
        """Query vectors per model and, per channel, at most ``n`` (row, score) pairs, best
        first. Passage-level channels come from the store; 'X_sent' scores each row of the
        union of those candidates by its sentence most similar to the query under model X."""
        models = list(dict.fromkeys(c.removesuffix(SENTENCE_SUFFIX) for c in channels if c != LEXICAL))
        side_by_side = getattr(store, "waits_on_server", False)
        lexical = (_store_pool().submit(store.top, LEXICAL, query, n, within)  # BM25 needs no vector: start it now
                   if LEXICAL in channels and side_by_side else None)
        vectors = self.encode_question(query, models)
        pool = _run_each({m: partial(store.top, m, vectors[m], n, within) for m in models}, side_by_side)
        if LEXICAL in channels:
            pool[LEXICAL] = lexical.result() if lexical else store.top(LEXICAL, query, n, within)
        pool = {c: ranked(cands) for c, cands in pool.items()}
        union = sorted({row for cands in pool.values() for row, _ in cands})
        sentence_models = [c.removesuffix(SENTENCE_SUFFIX) for c in channels if c.endswith(SENTENCE_SUFFIX)]
        best = _run_each({m: partial(store.best_sentence, m, vectors[m], union) for m in sentence_models}, side_by_side)
        out: dict[str, list[tuple[int, float]]] = {}
        for c in channels:
            model = c.removesuffix(SENTENCE_SUFFIX)
            out[c] = ranked(zip(union, best[model]))[:n] if c.endswith(SENTENCE_SUFFIX) else pool[c]
        return vectors, out

    def encode_question(self, query: str, models: list[str]) -> dict[str, np.ndarray]:
        """Each model's vector of ``query``. A lone question (no other being encoded in this
        engine) runs its second model on another core at the same time (the ONNX runs free the
        GIL); while other questions are in flight, models run one after another, so concurrent
        questions share the cores instead of oversubscribing them."""
        def encode(m: str) -> np.ndarray:
            return self.encoders[m].encode_queries([query])[0]

        with self._lock:
            self._in_flight += 1
            alone = self._in_flight == 1
        try:
            if not alone or len(models) < 2 or (os.cpu_count() or 1) < 2:
                return {m: encode(m) for m in models}
            beside = _side_pool().submit(encode, models[1])
            first = encode(models[0])
            return {models[0]: first, models[1]: beside.result(),
                    **{m: encode(m) for m in models[2:]}}
        finally:
            with self._lock:
                self._in_flight -= 1

    @staticmethod
    def _hit(store: Store, p: Passage, row: int, rank: int, score: float, scores: dict[str, dict[int, float]]) -> Hit:
        doc = store.documents[p.doc_id]
        return Hit(text=p.text, doc_id=p.doc_id, title=p.title, section=p.section, url=doc.url,
                   score=float(score), passage_id=p.passage_id, start=p.start, end=p.end, rank=rank,
                   channel_scores={c: s[row] for c, s in scores.items() if row in s},
                   publisher=doc.publisher, date=doc.date)

    def _sentence_candidates(self, r: Retrieval) -> list[Candidate]:
        """Every sentence of the retrieved passages with its signals: cosine under each model
        whose question vector the search computed, BM25 against the question, and its
        passage's rank. ``similarity`` is the cosine in the model that reads the question's
        language (encoded now if the search did not)."""
        primary = MULTILINGUAL if r.lang != "en" and MULTILINGUAL in self.encoders else DENSE
        if primary not in r.query_vectors:
            r.query_vectors[primary] = self.encoders[primary].encode_queries([r.query])[0]
        models = [m for m in r.query_vectors if r.store.has_sentence_vectors(m)]
        query_terms = tokenize([r.query])[0]
        vectors = {m: r.store.sentence_vectors(m, r.rows) for m in models}
        passages = r.store.passages(r.rows)
        # one tokenizer call for every sentence (a call costs ~0.25 ms whatever its size)
        terms = iter(tokenize([p.text[s:e] for p in passages for s, e in p.sentences] or [""]))
        out = []
        for h_index, (hit, passage) in enumerate(zip(r.hits, passages)):
            sentence_terms = [next(terms) for _ in passage.sentences]
            sims, context = {}, {}
            for m in models:
                vecs = vectors[m][h_index]
                sims[m] = vecs @ r.query_vectors[m]
                window = vecs + np.vstack([vecs[:1], vecs[:-1]])  # with the sentence before it
                context[m] = (window @ r.query_vectors[m]) / np.maximum(np.linalg.norm(window, axis=1), 1e-9)
            for j, span in enumerate(passage.sentences):
                signals = {m: float(sims[m][j]) for m in models}
                signals.update({m + "_context": float(context[m][j]) for m in models})
                signals["lexical"] = r.store.stats.bm25(query_terms, sentence_terms[j])
                signals["passage"] = -float(h_index + 1)
                out.append(Candidate(h_index, tuple(span), signals.get(primary, 0.0), signals))
        return out

