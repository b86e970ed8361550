"""TREC run and qrels files: what is written reads back in the same order; bad files are named."""

import pytest

from kzqa.bench.trec import RunFileError, ranked, read_run, write_qrels, write_run


def test_a_written_run_reads_back_in_the_same_order(tmp_path):
    rankings = {"q1": ["d9", "d1", "d5"], "q2": ["d2"], "q3": []}
    path = write_run(tmp_path / "runs" / "x.trec", rankings, "kzqa hybrid")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 d9 1 3 kzqahybrid"  # qid Q0 docid rank score tag; spaces cannot be in a tag
    assert len(lines) == 4  # q3 retrieved nothing: no line
    assert ranked(read_run(path)) == {"q1": ["d9", "d1", "d5"], "q2": ["d2"]}


def test_ties_are_ordered_as_trec_eval_orders_them(tmp_path):
    path = tmp_path / "tied.trec"
    path.write_text("q1 Q0 a 1 2.0 t\nq1 Q0 c 2 2.0 t\nq1 Q0 b 3 5.0 t\n")
    assert ranked(read_run(path)) == {"q1": ["b", "c", "a"]}  # by score, then document id descending


def test_qrels_are_written_in_the_trec_format(tmp_path):
    path = write_qrels(tmp_path / "qrels.trec", {"q1": {"d1": 1, "d2": 2}})
    assert path.read_text().splitlines() == ["q1 0 d1 1", "q1 0 d2 2"]


@pytest.mark.parametrize("text, says", [
    ("q1 d1 1\n", "line 1: expected 'qid Q0 docid rank score tag' (6 fields), found 3"),
    ("q1 Q0 d1 1 high tag\n", "line 1: the score 'high' is not a number"),
    ("q1 Q0 d1 1 2 t\nq1 Q0 d1 2 1 t\n", "line 2: document d1 listed twice for query q1"),
    ("\n\n", "an empty run file"),
])
def test_malformed_runs_name_the_line(tmp_path, text, says):
    path = tmp_path / "bad.trec"
    path.write_text(text)
    with pytest.raises(RunFileError, match=says.replace("(", r"\(").replace(")", r"\)")):
        read_run(path)


def test_an_unreadable_run_is_named(tmp_path):
    with pytest.raises(RunFileError, match="cannot read run file"):
        read_run(tmp_path / "missing.trec")
