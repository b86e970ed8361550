"""Resolve a follow-up question against the conversation, without a language model.

A short or pronoun-led question ("Why was he detained?", "And in 2019?") is searched together
with the topic words of the previous question; a year in the follow-up replaces the previous
question's years. ``resolve_followup(history, q) == q`` when ``q`` stands on its own.
"""

from __future__ import annotations

import re

_PRONOUNS = {"he", "she", "it", "they", "him", "her", "his", "hers", "its", "their", "them", "this",
             "that", "these", "those", "there", "then", "former", "latter"}
_OPENERS = ("and ", "but ", "what about", "how about", "and what", "so ", "also ", "then ", "why?", "when?",
            "who?", "how?", "where?")
_STOP = {"a", "an", "the", "of", "in", "on", "at", "to", "for", "from", "by", "with", "and", "or", "is", "was",
         "were", "are", "be", "been", "did", "does", "do", "what", "which", "who", "whom", "whose", "when",
         "where", "why", "how", "many", "much", "long", "year", "years", "day", "has", "have", "had", "that",
         "this", "there", "it", "its", "according", "between", "into", "than", "as", "about", "after",
         "before", "over", "under", "any", "some", "most", "more", "documents", "document", "say", "tell", "me"}
_WORD = re.compile(r"[^\W_][\w’'\-.]*[^\W_]|[^\W_]")
_YEAR = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})\b")
MAX_FOLLOWUP_WORDS = 6


def is_followup(question: str, previous: str = "") -> bool:
    """Leaning on context: opens with 'and'/'what about'…, has a pronoun, or is short
    (≤ MAX_FOLLOWUP_WORDS words) without a name the previous question did not have."""
    q = question.strip().lower()
    words = _WORD.findall(q)
    if not words:
        return False
    if q.startswith(_OPENERS) or any(w in _PRONOUNS for w in words):
        return True
    known = {w.lower() for w in _WORD.findall(previous)}
    new_names = [w for w in _WORD.findall(question.strip())[1:] if w[:1].isupper() and w.lower() not in known]
    return len(words) <= MAX_FOLLOWUP_WORDS and not new_names


def topic_words(question: str, drop_years: bool = False) -> list[str]:
    """The previous question's words that carry its topic, in order, surface forms kept."""
    out = []
    for word in _WORD.findall(question):
        key = word.lower().strip(".")
        if key in _STOP or key in _PRONOUNS or (drop_years and _YEAR.fullmatch(key)):
            continue
        out.append(word.strip("."))
    return list(dict.fromkeys(out))


def resolve_followup(history: list[str], question: str) -> str:
    """The query to search for ``question`` asked after the user questions ``history`` (oldest
    first; pass the resolved queries so chains of follow-ups keep their topic)."""
    if not history or not is_followup(question, history[-1]):
        return question
    previous = history[-1]
    present = {w.lower() for w in _WORD.findall(question)}
    carried = [w for w in topic_words(previous, drop_years=bool(_YEAR.search(question)))
               if w.lower() not in present]
    if not carried:
        return question
    return f"{question.strip()} ({' '.join(carried)})"


def resolve_conversation(history: list[str], question: str) -> str:
    """The query the chat searches for ``question`` when the user asked ``history`` before it
    (as typed, oldest first): each earlier question is resolved in turn, as the chat keeps them,
    so a chain of follow-ups keeps its topic. ``resolve_conversation([], q) == q``."""
    queries: list[str] = []
    for earlier in history:
        queries.append(resolve_followup(queries, earlier))
    return resolve_followup(queries, question)
