"""`kzqa bench scale`: a synthetic index measured in files and in PostgreSQL, side by side."""

from __future__ import annotations

import pytest

from kzqa.bench import scale

pytestmark = [pytest.mark.slow]


@pytest.mark.postgres
def test_scale_measures_the_same_index_in_files_and_in_postgres(new_database):
    pytest.importorskip("psycopg")
    questions = ["How tall is the Bayterek tower?", "Which railway crosses the border at Khorgos?",
                 "What did the two presidents sign?"]
    report = scale.run(3_000, questions=questions, db=new_database())
    pg = report["postgresql"]
    for measured in (report, pg):
        assert measured["passages"] == 3_000 and measured["questions"] == 3
        assert measured["recall_at_10"] >= 0.95 and measured["filtered_recall_at_10"] >= 0.95
        assert set(measured["search_ms"]) == {"hybrid", "dense", "multilingual", "lexical", "hybrid, 1% of documents"}
        assert all(0 < t["p50"] <= t["p95"] for t in measured["search_ms"].values())
    assert report["store"] == "files" and pg["store"] == "postgresql"
    files = report["disk_mb_by_file"]
    assert {"dense.faiss", "dense.sentences.npy", "passages.jsonl", "lexical"} <= set(files)
    assert abs(sum(files.values()) - report["disk_mb"]) <= 0.1 * len(files)
    assert list(files.values()) == sorted(files.values(), reverse=True)
    assert {"passages", "sentences", "postings", "terms"} <= set(pg["disk_mb_by_table"])
    assert pg["disk_mb"] == pytest.approx(sum(pg["disk_mb_by_table"].values()), abs=0.1)
