"""Embed passages and store them: FAISS for vectors, JSON/JSONL for the rest, no pickle.

An index folder holds::

    manifest.json        what was built from what (models + fingerprints, chunking, corpus hash),
                         the sha256 of every other file and the counts loading relies on
    documents.jsonl      cleaned documents (text, sections, metadata)
    passages.jsonl       passages, in FAISS row order
    <channel>.faiss      one inner-product index per dense channel (L2-normalised vectors)
    <channel>.sentences.npy  sentence vectors, passage by passage, for composing answers
    lexical/             the BM25 index (bm25s's own format)
    stats.json           corpus statistics for the answer stage (term document frequencies,
                         the vocabulary, who the corpus calls she or he)
    <channel>.onnx/      the channel's exported question encoder (its own sha256s)

Beside it, ``.<index>.cache/`` keeps the embeddings by model fingerprint and text hash, and a
rebuild reuses the passages of every document whose text did not change: adding, changing or
removing one document embeds only its passages and sentences (:class:`BuildSummary` counts them).

:func:`build` holds :class:`BuildLock` (one build per index), writes into a temporary folder
beside the target and swaps it in with renames: a crash or Ctrl-C leaves the previous index
loadable. :func:`open_index` refuses, with the command that rebuilds it, an index whose
manifest is malformed, whose files differ from their checksums or counts, or whose corpus or
models changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ._version import __version__
from .checksums import known_sha256
from .corpus import Corpus, Document, Problem, file_hashes, read_corpus
from .encoders import DEFAULT_MODEL, MULTILINGUAL_MODEL, Encoder, ModelError, get_encoder
from .embedcache import EmbeddingCache
from .lexical import SETTINGS as LEXICAL_SETTINGS, CorpusStats, LexicalIndex, corpus_stats
from .onnxmodels import BULK_THREADS, cached_export, damaged_files, onnx_available, open_exported
from .passages import ChunkParams, Passage, split_documents
from .store import HNSW_EF_SEARCH, FileStore, JsonlRows, LazyDocuments, LazyPassages, ready_for_search

FORMAT = 3  # 3: every file's sha256 in the manifest, verified on load
AUTO_FLAT_BELOW = 100_000  # passages; index_type="auto" uses exact search below, IVF above
PIPELINE_VERSION = 2  # 2: BlingFire sentences. Bump when cleaning or splitting changes what a build produces
DENSE, MULTILINGUAL, LEXICAL = "dense", "multilingual", "lexical"


log = logging.getLogger("kzqa")
_REPORTED_MISSING_CORPUS: set[tuple[str, str]] = set()  # (index, corpus) pairs already warned about


class IndexProblem(Exception):
    """An index that is missing, broken, stale or built with other models."""




@dataclass
class BuildSummary:
    index: str
    documents: int
    passages: int
    seconds: float
    problems: list[Problem] = field(default_factory=list)
    cut_sentences: int = 0
    words: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    embedded: int = 0  # passages embedded by this build (any channel)
    reused: int = 0  # passages whose vectors came from the cache
    resplit: int = 0  # documents split again (the others' passages were reused)

    def to_dict(self) -> dict:
        def stats(xs: list[int]) -> dict:
            if not xs:
                return {}
            a = np.asarray(xs)
            return {"min": int(a.min()), "median": float(np.median(a)), "mean": round(float(a.mean()), 1),
                    "p95": float(np.percentile(a, 95)), "max": int(a.max())}

        return {"index": self.index, "documents": self.documents, "passages": self.passages,
                "seconds": round(self.seconds, 2), "embedded": self.embedded, "reused": self.reused,
                "resplit_documents": self.resplit, "cut_sentences": self.cut_sentences,
                "words": stats(self.words), "tokens": stats(self.tokens),
                "problems": [str(p) for p in self.problems]}


def default_index_path() -> Path:
    """$KZQA_INDEX if set, else ``embeddings/`` of the project (the folder above the package)."""
    env = os.environ.get("KZQA_INDEX")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "embeddings"


def dense_channels(manifest: dict) -> list[str]:
    """The manifest's dense channels (those embedded by a model, with its fingerprint)."""
    return [c for c, e in manifest.get("channels", {}).items() if isinstance(e, dict) and "fingerprint" in e]


