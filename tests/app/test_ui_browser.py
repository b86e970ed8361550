"""The chat as a person uses it: Debian's Chromium driven by Playwright against the running app."""

from __future__ import annotations

import json
import os
import re

import pytest
from conftest import ARTIFACTS, AXE, axe_violations

pytestmark = [pytest.mark.browser, pytest.mark.slow]

@pytest.fixture
def page(browser, running_app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(running_app)
    page.wait_for_selector("#kzqa-question textarea", timeout=60_000)
    yield page
    context.close()


def ask(page, question: str, replies_before: int) -> str:
    """Type a question, send it and wait for the finished reply; returns its text."""
    page.fill("#kzqa-question textarea", question)
    page.press("#kzqa-question textarea", "Enter")
    bots = page.locator('#kzqa-chat [data-testid="bot"]')
    page.wait_for_function(
        """([n, searching]) => {
            const bots = document.querySelectorAll('#kzqa-chat [data-testid="bot"]');
            return bots.length > n && !bots[bots.length - 1].innerText.includes(searching);
        }""", arg=[replies_before, "Searching the documents"], timeout=60_000)
    return bots.nth(bots.count() - 1).inner_text()


def card(page, n: int):
    """Card n of the answer whose sources the panel shows."""
    return page.locator(f'#kzqa-sources details:not([hidden]) .kzqa-card[id$="-{n}"]')


def test_cited_answer_with_highlighted_source_card(page):
    reply = ask(page, "How tall is the Bayterek tower?", 0)
    assert "97 meters" in reply and "[1]" in reply
    assert "Partial answer" not in reply and "do not cover" not in reply
    assert page.locator('#kzqa-sources [data-status="answered"] h2').inner_text() == "Sources"
    first = card(page, 1)
    first.wait_for(timeout=30_000)
    assert "A Dilemma: Chinese Influence in Kazakhstan and East Turkestan" in first.inner_text()
    marked = first.locator("mark")
    assert marked.count() >= 1 and "97 meters" in marked.first.inner_text()
    # the marker in the chat is a link to its card
    marker = page.locator('#kzqa-chat a[href*="#kzqa-card-"]').first
    page.evaluate("window.scrollTo(0, 0)")
    marker.click()
    page.wait_for_timeout(800)
    assert first.is_visible() and page.locator("#kzqa-sources .kzqa-card.kzqa-flash").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-answer.png"), full_page=True)


def test_partial_answer_is_shown_apart_from_a_full_one(page):
    reply = ask(page, "How much did CNPC pay to acquire PetroKazakhstan in 2005?", 0)
    assert "Partial answer" in reply and "The documents discuss" in reply and "do not state" in reply
    assert "as context only (not an answer)" in reply
    bot = page.locator('#kzqa-chat [data-testid="bot"]').last
    assert bot.locator("blockquote").count() >= 1  # the context quotes are set apart
    assert bot.locator('a[href*="#kzqa-card-"][href$="-1"]').count() >= 1
    sources = page.locator('#kzqa-sources [data-status="partial"]')
    sources.wait_for(timeout=30_000)
    assert sources.locator("h2").inner_text() == "Context (not an answer)"
    assert sources.locator("mark").count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-partial.png"), full_page=True)


def test_not_covered_and_follow_up(page):
    reply = ask(page, "What is a good recipe for banana bread?", 0)
    assert "do not cover" in reply and "Partial answer" not in reply
    assert page.locator('#kzqa-sources [data-status="not_covered"] h2').inner_text() == "Possibly related"
    ask(page, "When was Serikzhan Bilash detained?", 1)
    reply = ask(page, "Why was he detained?", 2)
    assert "Searched for:" in reply and "Bilash" in reply
    assert "inciting inter-ethnic hatred" in page.locator("#kzqa-sources").inner_text()
    page.screenshot(path=str(ARTIFACTS / "chat-followup.png"), full_page=True)


@pytest.mark.parametrize("attack", ["<img src=x onerror=alert(1)>", "**bold** [link](javascript:alert(1))",
                                    "[the report](https://example.com/report) and https://example.com/x"])
def test_user_input_is_shown_as_text(page, attack):
    ask(page, attack, 0)
    user = page.locator('#kzqa-chat [data-testid="user"]').last
    assert user.inner_text().strip().replace("\u2060", "") == attack  # a word joiner keeps addresses unlinked
    assert user.locator("img").count() == 0 and user.locator("a").count() == 0
    assert user.locator("strong").count() == 0
    page.wait_for_timeout(500)
    assert page.dialogs == []


def test_thumbs_up_is_stored_with_the_answer(page, feedback_db):
    from kzqa.app.feedback import FeedbackStore

    before = len(FeedbackStore(feedback_db).rows()) if feedback_db.exists() else 0
    ask(page, "Who founded Atajurt Eriktileri?", 0)
    page.locator('#kzqa-chat button[aria-label="Like"]').last.click()
    page.wait_for_function("() => document.body.innerText.includes('feedback was saved')", timeout=15_000)
    rows = FeedbackStore(feedback_db).rows()
    assert len(rows) == before + 1
    row = rows[-1]
    assert row["vote"] == "up" and row["question"] == "Who founded Atajurt Eriktileri?"
    assert row["passage_ids"] and "[1]" in row["answer"] and row["mode"] == "hybrid"
    for label, vote in (("Dislike", "down"), ("Like", "up")):  # changing one's mind replaces the vote
        page.locator(f'#kzqa-chat button[aria-label="{label}"]').last.click()
        for _ in range(40):  # the vote reaches the store within a few seconds
            rows = FeedbackStore(feedback_db).rows()
            if rows[-1]["vote"] == vote:
                break
            page.wait_for_timeout(250)
        assert len(rows) == before + 1 and rows[-1]["vote"] == vote, [r["vote"] for r in rows[before:]]


def test_empty_question_gets_a_hint(page):
    page.fill("#kzqa-question textarea", "   ")
    page.press("#kzqa-question textarea", "Enter")
    page.wait_for_selector('#kzqa-chat [data-testid="bot"]', timeout=30_000)
    assert "Please type a question" in page.locator('#kzqa-chat [data-testid="bot"]').last.inner_text()


def test_direct_answer_confidence_and_missing_part(page):
    """The short answer stands first in bold and is marked inside its sentence and its card; the
    confidence is said in words; a question with a part the documents lack names that part."""
    reply = ask(page, "How tall is the Bayterek tower?", 0)
    assert reply.splitlines()[0].strip() == "97 meters"
    bot = page.locator('#kzqa-chat [data-testid="bot"]').last
    assert bot.locator("strong").first.inner_text() == "97 meters"
    assert bot.locator("strong").count() >= 2  # the line on top and inside the quoted sentence
    assert re.search(r"(High|Medium|Low) confidence", reply)
    assert card(page, 1).locator("mark strong").inner_text() == "97 meters"
    page.click("#kzqa-new-chat")  # a new conversation: the next question is no follow-up of the first
    page.wait_for_function("""() => !document.querySelector('#kzqa-chat [data-testid="bot"]')""")
    reply = ask(page, "When was Bilash put under house arrest, and how much was he fined?", 0)
    assert "The documents give when it happened, but not the number or amount asked for." in reply
    assert "confidence" not in reply.lower()


STATES = {  # state → (question, viewport)
    "start": (None, (1366, 900)),
    "answered": ("How tall is the Bayterek tower?", (1366, 900)),
    "partial": ("How much did CNPC pay to acquire PetroKazakhstan in 2005?", (1366, 900)),
    "not covered": ("What is the capital of Peru?", (1366, 900)),
    "phone": ("How tall is the Bayterek tower?", (390, 844)),
}


@pytest.mark.parametrize("state", list(STATES))
def test_axe_finds_no_serious_or_critical_violations(browser, running_app, state):
    """axe-core (npm, installed by `make browser`) on the page in five states."""
    assert os.path.exists(AXE), "axe-core is missing: `make browser` installs it (npm install axe-core)"
    question, (width, height) = STATES[state]
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        page.goto(running_app)
        page.wait_for_selector("#kzqa-question textarea", timeout=60_000)
        if question:
            ask(page, question, 0)
            page.wait_for_timeout(500)
        # the page has finished rendering: the example buttons have their text (axe saw them empty)
        page.wait_for_function("""() => { const items = document.querySelectorAll('button.gallery-item');
            return items.length > 0 && [...items].every(b => b.innerText.trim().length > 0); }""", timeout=30_000)
        # and the page's load events are over: while they run, Gradio lays a translucent status
        # overlay on their output components (the Sources panel), which axe once measured as low
        # contrast on the start page
        page.wait_for_function("""() => {
            const trackers = [...document.querySelectorAll('#kzqa-sources [data-testid="status-tracker"]')];
            return trackers.length > 0 && trackers.every(t => t.classList.contains('hide')); }""", timeout=30_000)
        page.wait_for_timeout(300)
        page.add_script_tag(path=AXE)
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        page.screenshot(path=str(ARTIFACTS / f"axe-{state.replace(' ', '-')}.png"), full_page=state == "phone")
        (ARTIFACTS / f"axe-{state.replace(' ', '-')}.json").write_text(json.dumps(  # every impact, for the record
            {v["id"]: [v["impact"], len(v["nodes"])] for v in result["violations"]}, indent=1))
    finally:
        context.close()
    grave = [(v["id"], v["impact"], [n["html"][:80] for n in v["nodes"]][:3]) for v in result["violations"]
             if v["impact"] in ("serious", "critical")]
    assert grave == [], grave
    assert not any(v["id"] in ("page-has-heading-one", "heading-order") for v in result["violations"])


def test_a_marker_moves_the_focus_to_its_card_and_says_where_it_goes(page):
    ask(page, "How tall is the Bayterek tower?", 0)
    marker = page.locator('#kzqa-chat a[href*="#kzqa-card-"]').first
    assert "Source 1" in (marker.get_attribute("aria-label") or "")
    marker.click()
    page.wait_for_function("(id) => document.activeElement && document.activeElement.id === id",
                           arg=marker.get_attribute("href").split("#")[1])
    assert page.get_attribute("#kzqa-sources", "aria-live") == "polite"


@pytest.mark.parametrize("how", ["new chat", "trash"])
def test_starting_afresh_clears_the_sources_and_the_follow_up_context(page, how):
    ask(page, "When was Serikzhan Bilash detained?", 0)
    if how == "new chat":
        page.click("#kzqa-new-chat")
    else:
        page.locator("#kzqa-chat button[aria-label*='lear' i], #kzqa-chat button[title*='lear' i]").first.click()
    page.wait_for_function("""() => !document.querySelector('#kzqa-chat [data-testid="bot"]') &&
        document.querySelector('#kzqa-sources').innerText.includes('Sources of the latest answer appear here')""",
                           timeout=30_000)
    reply = ask(page, "Why was he detained?", 0)
    assert "Searched for:" not in reply  # no earlier topic carried into the new conversation


def test_a_russian_question_is_told_in_russian_that_the_quotes_are_english(page):
    reply = ask(page, "Какова высота башни Байтерек?", 0)
    assert "97" in reply and "Ответ приведён цитатами из англоязычных источников" in reply


def test_a_declined_question_says_what_was_searched_with_the_filter(page):
    page.get_by_text("Settings").click()
    page.get_by_label("A Dilemma: Chinese Influence in Kazakhstan and East Turkestan").check()
    # the other document's figure: with the filter on, the documents searched do not give it
    reply = ask(page, "What was the trade turnover between China and Kazakhstan in 2019?", 0)
    assert "Searched: only “A Dilemma: Chinese Influence in Kazakhstan and East Turkestan” (hybrid search)" in reply
    score = page.locator("#kzqa-sources .kzqa-meta span[title]").first
    assert score.inner_text().startswith("rank 1") and "scale" in score.get_attribute("title")


def _saved(page) -> str | None:
    return page.evaluate("() => localStorage.getItem('kzqa-conversation')")


def _wait_until_saved_again(page, before: str | None) -> None:
    page.wait_for_function("(before) => localStorage.getItem('kzqa-conversation') !== before", arg=before,
                           timeout=30_000)


def test_a_reload_keeps_the_conversation_and_new_chat_clears_it(page):
    before = _saved(page)
    ask(page, "Who founded Atajurt Eriktileri?", 0)
    _wait_until_saved_again(page, before)  # the browser keeps the conversation once the answer is in
    page.reload()
    page.wait_for_function("""() => document.querySelectorAll('#kzqa-chat [data-testid="bot"]').length === 1 &&
        document.querySelector('#kzqa-sources').innerText.includes('Atajurt')""", timeout=60_000)
    assert "Who founded Atajurt Eriktileri?" in page.locator("#kzqa-chat").inner_text()
    before = _saved(page)
    reply = ask(page, "When was it founded?", 1)  # the follow-up context came back too
    assert "Searched for:" in reply
    _wait_until_saved_again(page, before)
    before = _saved(page)
    page.click("#kzqa-new-chat")
    page.wait_for_function("""() => !document.querySelector('#kzqa-chat [data-testid="bot"]')""")
    _wait_until_saved_again(page, before)
    page.reload()
    page.wait_for_selector("#kzqa-question textarea", timeout=60_000)
    page.wait_for_timeout(1_500)
    assert page.locator('#kzqa-chat [data-testid="bot"]').count() == 0


def test_on_a_phone_the_sources_come_right_after_the_answer(browser, running_app):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(running_app)
        page.wait_for_selector("#kzqa-question textarea", timeout=60_000)
        ask(page, "How tall is the Bayterek tower?", 0)
        page.wait_for_function("() => document.querySelector('#kzqa-sources').innerText.includes('97 meters')")
        box = {name: page.locator(sel).bounding_box() for name, sel in (
            ("chat", "#kzqa-chat"), ("sources", "#kzqa-sources"), ("question", "#kzqa-question"),
            ("settings", "#kzqa-settings"))}
        chat_end = box["chat"]["y"] + box["chat"]["height"]
        # the chat, its sources right under it, then the question box, then the (folded) settings
        assert chat_end - 1 <= box["sources"]["y"] < chat_end + 60, box
        assert box["sources"]["y"] + box["sources"]["height"] <= box["question"]["y"] + 1 < box["settings"]["y"], box
        user = page.locator('#kzqa-chat [data-testid="user"]').first.bounding_box()
        assert user["y"] >= box["chat"]["y"]  # the question bubble is inside the chat, under no label
        page.screenshot(path=str(ARTIFACTS / "phone-answer.png"), full_page=True)
        summary = page.locator("#kzqa-sources details:not([hidden]) > summary")
        summary.click()  # the sources fold away, and come back
        page.wait_for_function("() => !document.querySelector('#kzqa-sources details:not([hidden])').open")
        assert card(page, 1).is_hidden()
        summary.click()
        card(page, 1).wait_for(state="visible")
    finally:
        context.close()


def test_a_marker_in_the_first_of_two_answers_opens_the_first_answers_card(page):
    ask(page, "How tall is the Bayterek tower?", 0)
    ask(page, "Who founded Atajurt Eriktileri?", 1)
    shown = page.locator("#kzqa-sources details:not([hidden]) .kzqa-for")
    assert "Atajurt" in shown.inner_text()  # the panel says which answer its cards belong to
    marker = page.locator('#kzqa-chat [data-testid="bot"]').first.locator('a[href*="#kzqa-card-"]').first
    marker.focus()  # focusing (or hovering) a marker previews its quoted sentence
    tip = page.locator("#kzqa-preview")
    tip.wait_for(state="visible")
    assert "97 meters" in tip.inner_text() and tip.get_attribute("role") == "tooltip"
    target = marker.get_attribute("href").split("#")[1]
    marker.press("Enter")
    page.wait_for_function("(id) => document.activeElement && document.activeElement.id === id", arg=target)
    assert "How tall is the Bayterek tower?" in shown.inner_text()
    assert page.locator("#kzqa-sources details:not([hidden])").count() == 1
    assert "97 meters" in page.locator(f"#{target} mark").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "older-answer-source.png"), full_page=True)
    page.locator("#kzqa-sources details:not([hidden]) .kzqa-latest").click()
    page.wait_for_function("""() => document.querySelector('#kzqa-sources details:not([hidden]) .kzqa-for')
        .innerText.includes('Atajurt')""")


