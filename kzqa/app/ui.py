"""The Gradio web chat, its document page and its HTTP API: a thin edge over ``kzqa.load()`` /
``Engine.ask``. What the pages show is written by :mod:`kzqa.app.render` (escaped text)."""

from __future__ import annotations

import logging
import shutil
import signal
import sqlite3
import threading
import uuid
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from ..backends import PendingEngine, load_in_background
from ..qa.engine import MAX_QUESTION_CHARS, Engine, QueryError, check_k_and_mode
from ..qa.followup import resolve_followup
from ..qa.retrieve import DEFAULT_MODE, MODES
from ..stores.base import IndexProblem
from .feedback import FeedbackStore, PgFeedbackStore, open_feedback
from .guard import Guard, private_temp_folder
from .render import (
    SourceGroup,
    as_text,
    parse_place,
    render_document,
    render_library,
    render_panel,
    render_reply,
)
from .service import Metrics, RequestLog, ServiceSettings, log_requests_to_stderr, service_routes

EXAMPLES = [
    "How tall is the Bayterek tower?",
    "Who founded Atajurt Eriktileri?",
    "Why did Kazakhs protest in 2016?",
    "What was the trade turnover between China and Kazakhstan in 2019?",
    "Какую организацию основал Серикжан Билаш?",
]
EMPTY_HINT = "Please type a question about Kazakhstan–China relations, e.g. “How tall is the Bayterek tower?”"
SEARCHING = "Searching the documents…"
INTERNAL_ERROR = "Sorry — something went wrong while answering; the server logged the cause. Please try again."
log = logging.getLogger("kzqa.ui")

