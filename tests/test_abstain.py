"""Abstention: what tells 'not covered' from 'covered' (real models, shipped index)."""

from __future__ import annotations

import pytest

from kzqa.abstain import answer_type, unseen_names


@pytest.mark.parametrize("question, kind", [
    ("How tall is the Bayterek tower?", "quantity"),
    ("In what year did Bilash found Atajurt?", "year"),
    ("When did Sauytbay cross the border?", "date"),
    ("Who founded Atajurt?", "person"),
    ("Сколько раз Назарбаев встречался с Си Цзиньпином?", "quantity"),
    ("Серікжан Біләш қай жылы азаматтық алды?", "year"),
    ("谁创立了Atajurt?", "person"),
    ("Why did people protest in 2016?", None),
])
def test_answer_type(question, kind):
    assert answer_type(question) == kind


def test_unseen_names():
    corpus = "the khorgos road? no. nazarbayev and china's people's map"
    assert unseen_names("How busy is the Khorgos port in Peru?", corpus) == ["Peru"]
    assert unseen_names("What did Nazarbayev's People's government do?", corpus) == []


@pytest.mark.parametrize("question", [
    "What was the trade turnover between China and Kazakhstan in 2022?",   # a year the documents lack
    "How many containers pass through the Khorgos dry port each year?",    # a name they never mention
    "How large was the fine the court imposed on Serikzhan Bilash?",       # no amount near the fine
    "What is a good recipe for banana bread?",                             # off topic
])
def test_abstains_when_the_documents_do_not_answer(engine, question):
    answer = engine.ask(question)
    assert answer.abstained and answer.citations == [] and answer.related
    assert answer.text.startswith("The documents do not cover this question")


@pytest.mark.parametrize("question", [
    "What was the trade turnover between China and Kazakhstan in 2019?",
    "How many times did Nazarbayev meet Xi Jinping?",
    "Who lent the money for the capital's light-rail line?",
    "Сколько раз Назарбаев встречался с Си Цзиньпином?",
])
def test_answers_when_they_do(engine, question):
    answer = engine.ask(question)
    assert not answer.abstained and answer.citations and "[1]" in answer.text


def test_named_units_must_come_with_the_number():
    from kzqa.abstain import _offers, required_units

    q = "How long is the oil pipeline, in kilometres?"
    assert required_units(q)
    assert not _offers("quantity", "In 1997, CNPC acquired a 66.7% stake and agreed to build a pipeline.", q)
    assert _offers("quantity", "The pipeline is 2,228 kilometres long.", q)
    money = "How much did CNPC pay for PetroKazakhstan?"
    assert not _offers("quantity", "CNPC bought a 66.7% stake in 1997.", money)
    assert _offers("quantity", "CNPC paid 4.18 billion USD.", money)
