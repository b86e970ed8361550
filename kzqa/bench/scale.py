"""The scale benchmark: ``kzqa bench scale --passages N``.

It builds a synthetic index of N passages in a temporary folder and measures it as a user's
collection of that size would behave:

- **Text**: each passage is 3–6 real sentences drawn from the shipped corpus and, when it is
  beside the project, BEIR SciFact (``../shared/bench/scifact``); ten passages make a document.
- **Vectors**: 2,000 real passages built the same way are embedded with MiniLM (cached by text);
  every synthetic passage vector is one of them plus Gaussian noise with the real vectors'
  per-dimension spread, scaled so that it keeps a cosine of about 0.8 with its source, then
  normalised: topical clusters with real geometry, not uniform noise. Sentence vectors are drawn
  the same way around their passage's vector. The multilingual channel gets its own draw.
- **Index**: written with kzqa's own writers (FAISS index chosen by size, bm25s, JSONL,
  statistics), opened with :func:`kzqa.load` like any index.

Reported: build seconds, size on disk, the process's resident memory after loading, ``search``
p50/p95 per mode excluding question encoding (the dev questions' vectors are encoded first) and
including it, recall@10 of the dense channel against exact search (NumPy over every vector),
and the same inside a ``doc_ids`` filter keeping 1% of the documents.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..qa.retrieve import MODES
from .evaluate import percentiles

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT.parent / "shared" / "bench" / "scifact" / "corpus.jsonl"
PASSAGES_PER_DOCUMENT = 10
REAL_SAMPLE = 2_000
KEEP_COSINE = 0.8


def real_sentences(limit: int = 60_000) -> list[str]:
    """Sentences of the shipped corpus and (if present) SciFact, split at sentence ends."""
    from ..ingest.corpus import read_corpus

    texts = [d.text for d in read_corpus(ROOT / "corpus").documents]
    if SCIFACT.exists():
        with open(SCIFACT, encoding="utf-8") as f:
            texts += [json.loads(line).get("text", "") for line in f if line.strip()]
    out: list[str] = []
    for text in texts:
        out += [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", re.sub(r"\s+", " ", text))
                if 40 <= len(s.strip()) <= 400]
        if len(out) >= limit:
            break
    return out[:limit]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _noisy(base: np.ndarray, spread: np.ndarray, rng) -> np.ndarray:
    """Unit vectors around ``base`` rows keeping a cosine of about KEEP_COSINE with them."""
    noise = rng.standard_normal(base.shape, dtype=np.float32) * spread
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    angle = np.sqrt(1 - KEEP_COSINE ** 2) / KEEP_COSINE
    out = base + angle * noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def build_synthetic(folder: Path, n: int, seed: int = 0, progress: bool = False) -> dict:
    """Write a synthetic index of ``n`` passages into ``folder``; returns exact passage vectors
    per channel (for recall), and the documents' ids."""
    import faiss

    from ..channels.embedcache import EmbeddingCache, cache_dir
    from ..channels.encoders import DEFAULT_MODEL, MULTILINGUAL_MODEL, get_encoder
    from ..channels.lexical import SETTINGS, LexicalIndex
    from ..ingest.corpus import Document, Section
    from ..ingest.passages import Passage
    from ..stores.building import stats_of
    from ..stores.filewrite import choose_index_type, faiss_index, write_manifest
    from ..stores.manifest import (
        DENSE,
        FORMAT,
        LEXICAL,
        MULTILINGUAL,
        PIPELINE_VERSION,
        write_jsonl,
        write_stats,
    )

    rng = np.random.default_rng(seed)
    pool = real_sentences()
    counts = rng.integers(3, 7, n)
    picks = rng.integers(0, len(pool), int(counts.sum()))
    passages, documents, pos = [], [], 0
    for d in range(0, n, PASSAGES_PER_DOCUMENT):
        doc_id = f"doc{d // PASSAGES_PER_DOCUMENT:07d}"
        parts, spans_of, offset = [], [], 0
        rows = range(d, min(d + PASSAGES_PER_DOCUMENT, n))
        for row in rows:
            sentences = [pool[i] for i in picks[pos:pos + counts[row]]]
            pos += counts[row]
            text, spans = "", []
            for s in sentences:
                start = len(text) + (1 if text else 0)
                text = f"{text} {s}" if text else s
                spans.append((start, start + len(s)))
            parts.append(text)
            spans_of.append((offset, text, spans))
            offset += len(text) + 2
        doc_text = "\n\n".join(parts)
        documents.append(Document(doc_id, f"{doc_id}.txt", doc_text, [Section("Body", 0, len(doc_text))],
                                  f"Synthetic document {doc_id}"))
        for (start, text, spans), row in zip(spans_of, rows):
            passages.append(Passage(f"p{row:08d}", doc_id, documents[-1].title, "Body", text, start,
                                    start + len(text), tuple(spans)))
    encoder = get_encoder(DEFAULT_MODEL)
    sample = [p.text for p in passages[:REAL_SAMPLE]]
    real, _ = EmbeddingCache(cache_dir() / "embeddings", encoder).embed(sample, progress=progress)
    spread = real.std(axis=0).astype(np.float32)
    exact: dict[str, np.ndarray] = {}
    index_type = choose_index_type("auto", n)
    folder.mkdir(parents=True)
    write_jsonl(folder / "documents.jsonl", [doc.to_dict() for doc in documents])
    write_jsonl(folder / "passages.jsonl", [p.to_dict() for p in passages])
    channels = {}
    sentence_counts = np.array([len(p.sentences) for p in passages])
    for channel, model in ((DENSE, DEFAULT_MODEL), (MULTILINGUAL, MULTILINGUAL_MODEL)):
        vectors = np.empty((n, encoder.dim), dtype=np.float32)
        for lo in range(0, n, 100_000):
            hi = min(n, lo + 100_000)
            vectors[lo:hi] = _noisy(real[rng.integers(0, len(real), hi - lo)], spread, rng)
        exact[channel] = vectors
        faiss.write_index(faiss_index(vectors, index_type), str(folder / f"{channel}.faiss"))
        sentences = np.lib.format.open_memmap(folder / f"{channel}.sentences.npy", mode="w+", dtype=np.float16,
                                              shape=(int(sentence_counts.sum()), encoder.dim))
        owner = np.repeat(np.arange(n), sentence_counts)
        for lo in range(0, len(owner), 200_000):
            hi = min(len(owner), lo + 200_000)
            sentences[lo:hi] = _noisy(vectors[owner[lo:hi]], spread, rng)
        sentences.flush()
        del sentences
        target = get_encoder(model)
        channels[channel] = {"model": target.name, "fingerprint": target.fingerprint(), "dim": target.dim,
                             "index_type": index_type, "file": f"{channel}.faiss"}
    lexical = LexicalIndex.build([p.text for p in passages])
    lexical.save(folder / LEXICAL)
    channels[LEXICAL] = dict(SETTINGS)
    write_stats(folder / "stats.json", stats_of(documents, passages, lexical))
    manifest = {"format": FORMAT, "pipeline_version": PIPELINE_VERSION, "synthetic": True,
                "corpus": {"path": "", "files": {}, "hash": ""}, "chunking": {}, "channels": channels,
                "counts": {"documents": len(documents), "passages": n, "sentences": int(sentence_counts.sum())}}
    write_manifest(folder, manifest)
    return {"exact": exact, "doc_ids": [doc.doc_id for doc in documents]}


