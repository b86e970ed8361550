"""Ray build throughput with one node, then two (`kzqa build --ray`), one CPU per node.

A corpus of SciFact abstracts (one .txt file each, from ../shared/bench/scifact) is built
three times, each with an empty embedding cache: in one process (every core), on a local Ray
cluster of one node, and on the same cluster after a second node joined. Each node is a real
`ray start` process with `--num-cpus 1 --node-ip-address 127.0.0.1` (loopback only), stopped
by pid at the end. Throughput is texts embedded (passages and sentences, both channels) per
second of the whole build, and per second of the embedding alone (the part Ray spreads; the
driver's reading, splitting, BM25 and writing stay on one machine).

Writes benchmarks/results/ray-scaling.json.
Usage: python benchmarks/ray_scaling.py [--documents N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
SCIFACT = ROOT.parent / "shared" / "bench" / "scifact"
sys.path.insert(0, str(ROOT))

from kzqa.bench import environment, free_port  # noqa: E402

RAY = str(Path(sys.executable).parent / "ray")
NODE = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--block", "--disable-usage-stats"]
HEAD = ["--head", "--include-dashboard", "false"]


def write_corpus(folder: Path, documents: int) -> None:
    folder.mkdir(parents=True)
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as f:
        for n, line in zip(range(documents), f):
            d = json.loads(line)
            (folder / f"{d['_id']}.txt").write_text(f"{d.get('title') or ''}\n\n{d['text']}\n", encoding="utf-8")


def build(corpus: Path, index: Path, cache: Path, *extra: str) -> dict:
    env = dict(os.environ, KZQA_CACHE=str(cache), HF_HUB_OFFLINE="1")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kzqa", "build", "--corpus", str(corpus), "--index", str(index),
                           "--json", *extra], cwd=ROOT, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    summary = json.loads(done.stdout)
    manifest = json.loads((index / "manifest.json").read_text())
    texts = 2 * (manifest["counts"]["passages"] + manifest["counts"]["sentences"])  # two channels
    seconds = time.perf_counter() - started
    out = {"seconds": round(seconds, 1), "texts": texts, "texts_per_s": round(texts / seconds, 1),
           "passages": summary["passages"], "ray": summary.get("ray")}
    if out["ray"]:  # the embedding alone (the actors' start and model loads included)
        out["embed_texts_per_s"] = round(texts / out["ray"]["embed_seconds"], 1)
    return out


def wait_for_nodes(address: str, n: int) -> None:
    probe = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
             "print(sum(1 for x in ray.nodes() if x['Alive']))")
    for _ in range(120):
        done = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        time.sleep(1)
    raise RuntimeError(f"the cluster did not reach {n} nodes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=600)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kzqa-ray-bench-"))
    temp = Path("/tmp") / f"kzqa-ray-{os.getpid()}"
    procs = []
    try:
        write_corpus(work / "corpus", args.documents)
        report = {"documents": args.documents, **environment()}
        report["one_process"] = build(work / "corpus", work / "i0", work / "c0")
        port = free_port()
        address = f"127.0.0.1:{port}"
        procs.append(subprocess.Popen([RAY, "start", *HEAD, "--port", str(port), "--temp-dir", str(temp), *NODE],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_nodes(address, 1)
        report["ray_1_node"] = build(work / "corpus", work / "i1", work / "c1", "--ray", address)
        procs.append(subprocess.Popen([RAY, "start", "--address", address, *NODE],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_nodes(address, 2)
        report["ray_2_nodes"] = build(work / "corpus", work / "i2", work / "c2", "--ray", address)
        one, two = report["ray_1_node"], report["ray_2_nodes"]
        report["speedup_2_over_1"] = {"embedding": round(two["embed_texts_per_s"] / one["embed_texts_per_s"], 2),
                                      "whole_build": round(two["texts_per_s"] / one["texts_per_s"], 2)}
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ray-scaling.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
