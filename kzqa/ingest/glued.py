"""Repair words run together by PDF extraction ('the yearof Nur-Sultan', 'capital andsymbolizes',
'second toRussia', 'the$30 billion'), with wordninja's English word list (Wikipedia unigram
frequencies).

A lower-case token the list does not know is split when wordninja splits it into exactly two
known words, neither rarer than ``RARE``, at least one among the ``COMMON`` most frequent and
no part shorter than three letters unless it is a real short word ('yearof' → 'year of'; not
'transboundary' or 'sinophobia', whose parts are rare; not 'tenge' → 'ten ge'; not
'beshbarmak', which splits into pieces). Compounds the list lacks can still be split
('roadmap' → 'road map'): the measured cost is in benchmarks/results.md. A lower-case common word glued to a capitalised one
('toRussia') or to a dollar amount ('the$30') is split too. Names in camel case
('AktobeMunaiGas', 'BalkhashLake') are left alone.

Contract: for ``fixed, repairs = repair_glued_words(text)``, every ``r`` in ``repairs`` has
``fixed[r.start:r.end] == r.words`` and ``r.words.replace(' ', '') == r.token``, and deleting
the space inside each repair gives back ``text`` exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

COMMON = 1_000  # at least one part among the most frequent words ('of', 'and', 'is', 'in' …)
RARE = 50_000  # no part rarer than this
_SHORT_WORDS = {"a", "i", "an", "as", "at", "be", "by", "do", "go", "he", "if", "in", "is", "it", "me", "my", "no",
                "of", "on", "or", "so", "to", "up", "us", "we"}
_TOKEN = re.compile(r"(?<![\w$'’-])([a-z]{4,})(?![\w'’-])")
_CAMEL = re.compile(r"(?<![\w'’-])([a-z]{2,})([A-Z][a-z]+)")
_DOLLAR = re.compile(r"(?<![\w'’-])([a-z]{2,})(\$\d)")


@dataclass(frozen=True)
class Repair:
    """One repaired token: ``words`` stands at ``[start, end)`` of the repaired text."""

    start: int
    end: int
    token: str
    words: str


@lru_cache(maxsize=1)
def word_ranks() -> dict[str, int]:
    """wordninja's words by frequency rank (0 = most frequent)."""
    import wordninja

    costs = wordninja.DEFAULT_LANGUAGE_MODEL._wordcost
    return {w: i for i, w in enumerate(sorted(costs, key=costs.get))}


def split_token(token: str) -> str | None:
    """'yearof' → 'year of'; None when the token is a word or no clean two-word split exists."""
    import wordninja

    ranks = word_ranks()
    if token in ranks:
        return None
    parts = wordninja.split(token)
    if len(parts) != 2 or "".join(parts) != token:
        return None
    found = [ranks.get(p) for p in parts]
    if any(r is None or r >= RARE for r in found) or min(found) >= COMMON:
        return None
    if any(len(p) < 3 and p not in _SHORT_WORDS for p in parts):  # 'tenge' is no 'ten ge'
        return None
    return " ".join(parts)


def _replacements(text: str) -> list[tuple[int, int, str]]:
    """(start, end, words) of every glued token of ``text``, in order, not overlapping."""
    ranks = word_ranks()
    found: dict[int, tuple[int, int, str]] = {}
    for m in _TOKEN.finditer(text):
        words = split_token(m.group(1))
        if words:
            found[m.start(1)] = (m.start(1), m.end(1), words)
    for m in _CAMEL.finditer(text):  # 'toRussia' → 'to Russia'
        if ranks.get(m.group(1), RARE) < COMMON:
            found.setdefault(m.start(), (m.start(), m.end(), f"{m.group(1)} {m.group(2)}"))
    for m in _DOLLAR.finditer(text):  # 'the$30' → 'the $30' (the repair spans 'the$')
        if ranks.get(m.group(1), RARE) < COMMON:
            found.setdefault(m.start(), (m.start(), m.end(1) + 1, f"{m.group(1)} $"))
    out = []
    for start, end, words in sorted(found.values()):
        if not out or start >= out[-1][1]:
            out.append((start, end, words))
    return out


def repair_glued_words(text: str) -> tuple[str, list[Repair]]:
    """``text`` with glued words split, and where each repair now stands (see the module's contract)."""
    pieces, repairs, pos, shift = [], [], 0, 0
    for start, end, words in _replacements(text):
        pieces += [text[pos:start], words]
        repairs.append(Repair(start + shift, start + shift + len(words), text[start:end], words))
        shift += len(words) - (end - start)
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces), repairs
