"""What the chat shows, as text: the reply (escaped Markdown), one answer's source cards, the
Sources panel holding every answer's cards, and the document page (HTML).

Everything shown comes from the user or the corpus and is escaped: it is displayed as text,
never interpreted as HTML, Markdown or script. Only the citation markers and the links this
module writes are links. Every answer has an id (``answer_id``); its markers point at its own
cards (``#kzqa-card-<answer_id>-<n>``), so a marker in an older answer still finds its source.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from ..ingest.corpus import Document
from ..qa.answer import ANSWERED, CONTEXT_LABEL, PARTIAL, PARTIAL_LABEL, Answer
from ..qa.retrieve import Hit

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>$])")
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|www)(://|\.)")


def as_text(text: str) -> str:
    """``text`` escaped so that Markdown and HTML show it literally; a web address is kept from
    being turned into a link by an invisible word joiner after its scheme ('https⁠://…')."""
    text = _AUTOLINK.sub("\\1\u2060\\2", text)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def card_id(answer_id: str, n: int) -> str:
    """The element id of card ``n`` of one answer (what its marker [n] points at)."""
    return f"kzqa-card-{answer_id}-{n}"


def marker_link(answer_id: str, n: int) -> str:
    return f"[\\[{n}\\]](#{card_id(answer_id, n)})"


def confidence_level(confidence: float) -> str:
    """'high' (≥ 0.8), 'medium' (≥ 0.5) or 'low': the calibrated confidence in plain words."""
    return "high" if confidence >= 0.8 else "medium" if confidence >= 0.5 else "low"


def first_quote(answer: Answer) -> str:
    """The first quoted sentence with the direct answer in bold (Markdown, escaped)."""
    sentence = answer.quotes[0][0]
    if not answer.short:
        return as_text(sentence)
    hit = answer.citations[answer.short_marker - 1]
    s, e = answer.short_offsets
    start = next((hs for hs, he in hit.highlights if hs <= s and e <= he), None)
    if start is None or hit.text[start:start + len(sentence)] != sentence:
        return as_text(sentence)
    a, b = s - start, e - start
    return f"{as_text(sentence[:a])}**{as_text(sentence[a:b])}**{as_text(sentence[b:])}"


SCORE_HELP = ("How well the passage matched the question in this search mode. Scores compare the passages of "
              "one answer only: each mode has its own scale (hybrid fuses the channels' ranks, lexical is BM25).")

# Said under an answer to a question in another language than the documents' English.
ENGLISH_QUOTES = {
    "ru": "Ответ приведён цитатами из англоязычных источников.",
    "kk": "Жауап ағылшын тіліндегі дереккөздерден алынған дәйексөздермен берілген.",
    "zh": "答案引用的是英文资料原文。",
}


def searched_where(mode: str, documents: list[str]) -> str:
    """What a declined question was searched in: 'all documents (hybrid search)', or the titles
    of the documents the filter kept and the mode."""
    where = ("only " + "; ".join(f"“{t}”" for t in documents)) if documents else "all documents"
    return f"Searched: {where} ({mode} search)."


def render_reply(answer: Answer, question: str, resolved: str, answer_id: str,
                 documents: list[str] | None = None) -> str:
    """The assistant message: searched-for line, notice, then by ``answer.status`` the direct
    answer in bold and the quoted sentences with markers and the confidence level ('answered'),
    the partial reply naming what is missing with the closest quotes set apart as context
    ('partial'), or the not-covered reply; a declined reply says what was searched (the
    ``documents`` a filter kept, the mode), and a reply to a ru/zh/kk question says, in its
    language, that the quotes are English. Markers point at this answer's cards."""
    lines = []
    if resolved != question:
        lines.append(f"*Searched for:* {as_text(resolved)}")
    if answer.notice:
        lines.append(f"*{as_text(answer.notice)}*")
    if answer.status == ANSWERED:
        if answer.short:
            lines.append(f"**{as_text(answer.short)}**")
        quoted = [first_quote(answer)] + [as_text(sentence) for sentence, _ in answer.quotes[1:]]
        lines.append(" ".join(f"{q} {marker_link(answer_id, n)}" for q, (_, n) in zip(quoted, answer.quotes)))
        lines.append(f"*{confidence_level(answer.confidence).capitalize()} confidence "
                     f"({answer.confidence:.0%} of such answers quoted the evidence when tested)*")
    elif answer.status == PARTIAL:
        lines += [f"⚠️ **{as_text(PARTIAL_LABEL)}**", as_text(answer.summary or ""), f"*{as_text(CONTEXT_LABEL)}*"]
        lines += [f"> {as_text(sentence)} {marker_link(answer_id, n)}" for sentence, n in answer.quotes]
    else:
        lines.append(as_text(answer.text))
    if answer.status != ANSWERED:
        lines.append(f"*{as_text(searched_where(answer.mode, documents or []))}*")
    if answer.lang in ENGLISH_QUOTES and answer.quotes:
        lines.append(f"*{as_text(ENGLISH_QUOTES[answer.lang])}*")
    return "\n\n".join(lines)


