"""App: what people and programs use — the ``kzqa`` command (:mod:`.cli`), the Gradio chat and
its HTTP endpoints (:mod:`.ui`) and the 👍/👎 feedback store (:mod:`.feedback`).

Receives command lines, chat messages and HTTP requests; returns answers, search hits, build
summaries and benchmark reports through :func:`kzqa.load` / :func:`kzqa.build` and
:mod:`kzqa.bench`. The chat module imports Gradio, so it is loaded only by ``kzqa serve``.
"""

from .cli import main

__all__ = ["main"]
