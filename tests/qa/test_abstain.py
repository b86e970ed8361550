"""Abstention: the features, the shipped model and the hard rules (real models, shipped index)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from kzqa.qa.abstain import FEATURES, decide, load_model


def test_shipped_model_is_complete_and_loads():
    model = load_model()
    assert set(model.names) <= set(FEATURES) and len(set(model.names)) == len(model.names)
    assert len(model.mean) == len(model.scale) == len(model.coef) == len(model.names)
    assert model.calibration and list(model.calibration["y"]) == sorted(model.calibration["y"])  # isotonic
    assert all(s > 0 for s in model.scale) and 0 < model.threshold < 1


def test_a_model_file_round_trips(tmp_path):
    model = load_model()
    path = tmp_path / "model.json"
    path.write_text(json.dumps(model.to_dict()))
    assert load_model(path) == model


def _features(**overrides) -> dict:
    f = {n: 0.0 for n in FEATURES}
    f.update({"is_en": 1.0, "sim_en": 0.7, "chosen_sim_en": 0.7, "coverage": 1.0, "answer_coverage": 1.0,
              "missing_years": [], "unseen_names": []})
    f.update(overrides)
    return f


def test_hard_rules_decline_whatever_the_model_says():
    model = replace(load_model(), threshold=0.0)  # would answer everything
    assert decide(_features(), model)[0] == "answered"
    assert decide(_features(unseen_names=["Peru"]), model)[0] == "not_covered"
    assert decide(_features(missing_years=["2022"]), replace(model, threshold=1e-9))[0] != "answered"


def test_declined_on_topic_is_partial_off_topic_is_not_covered():
    model = replace(load_model(), threshold=1.0)  # declines everything
    assert decide(_features(), model)[0] == "partial"
    assert decide(_features(coverage=0.0, sim_en=0.1), model)[0] == "not_covered"


@pytest.mark.parametrize("question", [
    "What was the trade turnover between China and Kazakhstan in 2022?",   # a year the documents lack
    "How many containers pass through the Khorgos dry port each year?",    # a name they never mention
    "What is a good recipe for banana bread?",                             # off topic
])
def test_declines_when_the_documents_do_not_answer(engine, question):
    answer = engine.ask(question)
    assert answer.abstained and answer.status in ("partial", "not_covered")
    if answer.status == "not_covered":
        assert answer.citations == [] and answer.related
        assert answer.text.startswith("The documents do not cover this question")


@pytest.mark.parametrize("question", [
    "What was the trade turnover between China and Kazakhstan in 2019?",
    "How many times did Nazarbayev meet Xi Jinping?",
    "Who lent the money for the capital's light-rail line?",
    "Сколько раз Назарбаев встречался с Си Цзиньпином?",
])
def test_answers_when_they_do(engine, question):
    answer = engine.ask(question)
    assert answer.status == "answered" and not answer.abstained and answer.citations and "[1]" in answer.text


@pytest.mark.parametrize("question", [
    "How tall is the Bayterek tower in feet?",                     # the text gives meters
    "Какова высота башни Байтерек в футах?",                         # the same in Russian
    "How much did Kazakhstan export to China in 2019, in tenge?",  # the text gives USD
    "2019年哈萨克斯坦对中国的出口额是多少坚戈?",
])
def test_a_unit_the_documents_do_not_give_is_not_answered(engine, question):
    ans = engine.ask(question)
    assert ans.status != "answered" and ans.short is None


@pytest.mark.parametrize("question", [
    "What was the trade turnover between China and Kazakhstan in 2015?",  # the text gives 2019
    "Каким был товарооборот между Китаем и Казахстаном в 2016 году?",
])
def test_a_year_the_documents_do_not_give_is_not_answered(engine, question):
    ans = engine.ask(question)
    assert ans.status != "answered"


def test_the_same_questions_with_the_documents_units_and_years_are_answered(engine):
    assert engine.ask("How tall is the Bayterek tower in meters?").short == "97 meters"
    assert engine.ask("What was the trade turnover between China and Kazakhstan in 2019?").status == "answered"


@pytest.mark.parametrize("question", [
    "How many Chinese citizens live in Kazakhstan?",            # the text: Kazakhs in China
    "Why did 60,000 people flee from Kazakhstan into Xinjiang in 1962?",  # the text: from Xinjiang
    "Сколько граждан Китая живёт в Казахстане?",
    "Қазақстанда қанша қытай азаматы тұрады?",
])
def test_a_relation_asked_the_other_way_round_is_not_answered(engine, question):
    ans = engine.ask(question)
    assert ans.status == "partial" and ans.short is None
    assert "other way round" in ans.summary


@pytest.mark.parametrize("question", [
    "How many Kazakhs live in China?",
    "Why did 60,000 people flee from Xinjiang into Kazakhstan in 1962?",
    "Сколько казахов живёт в Китае?",
    "Қытайда қанша қазақ тұрады?",
])
def test_the_same_relations_asked_the_right_way_round_are_answered(engine, question):
    ans = engine.ask(question)
    assert ans.status == "answered"


def test_a_year_in_the_sentence_before_the_quote_counts(engine):
    from kzqa.qa.abstain import features
    from kzqa.qa.question import analyse

    analysis = analyse("What did the propaganda video of 2016 claim?", engine.stats)
    quote = [("In the same year, a Chinese propaganda video claimed the lake.", 0.8)]
    without = features(analysis, "en", [], quote, quote, engine.stats)
    with_before = features(analysis, "en", [], quote, quote, engine.stats, before="The 2016 land law was stopped.")
    assert without["missing_years"] == ["2016"] and with_before["missing_years"] == []


def test_the_entity_check_is_a_feature_of_every_answer(engine):
    r = engine.retrieve("How many times did Tokayev meet Xi Jinping?")
    assert engine.answer_features(r)[2]["entity_missing"] == 1.0
    r = engine.retrieve("How many times did Nazarbayev meet Xi Jinping?")
    assert engine.answer_features(r)[2]["entity_missing"] == 0.0