def highlighted(hit: Hit, short: tuple[int, int] | None = None) -> str:
    """The passage as HTML with its quoted sentences in <mark> and the direct answer ``short``
    (offsets inside one of them) in <strong>, by exact offsets."""
    out, pos = [], 0
    for s, e in sorted(hit.highlights):
        out += [html.escape(hit.text[pos:s]), "<mark>"]
        if short and s <= short[0] and short[1] <= e:
            out += [html.escape(hit.text[s:short[0]]), "<strong>", html.escape(hit.text[short[0]:short[1]]),
                    "</strong>", html.escape(hit.text[short[1]:e])]
        else:
            out.append(html.escape(hit.text[s:e]))
        out.append("</mark>")
        pos = e
    out.append(html.escape(hit.text[pos:]))
    return "".join(out)


def document_link(hit: Hit) -> str:
    """The document page at this passage, its quoted sentences marked: a link relative to the
    chat page, ``document?doc=ID&at=START-END&q=S-E,…`` with offsets into the document's text."""
    query = {"doc": hit.doc_id, "at": f"{hit.start}-{hit.end}"}
    if hit.highlights:
        query["q"] = ",".join(f"{hit.start + s}-{hit.start + e}" for s, e in sorted(hit.highlights))
    return "document?" + urlencode(query)


def _card(hit: Hit, answer_id: str, n: int, numbered: bool, short: tuple[int, int] | None) -> str:
    title = html.escape(hit.title, quote=True)
    meta = [html.escape(hit.section)] + [html.escape(x) for x in (hit.publisher, hit.date) if x]
    meta.append(f'<a href="{html.escape(document_link(hit), quote=True)}" target="_blank" rel="noopener" '
                f'aria-label="read in the document “{title}”, at this passage (opens a new tab)">'
                'read in the document</a>')
    if hit.url and hit.url.startswith(("https://", "http://")):
        meta.append(f'<a href="{html.escape(hit.url, quote=True)}" target="_blank" rel="noopener noreferrer" '
                    f'aria-label="original page of {title} (opens a new tab)">'
                    'original page<span aria-hidden="true"> ↗</span></a>')
    meta.append(f'<span title="{SCORE_HELP}">rank {hit.rank} · score {hit.score:.4f}</span>')
    label = f"[{n}] " if numbered else ""
    return (f'<div class="kzqa-card" id="{card_id(answer_id, n)}" tabindex="0" role="article" '
            f'aria-label="{"Source " + str(n) if numbered else "Passage"}: {title}" '
            f'data-passage-id="{html.escape(hit.passage_id, quote=True)}" data-title="{title}" '
            f'data-publisher="{html.escape(hit.publisher or "", quote=True)}">'
            f'<div class="kzqa-card-head">{label}{html.escape(hit.title)}</div>'
            f'<div class="kzqa-meta">{" · ".join(meta)}</div>'
            f'<p class="kzqa-passage">{highlighted(hit, short)}</p></div>')


