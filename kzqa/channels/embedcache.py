"""Embeddings cached by model fingerprint and text: what was embedded once is never embedded again.

``EmbeddingCache(folder, encoder).embed(texts)`` returns ``(vectors, fresh)`` where
``vectors[i]`` is ``encoder.encode_passages([texts[i]])[0]`` (read from the cache when the same
model — same weights — embedded the same text before) and ``fresh[i]`` is True when ``texts[i]``
had to be embedded now. The cache is a folder per model fingerprint holding ``cache.npz``: the
sha256 of each text (``keys``) and its vector (``vectors``, same row), replaced in one rename.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    """kzqa's user cache: ``$KZQA_CACHE``, else ``~/.cache/kzqa`` (embeddings of BEIR corpora and
    synthetic indexes, question encoders read from a database)."""
    return Path(os.environ.get("KZQA_CACHE", Path.home() / ".cache" / "kzqa"))


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class EmbeddingCache:
    def __init__(self, folder: str | Path, encoder):
        self.encoder = encoder
        self.folder = Path(folder) / encoder.fingerprint()[:16]

    def _read(self) -> tuple[dict[str, int], np.ndarray]:
        empty = ({}, np.zeros((0, self.encoder.dim), dtype=np.float32))
        path = self.folder / "cache.npz"
        if not path.exists():
            return empty
        try:
            with np.load(path, allow_pickle=False) as data:
                keys, vectors = data["keys"], data["vectors"]
        except (ValueError, OSError, KeyError):
            return empty  # a broken cache is only a slower build
        if len(keys) != len(vectors) or vectors.ndim != 2 or vectors.shape[1] != self.encoder.dim:
            return empty
        return {str(k): i for i, k in enumerate(keys)}, vectors

    def _write(self, keys: list[str], vectors: np.ndarray) -> None:
        """Keys and vectors in one file, replaced in one rename (never one without the other)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.folder, suffix=".npz", delete=False) as tmp:
            np.savez(tmp, keys=np.array(keys, dtype="<U64"), vectors=vectors.astype(np.float32))
        os.replace(tmp.name, self.folder / "cache.npz")

    def embed(self, texts: list[str], progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of ``texts`` and which of them were embedded now (one encoder call for all
        the missing texts, in their order)."""
        known, stored = self._read()
        keys = [text_key(t) for t in texts]
        fresh = np.array([k not in known for k in keys], dtype=bool)
        missing = {k: t for k, t in zip(keys, texts) if k not in known}
        if missing:
            new = self.encoder.encode_passages(list(missing.values()), progress=progress)
            known, stored = self._append(known, stored, list(missing), new)
        vectors = stored[[known[k] for k in keys]] if keys else np.zeros((0, self.encoder.dim), np.float32)
        return vectors, fresh

    def _append(self, known: dict[str, int], stored: np.ndarray, keys: list[str],
                rows) -> tuple[dict[str, int], np.ndarray]:
        """The cache with ``rows`` added under ``keys`` (none of them known yet), written to disk."""
        for k in keys:
            known[k] = len(known)
        rows = np.asarray(rows, dtype=np.float32)
        stored = np.vstack([stored, rows]) if len(stored) else rows
        self._write(sorted(known, key=known.get), stored)
        return known, stored

    def __len__(self) -> int:
        return len(self._read()[0])

    def add(self, texts: list[str], vectors: np.ndarray) -> None:
        """Remember ``vectors[i]`` as the vector of ``texts[i]`` (texts already cached are kept)."""
        known, stored = self._read()
        new = {k: i for k, i in {text_key(t): i for i, t in enumerate(texts)}.items() if k not in known}
        if new:
            self._append(known, stored, list(new), np.asarray(vectors)[list(new.values())])

    def keep_only(self, texts: list[str]) -> None:
        """Drop every cached vector but those of ``texts`` (an index's cache stays its index's size)."""
        known, stored = self._read()
        keep = [k for k in dict.fromkeys(text_key(t) for t in texts) if k in known]
        if len(keep) != len(known):
            self._write(keep, stored[[known[k] for k in keep]] if keep else stored[:0])