def test_the_document_view_opens_at_the_cited_passage(page):
    ask(page, "Why did Kazakhs protest in 2016?", 0)
    source = card(page, 1)
    quote = source.locator("mark").first.inner_text()
    title = source.get_attribute("data-title")
    section = source.locator(".kzqa-meta").inner_text().split(" · ")[0]
    with page.context.expect_page() as opened:
        source.locator("a", has_text="read in the document").click()
    doc = opened.value
    doc.wait_for_selector("#kzqa-cited mark", timeout=60_000)
    doc.wait_for_function("""() => { const r = document.getElementById('kzqa-cited').getBoundingClientRect();
        return r.top >= 0 && r.top < innerHeight; }""", timeout=10_000)  # scrolled into view
    assert quote in doc.locator("#kzqa-cited mark").first.inner_text()
    assert doc.locator("h1").inner_text() == title
    assert section in doc.locator("nav li").all_inner_texts()
    assert "2021-05-24" in doc.locator(".kzqa-doc .kzqa-meta").first.inner_text()
    doc.wait_for_timeout(300)
    doc.screenshot(path=str(ARTIFACTS / "document-view.png"))
    assert axe_violations(doc) == []


def test_earlier_conversations_reopen_in_this_browser_only(browser, running_app, page):
    ask(page, "Who founded Atajurt Eriktileri?", 0)
    page.click("#kzqa-new-chat")
    page.wait_for_function("""() => !document.querySelector('#kzqa-chat [data-testid="bot"]')""")
    ask(page, "How tall is the Bayterek tower?", 0)
    listed = page.locator("#kzqa-history-list label")
    listed.filter(has_text="Who founded Atajurt Eriktileri?").click()
    page.wait_for_function("""() => document.querySelector('#kzqa-chat').innerText.includes('Atajurt') &&
        document.querySelectorAll('#kzqa-chat [data-testid="bot"]').length === 1 &&
        document.querySelector('#kzqa-sources').innerText.includes('Atajurt')""", timeout=30_000)
    # the conversation open until then took its place in the list
    page.wait_for_function("""() => [...document.querySelectorAll('#kzqa-history-list label')]
        .map(l => l.innerText.trim()).join('|') === 'How tall is the Bayterek tower? (1 questions)'""",
                           timeout=15_000)
    reply = ask(page, "When was it founded?", 1)  # its follow-up context came back with it
    assert "Searched for:" in reply and "Atajurt" in reply
    other = browser.new_context()  # another browser sees none of it
    try:
        elsewhere = other.new_page()
        elsewhere.goto(running_app)
        elsewhere.wait_for_selector("#kzqa-question textarea", timeout=60_000)
        elsewhere.wait_for_timeout(1_000)
        assert elsewhere.locator("#kzqa-history-list label").count() == 0
        assert elsewhere.locator('#kzqa-chat [data-testid="bot"]').count() == 0
    finally:
        other.close()


