"""kzqa: cited answers from documents on Kazakhstan–China relations."""

from ._version import __version__
from .backends import build, load
from .ingest.corpus import Document, Section
from .ingest.passages import ChunkParams, Passage
from .qa.answer import Answer
from .qa.engine import Engine, QueryError
from .qa.retrieve import Hit
from .remote import connect
from .stores.base import BuildSummary, IndexProblem

__all__ = ["Answer", "BuildSummary", "ChunkParams", "Document", "Engine", "Hit", "IndexProblem",
           "Passage", "QueryError", "Section", "__version__", "build", "connect", "load"]
