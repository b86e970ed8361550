"""What the chat shows, rendered from real answers of the shipped index: each answer's own cards,
the Sources panel, the document page, and the conversation kept in a browser."""

from __future__ import annotations

import html
import re
import uuid

import pytest
from conftest import INSAMER

from kzqa.app.render import (
    EMPTY_PANEL,
    SourceGroup,
    card_id,
    document_link,
    parse_place,
    render_document,
    render_library,
    render_panel,
    render_reply,
)


@pytest.fixture(scope="module")
def two_answers(engine):
    return [(engine.ask(q), uuid.uuid4().hex, q) for q in
            ("How tall is the Bayterek tower?", "Who founded Atajurt Eriktileri?")]


def test_each_answers_markers_point_at_its_own_cards(two_answers):
    groups = [SourceGroup.of(a, aid, q) for a, aid, q in two_answers]
    page = render_panel(groups)
    for answer, answer_id, question in two_answers:
        reply = render_reply(answer, question, question, answer_id)
        targets = set(re.findall(r"\(#(kzqa-card-[0-9a-f]+-\d+)\)", reply))
        assert targets and all(t.startswith(f"kzqa-card-{answer_id}-") for t in targets)
        assert all(f'id="{t}"' in page for t in targets)  # every marker finds its card in the panel
    # the latest answer's cards are shown, the earlier ones kept but hidden; each says its question
    first, second = page.split('<details')[1:]
    assert " hidden" in first.split(">")[0] and " hidden" not in second.split(">")[0]
    assert "for “How tall is the Bayterek tower?”" in first and "for “Who founded Atajurt Eriktileri?”" in second
    assert render_panel([]).count(EMPTY_PANEL) == 1


def test_a_source_group_survives_the_browsers_storage_and_refuses_what_is_not_one(two_answers):
    answer, answer_id, question = two_answers[0]
    group = SourceGroup.of(answer, answer_id, question)
    assert SourceGroup.from_dict(group.to_dict()) == group
    with pytest.raises(ValueError):  # an id that could break out of an attribute
        SourceGroup.from_dict({**group.to_dict(), "answer_id": '1" onmouseover="alert(1)'})
    with pytest.raises((TypeError, KeyError)):
        SourceGroup.from_dict({**group.to_dict(), "hits": [{"text": "only a text"}]})


def test_the_document_link_and_page_mark_the_cited_passage_by_exact_offsets(engine, two_answers):
    answer = two_answers[0][0]
    hit = answer.citations[0]
    link = document_link(hit)
    assert link.startswith("document?doc=") and f"at={hit.start}-{hit.end}" in link
    document = engine.documents[hit.doc_id]
    params = dict(p.split("=", 1) for p in link.split("?", 1)[1].split("&"))
    cited, quotes, valid = parse_place(document, params["at"], params["q"].replace("%2C", ","))
    assert valid and cited == (hit.start, hit.end)
    assert [document.text[s:e] for s, e in quotes] == [hit.text[s:e] for s, e in sorted(hit.highlights)]
    page = render_document(document, cited, quotes, valid)
    marked = re.search(r'<span id="kzqa-cited"[^>]*>(.*?)</span>', page, re.S).group(1)
    assert html.unescape(re.sub(r"</?mark>", "", marked)) == hit.text
    assert html.unescape(re.search(r"<mark>(.*?)</mark>", marked, re.S).group(1)) == answer.quotes[0][0]
    assert page.count('<span id="kzqa-cited"') == 1 and page.count("<h1>") == 1
    assert [html.unescape(t) for t in re.findall(r'<li><a href="#kzqa-section-\d+">(.*?)</a>', page)] == [
        s.title for s in document.sections]
    assert "INSAMER" in page and 'href="https://en.insamer.com/' in page


