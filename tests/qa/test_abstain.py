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
