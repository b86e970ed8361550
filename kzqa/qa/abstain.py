"""Decide what the retrieved sentences do for the question: answer it, only discuss its topic
('partial'), or not cover it.

Scores alone cannot tell "on topic but the detail is not given" (the trade turnover of a year the
documents do not give) from "covered". So :func:`features` measures what the question pins down
against the sentences :func:`kzqa.qa.answer.select_sentences` chose:

- ``sim`` / ``chosen_sim``: the best sentence similarity among all candidates / of the first
  chosen sentence, in the model that reads the question's language (``*_en`` for English
  questions, MiniLM; ``*_other`` for the rest, multilingual-e5, whose scale is compressed);
- ``coverage``: the IDF-weighted share of the question's key terms found in the top passages,
  ``answer_coverage``: in the chosen sentences (a ru/zh/kk question's key terms are its words
  mapped onto the corpus's English ones; 0 without a mapping);
- ``type_missing``: the question asks for a year, date, quantity or person (per part) and no
  chosen sentence offers one it does not already hold; ``type_missing_near``: nor does any of
  the ``evidence_sentences`` closest sentences; ``typed_coverage``: the key-term coverage of
  the best chosen sentence that does offer it (1.0 when no type is asked), so that a
  number in a sentence about something else does not count; ``units_missing``: the unit or
  currency the question names is not beside the number;
- ``missing_idf``: the highest IDF among the question's key terms absent from the chosen
  sentences (the specific thing asked about: 'architect', 'population'), ``unknown_terms``: how
  many of its key terms the corpus never uses (likewise);
- ``count_unattached``: a 'how many X' / 'how tall' question whose chosen sentences hold no
  number beside X or the unit (:func:`kzqa.qa.question.number_attached`); ``role_unattached``: a
  'who is the director …' question whose chosen sentences name nobody beside that role.
- ``entity_missing``: a name the question asks about is neither in the first chosen sentence nor
  in what precedes it (the sentence before, the section heading, the document's title);
  ``direction_inverted``: the first chosen sentence states the question's relation the other
  way round ('Kazakhs live in China' for 'Chinese citizens … in Kazakhstan'). Both read a
  ru/zh/kk question through its words mapped onto the corpus's English vocabulary
  (:func:`kzqa.channels.vocabulary.map_words`), as do the key-term measures above.

Five facts decline on their own: a best sentence similarity under the topic floor
(``topic_sim_en`` / ``topic_sim_other``: off topic), a capitalised name the corpus never mentions
(``unseen_names``), a year of the question absent from the chosen sentences and the context before
them (``missing_years``), a unit or currency the question names (in any of the four languages)
that no chosen sentence gives (``units_missing``), and an inverted direction. Otherwise a logistic
regression over the features gives the probability that the question is answered; its weights,
feature scaling, threshold and confidence calibration are in ``abstain_model.json``, fitted by
``benchmarks/tune_answer.py --write`` (fitted on the train batches, chosen on the validation
batch; rerun it to refit after changing features).

A declined question is 'partial' when the documents discuss its topic (no unseen names,
similarity above the topic floor and, for English, most of its key terms in the top passages)
and 'not_covered' otherwise.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np

from ..channels.lexical import CorpusStats, tokenize
from .question import (
    CHECKED_TYPES,
    Analysis,
    coverage,
    direction_inverted,
    entity_missing,
    name_beside_role,
    number_attached,
)
from .question import offers as offers_answer

MODEL_FILE = "abstain_model.json"


@dataclass(frozen=True)
class AbstainModel:
    """A logistic regression over :func:`features` plus the topic floors for 'partial'."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float  # answered when the probability is at least this
    topic_coverage: float = 0.5  # (English) key-term coverage of the top passages for 'partial'
    topic_sim_en: float = 0.3
    topic_sim_other: float = 0.78
    evidence_sentences: int = 4
    calibration: dict | None = None  # {"method", "x": [...], "y": [...]}: points from probability to confidence

    def probability(self, feats: dict[str, float]) -> float:
        z = self.intercept + sum(c * (float(feats.get(n, 0.0)) - m) / s
                                 for n, m, s, c in zip(self.names, self.mean, self.scale, self.coef))
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def confidence(self, p: float) -> float:
        """The calibrated confidence of an answer given with probability ``p``: the expected share
        of such answers that quote the evidence, learnt from held-out probabilities of the fitting
        questions (``p`` itself when the model carries no calibration)."""
        if not self.calibration:
            return p
        return float(np.interp(p, self.calibration["x"], self.calibration["y"]))

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> "AbstainModel":
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
                  if k in cls.__dataclass_fields__}
        return cls(**fields)


def load_model(path=None) -> AbstainModel:
    """The shipped model (``kzqa/qa/abstain_model.json``) or the one at ``path``."""
    if path is None:
        text = resources.files("kzqa.qa").joinpath(MODEL_FILE).read_text(encoding="utf-8")
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    return AbstainModel.from_dict(json.loads(text))


FEATURES = ("is_en", "sim_en", "sim_other", "chosen_sim_en", "chosen_sim_other", "coverage",
            "answer_coverage", "type_asked", "type_missing", "type_missing_near", "typed_coverage",
            "units_missing", "missing_idf", "unknown_terms", "count_unattached",
            "role_unattached", "entity_missing")


