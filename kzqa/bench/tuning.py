"""The answer stage's parts that the scripts in ``benchmarks/`` refit or report on: fusion
(:class:`FusionParams`, :func:`rrf`, :func:`detect_language`), follow-ups
(:func:`resolve_followup`), the quoted sentences (:func:`sentence_text`) and abstention
(:data:`FEATURES`, :class:`AbstainModel`, :func:`decide`, :func:`hard_decline`), handed on
unchanged from :mod:`kzqa.qa`."""

from ..qa.abstain import FEATURES, AbstainModel, decide, hard_decline
from ..qa.answer import sentence_text
from ..qa.followup import resolve_conversation, resolve_followup
from ..qa.retrieve import FusionParams, detect_language, rrf

__all__ = ["FEATURES", "AbstainModel", "FusionParams", "decide", "detect_language", "hard_decline",
           "resolve_conversation", "resolve_followup", "rrf", "sentence_text"]