@dataclass(frozen=True)
class SourceGroup:
    """The cards of one answer: its passages (``hits``, numbered [1]… when they are citations),
    what they are (the answer's ``status``), the question they were found for, and where the
    direct answer is (card ``short_marker``, offsets ``short_offsets`` in its text)."""

    answer_id: str
    status: str
    question: str
    hits: list[Hit]
    numbered: bool
    short_marker: int | None = None
    short_offsets: tuple[int, int] | None = None

    @classmethod
    def of(cls, answer: Answer, answer_id: str, question: str) -> "SourceGroup":
        return cls(answer_id, answer.status, question, list(answer.citations or answer.related),
                   bool(answer.citations), answer.short_marker, answer.short_offsets)

    def to_dict(self) -> dict:
        return {**self.__dict__, "hits": [h.to_dict() for h in self.hits],
                "short_offsets": list(self.short_offsets) if self.short_offsets else None}

    @classmethod
    def from_dict(cls, data: dict) -> "SourceGroup":
        """The group :meth:`to_dict` wrote; TypeError or ValueError when ``data`` is not one."""
        hits = [Hit(**{**h, "highlights": [tuple(x) for x in h.get("highlights", [])]}) for h in data["hits"]]
        offsets = tuple(data["short_offsets"]) if data.get("short_offsets") else None
        if not re.fullmatch(r"[0-9a-f]{32}", str(data["answer_id"])):
            raise ValueError("an answer id is 32 hexadecimal digits")
        group = cls(str(data["answer_id"]), str(data["status"]), str(data["question"]), hits,
                    bool(data["numbered"]), data.get("short_marker"), offsets)
        if not all(isinstance(h.text, str) and isinstance(h.title, str) for h in hits):
            raise TypeError("a passage's text and title are strings")
        return group


def answer_sources(group: SourceGroup) -> str:
    """One answer's cards, numbered like its markers, under a heading saying what they are (the
    sources of an answer, the context of a partial one, or the closest passages when the
    documents do not cover the question) and which question they belong to."""
    heading = ("Sources" if group.status == ANSWERED else "Context (not an answer)" if group.numbered
               else "Possibly related")
    shown = group.question if len(group.question) <= 120 else group.question[:117] + "…"
    cards = [_card(h, group.answer_id, n, group.numbered, group.short_offsets if n == group.short_marker else None)
             for n, h in enumerate(group.hits, 1)] or ["<p>No passage came close to this question.</p>"]
    return (f'<summary><h2>{heading}</h2><span class="kzqa-for">for “{html.escape(shown)}”</span></summary>'
            '<button type="button" class="kzqa-latest">Show the latest answer’s sources</button>' + "".join(cards))


EMPTY_PANEL = "Sources of the latest answer appear here."


def render_panel(groups: list[SourceGroup]) -> str:
    """The Sources panel: every kept answer's cards (oldest first), the latest shown and the
    others hidden until a marker of theirs is activated (the page's script shows them)."""
    if not groups:
        return f'<div class="kzqa-sources"><p>{EMPTY_PANEL}</p></div>'
    parts = [f'<details class="kzqa-answer-sources" open data-answer="{html.escape(g.answer_id, quote=True)}" '
             f'data-status="{html.escape(g.status, quote=True)}"{" hidden" if i < len(groups) - 1 else ""}>'
             f'{answer_sources(g)}</details>' for i, g in enumerate(groups)]
    return '<div class="kzqa-sources">' + "".join(parts) + "</div>"


# ---------------------------------------------------------------- the document page

MAX_QUOTES = 50  # highlighted sentences a document link may ask for


def parse_place(document: Document, at: str | None, q: str | None) -> tuple[tuple[int, int] | None,
                                                                             list[tuple[int, int]], bool]:
    """The place a link asks for (``at=START-END``, ``q=S-E,…``, offsets into the document's
    text): the cited span, the quoted spans inside it, and whether everything asked for was
    valid (a span outside the text, backwards or not numbers is dropped)."""
    def span(text: str) -> tuple[int, int] | None:
        m = re.fullmatch(r"(\d{1,9})-(\d{1,9})", text.strip())
        if not m:
            return None
        s, e = int(m.group(1)), int(m.group(2))
        return (s, e) if 0 <= s < e <= len(document.text) else None

    cited = span(at) if at else None
    asked = [x for x in (q or "").split(",") if x.strip()]
    quotes = [s for s in map(span, asked[:MAX_QUOTES]) if s and cited and cited[0] <= s[0] and s[1] <= cited[1]]
    valid = (cited is not None or not at) and len(quotes) == len(asked)
    return cited, sorted(quotes), valid


