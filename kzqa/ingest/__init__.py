"""Ingest: read the corpus folder and split it into passages.

Receives a folder of .txt/.md/.html/.pdf files (and an optional ``sources.json``); returns
cleaned :class:`Document` s with their :class:`Section` s and the :class:`Problem` s met on the
way (:func:`read_corpus`), then :class:`Passage` s of whole sentences within a token budget
(:func:`split_documents`, whose offsets hold ``passage.text == document.text[start:end]``).
Nothing here embeds, stores or answers.
"""

from .corpus import (
           Corpus,
           Document,
           Problem,
           ReadError,
           Section,
           file_hashes,
           read_corpus,
)
from .passages import ChunkParams, Passage, split_documents

__all__ = ["ChunkParams", "Corpus", "Document", "Passage", "Problem", "ReadError", "Section", "file_hashes",
           "read_corpus", "split_documents"]
