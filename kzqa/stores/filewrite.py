"""Write an index folder: FAISS for vectors, JSON/JSONL for the rest, no pickle.

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
loadable. Opening the folder is :func:`kzqa.stores.files.open_index`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..channels.checksums import known_sha256
from ..channels.embedcache import EmbeddingCache
from ..channels.encoders import MULTILINGUAL_MODEL, Encoder
from ..channels.lexical import SETTINGS as LEXICAL_SETTINGS
from ..channels.lexical import CorpusStats, LexicalIndex
from ..ingest.corpus import Document
from ..ingest.passages import ChunkParams, Passage
from .base import HNSW_EF_SEARCH, BuildSummary, IndexProblem, half_size
from .building import (
    Embedded,
    Embedding,
    PreviousIndex,
    embed_and_index,
    manifest_of,
    prepare,
    sentence_texts,
    summary_of,
)
from .files import ready_for_search
from .manifest import (
    FORMAT,
    LEXICAL,
    damaged_index_files,
    default_cache_path,
    default_index_path,
    manifest_problem,
    read_jsonl,
    write_jsonl,
    write_stats,
)

AUTO_FLAT_BELOW = 100_000  # passages; index_type="auto" uses exact search below, IVF above


def choose_index_type(index_type: str, passages: int) -> str:
    """'auto' → exact ('Flat') below AUTO_FLAT_BELOW passages, above it an inverted file with
    about 4·√n lists holding the vectors in float16 ('IVF4000,SQfp16' at 1M: builds in about a
    minute here, where HNSW32 took about 10 minutes per million vectors; float16 halves the
    file, as for sentence vectors); any other value is a FAISS factory string, as given."""
    if index_type != "auto":
        return index_type
    return "Flat" if passages < AUTO_FLAT_BELOW else f"IVF{int(4 * passages ** 0.5)},SQfp16"


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


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive
        return str(path.resolve())


def write_texts(folder: Path, documents: list[Document], passages: list[Passage]) -> None:
    """Create an index folder with its documents.jsonl and passages.jsonl."""
    folder.mkdir(parents=True)
    write_jsonl(folder / "documents.jsonl", [d.to_dict() for d in documents])
    write_jsonl(folder / "passages.jsonl", [p.to_dict() for p in passages])


def write_vectors(folder: Path, vectors: dict[str, Embedded], lexical: LexicalIndex, stats: CorpusStats,
                  index_type: str, query_models: dict[str, Path] | None = None) -> dict:
    """Write the FAISS, sentence-vector, BM25 and statistics files of an index folder (of
    ``len(vectors[c].passages)`` passages), and a copy of each channel's exported question
    encoder (``query_models``, see :mod:`kzqa.channels.onnxmodels`); return the channels' manifest entries."""
    import faiss

    channels: dict[str, dict] = {}
    for channel, embedded in vectors.items():
        kind = choose_index_type(index_type, len(embedded.passages))
        faiss.write_index(faiss_index(embedded.passages, kind), str(folder / f"{channel}.faiss"))
        np.save(folder / f"{channel}.sentences.npy", half_size(embedded.sentences))
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


def read_previous(target: Path) -> PreviousIndex | None:
    """The index at ``target`` as a rebuild needs it, or None when there is none usable."""
    try:
        manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
        if manifest_problem(manifest) or manifest.get("format") != FORMAT or damaged_index_files(target, manifest):
            return None  # nothing is reused from a damaged index or one of another format
        texts = {d["doc_id"]: d["text"] for d in read_jsonl(target / "documents.jsonl")}
        passages = [Passage.from_dict(row) for row in read_jsonl(target / "passages.jsonl")]
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
            if index.ntotal != len(texts):
                continue
            embeddings.add(texts, index.reconstruct_n(0, index.ntotal))
            if len(sentences) == sum(len(p.sentences) for p in passages):  # none with --sentence-vectors
                embeddings.add(sentence_texts(passages), sentences.astype(np.float32))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError):
        return  # no usable previous vectors: nothing to seed


def build(corpus: str | Path = "corpus", index: str | Path | None = None,
          model: str | None = None, multilingual_model: str | None = MULTILINGUAL_MODEL,
          params: ChunkParams | None = None, index_type: str = "auto",
          progress: bool = False, where: Embedding = Embedding()) -> BuildSummary:
    """Read ``corpus``, split, embed (as ``where`` says: here or on a Ray cluster, CPU or GPU)
    and store into ``index`` atomically.

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
            built = embed_and_index(prepared, cache, progress, where)
            channels = write_vectors(tmp, built.vectors, built.lexical, built.stats, index_type, built.query_models)
            write_manifest(tmp, manifest_of(prepared, channels, _relative(prepared.corpus_dir, target.parent),
                                           started))
            _swap_in(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return replace(summary_of(prepared, str(target), started, built.embedded), spread=built.spread)
