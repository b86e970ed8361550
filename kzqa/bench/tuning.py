"""The answer stage's parts that ``benchmarks/tune.py`` and ``benchmarks/tune_answer.py`` refit:
fusion (:class:`FusionParams`, :func:`rrf`, :func:`detect_language`), follow-ups
(:func:`resolve_followup`), sentence selection (:class:`SelectionParams`,
:func:`select_sentences`) and abstention (:data:`FEATURES`, :class:`AbstainModel`,
:func:`features`, :func:`decide`, :func:`hard_decline`), handed on unchanged from :mod:`kzqa.qa`."""

from ..qa.abstain import FEATURES, AbstainModel, decide, features, hard_decline
from ..qa.answer import SelectionParams, select_sentences, sentence_text
from ..qa.followup import resolve_followup
from ..qa.question import analyse
from ..qa.retrieve import FusionParams, detect_language, rrf

__all__ = ["FEATURES", "AbstainModel", "FusionParams", "SelectionParams", "analyse", "decide", "detect_language", "features",
           "hard_decline", "resolve_followup", "rrf", "select_sentences", "sentence_text"]
