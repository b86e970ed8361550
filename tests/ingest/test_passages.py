"""Splitting: whole sentences, inside one section, under the token limit, exact offsets, stable ids."""

from __future__ import annotations

import statistics

from kzqa.ingest.corpus import Document, Section
from kzqa.ingest.passages import ChunkParams, sentence_spans, split_documents


def _passages(documents, encoder, params=ChunkParams()):
    passages, cut = split_documents(list(documents.values()), encoder.count_tokens_many, params)
    return passages, cut


def test_offsets_are_exact_and_sections_respected(documents, encoder):
    passages, _ = _passages(documents, encoder)
    assert len(passages) > 20
    for p in passages:
        doc = documents[p.doc_id]
        assert doc.text[p.start:p.end] == p.text
        section = doc.section_at(p.start)
        assert section is doc.section_at(p.end - 1) and section.title == p.section
        for s, e in p.sentences:
            assert p.text[s:e].strip() == p.text[s:e] and p.text[s:e]


def test_passages_start_and_end_on_sentence_boundaries(documents, encoder):
    passages, cut = _passages(documents, encoder)
    assert cut == 0  # no sentence of the shipped corpus is over the limit
    for p in passages:
        doc = documents[p.doc_id]
        section = doc.section_at(p.start)
        spans = sentence_spans(doc.text[section.start:section.end], section.start)
        assert p.start in {s for s, _ in spans} and p.end in {e for _, e in spans}


def test_token_bound_includes_the_prefix(documents, encoder):
    passages, _ = _passages(documents, encoder)
    counts = [encoder.count_tokens(p.embed_text(prefix=ChunkParams().prefix)) for p in passages]
    assert max(counts) <= 256
    with_prefix, _ = _passages(documents, encoder, ChunkParams(prefix=True))
    assert max(encoder.count_tokens(p.embed_text(prefix=True)) for p in with_prefix) <= 256
    # with a tight limit the splitter makes more, smaller passages and still obeys it
    tight = ChunkParams(target_words=400, max_tokens=96, prefix=True)
    small, _ = _passages(documents, encoder, tight)
    assert len(small) > len(passages)
    assert max(encoder.count_tokens(p.embed_text(True)) for p in small) <= 96


def test_length_distribution_and_overlap(documents, encoder):
    passages, _ = _passages(documents, encoder)
    words = [len(p.text.split()) for p in passages]
    assert 60 <= statistics.median(words) <= 180
    same_section = [(a, b) for a, b in zip(passages, passages[1:])
                    if a.doc_id == b.doc_id and a.section == b.section]
    assert same_section and all(b.start < a.end for a, b in same_section), "one sentence of overlap"


def test_ids_are_stable_and_local_to_their_document(documents, encoder):
    first, _ = _passages(documents, encoder)
    again, _ = _passages(documents, encoder)
    assert [p.passage_id for p in first] == [p.passage_id for p in again]
    assert len({p.passage_id for p in first}) == len(first)
    # editing one document leaves the other document's ids alone
    doc_id = next(iter(documents))
    changed = dict(documents)
    d = documents[doc_id]
    changed[doc_id] = Document(**{**d.__dict__, "text": d.text.replace("the", "teh")})
    after, _ = _passages(changed, encoder)
    other = lambda ps: [p.passage_id for p in ps if p.doc_id != doc_id]  # noqa: E731
    assert other(first) == other(after)
    assert {p.passage_id for p in first if p.doc_id == doc_id} != {p.passage_id for p in after if p.doc_id == doc_id}


def test_an_overlong_sentence_is_cut_at_clauses_and_counted(encoder):
    sentence = ", ".join(f"clause number {i} about the steppe and its rivers" for i in range(80)) + "."
    text = "A short opening sentence. " + sentence + " A closing sentence."
    doc = Document("x", "x.txt", text, [Section("Body", 0, len(text))], "X")
    passages, cut = split_documents([doc], encoder.count_tokens_many, ChunkParams())
    assert cut == 1
    assert all(encoder.count_tokens(p.embed_text(True)) <= 256 for p in passages)
    assert "".join(p.text for p in passages).replace(" ", "") != ""
    covered = sorted((p.start, p.end) for p in passages)
    assert covered[0][0] == 0 and covered[-1][1] == len(text)


def test_sentence_spans_split_glued_full_stops():
    text = "It was upgraded in 2015.Marking the close relationship, they met. Later Dr. Smith left."
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == [
        "It was upgraded in 2015.", "Marking the close relationship, they met.", "Later Dr. Smith left."]
