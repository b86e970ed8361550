"""Fusion, language routing and the channels behind hybrid search (real models, real index)."""

from __future__ import annotations

import pytest

from kzqa.qa.retrieve import FusionParams, detect_language, rrf


def test_rrf_is_the_documented_weighted_sum():
    fused = rrf({"a": [3, 1], "b": [1, 2]}, {"a": 1.0, "b": 0.5}, k0=10)
    assert fused[1] == pytest.approx(1 / 12 + 0.5 / 11)
    assert fused[3] == pytest.approx(1 / 11)
    assert fused[2] == pytest.approx(0.5 / 12)
    assert rrf({"a": [1]}, {"a": 0.0}, 10) == {}


@pytest.mark.parametrize("text, lang", [
    ("How tall is the Bayterek tower?", "en"),
    ("Какова высота башни Байтерек?", "ru"),
    ("Бәйтерек мұнарасының биіктігі қанша?", "kk"),
    ("巴伊杰列克塔有多高？", "zh"),
    ("2019?", "en"),
])
def test_language_detection(text, lang):
    assert detect_language(text) == lang


def test_non_english_questions_are_routed_to_the_multilingual_channel(engine):
    hits = engine.search("Какова высота башни Байтерек?", k=3)
    assert set(hits[0].channel_scores) == {c for c, _ in FusionParams().other}
    assert any("97 meters" in h.text for h in hits)
    english = engine.search("How tall is the Bayterek tower?", k=3)
    assert set(english[0].channel_scores) == {c for c, _ in FusionParams().english}


@pytest.mark.parametrize("question, evidence", [
    ("Какую организацию основал Серикжан Билаш?", "Atajurt Eriktileri"),
    ("2016年哈萨克斯坦为什么发生抗议土地的活动?", "25 years"),
    ("Қазақстан мен Қытай шекарасының ұзындығы қанша?", "1782.75"),
])
def test_cross_lingual_questions_find_english_passages(engine, question, evidence):
    assert any(evidence in h.text for h in engine.search(question, k=5))
    assert not any(evidence in h.text for h in engine.search(question, k=5, mode="lexical"))


def test_hybrid_ranks_a_paraphrase_better_than_a_weak_channel(engine):
    """A paraphrase sharing few words with its passage: BM25 misses it, hybrid does not."""
    question = "Who lent the money for the capital's light-rail line?"
    def rank(mode):
        hits = engine.search(question, k=10, mode=mode)
        return next((h.rank for h in hits if "China Development Bank" in h.text), 99)
    assert rank("hybrid") <= 2
    assert rank("hybrid") <= min(rank("dense"), rank("lexical"))
