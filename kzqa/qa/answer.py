"""Compose an extractive answer from retrieved passages, with citation markers.

Every sentence of the retrieved passages is a :class:`Candidate` with one signal per channel
(its similarity to the question under each dense model, its BM25 score, its passage's rank).
:func:`score_sentences` fuses them as passages are fused (weighted reciprocal rank), and
:func:`select_sentences` picks one to ``max_sentences`` of them: the best sentence for each
part of the question, preferring sentences that hold the answer type the part asks for, and
never a sentence about someone else than the question's subject when a better one exists.

The answer quotes the chosen sentences, each followed by its marker: ``[n]`` refers to
``answer.citations[n-1]``, and for every cited hit ``h`` and ``(s, e)`` in ``h.highlights``,
``h.text[s:e]`` is a sentence quoted in ``answer.text``. ``answer.short`` is the direct answer
inside the first quote (a number with its unit, a date, a year, a name, a place; None for
'why' and 'how' questions and when the quote holds none):
``answer.citations[answer.short_marker - 1].text[s:e] == answer.short`` for
``(s, e) == answer.short_offsets``. ``answer.status`` is 'answered',
'partial' (the documents discuss the topic but not the detail asked for: the quotes are context,
not an answer) or 'not_covered'; ``answer.abstained`` is True unless 'answered'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ..channels.lexical import CorpusStats, tokenize
from .question import Analysis, Part, about_someone_else, coverage, offers
from .retrieve import Hit

NOT_COVERED = ("The documents do not cover this question. "
               "The closest passages are shown as possibly related.")
ANSWERED, PARTIAL, NOT_COVERED_STATUS = "answered", "partial", "not_covered"
STATUSES = (ANSWERED, PARTIAL, NOT_COVERED_STATUS)
CONTEXT_LABEL = "Closest passages, as context only (not an answer):"
PARTIAL_LABEL = "Partial answer: the documents do not state this detail."


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Hit]
    abstained: bool
    related: list[Hit] = field(default_factory=list)  # closest passages when abstaining
    mode: str = "hybrid"
    lang: str = "en"
    notice: str | None = None  # e.g. the question was cut to the maximum length
    confidence: float = 0.0
    quotes: list[tuple[str, int]] = field(default_factory=list)  # (sentence, marker n), in order
    status: str = ANSWERED  # 'answered', 'partial' or 'not_covered'
    summary: str | None = None  # the one-sentence reply of a partial or not-covered answer
    short: str | None = None  # the direct answer inside the first quote
    short_marker: int | None = None  # the citation (n of [n]) whose text holds it
    short_offsets: tuple[int, int] | None = None  # its offsets in that citation's text

    def to_dict(self) -> dict:
        return {"question": self.question, "status": self.status, "summary": self.summary,
                "text": self.text, "abstained": self.abstained,
                "citations": [h.to_dict() for h in self.citations],
                "related": [h.to_dict() for h in self.related], "mode": self.mode,
                "lang": self.lang, "notice": self.notice, "confidence": round(self.confidence, 4),
                "quotes": [list(q) for q in self.quotes],
                "short": None if self.short is None else {"text": self.short, "marker": self.short_marker,
                                                           "start": self.short_offsets[0],
                                                           "end": self.short_offsets[1]}}

    @classmethod
    def from_dict(cls, data: dict) -> "Answer":
        """The answer :meth:`to_dict` wrote, e.g. by a server (``Answer.from_dict(a.to_dict())``
        equals ``a`` but for the confidence, rounded to 4 decimals)."""
        short = data.get("short") or {}
        return cls(question=data["question"], text=data["text"], abstained=data["abstained"],
                   citations=[Hit.from_dict(h) for h in data.get("citations", [])],
                   related=[Hit.from_dict(h) for h in data.get("related", [])], mode=data.get("mode", "hybrid"),
                   lang=data.get("lang", "en"), notice=data.get("notice"), confidence=data.get("confidence", 0.0),
                   quotes=[(str(s), int(n)) for s, n in data.get("quotes", [])], status=data.get("status", ANSWERED),
                   summary=data.get("summary"), short=short.get("text"), short_marker=short.get("marker"),
                   short_offsets=(short["start"], short["end"]) if short else None)


@dataclass(frozen=True)
class Candidate:
    """A sentence of a retrieved passage: ``hits[hit_index].text[span[0]:span[1]]``, its
    similarity to the question in the model that reads the question's language, and every
    signal the engine has for it ('dense', 'multilingual': cosine; 'dense_context',
    'multilingual_context': cosine of the sentence together with the one before it;
    'lexical': BM25; 'passage': minus its passage's rank)."""

    hit_index: int
    span: tuple[int, int]  # offsets into the hit's text
    similarity: float
    signals: dict[str, float] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class SelectionParams:
    """How sentences are scored and chosen; tuned on the first batch of the dev set by
    benchmarks/tune_answer.py (see benchmarks/results.md)."""

    k0: float = 10.0
    english: tuple[tuple[str, float], ...] = (("dense", 1.0), ("multilingual", 1.0), ("lexical", 1.0),
                                              ("passage", 1.0), ("multilingual_context", 1.0))
    other: tuple[tuple[str, float], ...] = (("multilingual", 1.0),)
    type_bonus: float = 0.05  # added to the fused score of a sentence holding a part's answer type
    part_lexical: float = 0.2  # × the sentence's BM25 for a part's own terms / the best such score
    keep_ratio: float = 0.8  # a completing sentence is quoted only with a fused score this close to the best
    max_sentences: int = 3
    # further sentences scoring within this share of the best (None: none); 0.9 chosen on the
    # validation batch: answer evidence 0.835 → 0.890 for 1.19 → 1.66 quotes (benchmarks/results.md)
    extra_ratio: float | None = 0.9
    covered: float = 0.5  # a later part is answered by a quote offering its type with this share of its terms

    def weights(self, lang: str) -> dict[str, float]:
        return dict(self.english if lang == "en" else self.other)


_REFERENCE_SECTION = re.compile(r"\b(?:key sources|sources|references|bibliography|further reading|works cited|"
                                r"notes|websites)\b", re.I)
_CITATION = re.compile(r"^\W*[A-Z][\w’'\-]+,\s+[A-Z][\w.’' \-]*?\.?\s+(?:19|20)\d\d[a-z]?\b"  # Surname, Name. 2020
                       r"|\bno\.\s*\d+\s*:\s*\d+|\bLink\.?\s*$")


def is_reference(section: str, sentence: str) -> bool:
    """Is this a line of a reference list (its section is 'Key Sources', 'References' … or it
    reads like a citation: 'Kassenova, Nargis. 2020. …', '… 5, no. 4: 313–41', '… Link')?"""
    return bool(_REFERENCE_SECTION.search(section or "")) or bool(_CITATION.search(sentence))


def _sentence_key(text: str) -> str:
    return re.sub(r"\W+", "", text.casefold())


def sentence_text(hits: list[Hit], cand: Candidate) -> str:
    return hits[cand.hit_index].text[cand.span[0]:cand.span[1]]


def sentence_before(hits: list[Hit], candidates: list[Candidate], cand: Candidate) -> str:
    """The sentence just before ``cand`` in its passage ('' for a passage's first sentence)."""
    earlier = [c for c in candidates if c.hit_index == cand.hit_index and c.span[1] <= cand.span[0]]
    return sentence_text(hits, max(earlier, key=lambda c: c.span[0])) if earlier else ""


def _ranks(values: list[float]) -> list[int]:
    """Competition ranks from 1, best (highest) first; equal values share the best rank."""
    order = sorted(values, reverse=True)
    first = {}
    for rank, v in enumerate(order, start=1):
        first.setdefault(v, rank)
    return [first[v] for v in values]


def score_sentences(candidates: list[Candidate], lang: str, params: SelectionParams) -> list[float]:
    """Weighted reciprocal-rank fusion of the candidates' signals:
    ``scores[i] == sum(w[c] / (k0 + rank_c(i)))`` over the language's signals (rank from 1;
    equal values share a rank, so the sentences of one passage tie on 'passage')."""
    scores = [0.0] * len(candidates)
    for signal, w in params.weights(lang).items():
        values = [c.signals.get(signal) for c in candidates]
        if w <= 0 or any(v is None for v in values):
            continue
        for i, rank in enumerate(_ranks(values)):
            scores[i] += w / (params.k0 + rank)
    return scores


_PRONOUN_SUBJECT = re.compile(r"^(?:he|she|it|they|this|these|his|her|its|their|the latter|the former)\b", re.I)


def select_sentences(hits: list[Hit], candidates: list[Candidate], analysis: Analysis,
                     stats: CorpusStats, lang: str, params: SelectionParams | None = None) -> list[Candidate]:
    """One to ``max_sentences`` sentences that answer the question, best-supported first.

    The first is the best-scored sentence for the question's first part (fused score, plus
    ``type_bonus`` when it holds the part's answer type, plus the part's own BM25 for
    multi-part questions). Each further part adds its own best sentence — among those holding
    its answer type, when any does — unless a sentence already quoted answers it (holds its
    type and ``covered`` of its key terms). A sentence right after the first in its passage
    whose subject is a pronoun ('He was released …') completes it when it scores within
    ``keep_ratio`` of the best. Other sentences are quoted only when they score within
    ``extra_ratio`` of the best (at most ``max_sentences`` in all). Repeated sentences (passages overlap) and sentences about
    someone else (unless nothing else is left) are skipped."""
    params = params or SelectionParams()
    if not candidates:
        return []
    fused = score_sentences(candidates, lang, params)
    unique: dict[str, int] = {}
    for i in sorted(range(len(candidates)), key=lambda i: (-fused[i], i)):
        key = _sentence_key(sentence_text(hits, candidates[i]))
        if len(key) >= 12:
            unique.setdefault(key, i)
    pool = list(unique.values())
    on_subject = [i for i in pool if not about_someone_else(sentence_text(hits, candidates[i]), analysis, stats)]
    pool = on_subject or pool
    if not pool:
        return []
    text = {i: sentence_text(hits, candidates[i]) for i in pool}
    multi = len(analysis.parts) > 1
    tokens = {i: tokenize([text[i]])[0] for i in pool} if multi else {}

    def answers(part: Part, i: int) -> bool:
        return ((not part.kind or offers(part.kind, text[i], analysis.question, stats.common))
                and coverage(part.terms, set(tokens[i]), stats) >= params.covered)

    chosen: list[int] = []
    for n, part in enumerate(analysis.parts):
        if n and any(answers(part, i) for i in chosen):
            continue
        typed = {i for i in pool if part.kind and offers(part.kind, text[i], analysis.question, stats.common)}
        part_score = {i: fused[i] + (params.type_bonus if i in typed else 0.0) for i in pool}
        if multi and part.terms:
            lex = {i: stats.bm25(list(part.terms), tokens[i]) for i in pool}
            top = max(lex.values()) or 1.0
            for i in pool:
                part_score[i] += params.part_lexical * lex[i] / top
        options = [i for i in pool if i not in chosen]
        if n and typed & set(options):
            options = [i for i in options if i in typed]
        if options:
            chosen.append(max(options, key=lambda i: (part_score[i], -i)))
    best_fused = max(fused[i] for i in chosen)
    nxt = _next_sentence(candidates, candidates[chosen[0]])
    if (nxt is not None and nxt in pool and nxt not in chosen and _PRONOUN_SUBJECT.match(text[nxt])
            and fused[nxt] >= params.keep_ratio * best_fused):
        chosen.append(nxt)
    if params.extra_ratio is not None:
        for i in pool:
            if len(chosen) >= params.max_sentences or fused[i] < params.extra_ratio * best_fused:
                break
            if i not in chosen:
                chosen.append(i)
    return [candidates[i] for i in chosen[:params.max_sentences]]


def _next_sentence(candidates: list[Candidate], first: Candidate) -> int | None:
    """The index of the candidate that follows ``first`` in the same passage."""
    after = [(c.span[0], i) for i, c in enumerate(candidates)
             if c.hit_index == first.hit_index and c.span[0] >= first.span[1]]
    return min(after)[1] if after else None


def _cite(hits: list[Hit], chosen: list[Candidate]) -> tuple[list[Hit], list[tuple[str, int]]]:
    """The cited hits (with highlights) and the quotes with their markers."""
    order: list[int] = []  # hit indices in citation order
    highlights: dict[int, list[tuple[int, int]]] = {}
    quotes: list[tuple[str, int]] = []
    for cand in chosen:
        if cand.hit_index not in order:
            order.append(cand.hit_index)
        highlights.setdefault(cand.hit_index, []).append(cand.span)
        quotes.append((sentence_text(hits, cand), order.index(cand.hit_index) + 1))
    return [replace(hits[i], highlights=sorted(highlights[i])) for i in order], quotes


_GIVEN = {"year": "the year", "date": "when it happened", "quantity": "the number", "person": "who it was",
          "place": "where"}
_MISSING = {**_GIVEN, "year": "the year asked for", "quantity": "the number or amount asked for"}


def missing_parts_summary(analysis: Analysis, quoted: list[str], stats: CorpusStats) -> str | None:
    """For a multi-part question whose quotes hold what some parts ask for but not what
    another asks: 'The documents give who …, but not the year.' (None otherwise)."""
    if len(analysis.parts) < 2:
        return None
    given, missing = [], []
    for part in analysis.parts:
        if part.kind in _MISSING and not any(offers(part.kind, t, analysis.question, stats.common) for t in quoted):
            missing.append(_MISSING[part.kind])
        else:
            given.append(_GIVEN.get(part.kind or "", f"“{part.text.strip()}”"))
    if not given or not missing:
        return None
    return f"The documents give {' and '.join(given)}, but not {' or '.join(missing)}."


def partial_summary(topic: list[str], detail: str) -> str:
    """'The documents discuss “A”, “B” and “C” but do not state {detail}.'"""
    named = [f"“{t}”" for t in topic[:4]] or ["this topic"]
    listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    return f"The documents discuss {listed} but do not state {detail}."


def compose(question: str, hits: list[Hit], chosen: list[Candidate], *, status: str,
            summary: str | None = None, short: tuple[int, int] | None = None, related: list[Hit] | None = None,
            **extra) -> Answer:
    """Build the Answer: quoted sentences with markers ('answered'), the partial reply (one
    sentence, then the closest quotes as context) or the not-covered reply. ``short``: offsets
    of the direct answer inside the first chosen sentence (kept only when 'answered');
    ``related``: the passages a not-covered reply lists (default: every hit)."""
    if status not in STATUSES:
        raise ValueError(f"unknown answer status {status!r}")
    if status == NOT_COVERED_STATUS or not hits or not chosen:
        return Answer(question, NOT_COVERED, [], True, related=list(hits if related is None else related),
                      status=NOT_COVERED_STATUS,
                      summary=NOT_COVERED, **extra)
    citations, quotes = _cite(hits, chosen)
    quoted = " ".join(f"{sentence} [{n}]" for sentence, n in quotes)
    if status == PARTIAL:
        text = f"{summary} {CONTEXT_LABEL} {quoted}"
        return Answer(question, text, citations, True, quotes=quotes, status=PARTIAL, summary=summary, **extra)
    answer = Answer(question, quoted, citations, False, quotes=quotes, status=ANSWERED, **extra)
    if short is not None:
        first = chosen[0]
        start, end = first.span[0] + short[0], first.span[0] + short[1]
        answer.short, answer.short_marker, answer.short_offsets = hits[first.hit_index].text[start:end], 1, (start, end)
    return answer
