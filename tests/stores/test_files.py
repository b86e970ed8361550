"""The store seam: top-N candidates with the document filter inside the search, exact and
approximate FAISS indexes, and the file store behind the engine (real FAISS, real bm25s)."""

from __future__ import annotations

import numpy as np
import pytest

from kzqa.stores.filewrite import choose_index_type, faiss_index
from kzqa.stores.files import faiss_top
from conftest import INSAMER, PEOPLES_MAP


def _clustered(n: int, dim: int = 64, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Unit vectors around cluster centres, like sentence embeddings of a topical corpus."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_index_type_by_size():
    assert choose_index_type("auto", 56) == "Flat"
    assert choose_index_type("auto", 1_000_000) == "IVF4000,SQfp16"
    assert choose_index_type("Flat", 1_000_000) == "Flat"


APPROXIMATE = ["HNSW32", "IVF565,SQfp16"]  # 565 = 4·√20000 lists, as 'auto' chooses above its threshold


@pytest.mark.parametrize("index_type", APPROXIMATE)
def test_approximate_index_recall_against_exact(index_type):
    x = _clustered(20_000)
    queries = _clustered(100, seed=1)
    exact, approx = faiss_index(x, "Flat"), faiss_index(x, index_type)
    recall = np.mean([len({r for r, _ in faiss_top(exact, q, 10)} & {r for r, _ in faiss_top(approx, q, 10)}) / 10
                      for q in queries])
    assert recall >= 0.95


# A narrow filter (1% of rows) is searched exactly among the allowed rows; a wide one (20%) through
# FAISS's ID selector, where HNSW keeps its recall.
@pytest.mark.parametrize("exact_limit, step", [(10**9, 97), (0, 5)])
@pytest.mark.parametrize("index_type", APPROXIMATE)
def test_filtered_top_n_stays_inside_the_filter_and_full(exact_limit, step, index_type):
    x = _clustered(20_000)
    exact_index, approx_index = faiss_index(x, "Flat"), faiss_index(x, index_type)
    allowed = np.arange(0, 20_000, step)
    overlap = []
    for q in _clustered(20, seed=2):
        truth = [r for r, _ in faiss_top(exact_index, q, 10, allowed, exact_limit=10**9)]
        assert truth == sorted(allowed[np.argsort(-(x[allowed] @ q))[:10]].tolist(), key=lambda r: -(x[r] @ q))
        for index in (exact_index, approx_index):
            got = faiss_top(index, q, 10, allowed, exact_limit=exact_limit)
            assert len(got) == 10 and set(r for r, _ in got) <= set(allowed.tolist())
            assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
            overlap.append(len(set(r for r, _ in got) & set(truth)) / 10)
    assert np.mean(overlap) >= 0.95


def test_file_store_channels_return_top_n_best_first(engine):
    store = engine.store
    q = engine.encoders["dense"].encode_queries(["How tall is the Bayterek tower?"])[0]
    dense = store.top("dense", q, 5)
    assert len(dense) == 5 and [s for _, s in dense] == sorted((s for _, s in dense), reverse=True)
    lexical = store.top("lexical", "Bayterek tower altitude", 50)
    assert lexical and all(s > 0 for _, s in lexical) and len(lexical) < store.size
    assert store.top("lexical", "zzzqqq", 5) == []


def test_document_filter_is_applied_inside_retrieval(engine):
    allowed = engine.store.restrict([PEOPLES_MAP])
    for channel, query in (("dense", engine.encoders["dense"].encode_queries(["Bayterek tower"])[0]),
                           ("lexical", "Bayterek tower China Kazakhstan")):
        got = engine.store.top(channel, query, 10, allowed)
        assert len(got) == min(10, len(allowed)) or channel == "lexical"
        assert {r for r, _ in got} <= set(allowed.tolist())
    # a question whose best passages are in the other document still gets k hits from this one
    hits = engine.search("How tall is the Bayterek tower?", k=5, doc_ids=[PEOPLES_MAP])
    assert len(hits) == 5 and {h.doc_id for h in hits} == {PEOPLES_MAP}
    assert engine.search("How tall is the Bayterek tower?", k=5, doc_ids=[INSAMER])[0].doc_id == INSAMER


def test_statistics_come_from_the_index(engine):
    stats = engine.store.stats
    assert stats.n == engine.store.size and stats.df
    assert "bayterek" in stats.words and stats.genders.get("sauytbay") == "f"


def test_jsonl_rows_are_read_on_demand(tmp_path):
    from kzqa.stores.files import JsonlRows

    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a": "ü"}\n{"a": 3}', encoding="utf-8")  # a blank line, no final newline
    rows = JsonlRows(path)
    assert len(rows) == 3 and [r["a"] for r in rows] == [1, "ü", 3] and rows[-1] == {"a": 3}
    (tmp_path / "empty.jsonl").write_text("")
    assert len(JsonlRows(tmp_path / "empty.jsonl")) == 0


def test_a_corrupt_passage_line_is_an_index_problem(small_index_copy):
    import kzqa

    path = small_index_copy / "passages.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:3] + ["{not json"] + lines[4:]) + "\n", encoding="utf-8")
    with pytest.raises(kzqa.IndexProblem, match="corrupt"):
        kzqa.load(small_index_copy)
