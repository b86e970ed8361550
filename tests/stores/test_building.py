"""Where a build embeds: --device (tested here only as far as a machine without a GPU allows)."""

import pytest

from kzqa.stores.base import IndexProblem
from kzqa.stores.building import resolve_device


def test_auto_falls_back_to_the_cpu_without_a_gpu():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: auto would choose it")
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"


def test_cuda_without_a_gpu_and_unknown_devices_are_refused():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        with pytest.raises(IndexProblem, match="torch sees no GPU"):
            resolve_device("cuda")
    with pytest.raises(IndexProblem, match="--device must be cpu, cuda or auto"):
        resolve_device("tpu")


# --sentence-vectors: which channels keep a vector per sentence (for quoting)


def test_sentence_vectors_dense_keeps_only_the_english_models(tmp_path):
    """'dense': the multilingual channel stores no sentence vectors (a (0, dim) file, marked in
    the manifest), the index still loads and is checked, English questions are answered with
    quotes, and a later 'all' build adds the missing vectors (those of the shipped index)."""
    import numpy as np
    from conftest import CORPUS, SHIPPED_INDEX

    import kzqa
    from kzqa.stores.manifest import read_manifest

    index = tmp_path / "index"
    kzqa.build(CORPUS, index, sentence_vectors="dense")
    channels = read_manifest(index)["channels"]
    assert channels["dense"]["sentence_vectors"] is True and channels["multilingual"]["sentence_vectors"] is False
    assert np.load(index / "multilingual.sentences.npy").shape == (0, channels["multilingual"]["dim"])
    assert len(np.load(index / "dense.sentences.npy")) == read_manifest(index)["counts"]["sentences"]
    engine = kzqa.load(index)  # checked against the corpus and its own files
    store = engine.store.current()
    assert store.has_sentence_vectors("dense") and not store.has_sentence_vectors("multilingual")
    answer = engine.ask("How tall is the Bayterek tower?")
    assert answer.status == "answered" and answer.quotes
    kzqa.build(CORPUS, index, sentence_vectors="all")
    added = np.load(index / "multilingual.sentences.npy").astype(np.float32)
    shipped = np.load(SHIPPED_INDEX / "multilingual.sentences.npy").astype(np.float32)
    cosine = (added * shipped).sum(1) / np.linalg.norm(added, axis=1) / np.linalg.norm(shipped, axis=1)
    assert added.shape == shipped.shape and cosine.min() > 0.999  # the 4-bit model varies slightly with its batch


def test_sentence_vectors_none_searches_and_unknown_choices_are_refused(tmp_path):
    import numpy as np
    from conftest import CORPUS

    import kzqa
    from kzqa.stores.base import IndexProblem

    index = tmp_path / "index"
    kzqa.build(CORPUS, index, multilingual_model=None, sentence_vectors="none")
    assert np.load(index / "dense.sentences.npy").shape[0] == 0
    hits = kzqa.load(index).search("Bayterek tower height", k=3)  # dense_sent falls back to dense
    assert len(hits) == 3 and "Bayterek" in hits[0].text
    with pytest.raises(IndexProblem, match="--sentence-vectors must be one of all, dense, none, not 'some'"):
        kzqa.build(CORPUS, tmp_path / "other", sentence_vectors="some")
    assert not (tmp_path / "other").exists()
