"""Channels: the ways a text is turned into something searchable.

Receives texts (passages, sentences, questions); returns vectors from the dense encoders
(:func:`get_encoder`: all-MiniLM-L6-v2 in English, multilingual-e5-small across languages, or
their ONNX exports, :mod:`.onnxmodels` and :mod:`.e5onnx`), BM25 scores and corpus statistics
from :class:`LexicalIndex` and :class:`CorpusStats`, vectors remembered by model and text in
:class:`EmbeddingCache`, and file digests (:mod:`.checksums`). Channels know nothing of where
an index is stored or of questions' answers.
"""

from .checksums import file_sha256, known_sha256
from .embedcache import EmbeddingCache, cache_dir
from .encoders import (
           DEFAULT_MODEL,
           MULTILINGUAL_MODEL,
           Encoder,
           ModelError,
           get_encoder,
)
from .lexical import CorpusStats, LexicalIndex, tokenize
from .onnxmodels import open_exported

__all__ = ["DEFAULT_MODEL", "MULTILINGUAL_MODEL", "CorpusStats", "EmbeddingCache", "Encoder", "LexicalIndex",
           "ModelError", "cache_dir", "file_sha256", "get_encoder", "known_sha256", "open_exported", "tokenize"]
