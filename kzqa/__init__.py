"""kzqa: cited answers from documents on Kazakhstan–China relations."""

from ._version import __version__
from .answer import Answer
from .corpus import Document, Section
from .backends import build, load
from .engine import Engine, QueryError
from .index import BuildSummary, IndexProblem
from .passages import ChunkParams, Passage
from .retrieve import Hit

__all__ = ["Answer", "BuildSummary", "ChunkParams", "Document", "Engine", "Hit", "IndexProblem",
           "Passage", "QueryError", "Section", "__version__", "build", "load"]
