"""A damaged index never loads silently: every fault below ends in IndexProblem (with the
rebuild command) or in a load that answers exactly as the intact index does. Builds are locked."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import kzqa
from kzqa.stores.filewrite import BuildLock
from kzqa.stores.base import IndexProblem

from conftest import CORPUS, ROOT, SHIPPED_INDEX

QUESTION = "How tall is the Bayterek tower?"


def _copy_index(target: Path) -> Path:
    """A copy of the shipped index and its corpus under ``target``. The large exported models
    are hard links (faults replace files, never write into them)."""
    shutil.copytree(CORPUS, target / "corpus")
    index = target / "embeddings"

    def link_or_copy(src, dst):
        if os.path.getsize(src) > 1_000_000:
            try:
                return os.link(src, dst)
            except OSError:  # another filesystem: copy
                pass
        shutil.copy2(src, dst)

    shutil.copytree(SHIPPED_INDEX, index, copy_function=link_or_copy)
    return index


def _replace(path: Path, data: bytes) -> None:
    """New contents in a new inode (the hard-linked originals stay untouched)."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _edit_manifest(change):
    def fault(index: Path) -> None:
        manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
        _replace(index / "manifest.json", json.dumps(change(manifest)).encode())
    return fault


def _shuffle_passages(index: Path) -> None:
    lines = _lines(index / "passages.jsonl")
    random.Random(0).shuffle(lines)
    _replace(index / "passages.jsonl", "".join(lines).encode())


def _edit_passage_text(index: Path) -> None:
    lines = _lines(index / "passages.jsonl")
    row = json.loads(lines[3])
    row["text"] = row["text"].replace("the", "a", 1)
    lines[3] = json.dumps(row, ensure_ascii=False) + "\n"
    _replace(index / "passages.jsonl", "".join(lines).encode())


def _reorder_sentence_vectors(index: Path) -> None:
    vectors = np.load(index / "dense.sentences.npy")
    (index / "dense.sentences.npy").unlink()
    np.save(index / "dense.sentences.npy", vectors[::-1].copy())


def _swap_channel_files(manifest: dict) -> dict:
    ch = manifest["channels"]
    ch["dense"]["file"], ch["multilingual"]["file"] = ch["multilingual"]["file"], ch["dense"]["file"]
    return manifest


def _swap_file_contents(a: str, b: str):
    def fault(index: Path) -> None:
        da, db = (index / a).read_bytes(), (index / b).read_bytes()
        _replace(index / a, db)
        _replace(index / b, da)
    return fault


def _permute_bm25_vocabulary(index: Path) -> None:
    path = index / "lexical" / "vocab.index.json"
    vocab = json.loads(path.read_text(encoding="utf-8"))
    keys = list(vocab)
    ids = [vocab[k] for k in keys]
    random.Random(1).shuffle(ids)
    _replace(path, json.dumps(dict(zip(keys, ids))).encode())


def _delete(name: str):
    def fault(index: Path) -> None:
        target = index / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return fault