CSS = """
.nav-holder { display: none !important; }  /* Gradio's page list: the document page links back itself */
.kzqa-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 12px;
             margin: 0 0 10px 0; scroll-margin-top: 12px; }
.kzqa-card.kzqa-flash, .kzqa-card:focus { outline: 3px solid #1d4ed8; outline-offset: 2px; }
.kzqa-card-head { font-weight: 600; }
.kzqa-meta { font-size: 0.85em; color: #4b5563; margin: 2px 0 6px 0; }
.kzqa-meta a, .kzqa-doc a { color: #1d4ed8; text-decoration: underline; }
.dark .kzqa-meta { color: #d1d5db; }
.dark .kzqa-meta a, .dark .kzqa-doc a { color: #93c5fd; }
.kzqa-passage, .kzqa-doc-text { white-space: pre-wrap; margin: 0; }
.kzqa-passage mark, .kzqa-doc mark { background: #ffe58a; color: #111; padding: 0 1px; }
.kzqa-passage mark strong { text-decoration: underline; }
.kzqa-answer-sources > summary { cursor: pointer; margin-bottom: 8px; }
.kzqa-answer-sources > summary h2 { display: inline; margin: 0; font-size: 1.15em; }
.kzqa-for { display: block; font-size: 0.9em; color: #4b5563; margin-left: 1.1em; }
.dark .kzqa-for { color: #d1d5db; }
.kzqa-latest { margin: 0 0 8px 0; padding: 2px 8px; border: 1px solid #1d4ed8; border-radius: 6px;
               color: #1d4ed8; background: transparent; font-size: 0.85em; font-weight: normal; }
.kzqa-answer-sources:last-child .kzqa-latest { display: none; }
#kzqa-preview { position: fixed; z-index: 1000; max-width: min(420px, 90vw); padding: 8px 10px;
                border-radius: 6px; background: #111827; color: #f9fafb; font-size: 0.9em;
                box-shadow: 0 4px 14px rgba(0, 0, 0, .3); pointer-events: none; }
#kzqa-preview[hidden] { display: none; }
.kzqa-doc { max-width: 46em; margin: 0 auto; line-height: 1.55; }
.kzqa-doc h1 { font-size: 1.6em; margin: 0.4em 0; }
.kzqa-doc h2 { font-size: 1.2em; margin: 1.2em 0 0.4em 0; }
.kzqa-cited { background: #e0ecff; outline: 2px solid #1d4ed8; border-radius: 3px; scroll-margin: 30vh; }
.dark .kzqa-cited { background: #1e3a8a; }
/* WCAG AA contrast (4.5:1) for the primary button and the footer links; a visible focus ring */
#kzqa-send { background: #1d4ed8 !important; border-color: #1d4ed8 !important; color: #fff !important; }
#kzqa-send:hover { background: #1e40af !important; }
footer a, footer button, .show-api { color: #374151 !important; opacity: 1 !important; }
.dark footer a, .dark footer button, .dark .show-api { color: #e5e7eb !important; }
a:focus-visible, button:focus-visible, input:focus-visible, textarea:focus-visible, summary:focus-visible,
[tabindex]:focus-visible { outline: 3px solid #1d4ed8 !important; outline-offset: 2px; }
/* A phone: the columns' parts in one line of reading, the answer's sources right after the chat */
@media (max-width: 640px) {
  #kzqa-main { flex-direction: column; }
  #kzqa-ask-column, #kzqa-side-column { display: contents; }
  #kzqa-ask-column > *, #kzqa-side-column > * { order: 5; }
  #kzqa-ask-column > :has(#kzqa-chat), #kzqa-chat { order: 1; }
  #kzqa-side-column > :has(#kzqa-sources), #kzqa-sources { order: 2; }
  #kzqa-ask-column > :has(#kzqa-question), #kzqa-question { order: 3; }
  #kzqa-buttons { order: 4; }
  #kzqa-chat { height: 60vh !important; }
}
"""
# Markers, cards and the document page at work (capture phase, before Gradio's own link handling):
# - a click (or Enter) on a marker shows its own answer's cards, scrolls its card into view and
#   moves the focus there; "Show the latest answer's sources" goes back;
# - hovering or focusing a marker previews its quoted sentence (#kzqa-preview, a tooltip);
# - the chat's copy button copies the message as plain text with each marker's source written out;
# - markers get names that say where they go, the Sources panel is announced when it changes
#   (aria-live), and the document page scrolls to the cited passage.
HEAD = """<script>
(function () {
  const MARKER = 'a[href*="#kzqa-card-"]';
  function cardOf(link) { return document.getElementById(link.getAttribute('href').split('#')[1]); }
  function showGroup(group) {
    if (!group) return;
    document.querySelectorAll('#kzqa-sources details.kzqa-answer-sources').forEach(function (g) {
      g.hidden = g !== group; });
    group.open = true;
  }
  function quoteOf(card) {
    const marks = [...card.querySelectorAll('mark')].map(m => m.textContent.trim()).filter(Boolean);
    const text = marks.length ? marks.join(' … ') : card.querySelector('.kzqa-passage').textContent.slice(0, 240) + '…';
    return card.dataset.title + ': “' + text + '”';
  }
  function tooltip() {
    let tip = document.getElementById('kzqa-preview');
    if (!tip && document.body) {
      tip = document.createElement('div'); tip.id = 'kzqa-preview'; tip.setAttribute('role', 'tooltip');
      tip.hidden = true; document.body.appendChild(tip);
    }
    return tip;
  }
  function preview(link) {
    const card = cardOf(link); const tip = tooltip(); if (!card || !tip) return;
    tip.textContent = quoteOf(card); tip.hidden = false;
    const r = link.getBoundingClientRect();
    tip.style.left = Math.max(8, Math.min(r.left, window.innerWidth - tip.offsetWidth - 8)) + 'px';
    const below = r.bottom + 6 + tip.offsetHeight < window.innerHeight;
    tip.style.top = (below ? r.bottom + 6 : Math.max(8, r.top - tip.offsetHeight - 6)) + 'px';
  }
  function unpreview() { const tip = document.getElementById('kzqa-preview'); if (tip) tip.hidden = true; }
  function plainMessage(message) {
    const copy = message.cloneNode(true);
    copy.querySelectorAll(MARKER).forEach(function (a) {
      const card = cardOf(a);
      const source = card ? [card.dataset.title, card.dataset.publisher].filter(Boolean).join(', ') : '';
      a.replaceWith(document.createTextNode(a.textContent + (source ? ' — ' + source : '')));
    });
    copy.querySelectorAll('button, [role="toolbar"]').forEach(b => b.remove());
    document.body.appendChild(copy); copy.style.position = 'fixed'; copy.style.left = '-9999px';
    const text = copy.innerText.replace(/\u2060/g, '').trim(); copy.remove();
    return text;
  }
  document.addEventListener('click', function (event) {
    const target = event.target.closest ? event.target : event.target.parentElement;
    const link = target.closest(MARKER);
    if (link) {
      const card = cardOf(link); if (!card) return;
      event.preventDefault(); event.stopPropagation(); unpreview();
      showGroup(card.closest('details.kzqa-answer-sources'));
      card.scrollIntoView({behavior: 'smooth', block: 'center'});
      card.focus({preventScroll: true});
      card.classList.add('kzqa-flash'); setTimeout(() => card.classList.remove('kzqa-flash'), 1500);
      return;
    }
    const latest = target.closest('.kzqa-latest');
    if (latest) {
      const groups = document.querySelectorAll('#kzqa-sources details.kzqa-answer-sources');
      const last = groups[groups.length - 1]; showGroup(last);
      last.querySelector('summary').focus();
      return;
    }
    const copyButton = target.closest('#kzqa-chat button[aria-label*="opy"], #kzqa-chat button[title*="opy"]');
    let row = copyButton && copyButton.closest('.message-buttons');  // after the message it belongs to
    row = row && row.previousElementSibling;
    while (row && !row.querySelector('[data-testid="bot"], [data-testid="user"]')) row = row.previousElementSibling;
    const bodies = row ? row.querySelectorAll('[data-testid="bot"], [data-testid="user"]') : [];
    const body = bodies[bodies.length - 1];
    if (body && navigator.clipboard) {
      event.preventDefault(); event.stopPropagation();
      navigator.clipboard.writeText(plainMessage(body)).then(function () {
        copyButton.setAttribute('title', 'Copied'); setTimeout(() => copyButton.setAttribute('title', 'Copy'), 1500);
      });
    }
  }, true);
  document.addEventListener('mouseover', function (e) { const l = e.target.closest && e.target.closest(MARKER);
    if (l) preview(l); });
  document.addEventListener('mouseout', function (e) { if (e.target.closest && e.target.closest(MARKER)) unpreview(); });
  document.addEventListener('focusin', function (e) { const l = e.target.closest && e.target.closest(MARKER);
    if (l) preview(l); else unpreview(); });
  document.addEventListener('keydown', function (e) { if (e.key === 'Escape') unpreview(); });
  function label() {
    if (!tooltip()) return;
    document.querySelectorAll('#kzqa-chat ' + MARKER + ':not([aria-label])').forEach(function (a) {
      const n = a.getAttribute('href').split('-').pop();
      a.setAttribute('aria-label', 'Source ' + n + ': open its passage in the Sources panel');
      a.setAttribute('aria-describedby', 'kzqa-preview');
    });
    const panel = document.getElementById('kzqa-sources');
    if (panel && !panel.hasAttribute('aria-live')) {
      panel.setAttribute('aria-live', 'polite'); panel.setAttribute('role', 'region');
      panel.setAttribute('aria-label', 'Sources of the answers');
    }
    const cited = document.getElementById('kzqa-cited');
    if (cited && !cited.dataset.shown) {
      cited.dataset.shown = '1'; cited.scrollIntoView({block: 'center'}); cited.focus({preventScroll: true});
    }
  }
  new MutationObserver(label).observe(document.documentElement, {childList: true, subtree: true});
})();
</script>"""

