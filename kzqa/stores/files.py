"""Open and serve an index folder (written by :mod:`kzqa.stores.filewrite`).

:func:`open_index` reads one path downward: the manifest (:func:`kzqa.stores.manifest.read_manifest`),
the checksums of every file, the channels' question encoders, freshness against the corpus and
models, then the files themselves as a :class:`FileStore`; it refuses, with the command that
rebuilds it, an index that fails any of these. :class:`FileStore` answers the
:class:`kzqa.stores.base.Store` questions from FAISS, bm25s, JSONL and ``.npy`` files.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..channels.checksums import already_verified, mark_verified
from ..channels.encoders import Encoder, ModelError, get_encoder
from ..channels.lexical import CorpusStats, LexicalIndex
from ..channels.onnxmodels import damaged_files, onnx_available, open_exported
from ..ingest.corpus import Document
from ..ingest.passages import Passage
from .base import HNSW_EF_SEARCH, IndexProblem, start_each
from .manifest import (
    FORMAT,
    LEXICAL,
    PIPELINE_VERSION,
    check_fresh,
    damaged_index_files,
    default_index_path,
    dense_channels,
    read_manifest,
    read_stats,
    rebuild_command,
)

# A filter keeping at most this many rows is searched exactly among them (vectors read back from
# the index); a wider one goes through FAISS's own ID selector.
EXACT_FILTER_ROWS = 50_000


# IVF lists probed: nlist/IVF_PROBE_SHARE, at least IVF_MIN_PROBES (measured in tests/stores/test_files.py
# and `kzqa bench scale`: recall@10 against exact search).
IVF_PROBE_SHARE = 32


IVF_MIN_PROBES = 64


class JsonlRows(Sequence):
    """The lines of a JSONL file, parsed on demand: ``rows[i] == json.loads(line i)``. Only the
    line offsets are held in memory; the file is memory-mapped."""

    def __init__(self, path: str | Path):
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if f.seek(0, 2) else b""
        starts, pos, size = [np.zeros(1, dtype=np.int64)], 0, len(self._map)
        while pos < size:  # newline positions, 64 MB at a time
            chunk = np.frombuffer(self._map[pos:pos + (1 << 26)], dtype=np.uint8)
            starts.append(np.flatnonzero(chunk == 10).astype(np.int64) + pos + 1)
            pos += len(chunk)
        bounds = np.concatenate(starts)
        if bounds[-1] != size:
            bounds = np.append(bounds, size)
        keep = np.diff(bounds) > 1  # skip blank lines
        self._start, self._end = bounds[:-1][keep], bounds[1:][keep]

    def __len__(self) -> int:
        return len(self._start)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return json.loads(self._map[self._start[i]:self._end[i]])


class LazyPassages(Sequence):
    """Passages of a passages.jsonl, read when asked for."""

    def __init__(self, rows: JsonlRows):
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return Passage.from_dict(self._rows[i])


class LazyDocuments(Mapping):
    """Documents of a documents.jsonl by id, read when asked for (texts are not held in memory)."""

    def __init__(self, rows: JsonlRows):
        self._rows = rows
        self._index = {rows[i]["doc_id"]: i for i in range(len(rows))}

    def __getitem__(self, doc_id: str) -> Document:
        return Document.from_dict(self._rows[self._index[doc_id]])

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


class FileStore:
    """The files of one index folder, opened by :func:`open_index` (passages and
    documents read on demand from their JSONL files, sentence vectors memory-mapped), or the
    same parts held in memory (BEIR corpora)."""

    waits_on_server = False  # every call runs on this process's cores

    def __init__(self, path, manifest: dict, documents: Mapping[str, Document], passages: Sequence[Passage],
                 vectors: dict, sentence_vectors: dict[str, np.ndarray], lexical, stats: CorpusStats):
        self.path = path
        self.manifest = manifest
        self.documents = documents
        self.rows = passages
        self.vectors = vectors  # channel → faiss index
        self._sentence_vectors = sentence_vectors
        self.lexical = lexical
        self.stats = stats
        counts = np.zeros(len(passages), dtype=np.int64)
        doc_codes = np.zeros(len(passages), dtype=np.int32)
        self._doc_code: dict[str, int] = {}
        for i in range(len(passages)):  # one pass; nothing but these numbers is kept
            p = passages[i]
            counts[i] = len(p.sentences)
            doc_codes[i] = self._doc_code.setdefault(p.doc_id, len(self._doc_code))
        self._sentence_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._doc_of_row = doc_codes
        self._every_passage_has_sentences = bool(len(counts)) and bool(counts.all())

    @property
    def size(self) -> int:
        return len(self.rows)

    @property
    def sentence_count(self) -> int:
        return int(self._sentence_offsets[-1])

    @property
    def channels(self) -> list[str]:
        return list(self.vectors) + (["lexical"] if self.lexical is not None else [])

    def has_sentence_vectors(self, channel: str) -> bool:
        vectors = self._sentence_vectors.get(channel)
        return vectors is not None and len(vectors) > 0 and self._every_passage_has_sentences

    def current(self) -> "FileStore":
        """Itself: a file index changes only when it is opened again."""
        return self

    def top(self, channel: str, query, n: int, within: np.ndarray | None = None) -> list[tuple[int, float]]:
        if n <= 0 or (within is not None and len(within) == 0):
            return []
        if channel == "lexical":
            return self.lexical.top(query, n, within)
        return faiss_top(self.vectors[channel], np.asarray(query, dtype=np.float32), n, within)

    def passages(self, rows: Sequence[int]) -> list[Passage]:
        return [self.rows[row] for row in rows]

    def best_sentence(self, channel: str, query: np.ndarray, rows: Sequence[int]) -> list[float]:
        """Each row's best sentence score; summed in float64 and rounded to float32, so that the
        same sentence in two passages scores exactly the same (a tie, as in pgvector)."""
        q = np.asarray(query, dtype=np.float64)
        return [float(np.float32(np.max(v.astype(np.float64) @ q))) for v in self.sentence_vectors(channel, rows)]

    def sentence_vectors(self, channel: str, rows: Sequence[int]) -> list[np.ndarray]:
        offsets, vectors = self._sentence_offsets, self._sentence_vectors[channel]
        return [np.asarray(vectors[offsets[row]:offsets[row + 1]], dtype=np.float32) for row in rows]

    def restrict(self, doc_ids: list[str]) -> np.ndarray:
        """The rows of those documents' passages (an array of row numbers)."""
        codes = [self._doc_code[d] for d in doc_ids if d in self._doc_code]
        return np.flatnonzero(np.isin(self._doc_of_row, codes)).astype(np.int64)