def rebuild_command(manifest: dict, index: Path) -> str:
    """The command that rebuilds ``index`` as it was built (defaults where the manifest is unclear)."""
    def field(obj, key):
        return obj.get(key) if isinstance(obj, dict) else None

    corpus = field(field(manifest, "corpus"), "path")
    corpus = corpus if isinstance(corpus, str) and corpus else "corpus"
    cmd = f"kzqa build --corpus {corpus} --index {index}"
    model = field(field(field(manifest, "channels"), DENSE), "model")
    if isinstance(model, str) and model and model != DEFAULT_MODEL:
        cmd += f" --model {model}"
    return cmd


# ---------------------------------------------------------------- build


def choose_index_type(index_type: str, passages: int) -> str:
    """'auto' → exact ('Flat') below AUTO_FLAT_BELOW passages, above it an inverted file with
    about 4·√n lists ('IVF4000,Flat' at 1M: builds in about a minute here, where HNSW32 took
    about 10 minutes per million vectors); any other value is a FAISS factory string, as given."""
    if index_type != "auto":
        return index_type
    return "Flat" if passages < AUTO_FLAT_BELOW else f"IVF{int(4 * passages ** 0.5)},Flat"


def check_index_type(index_type: str, dims: set[int], passages: int) -> None:
    """Raise IndexProblem now (before any embedding) if FAISS cannot make ``index_type`` for
    vectors of these dimensions."""
    import faiss

    kind = choose_index_type(index_type, passages)
    for dim in dims:
        try:
            faiss.index_factory(dim, kind, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[-1].split(": ", 1)[-1][:160]
            raise IndexProblem(f"FAISS cannot make --index-type {index_type!r} for {dim}-dimensional vectors "
                               f"({reason}); try auto, Flat, HNSW32 or IVF1024,Flat") from None


def faiss_index(vectors: np.ndarray, index_type: str):
    """A FAISS inner-product index of ``index_type`` (a faiss index_factory string) holding ``vectors``."""
    import faiss

    index = faiss.index_factory(vectors.shape[1], index_type, faiss.METRIC_INNER_PRODUCT)
    if hasattr(index, "hnsw"):
        index.hnsw.efConstruction = 200
        index.hnsw.efSearch = HNSW_EF_SEARCH
    if not index.is_trained:
        rng = np.random.default_rng(0)
        sample = vectors if len(vectors) <= 200_000 else vectors[rng.choice(len(vectors), 200_000, replace=False)]
        index.train(sample)
    index.add(vectors)
    return ready_for_search(index)  # IVF: rows can be read back (exact search inside a narrow filter)


def _sentence_texts(passages: list[Passage]) -> list[str]:
    return [p.text[s:e] for p in passages for s, e in p.sentences]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive
        return str(path.resolve())


def stats_of(documents: list[Document], passages: list[Passage], lexical: LexicalIndex | None = None) -> CorpusStats:
    """The corpus statistics of an index (term document frequencies from ``lexical`` if given)."""
    sentences = list(dict.fromkeys(_sentence_texts(passages)))
    return corpus_stats([p.text for p in passages], sentences,
                        [f"{d.text}\n{d.title}\n{d.publisher or ''}\n{d.author or ''}" for d in documents],
                        df=lexical.document_frequencies() if lexical is not None else None)


def write_stats(path: Path, stats: CorpusStats) -> None:
    path.write_text(json.dumps(stats.to_dict(), ensure_ascii=False), encoding="utf-8")


def read_stats(path: Path) -> CorpusStats:
    return CorpusStats.from_dict(json.loads(path.read_text(encoding="utf-8")))


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
                   progress: bool = False) -> tuple[dict[str, Embedded], int]:
    """Every channel's passage and sentence vectors, and how many passages had to be embedded
    (vectors of texts already in ``cache`` are reused; the cache then keeps only these texts)."""
    texts = [p.embed_text(params.prefix) for p in passages]
    sentences = _sentence_texts(passages)
    out: dict[str, Embedded] = {}
    embedded = 0
    for channel, encoder in encoders.items():
        too_long = [n for n in encoder.count_tokens_many(texts) if n > encoder.max_tokens]
        if too_long:
            raise IndexProblem(f"{len(too_long)} passages exceed {encoder.name}'s {encoder.max_tokens} tokens")
        embeddings = EmbeddingCache(cache, encoder)
        vectors, fresh = embeddings.embed(texts, progress=progress)  # passages, then their sentences
        sentence_vectors, fresh_sentences = embeddings.embed(sentences, progress=progress)
        embeddings.keep_only(texts + sentences)
        embedded = max(embedded, _passages_touched(passages, np.concatenate([fresh, fresh_sentences])))
        entry = {"model": encoder.name, "fingerprint": encoder.fingerprint(), "dim": encoder.dim}
        out[channel] = Embedded(entry, vectors, sentence_vectors)
    return out, embedded


