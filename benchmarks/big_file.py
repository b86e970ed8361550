"""Build time of one big text file with the default settings and with cheaper ones.

Issue 23 asks how long a 20 MB text file (about 35k passages and 162k sentences) takes to
build here, with the defaults and with the cheapest settings that keep the dev figures within
0.005. A full default build of 20 MB takes about two hours on this machine's 2 cores, so this
script builds two prefixes of such a file (SciFact abstracts one after another, title and text
as paragraphs: ``--mb`` MB and half of it) with each setting, in a fresh process, index folder
and embedding cache (the exported question models are reused), and projects the 20 MB time
along the line through the two (embedding is linear in the text; the line's intercept is the
fixed start-up). The dev-set
change of each setting comes from `kzqa eval` on the shipped corpus built the same way, against
the shipped index (the defaults).

Writes benchmarks/results/big-file.json.
Usage: python benchmarks/big_file.py [--mb 1.0] [--target-mb 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
SCIFACT = ROOT.parent / "shared" / "bench" / "scifact" / "corpus.jsonl"
sys.path.insert(0, str(ROOT))

from kzqa.bench import environment  # noqa: E402

SETTINGS = {  # name -> extra `kzqa build` arguments
    "defaults": [],
    "--sentence-vectors dense": ["--sentence-vectors", "dense"],
    "--multilingual-model none": ["--multilingual-model", "none"],
}
FIGURES = ["Recall@1", "Recall@5", "MRR@10", "nDCG@10", "answer_evidence", "answer_first_sentence",
           "wrongly_abstained", "abstained_unanswerable", "mean_quotes"]


def write_file(path: Path, n_bytes: int) -> None:
    """SciFact abstracts as paragraphs (title, then text) until ``n_bytes`` of UTF-8."""
    size = 0
    with open(SCIFACT, encoding="utf-8") as src, open(path, "w", encoding="utf-8") as out:
        for line in src:
            d = json.loads(line)
            block = f"{d.get('title') or ''}\n\n{d['text']}\n\n"
            out.write(block)
            size += len(block.encode("utf-8"))
            if size >= n_bytes:
                return
    raise SystemExit(f"SciFact holds less than {n_bytes / 2**20:.1f} MB of text; use a smaller --mb")


def build(corpus: Path, index: Path, extra: list[str]) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kzqa", "build", "--corpus", str(corpus), "--index", str(index),
                           "--json", *extra], cwd=ROOT, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    manifest = json.loads((index / "manifest.json").read_text())
    counts = manifest["counts"]
    channels = [c for c, e in manifest["channels"].items() if "fingerprint" in e]
    texts = sum(counts["passages"] + (counts["sentences"] if manifest["channels"][c].get("sentence_vectors", True)
                                      else 0) for c in channels)
    return {"seconds": round(seconds, 1), "passages": counts["passages"], "sentences": counts["sentences"],
            "texts_embedded": texts, "channels": channels}


def dev_figures(index: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "kzqa", "eval", "benchmarks/qa/dev.jsonl", "--index", str(index),
                           "--json"], cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    document = json.loads(done.stdout)  # one mode: the report itself
    groups = (document["reports"][0] if "reports" in document else document)["groups"]["all"]
    return {f: groups[f] for f in FIGURES if f in groups}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=1.0, help="size of the prefix built (MB)")
    parser.add_argument("--target-mb", type=float, default=20.0, help="size the time is projected to (MB)")
    args = parser.parse_args()
    report: dict = {"prefix_mb": args.mb, "target_mb": args.target_mb, **environment(), "settings": {}}
    reference = dev_figures(ROOT / "embeddings")
    with tempfile.TemporaryDirectory(prefix="kzqa-big-file-") as tmp:
        tmp = Path(tmp)
        sizes = {"half": args.mb / 2, "full": args.mb}
        for label, mb in sizes.items():
            (tmp / label).mkdir()
            write_file(tmp / label / "big.txt", int(mb * 2**20))
        for n, (name, extra) in enumerate(SETTINGS.items()):
            half, measured = (build(tmp / label, tmp / f"index{n}-{label}", extra) for label in sizes)
            per_mb = (measured["seconds"] - half["seconds"]) / (args.mb / 2)
            fixed = half["seconds"] - per_mb * args.mb / 2
            measured.update(half_prefix_seconds=half["seconds"], seconds_per_mb=round(per_mb, 1),
                            fixed_seconds=round(fixed, 1),
                            projected_target_minutes=round((fixed + per_mb * args.target_mb) / 60, 1))
            build(ROOT / "corpus", tmp / f"dev{n}", extra)
            figures = dev_figures(tmp / f"dev{n}")
            measured["dev_change"] = {f: round(figures[f] - reference[f], 4) for f in figures if f in reference}
            measured["largest_dev_change"] = max(abs(v) for v in measured["dev_change"].values())
            report["settings"][name] = measured
            print(name, json.dumps(measured), flush=True)
    base = report["settings"]["defaults"]["seconds"]
    for measured in report["settings"].values():
        measured["time_vs_defaults"] = round(measured["seconds"] / base, 2)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "big-file.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
