"""Builds spread over a real Ray cluster: a head and a second node, one CPU each, on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CORPUS, ROOT, free_port, stop

pytest.importorskip("ray", reason="Ray is not installed (pip install 'kzqa[ray]')")

pytestmark = [pytest.mark.slow]

RAY = str(Path(sys.executable).parent / "ray")
NODE = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--block", "--disable-usage-stats"]
HEAD = ["--head", "--include-dashboard", "false"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``ray start --head`` and a second ``ray start --address …``, each in the foreground (so
    that stopping its process stops its node); yields the head's address, stops both by pid."""
    port = free_port()
    logs = tmp_path_factory.mktemp("ray")
    temp = Path("/tmp") / f"kzqa-ray-{os.getpid()}"  # Ray's socket paths must stay short
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    procs = [subprocess.Popen([RAY, "start", *HEAD, "--port", str(port), "--temp-dir", str(temp), *NODE],
                              stdout=open(logs / "head.log", "w"), stderr=subprocess.STDOUT, env=env)]
    address = f"127.0.0.1:{port}"
    try:
        _wait_for_nodes(address, 1, procs[0])
        procs.append(subprocess.Popen([RAY, "start", "--address", address, *NODE], stdout=open(logs / "node.log", "w"),
                                      stderr=subprocess.STDOUT, env=env))
        _wait_for_nodes(address, 2, procs[1])
        yield address
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_nodes(address: str, n: int, proc, timeout: float = 120) -> None:
    probe = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
             "print(sum(1 for x in ray.nodes() if x['Alive']))")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}")
        done = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True, timeout=120)
        if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster at {address} did not reach {n} nodes")


def _build(index: Path, cache: Path, *extra: str) -> dict:
    """``kzqa build`` of the shipped corpus into ``index`` with an empty embedding cache."""
    corpus = index.parent / "corpus"
    if not corpus.exists():
        shutil.copytree(CORPUS, corpus)
    env = dict(os.environ, KZQA_CACHE=str(cache))
    done = subprocess.run([sys.executable, "-m", "kzqa", "build", "--corpus", str(corpus), "--index", str(index),
                           "--json", *extra], cwd=ROOT, capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_a_build_on_two_ray_nodes_equals_a_one_process_build(cluster, tmp_path):
    here = _build(tmp_path / "here" / "index", tmp_path / "cache-here")
    spread = _build(tmp_path / "ray" / "index", tmp_path / "cache-ray", "--ray", cluster)
    assert spread["ray"]["nodes"] == 2 and spread["ray"]["CPU"] == 2
    assert len(spread["ray"]["chunks_per_node"]) == 2  # both nodes embedded chunks
    assert spread["passages"] == here["passages"] and spread["embedded"] == here["embedded"]
    a, b = tmp_path / "here" / "index", tmp_path / "ray" / "index"
    assert (a / "passages.jsonl").read_text() == (b / "passages.jsonl").read_text()
    import faiss

    for channel in ("dense", "multilingual"):
        x = faiss.read_index(str(a / f"{channel}.faiss")).reconstruct_n(0, here["passages"])
        y = faiss.read_index(str(b / f"{channel}.faiss")).reconstruct_n(0, here["passages"])
        assert np.min(np.sum(x * y, axis=1)) >= 0.99999
        xs, ys = (np.load(d / f"{channel}.sentences.npy").astype(np.float32) for d in (a, b))
        assert xs.shape == ys.shape and np.min(np.sum(xs * ys, axis=1) / np.linalg.norm(xs, axis=1)
                                               / np.linalg.norm(ys, axis=1)) >= 0.9999  # float16 storage
    dev = ROOT / "benchmarks" / "qa" / "dev.jsonl"
    figures = []
    for index in (a, b):
        done = subprocess.run([sys.executable, "-m", "kzqa", "eval", str(dev), "--index", str(index), "--json",
                               "--mode", "hybrid", "--mode", "multilingual"], cwd=ROOT, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        figures.append([{k: v for k, v in r["groups"]["all"].items() if "_ms_" not in k and k != "ci95"}
                        for r in json.loads(done.stdout)["reports"]])
    hybrid, multilingual = zip(*figures)
    assert hybrid[0] == hybrid[1]  # the default mode: every figure identical
    # multilingual-e5's answers turn on near ties: one CI run saw vectors equal to cosine 0.99999 but
    # not to the bit, and one answer quoting one sentence more (mean_quotes +0.006); every rate held
    assert all(abs(multilingual[0][k] - multilingual[1][k]) <= 0.01 for k in multilingual[0])


def test_the_cache_is_read_on_the_driver_before_anything_is_sent(cluster, tmp_path):
    first = _build(tmp_path / "index", tmp_path / "cache", "--ray", cluster)
    assert first["embedded"] > 0 and sum(first["ray"]["chunks_per_node"].values()) > 0
    again = _build(tmp_path / "index", tmp_path / "cache", "--ray", cluster)  # the index's cache is beside it
    assert again["embedded"] == 0 and not again["ray"].get("chunks_per_node")  # nothing went to the cluster


def test_an_unreachable_cluster_is_one_clear_line(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    done = subprocess.run([sys.executable, "-m", "kzqa", "build", "--corpus", str(corpus), "--index",
                           str(tmp_path / "index"), "--ray", f"127.0.0.1:{free_port()}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, KZQA_CACHE=str(tmp_path)))
    assert done.returncode == 1 and "cannot reach the Ray cluster" in done.stderr, done.stderr[-1000:]
    assert not (tmp_path / "index").exists()
