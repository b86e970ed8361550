"""Split cleaned documents into passages of whole sentences.

Contract, for every passage ``p`` of document ``d``:
``d.text[p.start:p.end] == p.text``; ``p`` lies inside one section; it starts and ends on
sentence boundaries; ``count_tokens(embed_text(p)) <= max_tokens``. A sentence longer than
the token limit on its own is the one exception to the sentence rule: it is cut at clause
(then word) boundaries, and the build reports how many were cut.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from .corpus import Document, Section

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class ChunkParams:
    """How documents are cut. Recorded in the index manifest."""

    target_words: int = 120
    overlap_sentences: int = 1
    max_tokens: int = 256
    prefix: bool = False  # embed "title — section: " before the passage text (tuning: better without)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Passage:
    """A run of whole sentences of one section. ``sentences`` are (start, end) offsets
    into ``text``: ``text[s:e]`` is one sentence."""

    passage_id: str
    doc_id: str
    title: str
    section: str
    text: str
    start: int
    end: int
    sentences: tuple[tuple[int, int], ...] = field(default=())

    def embed_text(self, prefix: bool = True) -> str:
        """The text given to the embedding model."""
        return f"{self.title} — {self.section}: {self.text}" if prefix else self.text

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        data["sentences"] = [list(s) for s in self.sentences]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Passage":
        data = dict(data)
        data["sentences"] = tuple(tuple(s) for s in data.get("sentences", ()))
        return cls(**data)


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


# "…in 2015.Marking…": a full stop glued to the next sentence by PDF extraction.
_GLUED_STOP = re.compile(r"(?:(?<=[a-z]{2}\.)|(?<=\d{4}\.))(?=[A-Z][a-z]+)")


def sentence_spans(text: str, offset: int = 0,
                   advance: Callable[[int], object] | None = None) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``, shifted by ``offset``; paragraphs (blank
    lines) always end a sentence; spans exclude surrounding whitespace. ``advance(n)`` is
    called with the characters of each paragraph done (for a progress bar)."""
    spans: list[tuple[int, int]] = []
    for para in re.finditer(r"[^\n]+(?:\n(?!\n)[^\n]+)*", text):
        if advance is not None:
            advance(len(para.group()))
        pos = para.start()
        pieces = []
        for sent in _segmenter().segment(para.group()):
            pieces.extend(p for p in _GLUED_STOP.split(sent))
        for piece in pieces:
            piece = piece.strip()
            if not piece:
                continue
            start = text.index(piece, pos)
            spans.append((offset + start, offset + start + len(piece)))
            pos = start + len(piece)
    return spans


def _split_long(text: str, start: int, end: int, fits: Callable[[str], bool],
                patterns: tuple[str, ...] = (r"(?<=[;:])\s+", r"(?<=,)\s+", r"\s+"),
                ) -> list[tuple[int, int]]:
    """Cut an over-long span at clause boundaries (then spaces) into spans that fit."""
    if fits(text[start:end]):
        return [(start, end)]
    if not patterns:
        raise ValueError(f"cannot cut text at {start}:{end} into pieces under the token limit")
    cuts = [start + m.end() for m in re.finditer(patterns[0], text[start:end])]
    groups: list[tuple[int, int]] = []
    for s, e in zip([start] + cuts, cuts + [end]):
        if groups and fits(text[groups[-1][0]:e].rstrip()):
            groups[-1] = (groups[-1][0], e)
        else:
            groups.append((s, e))
    spans: list[tuple[int, int]] = []
    for s, e in groups:
        spans.extend(_split_long(text, s, s + len(text[s:e].rstrip()), fits, patterns[1:]))
    return spans


def passage_id(doc_id: str, text: str) -> str:
    """Stable id: the same text of the same document always gets the same id."""
    return hashlib.sha1(f"{doc_id}\x00{text}".encode()).hexdigest()[:16]


def split_section(doc: Document, section: Section, count_tokens: TokenCounter,
                  params: ChunkParams, advance: Callable[[int], object] | None = None) -> tuple[list[Passage], int]:
    """Passages of one section, and how many over-long sentences had to be cut (``advance``:
    see :func:`sentence_spans`)."""
    text = doc.text
    prefix = f"{doc.title} — {section.title}: " if params.prefix else ""

    def fits(s: str) -> bool:
        return count_tokens(prefix + s) <= params.max_tokens

    sentences: list[tuple[int, int]] = []
    cut = 0
    for s, e in sentence_spans(text[section.start:section.end], section.start, advance):
        if fits(text[s:e]):
            sentences.append((s, e))
        else:
            sentences.extend(_split_long(text, s, e, fits))
            cut += 1

    passages: list[Passage] = []
    i = 0
    while i < len(sentences):
        j = i + 1  # sentences[i:j] go in the passage
        while j < len(sentences):
            candidate = text[sentences[i][0]:sentences[j][1]]
            if len(candidate.split()) > params.target_words or not fits(candidate):
                break
            j += 1
        start, end = sentences[i][0], sentences[j - 1][1]
        passages.append(Passage(
            passage_id=passage_id(doc.doc_id, text[start:end]), doc_id=doc.doc_id,
            title=doc.title, section=section.title, text=text[start:end], start=start, end=end,
            sentences=tuple((s - start, e - start) for s, e in sentences[i:j]),
        ))
        if j >= len(sentences):
            break
        i = max(i + 1, j - params.overlap_sentences)
    return passages, cut


def split_documents(documents: list[Document], count_tokens: TokenCounter,
                    params: ChunkParams = ChunkParams(),
                    reuse: dict[str, list[Passage]] | None = None,
                    progress: bool = False) -> tuple[list[Passage], int]:
    """Passages of every section of every document, in document order, and the number of
    over-long sentences that had to be cut. Ids are unique (a repeated text gets a suffix).
    ``reuse[doc_id]``: that document's passages from an earlier split with the same text and
    parameters, taken as they are instead of splitting again. ``progress``: a bar over the
    characters to split, with its ETA."""
    from tqdm.auto import tqdm

    passages: list[Passage] = []
    cut_total = 0
    seen: set[str] = set()
    reuse = reuse or {}
    todo = sum(sec.end - sec.start for d in documents if d.doc_id not in reuse for sec in d.sections)
    bar = tqdm(total=todo, disable=not progress or not todo, desc="split", unit="char", unit_scale=True)
    for doc in documents:
        if doc.doc_id in reuse:
            passages.extend(reuse[doc.doc_id])
            seen.update(p.passage_id for p in reuse[doc.doc_id])
            continue
        for section in doc.sections:
            found, cut = split_section(doc, section, count_tokens, params, bar.update)
            cut_total += cut
            for p in found:
                pid, n = p.passage_id, 1
                while pid in seen:
                    pid, n = f"{p.passage_id}-{n}", n + 1
                seen.add(pid)
                passages.append(p if pid == p.passage_id else Passage(**{**p.__dict__, "passage_id": pid}))
    bar.update(bar.total - bar.n)  # the blank lines between paragraphs
    bar.close()
    return passages, cut_total
