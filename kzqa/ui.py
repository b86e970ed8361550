"""The Gradio web chat: a thin edge over ``kzqa.load()`` / ``Engine.ask``."""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from .answer import Answer
from .engine import Engine, QueryError, load


def render_sources(answer: Answer) -> str:
    """HTML cards for the answer's citations (or related passages); every text is escaped."""
    hits = answer.citations or answer.related
    heading = "Sources" if answer.citations else "Possibly related"
    cards = [f"<h3>{heading}</h3>"]
    for n, h in enumerate(hits, 1):
        cards.append(
            f'<div class="kzqa-card" id="kzqa-card-{n}"><b>[{n}] {html.escape(h.title)}</b> — '
            f"{html.escape(h.section)}<p>{html.escape(h.text)}</p></div>")
    return "\n".join(cards)


def build_app(engine: Engine) -> gr.Blocks:
    def respond(message: str, history: list):
        history = list(history or [])
        try:
            answer = engine.ask(message)
        except QueryError as exc:
            return history + [{"role": "user", "content": message},
                              {"role": "assistant", "content": str(exc)}], "", ""
        history += [{"role": "user", "content": message},
                    {"role": "assistant", "content": answer.text}]
        return history, "", render_sources(answer)

    with gr.Blocks(title="kzqa") as demo:
        gr.Markdown("# kzqa — Kazakhstan–China relations, answered from the documents")
        chat = gr.Chatbot(label="Chat", height=480)
        box = gr.Textbox(label="Your question", placeholder="How tall is the Bayterek tower?")
        sources = gr.HTML()
        box.submit(respond, [box, chat], [chat, box, sources], api_visibility="private")

        def api_ask(question: str, k: int = 5, mode: str = "hybrid") -> dict:
            return engine.ask(question, k=int(k), mode=mode).to_dict()

        gr.api(api_ask, api_name="ask")
    return demo


def launch(index: str | Path | None = None, host: str = "127.0.0.1", port: int = 7860,
           auth: str | None = None, share: bool = False) -> None:
    engine = load(index)
    demo = build_app(engine)
    credentials = tuple(auth.split(":", 1)) if auth else None
    demo.queue(default_concurrency_limit=4).launch(server_name=host, server_port=port, share=share,
                                                   auth=credentials)
