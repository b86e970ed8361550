"""Decide whether the retrieved passages answer the question.

``abstention_features`` measures the evidence; ``should_abstain`` applies thresholds
calibrated on the unanswerable questions of ``benchmarks/qa/dev.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .answer import Candidate
    from .engine import Engine, Retrieval


@dataclass(frozen=True)
class AbstainParams:
    min_confidence: float = 0.35


def abstention_features(r: "Retrieval", candidates: list["Candidate"], engine: "Engine") -> dict:
    """Numbers that tell covered from not covered; 'confidence' is the best sentence similarity."""
    best = max((c.similarity for c in candidates), default=0.0)
    return {"confidence": best}


def should_abstain(features: dict, params: AbstainParams) -> bool:
    return features["confidence"] < params.min_confidence
