"""The Gradio web chat and its HTTP API: a thin edge over ``kzqa.load()`` / ``Engine.ask``.

Everything shown comes from the user or the corpus and is escaped: it is displayed as text,
never interpreted as HTML, Markdown or script. Only the citation markers are links.
"""

from __future__ import annotations

import html
import logging
import re
import shutil
import signal
import sqlite3
import threading
import uuid
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from ..backends import PendingEngine, load_in_background
from ..qa.answer import ANSWERED, CONTEXT_LABEL, PARTIAL, PARTIAL_LABEL, Answer
from ..qa.engine import MAX_QUESTION_CHARS, Engine, QueryError, check_k_and_mode
from ..qa.followup import resolve_followup
from ..qa.retrieve import DEFAULT_MODE, MODES, Hit
from ..stores.base import IndexProblem
from .feedback import FeedbackStore, PgFeedbackStore, open_feedback
from .guard import Guard, private_temp_folder

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
.kzqa-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 12px;
             margin: 0 0 10px 0; scroll-margin-top: 12px; }
.kzqa-card.kzqa-flash, .kzqa-card:focus { outline: 3px solid #1d4ed8; outline-offset: 2px; }
.kzqa-card-head { font-weight: 600; }
.kzqa-meta { font-size: 0.85em; color: #4b5563; margin: 2px 0 6px 0; }
.kzqa-meta a { color: #1d4ed8; text-decoration: underline; }
.dark .kzqa-meta { color: #d1d5db; }
.dark .kzqa-meta a { color: #93c5fd; }
.kzqa-passage { white-space: pre-wrap; margin: 0; }
.kzqa-passage mark { background: #ffe58a; color: #111; padding: 0 1px; }
.kzqa-passage mark strong { text-decoration: underline; }
/* WCAG AA contrast (4.5:1) for the primary button and the footer links; a visible focus ring */
#kzqa-send { background: #1d4ed8 !important; border-color: #1d4ed8 !important; color: #fff !important; }
#kzqa-send:hover { background: #1e40af !important; }
footer a, footer button, .show-api { color: #374151 !important; opacity: 1 !important; }
.dark footer a, .dark footer button, .dark .show-api { color: #e5e7eb !important; }
a:focus-visible, button:focus-visible, input:focus-visible, textarea:focus-visible, [tabindex]:focus-visible {
  outline: 3px solid #1d4ed8 !important; outline-offset: 2px; }
"""
# A click (or Enter) on a citation marker in the chat scrolls its card into view and moves the
# focus there (capture phase, before Gradio's own link handling). Markers get names that say
# where they go, and the sources panel is announced when it changes (aria-live).
HEAD = """<script>
document.addEventListener('click', function (event) {
  const link = event.target.closest && event.target.closest('a[href*="#kzqa-card-"]');
  if (!link) return;
  const card = document.getElementById(link.getAttribute('href').split('#')[1]);
  if (!card) return;
  event.preventDefault(); event.stopPropagation();
  card.setAttribute('tabindex', '-1');
  card.scrollIntoView({behavior: 'smooth', block: 'center'});
  card.focus({preventScroll: true});
  card.classList.add('kzqa-flash'); setTimeout(() => card.classList.remove('kzqa-flash'), 1500);
}, true);
function kzqaLabel() {
  document.querySelectorAll('#kzqa-chat a[href*="#kzqa-card-"]:not([aria-label])').forEach(function (a) {
    const n = a.getAttribute('href').split('kzqa-card-')[1];
    a.setAttribute('aria-label', 'Source ' + n + ': open its passage in the Sources panel');
  });
  const panel = document.getElementById('kzqa-sources');
  if (panel && !panel.hasAttribute('aria-live')) {
    panel.setAttribute('aria-live', 'polite'); panel.setAttribute('role', 'region');
    panel.setAttribute('aria-label', 'Sources of the latest answer');
  }
}
new MutationObserver(kzqaLabel).observe(document.documentElement, {childList: true, subtree: true});
</script>"""

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>$])")


_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|www)(://|\.)")


def as_text(text: str) -> str:
    """``text`` escaped so that Markdown and HTML show it literally; a web address is kept from
    being turned into a link by an invisible word joiner after its scheme ('https⁠://…')."""
    text = _AUTOLINK.sub("\\1\u2060\\2", text)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def marker_link(n: int) -> str:
    return f"[\\[{n}\\]](#kzqa-card-{n})"


def confidence_level(confidence: float) -> str:
    """'high' (≥ 0.8), 'medium' (≥ 0.5) or 'low': the calibrated confidence in plain words."""
    return "high" if confidence >= 0.8 else "medium" if confidence >= 0.5 else "low"


def first_quote(answer: Answer) -> str:
    """The first quoted sentence with the direct answer in bold (Markdown, escaped)."""
    sentence = answer.quotes[0][0]
    if not answer.short:
        return as_text(sentence)
    hit = answer.citations[answer.short_marker - 1]
    s, e = answer.short_offsets
    start = next((hs for hs, he in hit.highlights if hs <= s and e <= he), None)
    if start is None or hit.text[start:start + len(sentence)] != sentence:
        return as_text(sentence)
    a, b = s - start, e - start
    return f"{as_text(sentence[:a])}**{as_text(sentence[a:b])}**{as_text(sentence[b:])}"


SCORE_HELP = ("How well the passage matched the question in this search mode. Scores compare the passages of "
              "one answer only: each mode has its own scale (hybrid fuses the channels' ranks, lexical is BM25).")

# Said under an answer to a question in another language than the documents' English.
ENGLISH_QUOTES = {
    "ru": "Ответ приведён цитатами из англоязычных источников.",
    "kk": "Жауап ағылшын тіліндегі дереккөздерден алынған дәйексөздермен берілген.",
    "zh": "答案引用的是英文资料原文。",
}


def searched_where(mode: str, documents: list[str]) -> str:
    """What a declined question was searched in: 'all documents (hybrid search)', or the titles
    of the documents the filter kept and the mode."""
    where = ("only " + "; ".join(f"“{t}”" for t in documents)) if documents else "all documents"
    return f"Searched: {where} ({mode} search)."


def render_reply(answer: Answer, question: str, resolved: str, documents: list[str] | None = None) -> str:
    """The assistant message: searched-for line, notice, then by ``answer.status`` the direct
    answer in bold and the quoted sentences with markers and the confidence level ('answered'),
    the partial reply naming what is missing with the closest quotes set apart as context
    ('partial'), or the not-covered reply; a declined reply says what was searched (the
    ``documents`` a filter kept, the mode), and a reply to a ru/zh/kk question says, in its
    language, that the quotes are English."""
    lines = []
    if resolved != question:
        lines.append(f"*Searched for:* {as_text(resolved)}")
    if answer.notice:
        lines.append(f"*{as_text(answer.notice)}*")
    if answer.status == ANSWERED:
        if answer.short:
            lines.append(f"**{as_text(answer.short)}**")
        quoted = [first_quote(answer)] + [as_text(sentence) for sentence, _ in answer.quotes[1:]]
        lines.append(" ".join(f"{q} {marker_link(n)}" for q, (_, n) in zip(quoted, answer.quotes)))
        lines.append(f"*{confidence_level(answer.confidence).capitalize()} confidence "
                     f"({answer.confidence:.0%} of such answers quoted the evidence when tested)*")
    elif answer.status == PARTIAL:
        lines += [f"⚠️ **{as_text(PARTIAL_LABEL)}**", as_text(answer.summary or ""), f"*{as_text(CONTEXT_LABEL)}*"]
        lines += [f"> {as_text(sentence)} {marker_link(n)}" for sentence, n in answer.quotes]
    else:
        lines.append(as_text(answer.text))
    if answer.status != ANSWERED:
        lines.append(f"*{as_text(searched_where(answer.mode, documents or []))}*")
    if answer.lang in ENGLISH_QUOTES and answer.quotes:
        lines.append(f"*{as_text(ENGLISH_QUOTES[answer.lang])}*")
    return "\n\n".join(lines)


def highlighted(hit: Hit, short: tuple[int, int] | None = None) -> str:
    """The passage as HTML with its quoted sentences in <mark> and the direct answer ``short``
    (offsets inside one of them) in <strong>, by exact offsets."""
    out, pos = [], 0
    for s, e in sorted(hit.highlights):
        out += [html.escape(hit.text[pos:s]), "<mark>"]
        if short and s <= short[0] and short[1] <= e:
            out += [html.escape(hit.text[s:short[0]]), "<strong>", html.escape(hit.text[short[0]:short[1]]),
                    "</strong>", html.escape(hit.text[short[1]:e])]
        else:
            out.append(html.escape(hit.text[s:e]))
        out.append("</mark>")
        pos = e
    out.append(html.escape(hit.text[pos:]))
    return "".join(out)


def render_sources(answer: Answer | None) -> str:
    """One card per citation, numbered like the markers: the sources of an answer, the context
    of a partial answer, or the closest passages when the documents do not cover the question."""
    if answer is None:
        return '<div class="kzqa-sources"><p>Sources of the latest answer appear here.</p></div>'
    hits = answer.citations or answer.related
    heading = ("Sources" if answer.status == ANSWERED else "Context (not an answer)" if answer.citations
               else "Possibly related")
    cards = [f'<div class="kzqa-sources" data-status="{answer.status}"><h3>{heading}</h3>']
    for n, h in enumerate(hits, 1):
        meta = [html.escape(h.section)]
        meta += [html.escape(x) for x in (h.publisher, h.date) if x]
        if h.url and h.url.startswith(("https://", "http://")):
            meta.append(f'<a href="{html.escape(h.url, quote=True)}" target="_blank" rel="noopener noreferrer" '
                        f'aria-label="original page of {html.escape(h.title, quote=True)} (opens a new tab)">'
                        'original page<span aria-hidden="true"> ↗</span></a>')
        meta.append(f'<span title="{SCORE_HELP}">rank {h.rank} · score {h.score:.4f}</span>')
        label = f"[{n}] " if answer.citations else ""
        cards.append(
            f'<div class="kzqa-card" id="kzqa-card-{n}" data-passage-id="{html.escape(h.passage_id)}">'
            f'<div class="kzqa-card-head">{label}{html.escape(h.title)}</div>'
            f'<div class="kzqa-meta">{" · ".join(meta)}</div>'
            f'<p class="kzqa-passage">{highlighted(h, answer.short_offsets if n == answer.short_marker else None)}'
            '</p></div>')
    cards.append("</div>")
    return "\n".join(cards)


# What chat and API clients are told when the index cannot answer (the log gets the details:
# clients never see a database's name, user, host or port, nor an index's path).
UNAVAILABLE = "The index is temporarily unavailable; please try again in a moment."


MAX_TURNS = 20  # turns a chat keeps (shown, sent back by the browser, used for follow-ups)


def new_session() -> dict:
    return {"queries": [], "records": {}}


def stored(history: list, session: dict, sources: str) -> dict:
    """What the browser keeps of the conversation: its messages, its follow-up context and
    feedback records, and the sources panel."""
    records = {str(i): r for i, r in (session or {}).get("records", {}).items()}  # JSON keys are strings
    return {"history": history, "session": {**(session or new_session()), "records": records}, "sources": sources}


def restored(saved) -> tuple:
    """The conversation kept by :func:`stored` (the records' keys back to numbers), or nothing
    to change when the browser keeps none."""
    if not isinstance(saved, dict) or not isinstance(saved.get("history"), list):
        return gr.skip(), gr.skip(), gr.skip()
    session = saved.get("session") if isinstance(saved.get("session"), dict) else {}
    records = {int(i): r for i, r in (session.get("records") or {}).items() if str(i).isdigit()}
    session = {"queries": [q for q in session.get("queries") or [] if isinstance(q, str)], "records": records}
    return saved["history"], session, saved.get("sources") or render_sources(None)


def bounded(history: list, session: dict, max_turns: int = MAX_TURNS) -> tuple[list, dict]:
    """The chat and its session cut to the last ``max_turns`` turns, so that each turn costs the
    same however long the conversation: the oldest messages go, the feedback records of the
    kept ones move with them (``records[i]`` is about ``history[i]``), and the follow-up
    context keeps the last ``max_turns`` questions."""
    extra = len(history) - 2 * max_turns
    queries = session["queries"][-max_turns:]
    if extra <= 0:
        return history, {**session, "queries": queries}
    records = {i - extra: r for i, r in session["records"].items() if i >= extra}
    return history[extra:], {**session, "queries": queries, "records": records}


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
    """The chat page and the named API endpoints /ask and /search. With an engine still loading,
    the page opens at once; questions wait for the index, and the document list fills in then."""
    feedback = feedback or open_feedback()
    loading = isinstance(engine, PendingEngine) and not engine.wait(0)

    def document_choices() -> list[tuple[str, str]]:
        return [(d.title, d.doc_id) for d in engine.documents.values()]

    def respond(message: str, history: list, session: dict, k: int, mode: str, doc_ids: list):
        history = list(history or [])
        session = session or new_session()
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
        session["queries"].append(answer.question)
        kept = [engine.documents[d].title for d in (doc_ids or []) if d in engine.documents]
        history.append({"role": "assistant", "content": render_reply(answer, question, resolved, kept)})
        session["records"][len(history) - 1] = {
            "question": question, "resolved_query": answer.question, "answer": answer.text,
            "passage_ids": [h.passage_id for h in answer.citations or answer.related],
            "mode": answer.mode, "abstained": answer.abstained,  # status is in the answer text
            "answer_id": uuid.uuid4().hex}  # a later vote on this answer replaces the earlier one
        history, session = bounded(history, session)
        yield history, "", render_sources(answer), session

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

    def clear():
        return [], "", render_sources(None), new_session()

    def api_ask(question: str, k: int = 5, mode: str = DEFAULT_MODE) -> dict:
        """Answer a question from the documents: status ('answered', 'partial', 'not_covered'),
        text with [n] markers, abstained, citations."""
        return api_call(lambda: engine.ask(question, k=whole(k), mode=mode).to_dict())

    def api_search(query: str, k: int = 5, mode: str = DEFAULT_MODE) -> dict:
        """The k most relevant passages, best first."""
        return api_call(lambda: {"query": Engine.prepare_question(query)[0],
                                 "hits": [h.to_dict() for h in engine.search(query, k=whole(k), mode=mode)]})

    with gr.Blocks(title="kzqa — Kazakhstan–China relations") as demo:
        session = gr.State(new_session())
        # this browser's conversation (encrypted in its local storage): it survives a reload
        saved = gr.BrowserState(None, storage_key="kzqa-conversation")
        gr.Markdown("# kzqa — questions on Kazakhstan–China relations, answered from the documents\n"
                    "Every sentence of an answer is quoted from a source; click a marker like [1] to see "
                    "its passage. Ask in English, Russian, Kazakh or Chinese.")
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(label="Chat", show_label=False, elem_id="kzqa-chat", height=520, latex_delimiters=[],
                                  feedback_options=("Like", "Dislike"), buttons=["copy"])
                box = gr.Textbox(label="Your question", elem_id="kzqa-question", lines=1,
                                 placeholder="Ask about Kazakhstan–China relations…", max_length=20000)
                with gr.Row():
                    send = gr.Button("Ask", variant="primary", elem_id="kzqa-send")
                    clear_btn = gr.Button("New chat", elem_id="kzqa-new-chat")
            # On a phone this column follows the question box: the settings (folded) and then the
            # answer's sources come right after it, the examples last.
            with gr.Column(scale=2):
                with gr.Accordion("Settings", open=False, elem_id="kzqa-settings"):
                    k = gr.Slider(1, 10, value=5, step=1, label="Passages to answer from")
                    mode = gr.Radio(list(MODES), value=DEFAULT_MODE, label="Retrieval mode")
                    docs = gr.CheckboxGroup([] if loading else document_choices(), value=[],
                                            label="Only these documents (none = all)")
                sources = gr.HTML(render_sources(None), elem_id="kzqa-sources")
                gr.Examples(EXAMPLES, inputs=box, label="Examples")
        inputs = [box, chat, session, k, mode, docs]
        outputs = [chat, box, sources, session]
        kept = [chat, session, sources]
        for event in (box.submit(respond, inputs, outputs, api_visibility="private", concurrency_limit=4),
                      send.click(respond, inputs, outputs, api_visibility="private", concurrency_limit=4),
                      clear_btn.click(clear, None, [chat, box, sources, session], api_visibility="private"),
                      # the chat's own trash icon starts afresh too: no sources, no follow-up context
                      chat.clear(clear, None, [chat, box, sources, session], api_visibility="private")):
            event.then(stored, kept, saved, api_visibility="private")
        demo.load(restored, saved, kept, api_visibility="private")
        chat.like(on_like, [session], None, api_visibility="private")
        gr.api(api_ask, api_name="ask", queue=False)  # one HTTP request per call: no queue, no event stream
        gr.api(api_search, api_name="search", queue=False)
        if loading:
            demo.load(lambda: gr.update(choices=document_choices()), None, docs, api_visibility="private")
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
           temp: Path | None = None) -> None:
    """Serve the chat on host:port (loopback by default; a share link only with share=True) from
    ``engine``, else the index folder ``index`` or the database ``db`` (loaded in the background
    while the page is built). A load error within READY_WAIT_S is raised here (the command
    fails); after that the port opens and questions wait for the index. Feedback goes to
    ``feedback_db`` (a path or URL), else to ``db`` (a read replica cannot take it: give the
    primary), else the default. Gradio's temporary files go to ``temp`` (made by
    :func:`kzqa.app.guard.private_temp_folder` before Gradio was imported), removed at the end."""
    credentials = parse_auth(auth)
    engine = engine or load_in_background(index, db=db)
    if isinstance(engine, PendingEngine) and engine.wait(READY_WAIT_S):
        engine = engine.get()  # raises IndexProblem & co. while the command can still report them
    demo = build_app(engine, open_feedback(feedback_db or db))
    temp = temp or private_temp_folder()  # Gradio's temporary files: removed when the server stops
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_on_sigterm)  # `kill PID` stops it like Ctrl+C: cleanly
    try:
        demo.queue(default_concurrency_limit=4, max_size=64).launch(
            server_name=host, server_port=port, share=share, auth=credentials, css=CSS, head=HEAD,
            footer_links=["api"], show_error=True, max_file_size=1,
            app_kwargs={"middleware": [Middleware(Guard, check=call_checker(engine))]})
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
