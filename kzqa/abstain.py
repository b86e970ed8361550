"""Decide whether the retrieved passages answer the question.

Scores alone cannot tell "on topic but not covered" (the trade turnover of a year the documents
do not give) from "covered". So besides the best sentence similarity, :func:`abstention_features`
checks what the question pins down:

- ``missing_years``: years of the question absent from the closest sentences and the top passage;
- ``unseen_names``: Latin-script capitalised words of the question the corpus never mentions;
- ``coverage``: the IDF-weighted share of the question's key terms (stemmed, question words
  removed) found in the top passages (English questions only: the documents are English);
- ``answer_type``: what the question asks for (a quantity, a year, a date, a person) from its
  question words in English, Russian, Kazakh or Chinese, and ``type_found``: whether one of the
  sentences closest to the question offers such a thing that the question does not already hold
  (with the unit the question names: "in kilometres", money for "how much … pay");
  ``type_coverage``: how much of the question's key terms that sentence shares.

:func:`should_abstain` combines them with thresholds calibrated on the dev set
(``benchmarks/tune_abstain.py`` prints the trade-off curve). The defaults favour answering:
on the dev set they abstain on 61% of unanswerable questions while wrongly abstaining on 3% of
answerable ones; stricter points of the curve reach 87% at the cost of 13% wrong abstentions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .lexical import tokenize

if TYPE_CHECKING:  # pragma: no cover
    from .answer import Candidate
    from .engine import Engine, Retrieval


@dataclass(frozen=True)
class AbstainParams:
    """Thresholds, calibrated on benchmarks/qa/dev.jsonl."""

    min_similarity_en: float = 0.40  # best sentence cosine, MiniLM
    min_similarity_other: float = 0.80  # best sentence cosine, multilingual-e5 (its scale is compressed)
    min_coverage: float = 0.1  # IDF-weighted key-term coverage of the top passages (English)
    top_passages: int = 3
    evidence_sentences: int = 4  # sentences closest to the question that must hold its years and answer type
    check_answer_type: bool = True
    type_min_coverage: float = 0.0  # (English) key-term coverage the sentence offering the answer needs


# Question words (stemmed as lexical.tokenize stems them) that carry no topic.
_QUESTION_TERMS = set(tokenize([
    "what which who whom whose when where why how many much long large big tall high year years day "
    "date name exact number amount kind type did does do is was were are been according document "
    "documents say mention"])[0])

_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december")
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_QUANTITY = re.compile(r"(\d+(?:[.,]\d+)*)\s*(%|[^\W\d_]+)?")
_DATE = re.compile(rf"\b(?:\d{{1,2}}\s+(?:{_MONTHS})|(?:{_MONTHS})\s+\d{{1,4}}|(?:{_MONTHS})\b|1[0-9]{{3}}\b|20[0-9]{{2}}\b)", re.I)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w’'\-]+(?:\s+[A-Z][\w’'\-]+)*")

# (answer type, pattern over the lower-cased question); first match wins.
_TYPE_CUES = [
    ("year", r"\b(what|which|in what|in which) year\b|в каком году|в какой год|қай жыл|哪一年|哪年|什么年份|何年"),
    ("date", r"\bwhen\b|\bwhat (exact )?(day|date|month)\b|когда|какого числа|қашан|何时|什么时候|哪天|几月"),
    ("quantity", r"\bhow (many|much|long|large|big|tall|high|far|old)\b|\bwhat (percentage|share|amount|number)\b"
                 r"|сколько|какой процент|какова (сумма|высота|длина)|қанша|неше|多少|几|多高|多长|多大"),
    ("person", r"\bwho\b|\bwhose\b|\bwhom\b|\bwhat is the name of\b|\bname the\b|кто|кого|кім|谁"),
]


# A unit the question names must come with the number: "in kilometres", "cubic metres", "how much … pay".
_UNIT_CUES = [
    (r"\bkilomet(er|re)s?\b|\bkm\b", r"kilomet|\bkm\b"),
    (r"\bcubic\b", r"\bcubic\b"),
    (r"\btonn?es?\b", r"\btonn?e"),
    (r"\bhectares?\b", r"\bhectare"),
    (r"\bpercent(age)?\b|%", r"%|percent"),
    (r"\bhow much\b.*\b(pay|paid|cost|invest|loan|lend|lent|spend|spent|worth|price|amount|fine)", 
     r"usd|\$|dollar|tenge|yuan|rmb|billion|million"),
]


def required_units(question: str) -> list[str]:
    """Patterns a supporting sentence must match for the units or money the question asks for."""
    q = question.lower()
    return [need for cue, need in _UNIT_CUES if re.search(cue, q)]


def answer_type(question: str) -> str | None:
    q = question.lower()
    for kind, pattern in _TYPE_CUES:
        if re.search(pattern, q):
            return kind
    return None


def _question_numbers(question: str) -> set[str]:
    return {re.sub(r"\D", "", n) for n in _NUMBER.findall(question)}


def _is_quantity(number: str, unit: str) -> bool:
    """A number that is not a bare year: '97 meters', '66.7%', '19', '14.36 billion'."""
    digits = re.sub(r"\D", "", number)
    return bool(digits) and (not _YEAR.fullmatch(number) or unit.lower().rstrip("s") in _QUANTITY_UNITS)


_NUMBER_WORDS = re.compile(r"\b(?:(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|fifty|"
                           r"a few|several|many) (?:hundred|thousand|million|billion)s?|hundreds|thousands|"
                           r"millions|billions|dozens)\b", re.I)
_QUANTITY_UNITS = {"%", "percent", "million", "billion", "thousand", "hundred", "meter", "metre",
                   "kilometre", "kilometer", "km", "usd", "time", "people", "kazakh", "chinese"}


_LEADING = {"in", "the", "on", "at", "after", "before", "during", "since", "according", "a", "an", "by",
            "from", "for", "as", "with", "when", "while", "president", "minister"}


def _is_name(phrase: str) -> bool:
    """Capitalised words inside a sentence that are not a month or a sentence opener."""
    words = phrase.lower().split()
    while words and words[0] in _LEADING:
        words = words[1:]
    return bool(words) and not any(re.fullmatch(_MONTHS, w) for w in words)


def _offers(kind: str, sentence: str, question: str) -> bool:
    """Does ``sentence`` hold an answer of ``kind`` that the question does not already hold?"""
    q = question.lower()
    asked = _question_numbers(question)
    if kind == "year":
        return any(y not in asked for y in _YEAR.findall(sentence))
    if kind == "date":
        return any(m.group(0).lower() not in q and re.sub(r"\D", "", m.group(0)) not in asked
                   for m in _DATE.finditer(sentence))
    if kind == "quantity":
        if not all(re.search(need, sentence, re.I) for need in required_units(question)):
            return False
        if _NUMBER_WORDS.search(sentence):
            return True
        return any(_is_quantity(m.group(1), m.group(2) or "") and re.sub(r"\D", "", m.group(1)) not in asked
                   for m in _QUANTITY.finditer(sentence))
    if kind == "person":  # 'who' is answered by people, organisations and countries alike
        return any(_is_name(m.group(0)) and m.group(0).lower() not in q for m in _NAME.finditer(sentence))
    return True


def _document_frequencies(engine: "Engine") -> tuple[dict[str, int], int]:
    """Passages containing each stemmed term, and the number of passages (computed once)."""
    if not hasattr(engine, "_document_frequencies"):
        df: dict[str, int] = {}
        for terms in tokenize([p.text for p in engine.passages]):
            for t in set(terms):
                df[t] = df.get(t, 0) + 1
        engine._document_frequencies = (df, len(engine.passages))
    return engine._document_frequencies


def key_terms(question: str) -> list[str]:
    return [t for t in dict.fromkeys(tokenize([question])[0]) if t not in _QUESTION_TERMS]


def coverage(terms: list[str], text_terms: set[str], df: dict[str, int], n: int) -> float:
    """IDF-weighted share of ``terms`` present in ``text_terms`` (1.0 when there are no terms)."""
    weights = {t: math.log((n + 1) / (df.get(t, 0) + 0.5)) for t in terms}
    total = sum(weights.values())
    return 1.0 if total <= 0 else sum(w for t, w in weights.items() if t in text_terms) / total


def _corpus_text(engine: "Engine") -> str:
    if not hasattr(engine, "_lower_corpus"):
        engine._lower_corpus = "\n".join(
            f"{d.text}\n{d.title}\n{d.publisher or ''}\n{d.author or ''}".lower() for d in engine.documents.values())
    return engine._lower_corpus


def unseen_names(question: str, corpus_text: str) -> list[str]:
    """Latin-script capitalised words of the question (past its first word) that the corpus, its
    titles, authors and publishers never mention: 'Khorgos', 'Peru', 'iPhone'."""
    words = re.findall(r"[A-Za-z][A-Za-z’'\-]*", question)[1:]
    names = []
    for word in words:
        stem = re.sub(r"(’s|'s|’|')$", "", word)
        if any(ch.isupper() for ch in stem) and any(part and part.lower() not in corpus_text
                                                     for part in stem.split("-")):
            names.append(stem)
    return names


def abstention_features(r: "Retrieval", candidates: list["Candidate"], engine: "Engine",
                        params: AbstainParams | None = None) -> dict:
    """Evidence numbers for one retrieval; 'confidence' is the best sentence similarity."""
    params = params or engine.abstain
    best = max((c.similarity for c in candidates), default=0.0)
    closest = sorted(candidates, key=lambda c: -c.similarity)[:params.evidence_sentences]
    sentences = [r.hits[c.hit_index].text[c.span[0]:c.span[1]] for c in closest]
    closest_text = " ".join(sentences)
    features = {"confidence": best, "lang": r.lang,
                "missing_years": [y for y in _YEAR.findall(r.query)
                                  if y not in closest_text and not (r.hits and y in r.hits[0].text)],
                "unseen_names": unseen_names(r.query, _corpus_text(engine))}
    if r.lang == "en":
        df, n = _document_frequencies(engine)
        terms = key_terms(r.query)
        top_text = " ".join(h.text for h in r.hits[:params.top_passages])
        features["coverage"] = coverage(terms, set(tokenize([top_text])[0]), df, n) if r.hits else 0.0
    kind = answer_type(r.query)
    features["answer_type"] = kind
    if kind:
        offering = [s for s in sentences if _offers(kind, s, r.query)]
        features["type_found"] = bool(offering)
        if r.lang == "en" and offering:
            features["type_coverage"] = max(coverage(terms, set(tokenize([s])[0]), df, n) for s in offering)
    return features


def should_abstain(features: dict, params: AbstainParams) -> bool:
    """True when the evidence does not answer the question (see the module's docstring)."""
    if features["missing_years"] or features["unseen_names"]:
        return True
    if features["lang"] == "en":
        if features["confidence"] < params.min_similarity_en or features["coverage"] < params.min_coverage:
            return True
    elif features["confidence"] < params.min_similarity_other:
        return True
    if params.check_answer_type and features.get("answer_type"):
        if not features.get("type_found"):
            return True
        return features.get("type_coverage", 1.0) < params.type_min_coverage
    return False
