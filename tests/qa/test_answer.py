"""Composing answers: sentence fusion and selection, two-part questions, the subject filter and
the three answer states (real models, shipped index)."""

from __future__ import annotations

import pytest

from kzqa.qa.answer import (CONTEXT_LABEL, NOT_COVERED, Candidate, SelectionParams, compose, partial_summary,
                            score_sentences, select_sentences)
from kzqa.qa.question import analyse
from kzqa.qa.retrieve import Hit


def _hit(text: str, rank: int = 1) -> Hit:
    return Hit(text=text, doc_id="d", title="T", section="S", url=None, score=1.0, passage_id=f"p{rank}",
               start=0, end=len(text), rank=rank)


def test_sentence_fusion_is_weighted_rrf_with_shared_ranks():
    cands = [Candidate(0, (0, 1), 0.9, {"dense": 0.9, "passage": -1.0}),
             Candidate(0, (1, 2), 0.5, {"dense": 0.5, "passage": -1.0}),
             Candidate(1, (0, 1), 0.7, {"dense": 0.7, "passage": -2.0})]
    params = SelectionParams(k0=10, english=(("dense", 1.0), ("passage", 0.5)))
    scores = score_sentences(cands, "en", params)
    assert scores[0] == pytest.approx(1 / 11 + 0.5 / 11)
    assert scores[1] == pytest.approx(1 / 13 + 0.5 / 11)  # same passage: same 'passage' rank
    assert scores[2] == pytest.approx(1 / 12 + 0.5 / 13)


def test_a_sentence_about_someone_else_is_dropped_when_a_better_one_exists(engine):
    text = "He was detained in March 2019 and fined. In June 2019 she fled to Sweden, where she was granted asylum."
    hits = [_hit(text)]
    he, she = (0, 41), (42, len(text))
    cands = [Candidate(0, he, 0.9, {"dense": 0.9, "passage": -1.0}),
             Candidate(0, she, 0.6, {"dense": 0.6, "passage": -1.0})]
    params = SelectionParams(english=(("dense", 1.0),), keep_ratio=0.0, max_sentences=1)
    about_her = analyse("When did Sayragul Sauytbay leave for Sweden?", engine.stats)
    chosen = select_sentences(hits, cands, about_her, engine.stats, "en", params)
    assert [c.span for c in chosen] == [she]
    # with no subject to tell them apart, the better-scored sentence wins
    neutral = analyse("What happened in 2019?", engine.stats)
    assert [c.span for c in select_sentences(hits, cands, neutral, engine.stats, "en", params)] == [he]


def test_one_to_three_sentences_never_repeated(engine):
    for question in ["How tall is the Bayterek tower?", "Why did Kazakhs protest in 2016?",
                     "What did Xi Jinping announce in Astana?"]:
        answer = engine.ask(question)
        assert answer.status == "answered"
        assert 1 <= len(answer.quotes) <= 3
        assert len({s for s, _ in answer.quotes}) == len(answer.quotes)


@pytest.mark.parametrize("question, facts", [
    ("When was Serikjan Bilash put under house arrest, and when was he released?", ["March 2019", "August 2019"]),
    ("Who founded Atajurt Eriktileri, and in what year?", ["Bilash", "2017"]),
])
def test_two_part_questions_quote_a_sentence_for_each_part(engine, question, facts):
    answer = engine.ask(question)
    assert answer.status == "answered", answer.text
    quoted = " ".join(s for s, _ in answer.quotes)
    for fact in facts:
        assert fact in quoted, (fact, quoted)


def test_partial_reply_says_what_is_missing_then_shows_context(engine):
    answer = engine.ask("How much did CNPC pay to acquire PetroKazakhstan in 2005?")
    assert answer.status == "partial" and answer.abstained
    assert answer.summary.startswith("The documents discuss") and "do not state" in answer.summary
    assert answer.text.startswith(answer.summary + " " + CONTEXT_LABEL)
    assert answer.citations and answer.quotes
    for sentence, n in answer.quotes:
        hit = answer.citations[n - 1]
        assert any(hit.text[s:e] == sentence for s, e in hit.highlights)
    assert answer.to_dict()["status"] == "partial"


def test_off_topic_is_not_covered(engine):
    answer = engine.ask("What is a good recipe for banana bread?")
    assert answer.status == "not_covered" and answer.abstained
    assert answer.text == NOT_COVERED and answer.citations == [] and answer.related


def test_compose_refuses_an_unknown_status():
    with pytest.raises(ValueError):
        compose("q", [_hit("Some sentence that is long enough.")], [], status="maybe")


def test_partial_summary_names_the_topic_and_the_missing_detail():
    assert partial_summary(["CNPC", "PetroKazakhstan"], "the number or amount asked for") == (
        "The documents discuss “CNPC” and “PetroKazakhstan” but do not state the number or amount asked for.")
    assert partial_summary([], "who it was") == "The documents discuss this topic but do not state who it was."


@pytest.mark.parametrize("section, sentence, reference", [
    ("Key Sources", "Anything at all.", True),
    ("History", "Kassenova, Nargis. 2020. ‘Kazakhstan’s Adaptation to the Belt and Road Initiative.’", True),
    ("History", "Central Asian Affairs 5, no. 4: 313–41.", True),
    ("History", "OSCE Academy in Bishkek website. Link.", True),
    ("History", "In 2019, the trade turnover between the two countries reached 14.36 billion USD.", False),
    ("History", "Nazarbayev, the first president, ordered the tower in 1997.", False),
])
def test_reference_lines_are_recognised(section, sentence, reference):
    from kzqa.qa.answer import is_reference

    assert is_reference(section, sentence) is reference


def test_reference_lists_answer_only_questions_about_sources(engine):
    off = engine.ask("Какой проект метро Китай строит в Алматы?")  # not in the documents
    assert all(h.section != "Key Sources" for h in off.related + off.citations)
    about = engine.ask("Which articles by Oyuna Baldakova are listed among the key sources?")
    assert not about.abstained and any(h.section == "Key Sources" for h in about.citations)


def test_a_missing_part_is_named(engine):
    from kzqa.qa.answer import missing_parts_summary

    analysis = analyse("When was Bilash put under house arrest, and how much was he fined?", engine.stats)
    quoted = ["After being put under a house arrestin March 2019, he was released in August 2019."]
    assert missing_parts_summary(analysis, quoted, engine.stats) == (
        "The documents give when it happened, but not the number or amount asked for.")
    assert missing_parts_summary(analyse("When was Bilash arrested?", engine.stats), quoted, engine.stats) is None
    ans = engine.ask("When was Bilash put under house arrest, and how much was he fined?")
    assert ans.status == "partial" and ans.summary.startswith("The documents give when it happened, but not")