def _truncate(name: str):
    def fault(index: Path) -> None:
        data = (index / name).read_bytes()
        _replace(index / name, data[: len(data) // 2])
    return fault


def _append_line(name: str):
    def fault(index: Path) -> None:
        _replace(index / name, (index / name).read_bytes() + (index / name).read_bytes().splitlines(True)[0])
    return fault


def _flip_byte(name: str):
    def fault(index: Path) -> None:
        data = bytearray((index / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        _replace(index / name, bytes(data))
    return fault


def _without(*keys):
    def change(manifest: dict) -> dict:
        target = manifest
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
        return manifest
    return change


def _set(value, *keys):
    def change(manifest: dict) -> dict:
        target = manifest
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
        return manifest
    return change


def _missing_model(manifest: dict) -> dict:
    del manifest["channels"]["dense"]["query_model"]
    manifest["channels"]["dense"]["model"] = "no-such-org/no-such-model"
    return manifest


FAULTS = {
    "passages shuffled": _shuffle_passages,
    "one passage's text edited": _edit_passage_text,
    "sentence-vector rows reordered": _reorder_sentence_vectors,
    "dense/multilingual files swapped in the manifest": _edit_manifest(_swap_channel_files),
    "dense/multilingual vector files swapped on disk": _swap_file_contents("dense.faiss", "multilingual.faiss"),
    "sentence vectors swapped on disk": _swap_file_contents("dense.sentences.npy", "multilingual.sentences.npy"),
    "BM25 vocabulary ids permuted": _permute_bm25_vocabulary,
    "lexical/ deleted": _delete("lexical"),
    "stats.json deleted": _delete("stats.json"),
    "passages.jsonl deleted": _delete("passages.jsonl"),
    "documents.jsonl deleted": _delete("documents.jsonl"),
    "dense.faiss truncated": _truncate("dense.faiss"),
    "documents.jsonl truncated": _truncate("documents.jsonl"),
    "a passage appended twice": _append_line("passages.jsonl"),
    "stats.json edited": _flip_byte("stats.json"),
    "BM25 params edited": _flip_byte("lexical/params.index.json"),
    "question encoder weights edited": _flip_byte("dense.onnx/model.onnx"),
    "multilingual tokenizer deleted": _delete("multilingual.onnx/tokenizer.json"),
    "question encoder meta not JSON": lambda index: _replace(index / "dense.onnx" / "onnx.json", b"{not json"),
    "manifest.json deleted": _delete("manifest.json"),
    "manifest not JSON": lambda index: _replace(index / "manifest.json", b"{\"format\": 3,"),
    "manifest not UTF-8": lambda index: _replace(index / "manifest.json", b"\xff\xfe\x00garbage"),
    "manifest is []": lambda index: _replace(index / "manifest.json", b"[]"),
    "manifest lacks corpus": _edit_manifest(_without("corpus")),
    "manifest lacks channels": _edit_manifest(_without("channels")),
    "manifest's dense channel lacks its model": _edit_manifest(_without("channels", "dense", "model")),
    "manifest's dense channel is a string": _edit_manifest(_set("dense", "channels", "dense")),
    "manifest names a model this machine lacks": _edit_manifest(_missing_model),
    "manifest lacks checksums": _edit_manifest(_without("files")),
    "manifest checksum altered": _edit_manifest(lambda m: {**m, "files": {**m["files"], "stats.json": "0" * 64}}),
    "manifest from an older kzqa": _edit_manifest(_set(2, "format")),
    "manifest counts wrong": _edit_manifest(_set(55, "counts", "passages")),
    "manifest counts not numbers": _edit_manifest(_set("many", "counts", "documents")),
    "manifest points outside the index": _edit_manifest(_set("../../etc/hostname", "channels", "dense", "file")),
    "index folder emptied": lambda index: [_delete(p.name)(index) for p in list(index.iterdir())],
    "passage offsets moved, manifest updated": lambda index: _tamper_passage(index, lambda p: {**p, "start": p["start"] + 7}),
    "passage offsets past the document, manifest updated": lambda index: _tamper_passage(
        index, lambda p: {**p, "end": p["end"] + 10_000_000}),
    "passage text changed, manifest updated": lambda index: _tamper_passage(
        index, lambda p: {**p, "text": p["text"].replace("the", "a", 1)}),
    "manifest's corpus is the root": _edit_manifest(_set("/", "corpus", "path")),
    "manifest's corpus is /etc": _edit_manifest(_set("/etc", "corpus", "path")),
    "manifest's corpus files leave the corpus": _edit_manifest(
        lambda m: {**m, "corpus": {**m["corpus"], "files": {"../../etc/passwd": "0" * 64}}}),
    "manifest 100,000 levels deep": lambda index: _replace(index / "manifest.json", b"[" * 100_000 + b"]" * 100_000),
    "manifest 70 MB": lambda index: _oversized(index / "manifest.json"),
}


def _tamper_passage(index: Path, change) -> None:
    """Edit the first passage and record the edited file's digest in the manifest, as someone
    who knows the format would."""
    from kzqa.channels.checksums import file_sha256

    lines = _lines(index / "passages.jsonl")
    lines[0] = json.dumps(change(json.loads(lines[0])), ensure_ascii=False) + "\n"
    _replace(index / "passages.jsonl", "".join(lines).encode("utf-8"))
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["passages.jsonl"] = file_sha256(index / "passages.jsonl")
    _replace(index / "manifest.json", json.dumps(manifest).encode())


def _oversized(path: Path) -> None:
    path.unlink()
    with open(path, "wb") as f:
        f.truncate(70 * 1024 * 1024)  # sparse: no 70 MB are written


@pytest.fixture(scope="module")
def intact_answer():
    return kzqa.load(SHIPPED_INDEX).ask(QUESTION).to_dict()


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_damaged_index_is_refused_with_the_rebuild_command(fault, tmp_path):
    index = _copy_index(tmp_path)
    FAULTS[fault](index)
    with pytest.raises(IndexProblem) as info:
        kzqa.load(index)
    message = str(info.value)
    assert str(index) in message
    assert "kzqa build" in message, message
    assert len(message) < 800 and "\n" not in message, message  # one line, a few files at most


def test_the_copy_used_by_the_fault_table_loads_and_answers_like_the_original(tmp_path, intact_answer):
    engine = kzqa.load(_copy_index(tmp_path))
    answer = engine.ask(QUESTION).to_dict()
    assert answer["text"] == intact_answer["text"]
    assert [c["passage_id"] for c in answer["citations"]] == [c["passage_id"] for c in intact_answer["citations"]]


def test_harmless_changes_still_load_correctly(tmp_path, intact_answer):
    index = _copy_index(tmp_path)
    (index / "notes.txt").write_text("an operator's note")  # a file the manifest does not know
    os.utime(index / "passages.jsonl", (0, 0))  # touched, same contents: hashed again, still equal
    assert kzqa.load(index).ask(QUESTION).text == intact_answer["text"]


def test_an_interrupted_swap_is_undone_and_the_index_loads(tmp_path, intact_answer):
    index = _copy_index(tmp_path)
    os.rename(index, index.parent / f".{index.name}.old-12345")
    assert kzqa.load(index).ask(QUESTION).text == intact_answer["text"]


def test_a_missing_corpus_folder_is_reported_once_and_the_index_still_answers(tmp_path, caplog):
    index = _copy_index(tmp_path)
    shutil.rmtree(tmp_path / "corpus")
    with caplog.at_level(logging.WARNING, logger="kzqa"):
        kzqa.load(index)
        kzqa.load(index).ask(QUESTION)
    warnings = [r.getMessage() for r in caplog.records if "corpus folder" in r.getMessage()]
    assert len(warnings) == 1 and "cannot be checked" in warnings[0], warnings


def test_the_shipped_manifest_records_every_file_it_relies_on():
    manifest = json.loads((SHIPPED_INDEX / "manifest.json").read_text(encoding="utf-8"))
    files = set(manifest["files"])
    on_disk = {p.relative_to(SHIPPED_INDEX).as_posix() for p in SHIPPED_INDEX.rglob("*")
               if p.is_file() and p.name != "manifest.json" and not p.relative_to(SHIPPED_INDEX).parts[0].endswith(".onnx")}
    assert files == on_disk
    for channel in ("dense", "multilingual"):
        entry = manifest["channels"][channel]
        assert manifest["files"][entry["file"]] == entry["sha256"]


# ---------------------------------------------------------------- the build lock


def test_a_second_build_of_the_same_index_fails_at_once_naming_the_first(tmp_path):
    target = tmp_path / "embeddings"
    with BuildLock(target):
        started = time.perf_counter()
        with pytest.raises(IndexProblem, match=r"another build of .*embeddings is running \(pid \d+"):
            kzqa.build(CORPUS, target, multilingual_model=None)
        assert time.perf_counter() - started < 5  # refused before reading or embedding anything
    assert not target.exists()


def _hold_lock(target: Path) -> subprocess.Popen:
    """Another process holding the build lock of ``target`` (until killed)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from pathlib import Path; from kzqa.stores.filewrite import BuildLock\n"
         f"with BuildLock(Path({str(target)!r})):\n    print('locked', flush=True); time.sleep(60)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_kzqa_build_process_is_refused_while_the_first_runs(tmp_path):
    target = tmp_path / "embeddings"
    holder = _hold_lock(target)
    try:
        done = subprocess.run([sys.executable, "-m", "kzqa", "build", "--corpus", str(CORPUS), "--index",
                               str(target), "--multilingual-model", "none"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 1
        assert f"pid {holder.pid}" in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_build_is_cleared(tmp_path):
    target = tmp_path / "embeddings"
    holder = _hold_lock(target)
    holder.kill()
    holder.wait()
    assert (tmp_path / ".embeddings.lock").exists()  # the file stays; its lock died with the process
    with BuildLock(target) as lock:
        assert f"pid {os.getpid()}" in lock.path.read_text()


def test_rebuild_commands_are_shell_quoted(tmp_path):
    import shlex

    from kzqa.stores.manifest import rebuild_command

    index = tmp_path / "my index; rm -rf ~"
    manifest = {"corpus": {"path": "my corpus"}, "channels": {"dense": {"model": "some model"}}}
    assert shlex.split(rebuild_command(manifest, index)) == [
        "kzqa", "build", "--corpus", "my corpus", "--index", str(index), "--model", "some model"]
