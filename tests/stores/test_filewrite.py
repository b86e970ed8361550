"""The stored index: round trip, freshness checks, corruption, atomic builds."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import CORPUS, ROOT, SHIPPED_INDEX

import kzqa
from kzqa.stores.manifest import read_manifest


def test_shipped_index_matches_the_corpus(engine, tmp_path):
    """The committed index is fresh (load checks it) and a rebuild gives the same passages."""
    manifest = read_manifest(SHIPPED_INDEX)
    assert manifest["counts"]["passages"] == len(engine.passages)
    assert set(manifest["corpus"]["files"]) == {p.name for p in CORPUS.iterdir()}
    summary = kzqa.build(CORPUS, tmp_path / "rebuilt", multilingual_model=None)
    rebuilt = [json.loads(line) for line in (tmp_path / "rebuilt" / "passages.jsonl").read_text().splitlines()]
    assert summary.passages == len(engine.passages)
    assert [p["passage_id"] for p in rebuilt] == [p.passage_id for p in engine.passages]


def test_manifest_records_what_was_built(small_index):
    m = read_manifest(small_index)
    dense = m["channels"]["dense"]
    assert dense["model"] == "sentence-transformers/all-MiniLM-L6-v2" and dense["dim"] == 384
    assert len(dense["fingerprint"]) == 64 and dense["index_type"] == "Flat"
    assert m["chunking"]["max_tokens"] == 256 and len(m["corpus"]["hash"]) == 64
    assert m["kzqa_version"] == kzqa.__version__ and m["created_at"]
    assert m["channels"]["lexical"]["library"] == "bm25s"
    stored = {p.name for p in small_index.iterdir()}
    assert {"manifest.json", "passages.jsonl", "documents.jsonl", "dense.faiss", "lexical"} <= stored
    assert not any(name.endswith((".pkl", ".pickle")) for name in stored)


def test_sentence_vectors_are_stored_half_size_and_read_as_float32(small_index, encoder):
    """float16 on disk (half of float32); the store hands the engine float32, equal to the stored
    values, within float16's rounding of what the model gave."""
    import numpy as np

    from kzqa.stores.files import open_index

    stored = np.load(small_index / "dense.sentences.npy")
    assert stored.dtype == np.float16
    store, _ = open_index(small_index, check=False)
    first = store.passages([0])[0]
    vectors = store.sentence_vectors("dense", [0])[0]
    assert vectors.dtype == np.float32 and np.array_equal(vectors, stored[:len(first.sentences)].astype(np.float32))
    exact = encoder.encode_passages([first.text[s:e] for s, e in first.sentences])
    assert np.abs(vectors - exact).max() < 1e-3


def test_round_trip_search(small_index):
    engine = kzqa.load(small_index)
    hits = engine.search("How tall is the Bayterek tower?", k=3, mode="dense")
    assert any("97 meters" in h.text for h in hits)
    assert engine.channels == ["dense", "dense_sent", "lexical"]


def test_changed_corpus_is_detected_with_the_rebuild_command(small_index_copy):
    corpus = small_index_copy.parent / "corpus"
    (corpus / "new.md").write_text("# New\n\nA new document about the Khorgos dry port.\n")
    with (corpus / "peoples-map-kazakhstan.txt").open("a") as f:
        f.write("\nOne more line.\n")
    with pytest.raises(kzqa.IndexProblem) as err:
        kzqa.load(small_index_copy)
    message = str(err.value)
    assert "stale" in message and "added: new.md" in message
    assert "modified: peoples-map-kazakhstan.txt" in message
    assert f"kzqa build --corpus corpus --index {small_index_copy}" in message


def test_other_model_weights_are_detected(small_index_copy):
    path = small_index_copy / "manifest.json"
    m = json.loads(path.read_text())
    m["channels"]["dense"]["fingerprint"] = "0" * 64
    path.write_text(json.dumps(m))
    with pytest.raises(kzqa.IndexProblem, match="other weights"):
        kzqa.load(small_index_copy)


