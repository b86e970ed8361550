"""Bench: measure kzqa, and the one seam the scripts in ``benchmarks/`` import from.

Receives an :class:`kzqa.Engine` (or an index to load) and question sets (the evidence-QA
JSONL format, BEIR folders); returns reports: retrieval, answer and abstention figures by
question type and language (:mod:`.evaluate`), latencies and build throughput against a
reference in the same run (:mod:`.speed`), and synthetic collections of any size
(:mod:`.scale`). The scripts also get a local PostgreSQL (``pgserver``) and the answer stage's
parts they refit (:mod:`.tuning`) from here, so they never reach into the lower layers.
"""

from ..stores import pgserver
from . import evaluate, report, scale, speed, stats, trec
from .evaluate import environment, markdown_table, percentiles
from .scale import scale_table
from .speed import free_port, running_app, speed_table
from .tuning import (FEATURES, AbstainModel, FusionParams, decide, detect_language, hard_decline,
                     resolve_conversation, resolve_followup, rrf, sentence_text)

__all__ = ["FEATURES", "AbstainModel", "FusionParams", "decide", "detect_language", "environment", "evaluate",
           "free_port", "hard_decline", "markdown_table", "percentiles", "pgserver", "report", "resolve_conversation",
           "resolve_followup", "rrf", "running_app", "scale", "scale_table", "sentence_text", "speed", "speed_table", "stats", "trec"]
