"""The steps of a build that do not depend on where the index is stored: read and split the
corpus (:func:`prepare`), embed every channel (:func:`embed_channels`, through the embedding
cache), build BM25 and the corpus statistics, and describe the result (:func:`manifest_of`,
:func:`summary_of`). :mod:`kzqa.stores.filewrite` writes them to a folder,
:mod:`kzqa.stores.postgres` to a database.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .._version import __version__
from ..channels.embedcache import EmbeddingCache
from ..channels.encoders import DEFAULT_MODEL, Encoder, get_encoder
from ..channels.lexical import CorpusStats, LexicalIndex, corpus_stats
from ..channels.onnxmodels import BULK_THREADS, cached_export, open_exported
from ..channels.vocabulary import Vocabulary, vocabulary_words
from ..ingest.corpus import Corpus, Document, Problem, file_hashes, read_corpus
from ..ingest.passages import ChunkParams, Passage, split_documents
from .base import BuildSummary, IndexProblem
from .manifest import DENSE, FORMAT, MULTILINGUAL, PIPELINE_VERSION


@dataclass
class Prepared:
    """A corpus read and split for one build, with the models that embed it."""

    corpus_dir: Path
    read: Corpus  # documents and problems
    encoders: dict[str, Encoder]
    params: ChunkParams
    passages: list[Passage]
    cut: int
    reused_documents: int


@dataclass
class PreviousIndex:
    """What a rebuild reuses of the index it replaces (read once)."""

    manifest: dict
    document_texts: dict[str, str]
    passages: list[Passage]


def reusable_passages(previous: PreviousIndex | None, documents: list[Document], params: ChunkParams,
                      dense_fingerprint: str) -> dict[str, list[Passage]]:
    """The previous index's passages of every document whose cleaned text is unchanged, when it
    was split with the same parameters, pipeline and token counter (else nothing)."""
    if previous is None:
        return {}
    manifest = previous.manifest
    try:
        if (manifest.get("pipeline_version") != PIPELINE_VERSION or manifest.get("chunking") != params.to_dict()
                or manifest["channels"][DENSE]["fingerprint"] != dense_fingerprint):
            return {}
    except (KeyError, TypeError, AttributeError):
        return {}
    by_doc: dict[str, list[Passage]] = {}
    for p in previous.passages:
        by_doc.setdefault(p.doc_id, []).append(p)
    return {d.doc_id: by_doc[d.doc_id] for d in documents
            if previous.document_texts.get(d.doc_id) == d.text and d.doc_id in by_doc}


def prepare(corpus: str | Path, model: str | None, multilingual_model: str | None, params: ChunkParams | None,
            previous: "PreviousIndex | None" = None, progress: bool = False) -> Prepared:
    """Read ``corpus``, load the models and split the documents (reusing ``previous``'s passages
    of unchanged documents). Raises IndexProblem when no document is readable."""
    check_limits()
    corpus_dir = Path(corpus)
    params = params or ChunkParams()
    read = read_corpus(corpus_dir)
    after_reading(corpus_dir)
    if not read.documents:
        reasons = "; ".join(map(str, read.problems)) or "no .txt/.md/.html/.pdf files"
        raise IndexProblem(f"no readable documents in {corpus_dir} ({reasons})")
    encoders: dict[str, Encoder] = {DENSE: get_encoder(model or DEFAULT_MODEL)}
    if multilingual_model:
        encoders[MULTILINGUAL] = get_encoder(multilingual_model)
    dense = encoders[DENSE]
    params = ChunkParams(**{**params.to_dict(), "max_tokens": min(params.max_tokens, dense.max_tokens)})
    reuse = reusable_passages(previous, read.documents, params, dense.fingerprint())
    passages, cut = split_documents(read.documents, dense.count_tokens_many, params, reuse, progress)
    return Prepared(corpus_dir, read, encoders, params, passages, cut, len(reuse))


MIN_ADDRESS_SPACE = 4 * 2**30  # a build with both models fails below about 3 GB here (measured with ulimit -v)
MIN_FILE_SIZE = 256 * 2**20  # the largest file of a small index is a few MB; a model export, ~100 MB


def check_limits() -> None:
    """IndexProblem, naming the limit, when this process may not map or write enough for a build
    (``ulimit -v`` / ``ulimit -f``): refused up front rather than dying in a native library."""
    import resource

    def described(limit: int) -> str:
        return f"{limit / 2**30:.1f} GB" if limit >= 2**30 else f"{limit / 2**20:.0f} MB"

    address, _ = resource.getrlimit(resource.RLIMIT_AS)
    if address != resource.RLIM_INFINITY and address < MIN_ADDRESS_SPACE:
        raise IndexProblem(f"a build needs at least {described(MIN_ADDRESS_SPACE)} of address space, and this process "
                           f"is limited to {described(address)} (ulimit -v): raise the limit, e.g. ulimit -v unlimited")
    size, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if size != resource.RLIM_INFINITY and size < MIN_FILE_SIZE:
        raise IndexProblem(f"a build writes files of up to {described(MIN_FILE_SIZE)}, and this process may write "
                           f"files of at most {described(size)} (ulimit -f): raise the limit, e.g. ulimit -f unlimited")


def after_reading(corpus_dir: Path) -> None:
    """Called once the corpus is read, before anything is written: nothing to do. (A test
    replaces it to change, add and remove files at exactly that point.)"""


def changed_during_build(prepared: Prepared) -> list[Problem]:
    """Corpus files changed, added or removed since the build read them: the index records
    what it read, so it will report itself stale, naming them, until rebuilt."""
    now = file_hashes(prepared.corpus_dir)
    read = prepared.read.hashes
    changed = sorted(n for n in set(now) | set(read) if now.get(n) != read.get(n))
    note = "changed while the build ran; the index reports itself stale until the next build"
    return [Problem(n, note) for n in changed]


def sentence_texts(passages: list[Passage]) -> list[str]:
    return [p.text[s:e] for p in passages for s, e in p.sentences]


def stats_of(documents: list[Document], passages: list[Passage], lexical: LexicalIndex | None = None) -> CorpusStats:
    """The corpus statistics of an index (term document frequencies from ``lexical`` if given)."""
    sentences = list(dict.fromkeys(sentence_texts(passages)))
    return corpus_stats([p.text for p in passages], sentences,
                        [f"{d.text}\n{d.title}\n{d.publisher or ''}\n{d.author or ''}" for d in documents],
                        df=lexical.document_frequencies() if lexical is not None else None)


def lexical_and_stats(prepared: Prepared, multilingual: Encoder | None = None) -> tuple[LexicalIndex, CorpusStats]:
    """The BM25 index of the passages (as embedded) and the corpus statistics, with the corpus
    vocabulary embedded by ``multilingual`` (the encoder that reads non-English questions) when
    one is given."""
    lexical = LexicalIndex.build([p.embed_text(prepared.params.prefix) for p in prepared.passages])
    stats = stats_of(prepared.read.documents, prepared.passages, lexical)
    if multilingual is not None:
        words = vocabulary_words(stats.words, stats.df, stats.stem)
        stats = replace(stats, vocabulary=Vocabulary.build(words, multilingual))
    return lexical, stats


def _passages_touched(passages: list[Passage], fresh: np.ndarray) -> int:
    """Passages whose text or one of whose sentences had to be embedded (``fresh``: passage
    texts first, then every passage's sentences in order)."""
    pos, touched = len(passages), 0
    for i, p in enumerate(passages):
        k = len(p.sentences)
        touched += bool(fresh[i] or fresh[pos:pos + k].any())
        pos += k
    return touched


@dataclass
class Embedded:
    """One dense channel's vectors: ``passages[i]`` is passage i's vector, ``sentences`` holds one
    vector per sentence, passage by passage, in order."""

    entry: dict  # the manifest's channel entry: model, fingerprint, dim
    passages: np.ndarray
    sentences: np.ndarray


def embed_channels(passages: list[Passage], encoders: dict[str, Encoder], params: ChunkParams, cache: Path,
                   progress: bool = False, sentences_of: Sequence[str] | None = None) -> tuple[dict[str, Embedded], int]:
    """Every channel's passage vectors and, for the channels in ``sentences_of`` (None: all),
    sentence vectors (the others get ``(0, dim)`` arrays and ``"sentence_vectors": False`` in
    their entry), and how many passages had to be embedded (vectors of texts already in
    ``cache`` are reused; the cache then keeps only these texts)."""
    texts = [p.embed_text(params.prefix) for p in passages]
    sentences = sentence_texts(passages)
    out: dict[str, Embedded] = {}
    embedded = 0
    for channel, encoder in encoders.items():
        too_long = [n for n in encoder.count_tokens_many(texts) if n > encoder.max_tokens]
        if too_long:
            raise IndexProblem(f"{len(too_long)} passages exceed {encoder.name}'s {encoder.max_tokens} tokens")
        keeps = sentences_of is None or channel in sentences_of
        embeddings = EmbeddingCache(cache, encoder)
        try:
            vectors, fresh = embeddings.embed(texts, progress=progress)  # passages, then their sentences
            sentence_vectors, fresh_sentences = (embeddings.embed(sentences, progress=progress) if keeps
                                                 else (np.zeros((0, encoder.dim), np.float32), np.zeros(0, bool)))
        finally:  # a cluster's workers hold this model until now, and the next channel needs them
            getattr(encoder, "close", lambda: None)()
        embeddings.keep_only(texts + sentences if keeps else texts)
        embedded = max(embedded, _passages_touched(passages, np.concatenate([fresh, fresh_sentences])))
        entry = {"model": encoder.name, "fingerprint": encoder.fingerprint(), "dim": encoder.dim,
                 "sentence_vectors": keeps}
        out[channel] = Embedded(entry, vectors, sentence_vectors)
    return out, embedded


@dataclass
class Indexed:
    """What every store writes of a prepared corpus: each dense channel's vectors, how many
    passages had to be embedded, BM25, the corpus statistics and the exported question models."""

    vectors: dict[str, Embedded]
    embedded: int
    lexical: LexicalIndex
    stats: CorpusStats
    query_models: dict[str, Path]
    spread: dict = field(default_factory=dict)  # with --ray: the cluster and the chunks per node


@dataclass(frozen=True)
class Embedding:
    """Where a build embeds: ``device`` 'cpu' (the ONNX exports on every core), 'cuda' (the
    sentence-transformers models on the GPU) or 'auto' (cuda when torch sees one); ``ray``: a
    Ray cluster's address ('auto': a local one) to spread the embedding over, None: here.
    ``sentence_vectors``: which channels keep a vector per sentence for quoting and abstaining,
    'all', 'dense' (the English model's only) or 'none' (smaller and faster builds whose answers
    lose quality: dev answer evidence −0.11 with 'dense'; 'none' is for retrieval only)."""

    device: str = "cpu"
    ray: str | None = None
    sentence_vectors: str = "all"

    def __post_init__(self):  # a wrong choice fails where it is made, before anything is read
        if self.sentence_vectors not in SENTENCE_VECTOR_CHOICES:
            raise IndexProblem(f"--sentence-vectors must be one of {', '.join(SENTENCE_VECTOR_CHOICES)}, "
                               f"not {self.sentence_vectors!r}")


SENTENCE_VECTOR_CHOICES = ("all", "dense", "none")


def sentence_channels(choice: str, channels: Sequence[str]) -> list[str]:
    """The channels of ``channels`` that keep sentence vectors under ``choice`` (one of
    SENTENCE_VECTOR_CHOICES, as :class:`Embedding` checks)."""
    return {"all": list(channels), "dense": [c for c in channels if c == DENSE], "none": []}[choice]


def resolve_device(device: str) -> str:
    """'cpu' or 'cuda' for ``device`` ('auto': cuda when torch sees a GPU); IndexProblem for
    cuda without one, or for any other value."""
    if device not in ("cpu", "cuda", "auto"):
        raise IndexProblem(f"--device must be cpu, cuda or auto, not {device!r}")
    if device == "cpu":
        return "cpu"
    try:
        import torch

        has_gpu = bool(torch.cuda.is_available())
    except ImportError:
        has_gpu = False
    if device == "cuda" and not has_gpu:
        raise IndexProblem("--device cuda: torch sees no GPU on this machine (use --device cpu or auto)")
    return "cuda" if has_gpu else "cpu"


def embed_and_index(prepared: Prepared, cache: Path, progress: bool = False,
                    where: Embedding = Embedding()) -> Indexed:
    """Export the question models, embed every channel with their bulk copies (through
    ``cache``; on a GPU or a Ray cluster as ``where`` says), and build BM25 and the statistics
    (the vocabulary in the multilingual model)."""
    keep = sentence_channels(where.sentence_vectors, list(prepared.encoders))
    query_models = export_query_models(prepared.encoders, cache)
    device = resolve_device(where.device)
    bulk = bulk_encoders(prepared.encoders, query_models, device)
    spread: dict = {}
    if where.ray:
        from ..channels.rayspread import RayEncoder, connect

        spread = {"address": where.ray, **connect(where.ray)}
        bulk = {c: RayEncoder(e, query_models.get(c) if device == "cpu" else None, where.ray)
                for c, e in bulk.items()}
    started = time.perf_counter()
    vectors, embedded = embed_channels(prepared.passages, bulk, prepared.params, cache, progress, keep)
    if where.ray:
        nodes = sum((e.nodes for e in bulk.values()), Counter())
        spread["chunks_per_node"] = dict(nodes)
        spread["embed_seconds"] = round(time.perf_counter() - started, 2)  # actors' start included
        bulk = {c: e.local for c, e in bulk.items()}
    lexical, stats = lexical_and_stats(prepared, bulk.get(MULTILINGUAL))
    return Indexed(vectors, embedded, lexical, stats, query_models, spread)


def export_query_models(encoders: dict[str, Encoder], cache: Path) -> dict[str, Path]:
    """Each channel's ONNX export (in the cache; made once per model weights), where it has one."""
    return {c: folder for c, e in encoders.items() if (folder := cached_export(e, cache)) is not None}


def bulk_encoders(encoders: dict[str, Encoder], exported: dict[str, Path], device: str = "cpu") -> dict[str, Encoder]:
    """The encoders a build embeds with: on the CPU the ONNX exports on every core where there
    are some (same weights, so the same fingerprints and cache), else the models themselves; on
    'cuda' the models themselves (sentence-transformers puts them on the GPU)."""
    if device == "cuda":
        return dict(encoders)
    return {c: open_exported(exported[c], threads=BULK_THREADS) if c in exported else e for c, e in encoders.items()}


def _corpus_hash(hashes: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


def manifest_of(prepared: Prepared, channels: dict, corpus_path: str, started: float | None = None) -> dict:
    """The manifest of a build: versions, corpus files and hash, chunking, channels, counts, and
    how long the build took until now (from ``started``, a ``time.perf_counter()``)."""
    hashes = prepared.read.hashes  # of the bytes read, not of the folder now
    passages = prepared.passages
    return {
        "format": FORMAT, "kzqa_version": __version__, "pipeline_version": PIPELINE_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": {"path": corpus_path, "files": hashes, "hash": _corpus_hash(hashes)},
        "chunking": prepared.params.to_dict(), "channels": channels,
        "counts": {"documents": len(prepared.read.documents), "passages": len(passages),
                   "sentences": sum(len(p.sentences) for p in passages)},
        "problems": [str(p) for p in prepared.read.problems],
        **({"build_seconds": round(time.perf_counter() - started, 2)} if started is not None else {}),
    }


def summary_of(prepared: Prepared, target: str, started: float, embedded: int) -> BuildSummary:
    dense, params, passages = prepared.encoders[DENSE], prepared.params, prepared.passages
    return BuildSummary(
        index=target, documents=len(prepared.read.documents), passages=len(passages),
        seconds=time.perf_counter() - started, problems=prepared.read.problems + changed_during_build(prepared),
        cut_sentences=prepared.cut,
        words=[len(p.text.split()) for p in passages],
        tokens=dense.count_tokens_many([p.embed_text(params.prefix) for p in passages]),
        embedded=embedded, reused=len(passages) - embedded,
        resplit=len(prepared.read.documents) - prepared.reused_documents,
        repaired_words=sum(d.repaired_words for d in prepared.read.documents),
    )