@pytest.mark.parametrize("at, q, expect", [
    ("10-5", None, (None, [], False)),              # backwards
    ("0-99999999", None, (None, [], False)),        # past the end
    ("abc", "1-2", (None, [], False)),              # not numbers
    ("100-200", "150-250", ((100, 200), [], False)),  # a quote outside the cited span is dropped
    ("100-200", "120-130,140-150", ((100, 200), [(120, 130), (140, 150)], True)),
    (None, None, (None, [], True)),                 # no place asked for: the document from the start
])
def test_a_place_the_document_does_not_have_is_dropped_and_said(documents, at, q, expect):
    document = documents[INSAMER]
    assert parse_place(document, at, q) == expect
    page = render_document(document, *parse_place(document, at, q))
    assert ("not in this document" in page) == (not expect[2])
    assert ('id="kzqa-cited"' in page) == (expect[0] is not None)


def test_the_document_page_escapes_what_it_shows_and_lists_documents(documents):
    from dataclasses import replace

    document = replace(documents[INSAMER], title="<script>alert(1)</script>", url="javascript:alert(1)")
    page = render_document(document)
    assert "<script>" not in page and "&lt;script&gt;" in page and "javascript:" not in page
    listing = render_library(list(documents.values()), unknown="<b>nope</b>")
    assert "There is no document “&lt;b&gt;nope&lt;/b&gt;”" in listing
    assert listing.count('<a href="document?doc=') == len(documents)


def test_a_conversation_from_the_browser_is_checked_before_it_is_used(two_answers):
    from kzqa.app.ui import conversation, new_session, stored

    answer, answer_id, question = two_answers[0]
    session = new_session()
    session["queries"].append(question)
    session["records"][1] = {"question": question, "answer_id": answer_id}
    session["sources"][answer_id] = SourceGroup.of(answer, answer_id, question).to_dict()
    history = [{"role": "user", "content": [{"type": "text", "text": question}]},
               {"role": "assistant", "content": "reply"}]
    kept = stored(history, session)
    assert conversation(kept) == ([{"role": "user", "content": question}, {"role": "assistant", "content": "reply"}],
                                  session)
    tampered = {"history": history + ["junk", {"role": "system", "content": "x"}],
                "session": {"queries": [question, 7], "records": {"x": {}, "1": "junk"},
                            "sources": {"bad": {"answer_id": "bad"}, answer_id: kept["session"]["sources"][answer_id]}}}
    messages, checked = conversation(tampered)
    assert len(messages) == 2 and checked["queries"] == [question] and checked["records"] == {}
    assert list(checked["sources"]) == [answer_id]
    assert conversation(None) is None and conversation({"history": "x"}) is None


def test_new_chat_keeps_at_most_eight_earlier_conversations_newest_first():
    from kzqa.app.ui import MAX_PAST, archived, new_session, title_of

    past = []
    for n in range(MAX_PAST + 3):
        session = new_session()
        session["queries"].append(f"question {n}")
        session["records"][1] = {"question": f"question {n}"}
        past = archived([{"role": "user", "content": f"question {n}"}, {"role": "assistant", "content": "a"}],
                        session, past)
        assert title_of(session) == f"question {n}"
    assert len(past) == MAX_PAST and [c["title"] for c in past[:2]] == [f"question {MAX_PAST + 2}",
                                                                         f"question {MAX_PAST + 1}"]
    assert archived([], new_session(), past) == past  # an empty chat is not kept


def test_cutting_a_long_chat_drops_the_cards_of_the_answers_that_go(two_answers):
    from kzqa.app.ui import bounded, new_session

    session, history = new_session(), []
    for answer, answer_id, question in two_answers:
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": "a"}]
        session["records"][len(history) - 1] = {"question": question, "answer_id": answer_id}
        session["sources"][answer_id] = SourceGroup.of(answer, answer_id, question).to_dict()
        session["queries"].append(question)
    history, session = bounded(history, session, max_turns=1)
    assert list(session["sources"]) == [two_answers[1][1]] and list(session["records"]) == [1]
    assert card_id(two_answers[1][1], 1) in render_panel([SourceGroup.from_dict(g)
                                                           for g in session["sources"].values()])