# What chat and API clients are told when the index cannot answer (the log gets the details:
# clients never see a database's name, user, host or port, nor an index's path).
UNAVAILABLE = "The index is temporarily unavailable; please try again in a moment."


MAX_TURNS = 20  # turns a chat keeps (shown, sent back by the browser, used for follow-ups)
MAX_PAST = 8  # earlier conversations a browser keeps in its history list


def new_session() -> dict:
    """A conversation's state beside its messages: the questions asked (the follow-up context),
    the feedback record of each answer (``records[i]`` is about message i) and the cards of each
    answer (``sources``: answer id → :meth:`SourceGroup.to_dict`, oldest first)."""
    return {"queries": [], "records": {}, "sources": {}}


def whole_session(session) -> dict:
    """``session`` with every part :func:`new_session` has (a session from an older page lacks some)."""
    return {**new_session(), **(session or {})}


def panel(session: dict) -> str:
    """The Sources panel of a conversation (see :func:`render_panel`)."""
    return render_panel([SourceGroup.from_dict(g) for g in session["sources"].values()])


def stored(history: list, session: dict) -> dict:
    """What the browser keeps of the conversation: its messages and its session (JSON: the
    records' keys become strings)."""
    session = whole_session(session)
    return {"history": history, "session": {**session, "records": {str(i): r for i, r in session["records"].items()}}}


