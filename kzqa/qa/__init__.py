"""QA: from a question to a cited answer.

Receives a question and a :class:`kzqa.stores.Store` with its question encoders; analyses the
question (:mod:`.question`: its parts, the answer type each asks for, its key terms), retrieves
and fuses the channels' rankings into :class:`Hit` s (:mod:`.retrieve`, reciprocal-rank
fusion), selects and quotes sentences (:mod:`.answer`), decides whether the documents cover it
(:mod:`.abstain`) and resolves follow-ups against the previous turn (:mod:`.followup`). The
:class:`Engine` ties them together and returns :class:`Answer` s; bad input is a
:class:`QueryError`.
"""

from .answer import Answer
from .engine import Engine, QueryError
from .followup import resolve_followup
from .retrieve import DEFAULT_MODE, MODES, Hit

__all__ = ["DEFAULT_MODE", "MODES", "Answer", "Engine", "Hit", "QueryError", "resolve_followup"]
