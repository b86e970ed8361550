"""Find passages: one ranking per channel (dense, multilingual, lexical), fused by weighted
reciprocal rank fusion, with channel weights chosen by the question's language.

``rrf(rankings, weights, k0)[i] == sum(w[c] / (k0 + rank_c(i)))`` over the channels whose top
``candidates`` contain passage ``i`` (rank counted from 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..stores.manifest import DENSE, LEXICAL, MULTILINGUAL

MODES = ("hybrid", DENSE, MULTILINGUAL, LEXICAL)
SENTENCE_SUFFIX = "_sent"  # 'dense_sent': a passage scored by its best sentence
DEFAULT_MODE = "hybrid"


@dataclass(frozen=True)
class FusionParams:
    """Weights per language group and channel, tuned on benchmarks/qa/dev.jsonl by
    benchmarks/tune.py (see benchmarks/results.md). English questions fuse MiniLM's best-sentence
    ranking, multilingual-e5's passage ranking and BM25; other languages use multilingual-e5 only
    (passage and best sentence), since BM25 and MiniLM cannot match them to English text."""

    k0: float = 10.0
    candidates: int = 50
    english: tuple[tuple[str, float], ...] = ((DENSE + "_sent", 1.0), (MULTILINGUAL, 1.0), (LEXICAL, 0.5))
    other: tuple[tuple[str, float], ...] = ((MULTILINGUAL, 0.5), (MULTILINGUAL + "_sent", 0.5))

    def weights(self, lang: str) -> dict[str, float]:
        return dict(self.english if lang == "en" else self.other)


@dataclass
class Hit:
    """A retrieved passage. ``text == documents[doc_id].text[start:end]``; ``highlights``
    are (start, end) offsets into ``text`` of the sentences an answer quoted."""

    text: str
    doc_id: str
    title: str
    section: str
    url: str | None
    score: float
    passage_id: str
    start: int
    end: int
    rank: int = 0
    channel_scores: dict[str, float] = field(default_factory=dict)
    highlights: list[tuple[int, int]] = field(default_factory=list)
    publisher: str | None = None
    date: str | None = None

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        data["highlights"] = [list(h) for h in self.highlights]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Hit":
        """The hit :meth:`to_dict` wrote (``Hit.from_dict(h.to_dict()) == h``)."""
        return cls(**{**data, "highlights": [tuple(h) for h in data.get("highlights", [])],
                      "channel_scores": dict(data.get("channel_scores", {}))})


_KAZAKH_LETTERS = set("әғқңөұүһіӘҒҚҢӨҰҮҺІ")


def detect_language(text: str) -> str:
    """'zh', 'kk', 'ru' or 'en' from the script of the letters (Kazakh = Cyrillic with any of
    ә ғ қ ң ө ұ ү һ і). Anything else counts as 'en'."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return "en"
    cjk = sum("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" for ch in letters)
    cyrillic = [ch for ch in letters if "\u0400" <= ch <= "\u04ff"]
    if cjk / len(letters) > 0.3:
        return "zh"
    if len(cyrillic) / len(letters) > 0.5:
        return "kk" if any(ch in _KAZAKH_LETTERS for ch in cyrillic) else "ru"
    return "en"


def rrf(rankings: dict[str, list[int]], weights: dict[str, float], k0: float) -> dict[int, float]:
    """Weighted reciprocal rank fusion of per-channel rankings (lists of row indices)."""
    fused: dict[int, float] = {}
    for channel, ranking in rankings.items():
        w = weights.get(channel, 0.0)
        if w <= 0:
            continue
        for rank, i in enumerate(ranking, start=1):
            fused[i] = fused.get(i, 0.0) + w / (k0 + rank)
    return fused


def normalise_query(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