def text_of(content) -> str:
    """A chat message's text: Gradio hands messages back with their content as a list of parts
    ({"type": "text", "text": …}); anything but text is left out."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(p["text"] for p in parts if isinstance(p, dict) and p.get("type") == "text"
                   and isinstance(p.get("text"), str))


def conversation(saved) -> tuple[list, dict] | None:
    """The messages and session that :func:`stored` kept, checked (what does not fit is
    dropped: a browser's storage is input like any other), or None when ``saved`` holds none."""
    if not isinstance(saved, dict) or not isinstance(saved.get("history"), list):
        return None
    history = [{"role": m["role"], "content": text_of(m.get("content"))} for m in saved["history"]
               if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
    session = saved.get("session") if isinstance(saved.get("session"), dict) else {}
    records = {int(i): r for i, r in (session.get("records") or {}).items()
               if str(i).isdigit() and isinstance(r, dict)}
    groups = {}
    for answer_id, group in (session.get("sources") or {}).items() if isinstance(session.get("sources"), dict) else ():
        try:
            groups[answer_id] = SourceGroup.from_dict(group).to_dict()
        except (TypeError, ValueError, KeyError, AttributeError):
            continue
    queries = [q for q in session.get("queries") or [] if isinstance(q, str)]
    return history, {"queries": queries, "records": records, "sources": groups}


def restored(saved, past) -> tuple:
    """On opening the page: the conversation this browser kept (messages, session, Sources
    panel), or nothing to change when it kept none; and its history list."""
    kept = conversation(saved)
    listed = history_choices(past)
    if kept is None:
        return gr.skip(), gr.skip(), gr.skip(), listed
    return kept[0], kept[1], panel(kept[1]), listed


def title_of(session: dict) -> str:
    """A conversation's name in the history list: its first question."""
    first = next((r.get("question") for _, r in sorted(session["records"].items()) if r.get("question")), None)
    text = " ".join(str(first or "Conversation").split())
    return text if len(text) <= 70 else text[:67] + "…"


def earlier_conversations(past) -> list[dict]:
    """The entries of this browser's history list that hold a conversation (see :func:`conversation`)."""
    return [c for c in (past if isinstance(past, list) else []) if conversation(c) is not None]


def archived(history: list, session: dict, past) -> list:
    """The history list with this conversation put first (when it has any message), at most
    MAX_PAST long."""
    earlier = earlier_conversations(past)
    if not history:
        return earlier[:MAX_PAST]
    entry = {**stored(history, session), "id": uuid.uuid4().hex, "title": title_of(session),
             "questions": len(session["queries"])}
    return ([entry] + earlier)[:MAX_PAST]


def history_choices(past) -> dict:
    """The history list's entries: 'first question (n questions)', newest first."""
    entries = earlier_conversations(past)
    return gr.update(choices=[(f"{c.get('title') or 'Conversation'} ({c.get('questions', '?')} questions)",
                               str(c.get("id"))) for c in entries], value=None)


def bounded(history: list, session: dict, max_turns: int = MAX_TURNS) -> tuple[list, dict]:
    """The chat and its session cut to the last ``max_turns`` turns, so that each turn costs the
    same however long the conversation: the oldest messages go, the feedback records and cards
    of the kept ones move with them (``records[i]`` is about ``history[i]``), and the follow-up
    context keeps the last ``max_turns`` questions."""
    extra = len(history) - 2 * max_turns
    queries = session["queries"][-max_turns:]
    if extra <= 0:
        return history, {**session, "queries": queries}
    records = {i - extra: r for i, r in session["records"].items() if i >= extra}
    kept_ids = {r.get("answer_id") for r in records.values()}
    sources = {a: g for a, g in session["sources"].items() if a in kept_ids}
    return history[extra:], {**session, "queries": queries, "records": records, "sources": sources}


def whole(k):
    """A JSON number that is a whole number (5.0) as an int; anything else as it came."""
    return int(k) if isinstance(k, float) and k.is_integer() else k


def api_call(call):
    """``call()`` for the HTTP API: a bad request or an index problem becomes its message; any
    other failure is logged here with its traceback and the client gets a plain sentence
    (never the internal exception text)."""
    try:
        return call()
    except QueryError as exc:
        raise gr.Error(str(exc)) from exc
    except IndexProblem as exc:
        log.warning("the API could not answer: %s", exc)
        raise gr.Error(UNAVAILABLE) from exc
    except Exception as exc:
        log.exception("the API call failed")
        raise gr.Error("internal error: the request could not be answered (the server logged the cause)") from exc


def build_app(engine: Engine | PendingEngine, feedback: FeedbackStore | PgFeedbackStore | None = None) -> gr.Blocks:
    """The chat page, the document page (/document) and the named API endpoints /ask and
    /search. With an engine still loading, the page opens at once; questions wait for the index,
    and the document list fills in then."""
    feedback = feedback or open_feedback()
    loading = isinstance(engine, PendingEngine) and not engine.wait(0)

    def document_choices() -> list[tuple[str, str]]:
        return [(d.title, d.doc_id) for d in engine.documents.values()]

    def respond(message: str, history: list, session: dict, k: int, mode: str, doc_ids: list):
        history = list(history or [])
        session = whole_session(session)
        question = str(message or "")[:4 * MAX_QUESTION_CHARS].strip()  # the engine cuts it to MAX_QUESTION_CHARS
        if not question:
            yield history + [{"role": "assistant", "content": as_text(EMPTY_HINT)}], "", gr.skip(), session
            return
        shown = question if len(question) <= MAX_QUESTION_CHARS else question[:MAX_QUESTION_CHARS] + " …"
        history = history + [{"role": "user", "content": as_text(shown)}]
        yield history + [{"role": "assistant", "content": as_text(SEARCHING)}], "", gr.skip(), session
        resolved = resolve_followup(session["queries"], question)
        try:
            answer = engine.ask(resolved, k=int(k), mode=mode, doc_ids=list(doc_ids or []) or None)
        except QueryError as exc:
            yield history + [{"role": "assistant", "content": as_text(str(exc))}], "", gr.skip(), session
            return
        except IndexProblem as exc:  # e.g. the database stopped answering: details for the log only
            log.warning("the chat could not answer: %s", exc)
            yield history + [{"role": "assistant", "content": as_text(UNAVAILABLE)}], "", gr.skip(), session
            return
        except Exception:
            log.exception("answering in the chat failed")
            yield history + [{"role": "assistant", "content": as_text(INTERNAL_ERROR)}], "", gr.skip(), session
            return
        answer_id = uuid.uuid4().hex  # its markers point at its own cards; a later vote on it replaces the earlier
        session["queries"].append(answer.question)
        kept = [engine.documents[d].title for d in (doc_ids or []) if d in engine.documents]
        history.append({"role": "assistant", "content": render_reply(answer, question, resolved, answer_id, kept)})
        session["records"][len(history) - 1] = {
            "question": question, "resolved_query": answer.question, "answer": answer.text,
            "passage_ids": [h.passage_id for h in answer.citations or answer.related],
            "mode": answer.mode, "abstained": answer.abstained,  # status is in the answer text
            "answer_id": answer_id}
        session["sources"] = {**session["sources"], answer_id: SourceGroup.of(answer, answer_id, question).to_dict()}
        history, session = bounded(history, session)
        yield history, "", panel(session), session

    def on_like(data: gr.LikeData, session: dict):
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        record = (session or {}).get("records", {}).get(index)
        if record is None:
            return
        try:
            feedback.record(vote="up" if data.liked is True or data.liked == "Like" else "down", **record)
        except (IndexProblem, OSError, sqlite3.Error) as exc:
            log.warning("feedback could not be saved: %s", exc)
            gr.Warning("Your feedback could not be saved right now; please try again later.")
            return
        gr.Info("Thanks — your feedback was saved.")

    def start_afresh(history: list, session: dict, past):
        """'New chat': this conversation goes to the history list, and a new one starts with
        no messages, no sources and no follow-up context."""
        past = archived(list(history or []), whole_session(session), past)
        return [], "", panel(new_session()), new_session(), past, history_choices(past)

    def delete():
        """The chat's trash icon: the conversation is gone (not kept in the history list)."""
        return [], "", panel(new_session()), new_session()

    def reopen(chosen: str | None, history: list, session: dict, past):
        """A conversation picked from the history list comes back (messages, sources, follow-up
        context) and leaves the list; the one open until then takes its place there."""
        entries = earlier_conversations(past)
        picked = next((c for c in entries if str(c.get("id")) == str(chosen)), None)
        kept = conversation(picked)
        if kept is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        rest = archived(list(history or []), whole_session(session), [c for c in entries if c is not picked])
        return kept[0], "", panel(kept[1]), kept[1], rest, history_choices(rest)

    def api_ask(question: str, k: int = 5, mode: str = DEFAULT_MODE) -> dict:
        """Answer a question from the documents: status ('answered', 'partial', 'not_covered'),
        text with [n] markers, abstained, citations."""
        return api_call(lambda: engine.ask(question, k=whole(k), mode=mode).to_dict())

    def api_search(query: str, k: int = 5, mode: str = DEFAULT_MODE) -> dict:
        """The k most relevant passages, best first."""
        return api_call(lambda: {"query": Engine.prepare_question(query)[0],
                                 "hits": [h.to_dict() for h in engine.search(query, k=whole(k), mode=mode)]})

    def show_document(request: gr.Request) -> str:
        """The document page: the document a link names (``doc``), at the place it asks for
        (``at``, ``q``: see :func:`render.parse_place`); the list of documents without one."""
        params = request.query_params if request else {}
        doc_id = params.get("doc")
        documents = engine.documents
        if not doc_id or doc_id not in documents:
            return render_library(list(documents.values()), unknown=doc_id)
        document = documents[doc_id]
        return render_document(document, *parse_place(document, params.get("at"), params.get("q")))

    with gr.Blocks(title="kzqa — Kazakhstan–China relations") as demo:
        session = gr.State(new_session())
        # this browser's conversation and its earlier ones (encrypted in its local storage): they
        # survive a reload, and no other browser sees them
        saved = gr.BrowserState(None, storage_key="kzqa-conversation")
        past = gr.BrowserState([], storage_key="kzqa-history")
        gr.Markdown("# kzqa — questions on Kazakhstan–China relations, answered from the documents\n"
                    "Every sentence of an answer is quoted from a source; click a marker like [1] to see "
                    "its passage. Ask in English, Russian, Kazakh or Chinese.")
        with gr.Row(elem_id="kzqa-main"):
            with gr.Column(scale=3, elem_id="kzqa-ask-column"):
                chat = gr.Chatbot(label="Chat", show_label=False, elem_id="kzqa-chat", height=520, latex_delimiters=[],
                                  feedback_options=("Like", "Dislike"), buttons=["copy"])
                box = gr.Textbox(label="Your question", elem_id="kzqa-question", lines=1,
                                 placeholder="Ask about Kazakhstan–China relations…", max_length=20000)
                with gr.Row(elem_id="kzqa-buttons"):
                    send = gr.Button("Ask", variant="primary", elem_id="kzqa-send")
                    new_chat = gr.Button("New chat", elem_id="kzqa-new-chat")
            # On a phone the columns' parts are reordered by CSS: the sources (collapsible) right
            # after the chat, then the question box, the settings (folded), the history, the examples.
            with gr.Column(scale=2, elem_id="kzqa-side-column"):
                with gr.Accordion("Settings", open=False, elem_id="kzqa-settings"):
                    k = gr.Slider(1, 10, value=5, step=1, label="Passages to answer from")
                    mode = gr.Radio(list(MODES), value=DEFAULT_MODE, label="Retrieval mode")
                    docs = gr.CheckboxGroup([] if loading else document_choices(), value=[],
                                            label="Only these documents (none = all)")
                sources = gr.HTML(panel(new_session()), elem_id="kzqa-sources")
                # radio buttons, not a dropdown nor a folded accordion: their choices show as soon as
                # they change (Gradio renders folded parts late, and an open dropdown kept its old list)
                earlier = gr.Radio([], value=None, label="Earlier conversations (kept in this browser)",
                                   elem_id="kzqa-history-list")
                gr.Examples(EXAMPLES, inputs=box, label="Examples", elem_id="kzqa-examples")
        inputs = [box, chat, session, k, mode, docs]
        kept = [chat, session]
        afresh = [chat, box, sources, session, past, earlier]
        for event in (box.submit(respond, inputs, [chat, box, sources, session], api_visibility="private",
                                 concurrency_limit=4),
                      send.click(respond, inputs, [chat, box, sources, session], api_visibility="private",
                                 concurrency_limit=4),
                      new_chat.click(start_afresh, [chat, session, past], afresh, api_visibility="private"),
                      # the chat's own trash icon deletes the conversation: no sources, no follow-up context
                      chat.clear(delete, None, [chat, box, sources, session], api_visibility="private"),
                      earlier.input(reopen, [earlier, chat, session, past], afresh, api_visibility="private")):
            event.then(stored, kept, saved, api_visibility="private")
        demo.load(restored, [saved, past], [chat, session, sources, earlier], api_visibility="private")
        chat.like(on_like, [session], None, api_visibility="private")
        gr.api(api_ask, api_name="ask", queue=False)  # one HTTP request per call: no queue, no event stream
        gr.api(api_search, api_name="search", queue=False)
        if loading:
            demo.load(lambda: gr.update(choices=document_choices()), None, docs, api_visibility="private")
    with demo.route("Document", "/document", show_in_navbar=False) as page:
        shown = gr.HTML("<p>Opening the document…</p>", elem_id="kzqa-document")
        page.load(show_document, None, shown, api_visibility="private")
    return demo


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise QueryError("--auth must look like user:password")
    return user, password


READY_WAIT_S = 3.0  # an index that loads within this long is checked before the port opens


def launch(index: str | Path | None = None, host: str = "127.0.0.1", port: int = 7860,
           auth: str | None = None, share: bool = False, db: str | None = None,
           feedback_db: str | None = None, engine: Engine | PendingEngine | None = None,
           temp: Path | None = None, service: ServiceSettings | None = None) -> None:
    """Serve the chat on host:port (loopback by default; a share link only with share=True) from
    ``engine``, else the index folder ``index`` or the database ``db`` (loaded in the background
    while the page is built). A load error within READY_WAIT_S is raised here (the command
    fails); after that the port opens and questions wait for the index. Feedback goes to
    ``feedback_db`` (a path or URL), else to ``db`` (a read replica cannot take it: give the
    primary), else the default. Gradio's temporary files go to ``temp`` (made by
    :func:`kzqa.app.guard.private_temp_folder` before Gradio was imported), removed at the end.
    The REST API, health, readiness and metrics (:mod:`kzqa.app.service`) are served beside the
    chat, with ``service``'s keys and limits."""
    credentials = parse_auth(auth)
    engine = engine or load_in_background(index, db=db)
    if isinstance(engine, PendingEngine) and engine.wait(READY_WAIT_S):
        engine = engine.get()  # raises IndexProblem & co. while the command can still report them
    feedback = open_feedback(feedback_db or db)
    demo = build_app(engine, feedback)
    service = service or ServiceSettings()
    metrics = Metrics.create()
    log_requests_to_stderr()
    temp = temp or private_temp_folder()  # Gradio's temporary files: removed when the server stops
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_on_sigterm)  # `kill PID` stops it like Ctrl+C: cleanly
    try:
        demo.queue(default_concurrency_limit=4, max_size=64).launch(
            server_name=host, server_port=port, share=share, auth=credentials, css=CSS, head=HEAD,
            footer_links=["api"], show_error=True, max_file_size=1,
            app_kwargs={"routes": service_routes(engine, feedback, service, metrics),  # before Gradio's own
                        "middleware": [Middleware(RequestLog, metrics=metrics, log_questions=service.log_questions),
                                       Middleware(Guard, check=call_checker(engine))]})
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def call_checker(engine: Engine | PendingEngine):
    """``check(question, k, mode)`` for the HTTP guard: QueryError (a ValueError) with the
    engine's own message when the call cannot be answered (k as the endpoints take it, see
    :func:`whole`); the index's channels are consulted once it is loaded."""
    def check(question, k, mode) -> None:
        Engine.prepare_question(question)
        ready = engine
        if isinstance(engine, PendingEngine):
            try:
                ready = engine.get() if engine.wait(0) else None
            except Exception:  # the load failed: the call itself reports it
                ready = None
        if isinstance(ready, Engine):
            ready.check_request(whole(k), mode, None)
        else:
            check_k_and_mode(whole(k), mode)
    return check