def write_texts(folder: Path, documents: list[Document], passages: list[Passage]) -> None:
    """Create an index folder with its documents.jsonl and passages.jsonl."""
    folder.mkdir(parents=True)
    _write_jsonl(folder / "documents.jsonl", [d.to_dict() for d in documents])
    _write_jsonl(folder / "passages.jsonl", [p.to_dict() for p in passages])


def write_vectors(folder: Path, vectors: dict[str, Embedded], lexical: LexicalIndex, stats: CorpusStats,
                  index_type: str, query_models: dict[str, Path] | None = None) -> dict:
    """Write the FAISS, sentence-vector, BM25 and statistics files of an index folder (of
    ``len(vectors[c].passages)`` passages), and a copy of each channel's exported question
    encoder (``query_models``, see :mod:`kzqa.onnxmodels`); return the channels' manifest entries."""
    import faiss

    channels: dict[str, dict] = {}
    for channel, embedded in vectors.items():
        kind = choose_index_type(index_type, len(embedded.passages))
        faiss.write_index(faiss_index(embedded.passages, kind), str(folder / f"{channel}.faiss"))
        np.save(folder / f"{channel}.sentences.npy", embedded.sentences)
        channels[channel] = {**embedded.entry, "index_type": kind, "file": f"{channel}.faiss"}
        if query_models and channel in query_models:
            shutil.copytree(query_models[channel], folder / f"{channel}.onnx")
            meta = json.loads((folder / f"{channel}.onnx" / "onnx.json").read_text(encoding="utf-8"))
            channels[channel]["query_model"] = {"folder": f"{channel}.onnx", "runtime": "onnxruntime",
                                                "quantized": meta["quantized"], "files": meta["files"]}
    lexical.save(folder / LEXICAL)
    write_stats(folder / "stats.json", stats)
    channels[LEXICAL] = dict(LEXICAL_SETTINGS)
    return channels


