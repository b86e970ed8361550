"""Follow-up resolution: which questions lean on the conversation, and what is carried over."""

from __future__ import annotations

import pytest

from kzqa.qa.followup import is_followup, resolve_followup


@pytest.mark.parametrize("history, question, carried", [
    (["When was Serikzhan Bilash detained?"], "Why was he detained?", "Serikzhan Bilash"),
    (["What was the trade turnover between China and Kazakhstan in 2019?"], "And in 2018?", "trade turnover"),
    (["Who ordered the construction of the Bayterek tower?"], "What does the sphere symbolise?", "Bayterek tower"),
])
def test_follow_ups_carry_the_topic(history, question, carried):
    resolved = resolve_followup(history, question)
    assert resolved.startswith(question) and carried in resolved


def test_a_new_year_replaces_the_old_one():
    resolved = resolve_followup(["What was the trade turnover in 2019?"], "And in 2018?")
    assert "2018" in resolved and "2019" not in resolved


@pytest.mark.parametrize("history, question", [
    ([], "Why was he detained?"),
    (["When was Serikzhan Bilash detained?"], "What did the Confucius Institute in Nur-Sultan say about Chinese?"),
    (["When was Serikzhan Bilash detained?"], "Who is Sayragul Sauytbay?"),
])
def test_questions_that_stand_alone_are_kept(history, question):
    assert resolve_followup(history, question) == question


def test_is_followup_cues():
    assert is_followup("And what about Russia?")
    assert is_followup("Who arrested him?")
    assert not is_followup("Which Chinese company bought a stake in AktobeMunaiGas in 1997?", "Who is Bilash?")


def test_resolution_retrieves_what_the_bare_follow_up_misses(engine):
    history = ["When did Sayragul Sauytbay cross the border into Kazakhstan?"]
    question = "Where did she get asylum?"
    resolved = resolve_followup(history, question)
    assert any("Sweden" in h.text for h in engine.search(resolved, k=3))