def faiss_top(index, q: np.ndarray, n: int, allowed: np.ndarray | None = None,
              exact_limit: int = EXACT_FILTER_ROWS) -> list[tuple[int, float]]:
    """Top-n (row, score) of a FAISS inner-product index, best first, restricted to ``allowed``
    inside the search: exactly among them when they are at most ``exact_limit`` rows, else
    through FAISS's ID selector (HNSW searched with breadth max(HNSW_EF_SEARCH, 2n), IVF with
    nlist/IVF_PROBE_SHARE lists)."""
    import faiss

    n = min(n, index.ntotal if allowed is None else len(allowed))
    if n <= 0:
        return []
    if allowed is not None and len(allowed) <= exact_limit:
        vecs = index.reconstruct_batch(np.asarray(allowed, dtype=np.int64))
        scores = (vecs.astype(np.float64) @ q.astype(np.float64)).astype(np.float32)  # equal vectors tie exactly
        best = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        return sorted(((int(allowed[i]), float(scores[i])) for i in best), key=lambda t: (-t[1], t[0]))
    selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)) if allowed is not None else None
    d, i = index.search(q[None, :], n, params=_search_params(index, n, selector))
    return [(int(row), float(score)) for row, score in zip(i[0], d[0]) if row >= 0]


def _search_params(index, n: int, selector=None):
    """Search breadth for approximate indexes (and the ID selector of a filter)."""
    import faiss

    if _hnsw_of(index) is not None:
        return faiss.SearchParametersHNSW(sel=selector, efSearch=max(HNSW_EF_SEARCH, 2 * n))
    ivf = ivf_of(index)
    if ivf is not None:
        return faiss.SearchParametersIVF(sel=selector, nprobe=min(ivf.nlist, max(IVF_MIN_PROBES, ivf.nlist // IVF_PROBE_SHARE)))
    return faiss.SearchParameters(sel=selector) if selector is not None else None


def ready_for_search(index):
    """A read index, with an IVF index's direct map rebuilt so rows can be read back."""
    ivf = ivf_of(index)
    if ivf is not None and ivf.direct_map.type == 0:  # NoMap
        ivf.make_direct_map()
    return index


def ivf_of(index):
    import faiss

    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _hnsw_of(index):
    """The HNSW graph of an HNSW index (None for other index types)."""
    import faiss

    try:
        return faiss.downcast_index(index).hnsw
    except AttributeError:
        return None


def _restore_interrupted_swap(target: Path) -> None:
    if target.exists():
        return
    olds = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds:
        os.rename(olds[-1], target)


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


def misplaced_passages(manifest: dict, store: "FileStore") -> list[str]:
    """Ids of passages whose offsets lie outside their document or whose text is not
    ``document.text[start:end]`` (empty when all hold). Checked once per content of
    passages.jsonl and documents.jsonl on this machine (their digests name the check)."""
    files = manifest["files"]
    check = f"passage-offsets|{files.get('passages.jsonl')}|{files.get('documents.jsonl')}"
    if already_verified(check):
        return []
    bad: list[str] = []
    doc_id, text = None, ""
    for i in range(store.size):
        p = store.rows[i]
        if p.doc_id != doc_id:
            doc_id = p.doc_id
            document = store.documents.get(doc_id)
            text = document.text if document is not None else None
        if text is None or not (0 <= p.start <= p.end <= len(text)) or text[p.start:p.end] != p.text:
            bad.append(p.passage_id)
    if not bad:
        mark_verified(check)
    return bad


def open_index(path: str | Path | None = None, check: bool = True) -> tuple[FileStore, dict[str, Encoder]]:
    """Open an index folder as a store and load its models; refuse it if stale (``check``) or broken."""
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
    with ThreadPoolExecutor(max(len(dense), 1), thread_name_prefix="kzqa-open") as pool:
        opening = start_each(lambda c: query_encoder(path, manifest["channels"][c], rebuild), dense, pool)
        store = _read_store(path, manifest, dense, rebuild)
        encoders = {c: future.result() for c, future in opening.items()}
    if check:
        check_fresh(manifest, encoders, f"index at {path}", rebuild, path.parent)
    return store, encoders


def _read_store(path: Path, manifest: dict, dense: list[str], rebuild: str) -> FileStore:
    """The index folder's files as a store, checked against the manifest (IndexProblem if not)."""
    import faiss

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
    misplaced = misplaced_passages(manifest, store)
    if misplaced:
        raise IndexProblem(f"index at {path} is corrupt (passages whose offsets do not match their document: "
                           f"{', '.join(misplaced[:3])}{f' and {len(misplaced) - 3} more' if len(misplaced) > 3 else ''})."
                           f" Rebuild with: {rebuild}")
    counts = manifest["counts"]
    found = {"documents": len(store.documents), "passages": store.size, "sentences": store.sentence_count}
    wrong = [f"{k}: {found[k]} where the manifest says {counts[k]}" for k in found if found[k] != counts[k]]
    for c in dense:
        sentences = store.sentence_count if manifest["channels"][c].get("sentence_vectors", True) else 0
        if vectors[c].ntotal != store.size or len(sentence_vectors[c]) != sentences:
            wrong.append(f"{c}: {vectors[c].ntotal} vectors for {store.size} passages")
    if wrong:
        raise IndexProblem(f"index at {path} is corrupt ({'; '.join(wrong)}). Rebuild with: {rebuild}")
    return store