def write_manifest(folder: Path, manifest: dict) -> dict:
    """Seal an index folder: record the sha256 of every file in it (``files``, by relative
    path; the exported question encoders carry their own) and of each channel's vector files
    (in the channel's entry, so a manifest whose channels point at each other's files fails),
    then write manifest.json. Returns the manifest written."""
    files = {f.relative_to(folder).as_posix(): known_sha256(f) for f in sorted(folder.rglob("*"))
             if f.is_file() and f.name != "manifest.json" and not f.relative_to(folder).parts[0].endswith(".onnx")}
    channels = {c: ({**e, "sha256": files[e["file"]], "sentences_sha256": files[f"{c}.sentences.npy"]}
                    if "file" in e else e) for c, e in manifest.get("channels", {}).items()}
    manifest = {**manifest, "channels": channels, "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


class BuildLock:
    """An exclusive lock on building one index (``.<name>.lock`` beside it, holding the pid):
    a second build fails at once with an IndexProblem naming the first. The lock is an
    ``flock``, so the kernel drops it when its process dies: a killed build never leaves a
    stale lock (the file may stay; it is reused)."""

    def __init__(self, target: Path):
        self.target = target
        self.path = target.parent / f".{target.name}.lock"
        self._file = None

    def __enter__(self) -> "BuildLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise IndexProblem(f"another build of {self.target} is running ({holder}); "
                               "wait for it to finish, or stop it, and build again") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, started {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.truncate(0)
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _swap_in(tmp: Path, target: Path) -> None:
    """Replace ``target`` by ``tmp`` with two renames; the old copy is kept until the new one
    is in place, and :func:`open_index` puts it back if a crash fell between the renames."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.rename(target, old)
    os.rename(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def _remove_dead_builds(target: Path) -> None:
    """Remove the temporary folders of earlier builds that died (under :class:`BuildLock`, no
    other build of ``target`` is running)."""
    for tmp in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


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


def prepare(corpus: str | Path, model: str | None, multilingual_model: str | None, params: ChunkParams | None,
            previous: "PreviousIndex | None" = None, progress: bool = False) -> Prepared:
    """Read ``corpus``, load the models and split the documents (reusing ``previous``'s passages
    of unchanged documents). Raises IndexProblem when no document is readable."""
    corpus_dir = Path(corpus)
    params = params or ChunkParams()
    read = read_corpus(corpus_dir)
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


def export_query_models(encoders: dict[str, Encoder], cache: Path) -> dict[str, Path]:
    """Each channel's ONNX export (in the cache; made once per model weights), where it has one."""
    return {c: folder for c, e in encoders.items() if (folder := cached_export(e, cache)) is not None}


def bulk_encoders(encoders: dict[str, Encoder], exported: dict[str, Path]) -> dict[str, Encoder]:
    """The encoders a build embeds with: the ONNX exports on every core where there are some
    (same weights, so the same fingerprints and cache), else the models themselves."""
    return {c: open_exported(exported[c], threads=BULK_THREADS) if c in exported else e for c, e in encoders.items()}


def lexical_and_stats(prepared: Prepared) -> tuple[LexicalIndex, CorpusStats]:
    """The BM25 index of the passages (as embedded) and the corpus statistics."""
    lexical = LexicalIndex.build([p.embed_text(prepared.params.prefix) for p in prepared.passages])
    return lexical, stats_of(prepared.read.documents, prepared.passages, lexical)


def manifest_of(prepared: Prepared, channels: dict, corpus_path: str) -> dict:
    """The manifest of a build: versions, corpus files and hash, chunking, channels, counts."""
    hashes = file_hashes(prepared.corpus_dir)
    passages = prepared.passages
    return {
        "format": FORMAT, "kzqa_version": __version__, "pipeline_version": PIPELINE_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": {"path": corpus_path, "files": hashes, "hash": _corpus_hash(hashes)},
        "chunking": prepared.params.to_dict(), "channels": channels,
        "counts": {"documents": len(prepared.read.documents), "passages": len(passages),
                   "sentences": sum(len(p.sentences) for p in passages)},
        "problems": [str(p) for p in prepared.read.problems],
    }


def summary_of(prepared: Prepared, target: str, started: float, embedded: int) -> BuildSummary:
    dense, params, passages = prepared.encoders[DENSE], prepared.params, prepared.passages
    return BuildSummary(
        index=target, documents=len(prepared.read.documents), passages=len(passages),
        seconds=time.perf_counter() - started, problems=prepared.read.problems, cut_sentences=prepared.cut,
        words=[len(p.text.split()) for p in passages],
        tokens=dense.count_tokens_many([p.embed_text(params.prefix) for p in passages]),
        embedded=embedded, reused=len(passages) - embedded,
        resplit=len(prepared.read.documents) - prepared.reused_documents,
    )


def default_cache_path(index: Path | None = None) -> Path:
    """The embedding cache of an index folder: ``.<index>.cache`` beside it."""
    index = index if index is not None else default_index_path()
    return index.parent / f".{index.name}.cache"


def build(corpus: str | Path = "corpus", index: str | Path | None = None,
          model: str | None = None, multilingual_model: str | None = MULTILINGUAL_MODEL,
          params: ChunkParams | None = None, index_type: str = "auto",
          progress: bool = False) -> BuildSummary:
    """Read ``corpus``, split, embed and store into ``index`` atomically.

    ``model`` is the English dense model (default all-MiniLM-L6-v2), ``multilingual_model``
    the cross-lingual one (None to leave that channel out). ``index_type``: a FAISS factory
    string, or 'auto' (exact below AUTO_FLAT_BELOW passages, IVF above). Files that cannot be
    read are listed in the summary's ``problems``; the build goes on without them. Documents
    unchanged since the previous build keep their passages, and texts embedded before are not
    embedded again (the cache beside the index).
    """
    started = time.perf_counter()
    target = Path(index) if index is not None else default_index_path()
    with BuildLock(target):
        previous = read_previous(target)
        prepared = prepare(corpus, model, multilingual_model, params, previous, progress)
        check_index_type(index_type, {e.dim for e in prepared.encoders.values()}, len(prepared.passages))

        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_builds(target)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        try:
            write_texts(tmp, prepared.read.documents, prepared.passages)
            cache = default_cache_path(target)
            seed_cache(previous, target, cache, prepared.encoders)
            query_models = export_query_models(prepared.encoders, cache)
            vectors, embedded = embed_channels(prepared.passages, bulk_encoders(prepared.encoders, query_models),
                                               prepared.params, cache, progress)
            lexical, stats = lexical_and_stats(prepared)
            channels = write_vectors(tmp, vectors, lexical, stats, index_type, query_models)
            write_manifest(tmp, manifest_of(prepared, channels, _relative(prepared.corpus_dir, target.parent)))
            _swap_in(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return summary_of(prepared, str(target), started, embedded)


@dataclass
class PreviousIndex:
    """What a rebuild reuses of the index it replaces (read once)."""

    manifest: dict
    document_texts: dict[str, str]
    passages: list[Passage]


def read_previous(target: Path) -> PreviousIndex | None:
    """The index at ``target`` as a rebuild needs it, or None when there is none usable."""
    try:
        manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
        if manifest_problem(manifest) or manifest.get("format") != FORMAT or damaged_index_files(target, manifest):
            return None  # nothing is reused from a damaged index or one of another format
        texts = {d["doc_id"]: d["text"] for d in _read_jsonl(target / "documents.jsonl")}
        passages = [Passage.from_dict(row) for row in _read_jsonl(target / "passages.jsonl")]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return PreviousIndex(manifest, texts, passages)


def seed_cache(previous: PreviousIndex | None, target: Path, cache: Path, encoders: dict[str, Encoder]) -> None:
    """Put the previous index's vectors (of models with the same weights) into an empty cache,
    so a fresh checkout's first rebuild embeds only what changed and reproduces the rest exactly."""
    import faiss

    if previous is None:
        return
    passages = previous.passages
    try:
        params = ChunkParams(**previous.manifest["chunking"])
        for channel, encoder in encoders.items():
            entry = previous.manifest["channels"].get(channel, {})
            embeddings = EmbeddingCache(cache, encoder)
            if entry.get("fingerprint") != encoder.fingerprint() or len(embeddings):
                continue
            index = faiss.read_index(str(target / entry["file"]))
            sentences = np.load(target / f"{channel}.sentences.npy", allow_pickle=False)
            texts = [p.embed_text(params.prefix) for p in passages]
            if index.ntotal != len(texts) or len(sentences) != sum(len(p.sentences) for p in passages):
                continue
            embeddings.add(texts, index.reconstruct_n(0, index.ntotal))
            embeddings.add(_sentence_texts(passages), sentences)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError):
        return  # no usable previous vectors: nothing to seed


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


def _corpus_hash(hashes: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- load and check


def _restore_interrupted_swap(target: Path) -> None:
    if target.exists():
        return
    olds = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds:
        os.rename(olds[-1], target)


def read_manifest(path: Path) -> dict:
    """The manifest of the index folder, checked for shape (IndexProblem if absent, not JSON,
    or missing what loading relies on)."""
    manifest_file = path / "manifest.json"
    if not manifest_file.exists():
        raise IndexProblem(f"no index at {path} (manifest.json missing). "
                           f"Build one with: kzqa build --index {path}")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexProblem(f"index at {path} is corrupt (manifest.json: {exc}). "
                           f"Rebuild with: kzqa build --index {path}") from exc
    problem = manifest_problem(manifest)
    if problem:
        rebuild = rebuild_command(manifest if isinstance(manifest, dict) else {}, path)
        raise IndexProblem(f"index at {path} is corrupt (manifest.json: {problem}). Rebuild with: {rebuild}")
    return manifest


def _safe_relative(name: object) -> bool:
    return isinstance(name, str) and bool(name) and not Path(name).is_absolute() and ".." not in Path(name).parts


def manifest_problem(manifest: object) -> str | None:
    """What is wrong with the shape of a manifest (None: what loading needs is there). An
    index of another format is reported by the freshness check instead, with its rebuild."""
    if not isinstance(manifest, dict):
        return f"a JSON object was expected, found {type(manifest).__name__}"
    if manifest.get("format") != FORMAT:
        return None
    corpus, channels = manifest.get("corpus"), manifest.get("channels")
    if not isinstance(corpus, dict) or not isinstance(corpus.get("path"), str) or not isinstance(corpus.get("files"), dict):
        return "no 'corpus' with its path and files"
    if not isinstance(channels, dict) or not channels:
        return "no 'channels'"
    for channel, entry in channels.items():
        if not isinstance(entry, dict):
            return f"channel {channel!r} is not an object"
        if "fingerprint" in entry:
            if not all(isinstance(entry.get(k), str) for k in ("model", "fingerprint", "file", "sha256", "sentences_sha256")):
                return f"channel {channel!r} lacks its model, fingerprint, file or checksums"
            if not _safe_relative(entry["file"]):
                return f"channel {channel!r} names the file {entry['file']!r}, outside the index"
            query_model = entry.get("query_model")
            if query_model is not None and not (isinstance(query_model, dict) and _safe_relative(query_model.get("folder"))
                                                and isinstance(query_model.get("files"), dict)
                                                and all(map(_safe_relative, query_model["files"]))):
                return f"channel {channel!r} has a malformed query_model"
    if DENSE not in channels or "fingerprint" not in channels[DENSE]:
        return f"no '{DENSE}' channel"
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(_safe_relative(f) and isinstance(d, str) for f, d in files.items()):
        return "no valid 'files' checksums"
    counts = manifest.get("counts")
    if not isinstance(counts, dict) or not all(isinstance(counts.get(k), int) for k in ("documents", "passages", "sentences")):
        return "no 'counts' of documents, passages and sentences"
    return None


def damaged_index_files(path: Path, manifest: dict) -> list[str]:
    """Files of the index folder that are missing, changed since the build (sha256 against the
    manifest), or not the ones their channel was built with; empty when all is intact. Digests
    of unchanged files come from a cache (see :mod:`kzqa.checksums`)."""
    files: dict[str, str] = manifest["files"]
    required = {"documents.jsonl", "passages.jsonl", "stats.json"}
    for c in dense_channels(manifest):
        required |= {manifest["channels"][c]["file"], f"{c}.sentences.npy"}
    if LEXICAL in manifest["channels"] and not any(f.startswith(f"{LEXICAL}/") for f in files):
        required.add(f"{LEXICAL}/")
    damaged = [f"{f} (not in the manifest)" for f in sorted(required - set(files))]
    for name, digest in files.items():
        target = path / name
        try:
            if not target.is_file():
                damaged.append(f"{name} (missing)")
            elif known_sha256(target) != digest:
                damaged.append(f"{name} (changed)")
        except OSError as exc:
            damaged.append(f"{name} ({exc.strerror or exc})")
    for c in dense_channels(manifest):
        entry = manifest["channels"][c]
        if files.get(entry["file"]) != entry["sha256"] or files.get(f"{c}.sentences.npy") != entry["sentences_sha256"]:
            damaged.append(f"{c}: its vector files are not the ones it was built with")
    return damaged


def corpus_changes(manifest: dict, corpus_dir: Path) -> list[str]:
    """What changed in the corpus folder since the build: 'added: x', 'removed: y', …"""
    before: dict = manifest["corpus"]["files"]
    now = file_hashes(corpus_dir)
    changes = []
    for label, names in (
        ("added", sorted(set(now) - set(before))),
        ("removed", sorted(set(before) - set(now))),
        ("modified", sorted(n for n in set(now) & set(before) if now[n] != before[n])),
    ):
        if names:
            changes.append(f"{label}: {', '.join(names)}")
    return changes


def check_fresh(manifest: dict, encoders: dict[str, Encoder], where: str, rebuild: str,
                corpus_base: Path | None = None) -> None:
    """Raise IndexProblem ("<where> is stale: <what changed>. Rebuild with: <rebuild>") if the
    corpus (a relative corpus path is taken from ``corpus_base``), models or pipeline differ."""
    changes: list[str] = []
    if manifest.get("format") != FORMAT or manifest.get("pipeline_version") != PIPELINE_VERSION:
        changes.append(f"index format {manifest.get('format')}/{manifest.get('pipeline_version')} "
                       f"!= this kzqa's {FORMAT}/{PIPELINE_VERSION}")
    corpus_dir = Path(manifest["corpus"]["path"])
    if not corpus_dir.is_absolute() and corpus_base is not None:
        corpus_dir = corpus_base / corpus_dir
    if corpus_dir.is_dir():
        changes += [f"corpus {c}" for c in corpus_changes(manifest, corpus_dir)]
    elif manifest.get("corpus", {}).get("path") and (where, str(corpus_dir)) not in _REPORTED_MISSING_CORPUS:
        _REPORTED_MISSING_CORPUS.add((where, str(corpus_dir)))
        log.warning("%s: its corpus folder %s is not here, so it cannot be checked for changed documents; "
                    "answering from the index as built", where, corpus_dir)
    for channel, encoder in encoders.items():
        entry = manifest["channels"][channel]
        if entry["fingerprint"] != encoder.fingerprint():
            changes.append(f"model '{entry['model']}' of channel {channel} has other weights "
                           f"than when the index was built")
    if changes:
        raise IndexProblem(f"{where} is stale: {'; '.join(changes)}. Rebuild with: {rebuild}")


def query_encoder(path: Path, entry: dict, rebuild: str) -> Encoder:
    """The encoder for a channel's questions: the index's own ONNX export when it has one (no
    torch; its files checked against the manifest), else the model named in the manifest."""
    exported = entry.get("query_model")
    if exported and onnx_available():
        folder = path / exported["folder"]
        damaged = damaged_files(folder, exported["files"])
        if damaged:
            raise IndexProblem(f"index at {path} is corrupt ({exported['folder']}: {', '.join(damaged)} changed "
                               f"or missing). Rebuild with: {rebuild}")
        try:
            return open_exported(folder)
        except Exception as exc:  # onnx.json unreadable, onnxruntime refusing the graph …
            raise IndexProblem(f"index at {path} is corrupt ({exported['folder']}: {type(exc).__name__}: {exc}). "
                               f"Rebuild with: {rebuild}") from exc
    try:
        return get_encoder(entry["model"])
    except ModelError as exc:
        raise IndexProblem(f"index at {path} needs a model this machine cannot load ({exc}). "
                           f"Rebuild with: {rebuild}") from exc


def open_index(path: str | Path | None = None, check: bool = True) -> tuple[FileStore, dict[str, Encoder]]:
    """Open an index folder as a store and load its models; refuse it if stale (``check``) or broken."""
    import faiss

    path = Path(path) if path is not None else default_index_path()
    _restore_interrupted_swap(path)
    manifest = read_manifest(path)
    rebuild = rebuild_command(manifest, path)
    if manifest.get("format") != FORMAT or manifest.get("pipeline_version") != PIPELINE_VERSION:
        raise IndexProblem(f"index at {path} was built by another version of kzqa (format "
                           f"{manifest.get('format')}/{manifest.get('pipeline_version')}, this one reads "
                           f"{FORMAT}/{PIPELINE_VERSION}). Rebuild with: {rebuild}")
    damaged = damaged_index_files(path, manifest)
    if damaged:
        raise IndexProblem(f"index at {path} is corrupt ({'; '.join(damaged[:5])}"
                           f"{f'; and {len(damaged) - 5} more' if len(damaged) > 5 else ''}). Rebuild with: {rebuild}")
    dense = dense_channels(manifest)
    encoders = {c: query_encoder(path, manifest["channels"][c], rebuild) for c in dense}
    if check:
        check_fresh(manifest, encoders, f"index at {path}", rebuild, path.parent)
    try:
        documents = LazyDocuments(JsonlRows(path / "documents.jsonl"))
        passages = LazyPassages(JsonlRows(path / "passages.jsonl"))
        vectors = {c: ready_for_search(faiss.read_index(str(path / manifest["channels"][c]["file"])))
                   for c in dense}
        sentence_vectors = {c: np.load(path / f"{c}.sentences.npy", allow_pickle=False, mmap_mode="r")
                            for c in dense}  # read from disk as needed, not held in memory
        lexical = LexicalIndex.load(path / LEXICAL) if LEXICAL in manifest["channels"] else None
        stats = read_stats(path / "stats.json")
        store = FileStore(path, manifest, documents, passages, vectors, sentence_vectors, lexical, stats)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise IndexProblem(f"index at {path} is corrupt ({type(exc).__name__}: {exc}). "
                           f"Rebuild with: {rebuild}") from exc
    counts = manifest["counts"]
    found = {"documents": len(store.documents), "passages": store.size, "sentences": store.sentence_count}
    wrong = [f"{k}: {found[k]} where the manifest says {counts[k]}" for k in found if found[k] != counts[k]]
    for c in dense:
        if vectors[c].ntotal != store.size or len(sentence_vectors[c]) != store.sentence_count:
            wrong.append(f"{c}: {vectors[c].ntotal} vectors for {store.size} passages")
    if wrong:
        raise IndexProblem(f"index at {path} is corrupt ({'; '.join(wrong)}). Rebuild with: {rebuild}")
    return store, encoders