def _marked_text(text: str, start: int, end: int, cited: tuple[int, int] | None,
                 quotes: list[tuple[int, int]]) -> str:
    """``text[start:end]`` as HTML with the cited span in a <span id="kzqa-cited"> and the quoted
    spans (inside it) in <mark>, by exact offsets."""
    spans = ([cited] if cited else []) + quotes
    cuts = sorted({start, end} | {x for s, e in spans for x in (s, e) if start < x < end})
    out, in_cited, in_quote = [], False, False
    for a, b in zip(cuts, cuts[1:]):
        now_cited = bool(cited) and cited[0] <= a < cited[1]
        now_quote = any(s <= a < e for s, e in quotes)
        if in_quote and not now_quote:
            out.append("</mark>")
        if in_cited and not now_cited:
            out.append("</span>")
        if now_cited and not in_cited:
            out.append('<span id="kzqa-cited" class="kzqa-cited" tabindex="-1">')
        if now_quote and not in_quote:
            out.append("<mark>")
        out.append(html.escape(text[a:b]))
        in_cited, in_quote = now_cited, now_quote
    out += ["</mark>"] if in_quote else []
    out += ["</span>"] if in_cited else []
    return "".join(out)


def render_document(document: Document, cited: tuple[int, int] | None = None,
                    quotes: list[tuple[int, int]] | None = None, valid: bool = True) -> str:
    """The whole document as HTML: its title, author, publisher, date and link, a list of its
    sections (links to them), then each section with its text; the ``cited`` span is set apart
    (``#kzqa-cited``, which the page scrolls to) and the ``quotes`` inside it are marked."""
    d = document
    meta = [html.escape(x) for x in (f"By {d.author}" if d.author else None, d.publisher, d.date) if x]
    if d.url and d.url.startswith(("https://", "http://")):
        meta.append(f'<a href="{html.escape(d.url, quote=True)}" target="_blank" rel="noopener noreferrer">'
                    'original page<span aria-hidden="true"> ↗</span></a>')
    note = ("" if valid and not cited
            else "The cited passage is highlighted below; its quoted sentences are marked." if valid
            else "Part of the place the link asked for is not in this document: the rest is highlighted below."
            if cited else "The place the link asked for is not in this document; it is shown from the start.")
    toc = "".join(f'<li><a href="#kzqa-section-{i}">{html.escape(s.title)}</a></li>'
                  for i, s in enumerate(d.sections, 1))
    sections = "".join(
        f'<section aria-labelledby="kzqa-section-{i}"><h2 id="kzqa-section-{i}">{html.escape(s.title)}</h2>'
        f'<div class="kzqa-doc-text">{_marked_text(d.text, s.start, s.end, cited, quotes or [])}</div></section>'
        for i, s in enumerate(d.sections, 1))
    return (f'<div class="kzqa-doc"><p><a href="./">← Back to the chat</a></p>'
            f'<h1>{html.escape(d.title)}</h1><p class="kzqa-meta">{" · ".join(meta)}</p>'
            + (f'<p class="kzqa-note" role="status">{note}</p>' if note else "")
            + f'<nav aria-label="Sections of this document"><h2>Sections</h2><ol>{toc}</ol></nav>'
            f'{sections}</div>')


def render_library(documents: list[Document], unknown: str | None = None) -> str:
    """The list of documents (links to their pages), saying first when ``unknown`` named none."""
    items = "".join(f'<li><a href="document?{html.escape(urlencode({"doc": d.doc_id}), quote=True)}">'
                    f'{html.escape(d.title)}</a>{" — " + html.escape(d.publisher) if d.publisher else ""}</li>'
                    for d in documents)
    said = (f'<p class="kzqa-note" role="status">There is no document “{html.escape(unknown[:100])}” in this '
            "index. These are the documents it holds:</p>") if unknown else ""
    return (f'<div class="kzqa-doc"><p><a href="./">← Back to the chat</a></p><h1>Documents</h1>{said}'
            f"<ul>{items}</ul></div>")