def test_copy_gives_plain_text_with_the_sources_written_out(browser, running_app):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=running_app.rstrip("/"))
    page = context.new_page()
    try:
        page.goto(running_app)
        page.wait_for_selector("#kzqa-question textarea", timeout=60_000)
        ask(page, "How tall is the Bayterek tower?", 0)
        page.locator('#kzqa-chat button[aria-label="Copy message"]').last.click()
        page.wait_for_timeout(500)
        text = page.evaluate("navigator.clipboard.readText()")
    finally:
        context.close()
    assert "Nur-Sultan (Astana)" in text and "97 meters of altitude" in text
    assert "history. [1] — A Dilemma: Chinese Influence in Kazakhstan and East Turkestan, INSAMER" in text
    assert "\\" not in text and "](#" not in text and "**" not in text


def test_the_keyboard_reaches_question_markers_cards_votes_and_settings_with_a_focus_ring(page):
    ask(page, "How tall is the Bayterek tower?", 0)
    page.evaluate("() => { document.activeElement.blur(); window.scrollTo(0, 0); }")
    rings: dict[str, bool] = {}
    for _ in range(150):
        page.keyboard.press("Tab")
        kind, ring = page.evaluate("""() => {
            const e = document.activeElement; if (!e) return [null, false];
            const kind = e.matches('#kzqa-question textarea') ? 'question'
                : e.matches('#kzqa-chat a[href*="#kzqa-card-"]') ? 'marker'
                : e.matches('#kzqa-sources .kzqa-card') ? 'card'
                : e.matches('#kzqa-chat button[aria-label="Like"], #kzqa-chat button[aria-label="Dislike"]') ? 'vote'
                : e.closest('#kzqa-settings') ? 'settings' : null;
            const st = getComputedStyle(e);
            const ring = (st.outlineStyle !== 'none' && parseFloat(st.outlineWidth) >= 2) || st.boxShadow !== 'none';
            return [kind, ring]; }""")
        if kind:
            rings[kind] = rings.get(kind, True) and ring
        if len(rings) == 5:
            break
    assert rings == {"question": True, "marker": True, "card": True, "vote": True, "settings": True}, rings


def test_the_api_docs_render_offline_from_the_servers_own_files(browser, running_app):
    """/api/docs is Swagger UI served from the swagger-ui-bundle wheel: every file it loads comes
    from this server (the browser has no other host to reach here), and it lists the routes."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    requested, failed = [], []
    page.on("request", lambda r: requested.append(r.url))
    page.on("requestfailed", lambda r: failed.append(r.url))
    try:
        page.goto(running_app.rstrip("/") + "/api/docs")
        page.wait_for_selector(".opblock-summary", timeout=30_000)
        operations = " ".join(page.locator(".opblock-summary").all_inner_texts())
        for route in ("/ask", "/search", "/documents", "/documents/{doc_id}", "/feedback"):
            assert route in operations
        assert failed == []
        assert all(url.startswith(running_app.rstrip("/")) for url in requested), requested
        page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
        violations = axe_violations(page)
        assert violations == [], json.dumps(violations, indent=1)
        page.locator(".opblock-summary-control", has_text="/ask").first.click()  # one route opened
        page.locator(".opblock-body").first.wait_for(timeout=10_000)
        violations = axe_violations(page)
        assert violations == [], json.dumps(violations, indent=1)
    finally:
        context.close()
