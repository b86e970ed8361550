"""Incremental builds: python benchmarks/incremental.py [--documents 5000] [--out FILE].

Writes the first N SciFact abstracts (../shared/bench/scifact) as text files into a temporary
corpus, builds an index from scratch (MiniLM + BM25: the multilingual-e5 channel embeds about
3.5 documents/s here, so a from-scratch build with it would take hours), then adds one new
document and rebuilds, then changes one and rebuilds. Every build is timed in this one process
on an empty embedding cache at first; the report gives each rebuild's time as a share of the
full build and how many passages each one embedded.
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
sys.path.insert(0, str(HERE.parent))

import kzqa  # noqa: E402

SCIFACT = HERE.parent.parent / "shared" / "bench" / "scifact" / "corpus.jsonl"


def write_corpus(folder: Path, n: int) -> list[dict]:
    folder.mkdir(parents=True)
    docs = []
    with open(SCIFACT, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                docs.append(json.loads(line))
            if len(docs) > n:
                break
    for d in docs[:n]:
        (folder / f"scifact-{d['_id']}.txt").write_text(f"{d['title']}\n\n{d['text']}\n", encoding="utf-8")
    (folder / "sources.json").write_text("{}", encoding="utf-8")
    return docs


def timed_build(corpus: Path, index: Path) -> dict:
    t0 = time.perf_counter()
    summary = kzqa.build(corpus, index, multilingual_model=None)
    return {"seconds": round(time.perf_counter() - t0, 1), "passages": summary.passages,
            "embedded": summary.embedded, "reused": summary.reused, "resplit_documents": summary.resplit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "incremental.json")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kzqa-incremental-"))
    try:
        docs = write_corpus(root / "corpus", args.documents)
        full = timed_build(root / "corpus", root / "index")
        extra = docs[args.documents]
        (root / "corpus" / f"scifact-{extra['_id']}.txt").write_text(f"{extra['title']}\n\n{extra['text']}\n")
        added = timed_build(root / "corpus", root / "index")
        first = root / "corpus" / f"scifact-{docs[0]['_id']}.txt"
        first.write_text(first.read_text() + "\nA sentence added to this abstract to change it.\n")
        changed = timed_build(root / "corpus", root / "index")
        nothing = timed_build(root / "corpus", root / "index")
        report = {"documents": args.documents, "channels": "MiniLM + BM25", "full": full, "add_one": added,
                  "change_one": changed, "unchanged": nothing,
                  "add_one_share_of_full": round(added["seconds"] / full["seconds"], 3),
                  "change_one_share_of_full": round(changed["seconds"] / full["seconds"], 3)}
        args.out.parent.mkdir(exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(json.dumps(report, indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
