"""Build time and peak memory on two hostile corpus files: python benchmarks/large_files.py [--mb 50].

Issue 19 measured builds on a corpus file of 100,000 tiny paragraphs and on one 50 MB line. This
script writes both (words drawn from the shipped corpus, seeded), builds each into a fresh index
folder with ``kzqa build --multilingual-model none`` in its own process (the dense channel and
BM25: the multilingual channel would double the embedding time), and reports wall time and the
peak resident memory of that process (``ru_maxrss``), beside the same build of the shipped corpus
as the reference. Writes benchmarks/results/large-files.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def corpus_words() -> list[str]:
    return " ".join(p.read_text(encoding="utf-8") for p in (ROOT / "corpus").glob("*.txt")).split()


def write_paragraphs(path: Path, n: int, words: list[str], rng: random.Random) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            f.write(" ".join(rng.choice(words) for _ in range(rng.randint(3, 8))) + "\n\n")


def write_one_line(path: Path, n_bytes: int, words: list[str], rng: random.Random) -> None:
    with open(path, "w", encoding="utf-8") as f:
        size = 0
        while size < n_bytes:
            chunk = " ".join(rng.choice(words) for _ in range(10_000)) + " "
            f.write(chunk)
            size += len(chunk.encode("utf-8"))


def measure_build(corpus: Path, index: Path) -> dict:
    """``kzqa build`` in a child process: wall seconds, its own peak RSS (MB, from ``os.wait4``)
    and the summary's passage count."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([sys.executable, "-m", "kzqa", "build", "--corpus", str(corpus), "--index",
                                  str(index), "--multilingual-model", "none", "--json"], stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    summary = json.loads(stdout) if child.returncode == 0 else {"error": stderr.strip()[-300:]}
    input_mb = sum(p.stat().st_size for p in corpus.iterdir() if p.is_file()) / 2**20
    return {"input_mb": round(input_mb, 2), "seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "passages": summary.get("passages"), "returncode": child.returncode, "error": summary.get("error")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=50, help="size of the one-line file (MB)")
    parser.add_argument("--paragraphs", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(19)
    words = corpus_words()
    report = {}
    with tempfile.TemporaryDirectory(prefix="kzqa-large-") as tmp:
        tmp = Path(tmp)
        report["shipped corpus (reference)"] = measure_build(ROOT / "corpus", tmp / "ref-index")
        (tmp / "paragraphs").mkdir()
        write_paragraphs(tmp / "paragraphs" / "paragraphs.txt", args.paragraphs, words, rng)
        report[f"{args.paragraphs:,} tiny paragraphs"] = measure_build(tmp / "paragraphs", tmp / "p-index")
        (tmp / "line").mkdir()
        write_one_line(tmp / "line" / "line.txt", args.mb * 2**20, words, rng)
        report[f"one {args.mb} MB line"] = measure_build(tmp / "line", tmp / "l-index")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "large-files.json").write_text(json.dumps(report, indent=1))
    lines = ["## Large corpus files (`benchmarks/large_files.py`)", "",
             "`kzqa build --multilingual-model none` in a fresh process and index folder (the first build of a "
             "folder also exports the question model to ONNX); peak RSS is that process's own `ru_maxrss`.", "",
             "| corpus | input MB | passages | build s | peak RSS MB |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {r['input_mb']} | {r['passages']} | {r['seconds']} | {r['peak_rss_mb']} |"
              for name, r in report.items()]
    (RESULTS / "large-files.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
