"""Compose an extractive answer from retrieved passages, with citation markers.

The answer is one to ``max_sentences`` sentences quoted from the passages, each followed by
its marker: ``[n]`` refers to ``answer.citations[n-1]``, and for every cited hit ``h`` and
``(s, e)`` in ``h.highlights``, ``h.text[s:e]`` is a sentence quoted in ``answer.text``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .retrieve import Hit

NOT_COVERED = ("The documents do not cover this question. "
               "The closest passages are listed below as possibly related.")


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

    def to_dict(self) -> dict:
        return {"question": self.question, "text": self.text, "abstained": self.abstained,
                "citations": [h.to_dict() for h in self.citations],
                "related": [h.to_dict() for h in self.related], "mode": self.mode,
                "lang": self.lang, "notice": self.notice, "confidence": round(self.confidence, 4),
                "quotes": [list(q) for q in self.quotes]}


@dataclass(frozen=True)
class Candidate:
    """A sentence of a retrieved passage and its similarity to the question."""

    hit_index: int
    span: tuple[int, int]  # offsets into the hit's text
    similarity: float


def _sentence_key(text: str) -> str:
    return re.sub(r"\W+", "", text.casefold())


def pick_sentences(hits: list[Hit], candidates: list[Candidate], max_sentences: int = 3,
                   margin: float = 0.12) -> list[Candidate]:
    """The best sentence, plus up to ``max_sentences - 1`` others within ``margin`` of its
    similarity, never the same sentence twice (passages overlap), in reading order of their
    rank: the best first."""
    ranked = sorted(candidates, key=lambda c: (-c.similarity, c.hit_index))
    chosen: list[Candidate] = []
    seen: set[str] = set()
    for cand in ranked:
        if len(chosen) == max_sentences:
            break
        if chosen and cand.similarity < chosen[0].similarity - margin:
            break
        s, e = cand.span
        key = _sentence_key(hits[cand.hit_index].text[s:e])
        if key in seen or len(key) < 12:
            continue
        seen.add(key)
        chosen.append(cand)
    return chosen


def compose(question: str, hits: list[Hit], candidates: list[Candidate], *, abstained: bool,
            max_sentences: int = 3, **extra) -> Answer:
    """Build the Answer: quoted sentences with markers, or the not-covered reply."""
    if abstained or not hits or not candidates:
        return Answer(question, NOT_COVERED, [], True, related=list(hits), **extra)
    chosen = pick_sentences(hits, candidates, max_sentences)
    order: list[int] = []  # hit indices in citation order
    highlights: dict[int, list[tuple[int, int]]] = {}
    quotes: list[tuple[str, int]] = []
    for cand in chosen:
        if cand.hit_index not in order:
            order.append(cand.hit_index)
        highlights.setdefault(cand.hit_index, []).append(cand.span)
        s, e = cand.span
        quotes.append((hits[cand.hit_index].text[s:e], order.index(cand.hit_index) + 1))
    citations = [replace(hits[i], highlights=sorted(highlights[i])) for i in order]
    text = " ".join(f"{sentence} [{n}]" for sentence, n in quotes)
    return Answer(question, text, citations, False, quotes=quotes, **extra)