@pytest.mark.parametrize("damage", ["manifest", "faiss", "passages", "missing"])
def test_corrupt_index_fails_with_a_clear_message(small_index_copy, damage):
    if damage == "manifest":
        (small_index_copy / "manifest.json").write_text("{not json")
    elif damage == "faiss":
        (small_index_copy / "dense.faiss").write_bytes(b"garbage")
    elif damage == "passages":
        lines = (small_index_copy / "passages.jsonl").read_text().splitlines()
        (small_index_copy / "passages.jsonl").write_text("\n".join(lines[:-3]) + "\n")
    else:
        shutil.rmtree(small_index_copy)
    with pytest.raises(kzqa.IndexProblem) as err:
        kzqa.load(small_index_copy)
    assert "kzqa build" in str(err.value)
    assert ("corrupt" in str(err.value)) or damage == "missing"


def test_interrupted_swap_is_repaired_on_load(small_index_copy):
    """A crash between the two renames leaves only the old copy: load puts it back."""
    old = small_index_copy.parent / f".{small_index_copy.name}.old-12345"
    os.rename(small_index_copy, old)
    engine = kzqa.load(small_index_copy)
    assert engine.passages and small_index_copy.is_dir() and not old.exists()


def _start_build(index, corpus):
    return subprocess.Popen(
        [sys.executable, "-m", "kzqa", "build", "--corpus", str(corpus), "--index", str(index)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_tmp(index, proc, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        tmps = list(index.parent.glob(f".{index.name}.tmp-*"))
        if tmps and (tmps[0] / "passages.jsonl").exists():
            return tmps[0]
        assert proc.poll() is None, f"build ended before it could be interrupted: {proc.stdout.read()}"
        time.sleep(0.05)
    raise TimeoutError("the build never started writing")


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_killed_build_leaves_the_previous_index(small_index_copy, how):
    before = (small_index_copy / "manifest.json").read_text()
    proc = _start_build(small_index_copy, small_index_copy.parent / "corpus")
    tmp = _wait_for_tmp(small_index_copy, proc)
    proc.send_signal(how)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert (small_index_copy / "manifest.json").read_text() == before, "the old index was replaced"
    engine = kzqa.load(small_index_copy)
    assert any("97 meters" in h.text for h in engine.search("How tall is the Bayterek tower?", k=3))
    if how == signal.SIGINT:
        assert "previous index is unchanged" in out and not tmp.exists()
    else:
        assert tmp.exists()  # SIGKILL leaves the half-written folder: the next build removes it
        kzqa.build(small_index_copy.parent / "corpus", small_index_copy, multilingual_model=None)
        assert not tmp.exists()


def test_rebuilds_embed_only_what_changed(small_index_copy):
    """A second build embeds nothing; changing one document re-splits and re-embeds only it;
    removing one embeds nothing and drops its passages."""
    corpus = small_index_copy.parent / "corpus"
    again = kzqa.build(corpus, small_index_copy, multilingual_model=None)
    assert again.embedded == 0 and again.reused == again.passages and again.resplit == 0
    before = {p.passage_id: p.doc_id for p in kzqa.load(small_index_copy).passages}
    doc = corpus / "peoples-map-kazakhstan.txt"
    doc.write_text(doc.read_text(encoding="utf-8") + "\n\nA closing remark on water use: the Ili river "
                   "feeds Lake Balkhash, and both countries monitor it.\n", encoding="utf-8")
    changed = kzqa.build(corpus, small_index_copy, multilingual_model=None)
    after = {p.passage_id: p.doc_id for p in kzqa.load(small_index_copy).passages}
    new_ids = set(after) - set(before)
    assert changed.resplit == 1 and 1 <= changed.embedded <= len(new_ids)
    assert {after[i] for i in new_ids} == {"peoples-map-kazakhstan"}
    assert {i for i, d in before.items() if d != "peoples-map-kazakhstan"} <= set(after)  # untouched
    hits = kzqa.load(small_index_copy).search("closing remark on water use Ili Balkhash", k=1, mode="lexical")
    assert "closing remark" in hits[0].text
    (corpus / "insamer-dilemma-chinese-influence-kazakhstan.txt").unlink()
    removed = kzqa.build(corpus, small_index_copy, multilingual_model=None)
    assert removed.embedded == 0 and removed.documents == 1


def test_a_broken_cache_only_costs_time(small_index_copy):
    corpus = small_index_copy.parent / "corpus"
    kzqa.build(corpus, small_index_copy, multilingual_model=None)
    caches = list((small_index_copy.parent / f".{small_index_copy.name}.cache").rglob("cache.npz"))
    assert caches
    for f in caches:
        f.write_bytes(b"garbage")
    summary = kzqa.build(corpus, small_index_copy, multilingual_model=None)
    # the previous index seeds the cache again: nothing needs embedding, and the index loads
    assert summary.embedded == 0
    assert kzqa.load(small_index_copy).search("Bayterek", k=1)
    shutil.rmtree(caches[0].parent.parent)
    shutil.rmtree(small_index_copy)  # no cache and no previous index: everything is embedded
    assert kzqa.build(corpus, small_index_copy, multilingual_model=None).embedded == summary.passages


def test_files_changed_added_or_removed_mid_build_are_never_served_as_fresh(corpus_copy, tmp_path, monkeypatch):
    """Between reading the corpus and writing the index, one document is rewritten, one added
    and one removed: the index records the bytes it read, so loading it reports all three."""
    import kzqa
    from kzqa.stores import building
    from kzqa.stores.base import IndexProblem

    (corpus_copy / "doomed.md").write_text("# Doomed\n\nThis note is removed while the build runs.\n")
    target = next(p for p in corpus_copy.glob("*.txt"))

    def meddle(corpus_dir):
        target.write_text(target.read_text(encoding="utf-8") + "\n\nA sentence added mid-build.\n", encoding="utf-8")
        (corpus_dir / "late.md").write_text("# Late\n\nThis note arrives while the build runs.\n")
        (corpus_dir / "doomed.md").unlink()

    monkeypatch.setattr(building, "after_reading", meddle)
    summary = kzqa.build(corpus_copy, tmp_path / "index", multilingual_model=None)
    flagged = {p.path for p in summary.problems if "changed while the build ran" in p.reason}
    assert flagged == {target.name, "late.md", "doomed.md"}

    with pytest.raises(IndexProblem) as err:
        kzqa.load(tmp_path / "index")
    message = str(err.value)
    assert "stale" in message and "added: late.md" in message and "removed: doomed.md" in message
    assert f"modified: {target.name}" in message
    # the passages hold the text read, which the manifest's hash describes
    passages = [json.loads(line) for line in (tmp_path / "index" / "passages.jsonl").read_text().splitlines()]
    assert not any("added mid-build" in p["text"] for p in passages)
    assert any(p["doc_id"] == "doomed" for p in passages)


@pytest.mark.parametrize("limit, value, names", [
    ("RLIMIT_AS", 1_500_000 * 1024, "ulimit -v"),     # the probe's `ulimit -v 1500000`: a segfault before
    ("RLIMIT_FSIZE", 1024 * 1024, "ulimit -f"),
])
def test_a_build_under_a_resource_limit_says_which_in_one_line(limit, value, names, tmp_path):
    import resource

    def limited():
        resource.setrlimit(getattr(resource, limit), (value, value))

    done = subprocess.run([sys.executable, "-m", "kzqa", "build", "--corpus", str(CORPUS), "--index",
                           str(tmp_path / "index")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          preexec_fn=limited)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and names in done.stderr
    assert not (tmp_path / "index").exists()
