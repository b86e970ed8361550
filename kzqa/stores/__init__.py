"""Stores: where passages and their vectors live, written once and read by every question.

Receives documents, passages and the channels' encoders; :func:`build_files` (a folder:
FAISS, bm25s, JSONL, ``.npy``) and :func:`kzqa.stores.postgres.build_db` (PostgreSQL +
pgvector) embed and write them atomically and return a :class:`BuildSummary`.
:func:`open_index` and :func:`kzqa.stores.postgres.open_database` check an index against its
manifest (:mod:`.manifest`) and return a :class:`Store` with its question encoders; a store
answers ``top``, ``passages``, ``best_sentence`` and ``restrict`` and nothing else.
:mod:`.pgserver` starts a local PostgreSQL for development and tests.
"""

from .base import BuildSummary, IndexProblem, Store
from .files import FileStore, open_index
from .filewrite import build as build_files
from .manifest import DENSE, LEXICAL, MULTILINGUAL, default_index_path

__all__ = ["DENSE", "LEXICAL", "MULTILINGUAL", "BuildSummary", "FileStore", "IndexProblem", "Store", "build_files",
           "default_index_path", "open_index"]