def features(analysis: Analysis, lang: str, passages: list[str], candidates: list[tuple[str, float]],
             chosen: list[tuple[str, float]], stats: CorpusStats, evidence_sentences: int = 4,
             before: str = "") -> dict:
    """The evidence numbers for one question. ``passages``: texts of the retrieved passages,
    best first; ``candidates`` / ``chosen``: (sentence, similarity) of every candidate sentence
    and of the chosen ones, best first; ``before``: the sentence before the first chosen one.
    The key-term measures read a non-English question's terms as mapped onto the corpus's
    English words (:func:`kzqa.qa.question.analyse`); without a mapping they are 0."""
    lexical = lang == "en" or bool(analysis.terms)  # key terms to compare: English or mapped onto it
    best = max((s for _, s in candidates), default=0.0)
    first = chosen[0][1] if chosen else 0.0
    chosen_text = " ".join(t for t, _ in chosen)
    closest = [t for t, _ in sorted(candidates, key=lambda c: -c[1])[:evidence_sentences]]
    top_terms = set(tokenize([" ".join(passages[:3])])[0]) if passages else set()
    chosen_terms = set(tokenize([chosen_text])[0])
    first_text = chosen[0][0] if chosen else ""
    f: dict = {
        "is_en": float(lang == "en"),
        "direction_inverted": float(bool(chosen) and direction_inverted(analysis.entities, first_text)),
        "entity_missing": float(bool(chosen) and entity_missing(analysis, first_text, before, stats.common)),
        "sim_en": best if lang == "en" else 0.0, "sim_other": 0.0 if lang == "en" else best,
        "chosen_sim_en": first if lang == "en" else 0.0, "chosen_sim_other": 0.0 if lang == "en" else first,
        "coverage": coverage(analysis.terms, top_terms, stats) if lexical else 0.0,
        "answer_coverage": coverage(analysis.terms, chosen_terms, stats) if lexical else 0.0,
        "missing_years": [y for y in analysis.years if y not in chosen_text and y not in before],
        "unseen_names": list(analysis.unseen),
    }
    absent = [stats.idf(t) for t in analysis.terms if t not in chosen_terms]
    f["missing_idf"] = max(absent, default=0.0) if lexical else 0.0
    f["unknown_terms"] = float(sum(stats.df.get(t, 0) == 0 for t in analysis.terms)) if lexical else 0.0
    f["count_unattached"] = float(bool(analysis.counted) and not any(
        number_attached(t, analysis.counted) for t, _ in chosen))
    f["role_unattached"] = float(bool(analysis.roles) and not any(
        name_beside_role(t, analysis.roles) for t, _ in chosen))
    kinds = [p.kind for p in analysis.parts if p.kind in CHECKED_TYPES]
    common = stats.common

    def offers(kind: str, sentence: str) -> bool:
        return offers_answer(kind, sentence, analysis.question, common)

    f["type_asked"] = float(bool(kinds))
    f["type_missing"] = float(any(not any(offers(k, t) for t, _ in chosen) for k in kinds))
    f["type_missing_near"] = float(any(not any(offers(k, t) for t in closest) for k in kinds))
    typed = [t for t, _ in chosen if any(offers(k, t) for k in kinds)]
    f["typed_coverage"] = (max((coverage(analysis.terms, set(tokenize([t])[0]), stats) for t in typed), default=0.0)
                           if kinds and lexical else 1.0)
    f["units_missing"] = float(bool(analysis.units) and not any(
        all(re.search(u, t, re.I) for u in analysis.units) for t, _ in chosen))
    return f


def off_topic(f: dict, model: AbstainModel) -> bool:
    """Best sentence similarity under the topic floor, or a name the corpus never mentions."""
    similar = f["sim_en"] >= model.topic_sim_en if f["is_en"] else f["sim_other"] >= model.topic_sim_other
    return bool(f["unseen_names"]) or not similar


def hard_decline(f: dict, model: AbstainModel) -> bool:
    """Declined whatever the logistic model says: off topic, a year the passages lack, a
    unit or currency the question names that no chosen sentence gives ('in tenge', 'in miles'),
    or a first sentence that states the relation the other way round (``direction_inverted``)."""
    return (off_topic(f, model) or bool(f["missing_years"]) or bool(f["units_missing"])
            or bool(f.get("direction_inverted")))


def decide(f: dict, model: AbstainModel) -> tuple[str, float]:
    """('answered' | 'partial' | 'not_covered', probability of being answered)."""
    if off_topic(f, model):
        return "not_covered", 0.0
    p = 0.0 if hard_decline(f, model) else model.probability(f)
    if p >= model.threshold:
        return "answered", p
    on_topic = f["coverage"] >= model.topic_coverage if f["is_en"] else True
    return ("partial" if on_topic else "not_covered"), p


def missing_detail(analysis: Analysis, f: dict) -> str:
    """What the partial reply says the documents do not state."""
    if f.get("missing_years"):
        return "anything for " + " or ".join(f["missing_years"])
    if f.get("units_missing"):
        return "the figure in the unit or currency asked for"
    if f.get("direction_inverted"):
        return "it in the direction asked (the closest sentence states it the other way round)"
    kind = next((p.kind for p in analysis.parts if p.kind in CHECKED_TYPES), None)
    return {"year": "the year asked for", "date": "when it happened", "quantity": "the number or amount asked for",
            "person": "who it was"}.get(kind or "", "the detail asked for")