class _Precomputed:
    """An encoder that returns vectors computed beforehand by the real one (to time search
    without question encoding); any other question is encoded by the real encoder."""

    def __init__(self, encoder, questions: list[str]):
        self.encoder = encoder
        self.vectors = dict(zip(questions, encoder.encode_queries(questions)))

    def encode_queries(self, questions: list[str]) -> np.ndarray:
        if all(q in self.vectors for q in questions):
            return np.stack([self.vectors[q] for q in questions])
        return self.encoder.encode_queries(questions)

    def __getattr__(self, name):
        return getattr(self.encoder, name)


def _recall(store, exact: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None, within=None) -> float:
    """Mean share of the exact top 10 (NumPy over ``exact``, among ``allowed`` rows) that the
    store's dense channel returns (inside ``within``, the store's filter for the same rows)."""
    total = 0.0
    for q in queries:
        scores = exact @ q if allowed is None else exact[allowed] @ q
        best = np.argpartition(-scores, 9)[:10]
        truth = set(best.tolist()) if allowed is None else set(allowed[best].tolist())
        got = {row for row, _ in store.top("dense", q, 10, within)}
        total += len(truth & got) / 10
    return round(total / len(queries), 4)


def measure(index_dir: Path, questions: list[str], db: str | None = None) -> dict:
    """Load the index (the folder, or its copy in the database ``db``) in this (fresh) process
    and measure it: RSS after load, search latency per mode with and without question encoding,
    recall@10 against exact search (the exact vectors are read back from the folder's FAISS
    index after the RSS reading)."""
    import faiss

    import kzqa

    engine = kzqa.load(None if db else index_dir, check=False, db=db)
    store = engine.store.current()
    rss = _rss_mb()
    timings: dict = {"excluding_encoding": {}, "including_encoding": {}}
    for label in ("including_encoding", "excluding_encoding"):
        if label == "excluding_encoding":
            engine.encoders = {c: _Precomputed(e, questions) for c, e in engine.encoders.items()}
        for mode in MODES:
            ms = []
            for q in questions:
                t0 = time.perf_counter()
                engine.search(q, k=10, mode=mode)
                ms.append((time.perf_counter() - t0) * 1000)
            timings[label][mode] = percentiles(ms)
    doc_ids = sorted(engine.documents)
    filtered_docs = doc_ids[::100][: max(1, len(doc_ids) // 100)]
    fms = []
    for q in questions:
        t0 = time.perf_counter()
        hits = engine.search(q, k=10, doc_ids=filtered_docs)
        fms.append((time.perf_counter() - t0) * 1000)
        if not {h.doc_id for h in hits} <= set(filtered_docs):
            raise AssertionError("a filtered search returned a passage of another document")
    timings["excluding_encoding"]["hybrid, 1% of documents"] = percentiles(fms)
    index = faiss.read_index(str(index_dir / "dense.faiss"))
    exact = _exact_vectors(index)
    rng = np.random.default_rng(1)
    queries = exact[rng.integers(0, len(exact), 100)]
    queries = queries + 0.5 * rng.standard_normal(queries.shape).astype(np.float32) / np.sqrt(queries.shape[1])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    allowed = _rows_of_documents(filtered_docs, len(exact))
    return {"store": "postgresql" if db else "files", "index_type": engine.manifest["channels"]["dense"]["index_type"],
            "rss_mb": round(rss, 1),
            "search_ms": timings["excluding_encoding"], "search_ms_including_encoding": timings["including_encoding"],
            "recall_at_10": _recall(store, exact, queries, None),
            "filtered_recall_at_10": _recall(store, exact, queries, allowed, store.restrict(filtered_docs)),
            "filter": {"documents": len(filtered_docs), "passages": int(len(allowed))}, "questions": len(questions)}


def _exact_vectors(index) -> np.ndarray:
    from ..stores.files import ready_for_search

    return ready_for_search(index).reconstruct_n(0, index.ntotal)  # IVF/Flat keep the vectors as added


def _rows_of_documents(doc_ids: list[str], n: int) -> np.ndarray:
    """Rows of the synthetic documents ``docNNNNNNN`` (PASSAGES_PER_DOCUMENT passages each)."""
    docs = np.array([int(d[3:]) for d in doc_ids])
    rows = np.arange(n)
    return rows[np.isin(rows // PASSAGES_PER_DOCUMENT, docs)]


def copy_to_database(index_dir: Path, url: str) -> None:
    """Write the index folder's contents (passages, vectors, BM25, statistics) to the database
    as its serving generation, without embedding anything again."""
    import faiss

    from ..channels.lexical import LexicalIndex
    from ..ingest.corpus import Document
    from ..ingest.passages import Passage
    from ..stores.building import Embedded
    from ..stores.manifest import LEXICAL, read_jsonl, read_stats
    from ..stores.postgres import write_serving

    manifest = json.loads((index_dir / "manifest.json").read_text())
    documents = [Document.from_dict(d) for d in read_jsonl(index_dir / "documents.jsonl")]
    passages = [Passage.from_dict(p) for p in read_jsonl(index_dir / "passages.jsonl")]
    vectors = {}
    for channel, entry in manifest["channels"].items():
        if "fingerprint" in entry:
            vectors[channel] = Embedded(entry, _exact_vectors(faiss.read_index(str(index_dir / entry["file"]))),
                                        np.load(index_dir / f"{channel}.sentences.npy", mmap_mode="r"))
    query_models = {c: index_dir / e["query_model"]["folder"] for c, e in manifest["channels"].items()
                    if "query_model" in e}
    write_serving(url, documents, passages, vectors, LexicalIndex.load(index_dir / LEXICAL),
                  read_stats(index_dir / "stats.json"), manifest, query_models)


def _mb(sizes: dict[str, int]) -> dict[str, float]:
    """Each part of ``sizes`` (bytes) in MB, largest first."""
    return {name: round(size / 2 ** 20, 1) for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])}


def _file_sizes(folder: Path) -> dict[str, int]:
    """Bytes of each entry of ``folder`` (a subfolder: all its files)."""
    return {p.name: sum(f.stat().st_size for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
            for p in folder.iterdir()}


def _table_sizes(url: str) -> dict[str, int]:
    """Bytes of each table of the serving generation, with its indexes and TOAST."""
    from ..stores.postgres import connect

    with connect(url) as conn:
        schema = conn.execute("SELECT g.schema_name FROM kzqa.serving s JOIN kzqa.generations g "
                              "ON g.id = s.generation").fetchone()[0]
        sizes = conn.execute("SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n "
                             "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'", (schema,)).fetchall()
    return {name: int(size) for name, size in sizes}


def _measure_in_child(index_dir: Path, questions: Path, db: str | None = None) -> dict:
    import subprocess
    import sys

    from ..stores.postgres import ENV_URL

    args = [sys.executable, "-m", "kzqa.bench.scale", "--measure", str(index_dir), str(questions)] + (["--db"] if db else [])
    env = {k: v for k, v in os.environ.items() if k != ENV_URL} | ({ENV_URL: db} if db else {})
    child = subprocess.run(args, capture_output=True, text=True, env=env)  # the URL never on a command line
    if child.returncode != 0:
        raise RuntimeError(f"measuring the index failed: {child.stderr.strip().splitlines()[-1:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def run(passages: int, questions: list[str] | None = None, progress: bool = False, db: str | None = None) -> dict:
    """Build a synthetic index of ``passages`` passages in a temporary folder, then measure it
    in a fresh process (so that its resident memory is the loaded index's, not the build's).
    With ``db``, the same index is also copied into that database and measured there in the
    same run (``postgresql``: its load seconds, size and figures)."""
    folder = Path(tempfile.mkdtemp(prefix="kzqa-scale-"))
    index_dir = folder / "index"
    try:
        started = time.perf_counter()
        build_synthetic(index_dir, passages, progress=progress)
        build_s = time.perf_counter() - started
        files = _file_sizes(index_dir)
        questions_file = folder / "questions.json"
        questions_file.write_text(json.dumps(questions or dev_questions()))
        report = {"passages": passages, "build_s": round(build_s, 1), "disk_mb": round(sum(files.values()) / 2 ** 20, 1),
                  "disk_mb_by_file": _mb(files), **_measure_in_child(index_dir, questions_file)}
        if db:
            started = time.perf_counter()
            copy_to_database(index_dir, db)
            load_s = time.perf_counter() - started
            tables = _mb(_table_sizes(db))
            report["postgresql"] = {"passages": passages, "build_s": round(load_s, 1),
                                    "disk_mb": round(sum(tables.values()), 1), "disk_mb_by_table": tables,
                                    **_measure_in_child(index_dir, questions_file, db)}
        return report
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def scale_table(reports: list[dict]) -> str:
    from .evaluate import markdown_table

    headers = ["passages", "index", "build s", "disk MB", "RSS MB", "hybrid p50", "hybrid p95", "dense p95",
               "lexical p95", "hybrid p95 incl. encoding", "filtered 1% p95", "recall@10", "filtered recall@10"]
    reports = [x for r in reports for x in [r] + ([r["postgresql"]] if "postgresql" in r else [])]
    rows = [[r["passages"], r["index_type"], r["build_s"], r["disk_mb"], r["rss_mb"],
             r["search_ms"]["hybrid"]["p50"], r["search_ms"]["hybrid"]["p95"], r["search_ms"]["dense"]["p95"],
             r["search_ms"]["lexical"]["p95"], r["search_ms_including_encoding"]["hybrid"]["p95"],
             r["search_ms"]["hybrid, 1% of documents"]["p95"], r["recall_at_10"], r["filtered_recall_at_10"]]
            for r in reports]
    return markdown_table(headers, rows)


def dev_questions(limit: int = 100) -> list[str]:
    path = ROOT / "benchmarks" / "qa" / "dev.jsonl"
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["question"] for line in f if line.strip()][:limit]


if __name__ == "__main__":  # the measuring child of run(): python -m kzqa.bench.scale --measure DIR QUESTIONS
    import sys

    if sys.argv[1:2] == ["--measure"]:
        db = os.environ.get("KZQA_DATABASE_URL") if sys.argv[4:5] == ["--db"] else None
        result = measure(Path(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text()), db)
    else:
        result = run(int(sys.argv[1]), progress=True)
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)
