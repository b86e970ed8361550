"""The public Python API contract: kzqa.load / search / ask / build."""

from __future__ import annotations

import re

import pytest

import kzqa

BAYTEREK = "How tall is the Bayterek tower?"


def test_search_returns_hits_best_first_with_exact_offsets(engine):
    hits = engine.search(BAYTEREK, k=5)
    assert len(hits) == 5 and all(isinstance(h, kzqa.Hit) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert any("97 meters" in h.text for h in hits[:3])
    for h in hits:
        assert engine.documents[h.doc_id].text[h.start:h.end] == h.text
        assert h.title == engine.documents[h.doc_id].title and h.section and h.passage_id
    insamer = next(h for h in hits if h.doc_id.startswith("insamer"))
    assert insamer.url.startswith("https://en.insamer.com/")


def test_every_passage_is_exposed(engine):
    assert all(isinstance(p, kzqa.Passage) for p in engine.passages)
    assert len({p.passage_id for p in engine.passages}) == len(engine.passages)


@pytest.mark.parametrize("mode", ["dense", "lexical", "multilingual", "hybrid"])
def test_each_mode_finds_the_bayterek_passage(engine, mode):
    hits = engine.search(BAYTEREK, k=3, mode=mode)
    assert any("97 meters" in h.text for h in hits)


def test_filter_by_document(engine):
    hits = engine.search("Serikzhan Bilash", k=5, doc_ids=["peoples-map-kazakhstan"])
    assert hits and {h.doc_id for h in hits} == {"peoples-map-kazakhstan"}
    with pytest.raises(kzqa.QueryError, match="unknown document"):
        engine.search("x", doc_ids=["nope"])


def test_ask_answers_with_markers_that_match_citations(engine):
    ans = engine.ask(BAYTEREK, k=5)
    assert isinstance(ans, kzqa.Answer) and not ans.abstained
    markers = [int(m) for m in re.findall(r"\[(\d+)\]", ans.text)]
    assert markers and max(markers) == len(ans.citations) and min(markers) == 1
    assert "97 meters" in ans.text
    for h in ans.citations:
        assert h.highlights
        for s, e in h.highlights:
            assert h.text[s:e] in ans.text  # the highlighted sentence is quoted in the answer
    assert "97 meters" in ans.citations[0].text


@pytest.mark.parametrize("question, short", [(BAYTEREK, "97 meters"),
                                             ("Who ordered the construction of the Bayterek tower?", "Nursultan Nazarbayev")])
def test_ask_gives_the_direct_answer_with_its_offsets(engine, question, short):
    ans = engine.ask(question)
    assert ans.short == short and ans.short_marker == 1
    s, e = ans.short_offsets
    assert ans.citations[ans.short_marker - 1].text[s:e] == ans.short
    assert ans.short in ans.quotes[0][0]
    assert ans.to_dict()["short"] == {"text": short, "marker": 1, "start": s, "end": e}


def test_why_questions_get_no_direct_answer(engine):
    ans = engine.ask("Why was the Bayterek designed as a glass sphere?")
    assert not ans.abstained and ans.short is None and ans.to_dict()["short"] is None


def test_ask_abstains_off_topic(engine):
    ans = engine.ask("What is a good recipe for chocolate chip cookies?")
    assert ans.abstained and not ans.citations and ans.related
    assert "do not cover" in ans.text


def test_bad_questions_get_clear_errors(engine):
    for empty in ("", "   \n\t"):
        with pytest.raises(kzqa.QueryError, match="empty"):
            engine.search(empty)
        with pytest.raises(kzqa.QueryError, match="empty"):
            engine.ask(empty)
    with pytest.raises(kzqa.QueryError, match="unknown mode"):
        engine.search("Bayterek", mode="telepathy")


def test_huge_question_is_cut_with_a_notice(engine):
    ans = engine.ask(BAYTEREK + " tower" * 2000)
    assert ans.notice and "2,000" in ans.notice and len(ans.question) == 2000


def test_load_uses_kzqa_index_env(monkeypatch, small_index):
    monkeypatch.setenv("KZQA_INDEX", str(small_index))
    engine = kzqa.load()
    assert engine.store.path == small_index


def test_readme_python_example_runs(engine, monkeypatch, tmp_path):
    """The README's Python API block is true (its build line writes into a temporary folder)."""
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Python API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    block = block.replace('index="embeddings"', f'index="{tmp_path / "idx"}"').replace(
        'corpus="corpus"', f'corpus="{ROOT / "corpus"}"')
    monkeypatch.setattr(kzqa, "load", lambda *a, **kw: engine)
    exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "idx" / "manifest.json").exists()
