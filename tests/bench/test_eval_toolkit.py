"""kzqa eval as an evaluator uses it: intervals on every figure, significance between modes and
run files, TREC runs that other tools score the same, failures, follow-ups resolved as the chat
does, a reproducibility header, and an HTML report whose every plot loads in Chromium."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ARTIFACTS, ROOT, axe_violations, run_cli, write_beir

DEV = ROOT / "benchmarks" / "qa" / "dev.jsonl"
FOLLOWUP = ROOT / "benchmarks" / "qa" / "followup.jsonl"
SCIFACT = ROOT.parent / "shared" / "bench" / "scifact"
MODES = ("hybrid", "dense", "lexical")
NOT_FIGURES = {"questions", "answerable", "unanswerable", "ci95"}


@pytest.fixture(scope="module")
def dev_eval(tmp_path_factory):
    """One `kzqa eval` of the dev set in three modes, with every output asked for."""
    out = tmp_path_factory.mktemp("eval")
    args = ["eval", str(DEV), *[a for m in MODES for a in ("--mode", m)], "--json", "--out", str(out / "dev.md"),
            "--run-out", str(out / "runs"), "--failures", str(out / "failures.jsonl"), "--report",
            str(out / "report.html")]
    result = run_cli(*args, timeout=900)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), out


def test_every_figure_of_every_group_carries_an_interval(dev_eval):
    document, _ = dev_eval
    assert [r["mode"] for r in document["reports"]] == list(MODES)
    for report in document["reports"]:
        for group, figures in report["groups"].items():
            for measure, value in figures.items():
                if measure in NOT_FIGURES:
                    continue
                lo, hi = figures["ci95"][measure]
                assert lo <= value + 1e-9 or measure == "ece", (report["mode"], group, measure)  # ECE's is biased up
                assert lo <= hi
    hybrid = document["reports"][0]["groups"]["all"]
    lo, hi = hybrid["ci95"]["Recall@5"]
    assert 0 < hi - lo < 0.15  # 166 answerable questions: a few points either side


def test_every_pair_of_modes_is_tested_on_every_measure(dev_eval):
    document, _ = dev_eval
    rows = document["significance"]
    pairs = {(r["a"], r["b"]) for r in rows}
    assert pairs == {("hybrid", "dense"), ("hybrid", "lexical"), ("dense", "lexical")}
    for measure in ("Recall@5", "MRR@10", "answer_evidence", "wrongly_abstained"):
        assert {(r["a"], r["b"]) for r in rows if r["metric"] == measure} == pairs
    best = next(r for r in rows if (r["a"], r["b"], r["metric"]) == ("hybrid", "lexical", "Recall@5"))
    assert best["delta"] > 0 and best["significant"] and 0 <= best["p_raw"] <= best["p"] < 0.05


def test_the_exported_runs_score_the_same_in_ir_measures(dev_eval):
    import ir_measures
    from ir_measures import RR, Success, nDCG

    document, out = dev_eval
    qrels = list(ir_measures.read_trec_qrels(str(out / "runs" / "qrels.trec")))
    for report in document["reports"]:
        run = list(ir_measures.read_trec_run(str(out / "runs" / f"{report['mode']}.trec")))
        scores = ir_measures.pytrec_eval.calc_aggregate([nDCG @ 10, RR @ 10, Success @ 5], qrels, run)
        figures = report["groups"]["all"]
        assert sum(1 for q in report["questions"] if q["answerable"] and not q["relevant"]) == 0
        per_question = [q for q in report["questions"] if q["answerable"]]
        exact = sum(q["metrics"]["ndcg@10"] for q in per_question) / len(per_question)
        assert scores[nDCG @ 10] == pytest.approx(exact, abs=1e-6)
        assert scores[RR @ 10] == pytest.approx(figures["MRR@10"], abs=1e-4)
        assert scores[Success @ 5] == pytest.approx(figures["Recall@5"], abs=1e-4)


def test_failures_list_every_question_that_failed_a_measure(dev_eval):
    document, out = dev_eval
    rows = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    hybrid = {q["id"]: q for q in document["reports"][0]["questions"]}
    listed = {r["id"] for r in rows if r["mode"] == "hybrid"}
    missed_evidence = {i for i, q in hybrid.items() if q["answerable"] and not q["answer_evidence"]}
    answered_unanswerable = {i for i, q in hybrid.items() if not q["answerable"] and not q["abstained"]}
    assert missed_evidence | answered_unanswerable <= listed
    for row in rows:
        assert set(row) >= {"question", "type", "lang", "first_relevant_rank", "status", "quoted", "confidence",
                            "failed"} and row["failed"]
        if row["mode"] == "hybrid" and row["id"] in missed_evidence:
            assert "answer_evidence" in row["failed"]
    markdown = (out / "dev.md").read_text()
    assert "## Worst failures by question type" in markdown and "### multilingual" in markdown


def test_the_markdown_report_says_how_it_was_made(dev_eval):
    document, out = dev_eval
    prov = document["provenance"]
    assert prov["command"].startswith("kzqa eval ") and "--mode dense" in prov["command"]
    assert re.fullmatch(r"[0-9a-f]{40}( \(uncommitted changes\))?", prov["git_commit"] or "")
    assert re.fullmatch(r"[0-9a-f]{64}", prov["index_manifest_sha256"])
    assert set(prov["models"]) == {"dense", "multilingual"} and prov["machine"]["cores"] >= 1
    markdown = (out / "dev.md").read_text()
    for text in (prov["command"], prov["index_manifest_sha256"], prov["models"]["dense"], "cores"):
        assert text in markdown
    assert "(p < 0.001) *" in markdown  # hybrid against lexical: significant, marked


def test_the_html_report_opens_in_chromium_with_every_plot(dev_eval, browser):
    _, out = dev_eval
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    try:
        page.goto((out / "report.html").as_uri())
        images = page.evaluate("() => [...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0])")
        assert len(images) >= 8  # recall curves, 4 bar charts, reliability, latency, significance
        assert all(loaded for _, loaded in images), images
        assert all(alt for alt, _ in images)
        for heading in ("Recall@k", "Calibration", "Latency", "Significance", "Worst failures by question type"):
            assert page.get_by_role("heading", name=heading).count() == 1
        page.screenshot(path=str(ARTIFACTS / "eval-report.png"))
        assert axe_violations(page) == []
    finally:
        page.close()


def test_follow_ups_are_resolved_as_the_chat_does_unless_asked_not_to():
    resolved = run_cli("eval", str(FOLLOWUP), "--mode", "lexical", "--json", timeout=600)
    as_asked = run_cli("eval", str(FOLLOWUP), "--mode", "lexical", "--json", "--as-asked", timeout=600)
    assert resolved.returncode == 0 and as_asked.returncode == 0, resolved.stderr + as_asked.stderr
    a, b = json.loads(resolved.stdout), json.loads(as_asked.stdout)
    assert a["followups_resolved"] > 0 and b["followups_resolved"] == 0
    assert a["groups"]["all"]["Recall@5"] > b["groups"]["all"]["Recall@5"]
    text = run_cli("eval", str(FOLLOWUP), "--mode", "lexical", timeout=600).stdout
    assert "resolved with their conversation's topic, as the chat does (--as-asked: as typed)" in text


@pytest.mark.skipif(not SCIFACT.exists(), reason="../shared/bench/scifact is not beside the project")
def test_a_scifact_run_written_out_scores_the_same_when_read_back(tmp_path):
    first = run_cli("eval", "--beir", str(SCIFACT), "--mode", "lexical", "--run-out", str(tmp_path), "--json",
                    timeout=900)
    assert first.returncode == 0, first.stderr
    again = run_cli("eval", "--beir", str(SCIFACT), "--run", str(tmp_path / "lexical.trec"), "--json", timeout=900)
    assert again.returncode == 0, again.stderr
    ours, theirs = json.loads(first.stdout)["modes"]["lexical"], json.loads(again.stdout)["modes"]["lexical.trec"]
    for measure in ("nDCG@10", "MRR@10", "Recall@100"):
        assert theirs[measure] == ours[measure] and theirs["ci95"][measure] == ours["ci95"][measure]
    assert theirs["source"] == "run file" and "search_ms_p50" not in theirs
    import ir_measures  # the written qrels and run, scored by pytrec_eval instead of ranx
    from ir_measures import nDCG

    scores = ir_measures.pytrec_eval.calc_aggregate(
        [nDCG @ 10], list(ir_measures.read_trec_qrels(str(tmp_path / "qrels.trec"))),
        list(ir_measures.read_trec_run(str(tmp_path / "lexical.trec"))))
    assert scores[nDCG @ 10] == pytest.approx(ours["nDCG@10"], abs=5e-5)  # the report rounds to 4 places


def _tiny_beir(folder):
    return write_beir(folder, {"q1": "cherry", "q2": "zebra", "q3": "apple"}, [("q1", "d2"), ("q2", "d4"), ("q3", "d3")])


def test_a_run_file_is_compared_with_kzqas_modes(tmp_path):
    folder = _tiny_beir(tmp_path / "beir")
    other = tmp_path / "worse.trec"  # the relevant document always second
    other.write_text("q1 Q0 d1 1 2 x\nq1 Q0 d2 2 1 x\nq2 Q0 d1 1 2 x\nq2 Q0 d4 2 1 x\nq3 Q0 d1 1 2 x\nq3 Q0 d3 2 1 x\n")
    result = run_cli("eval", "--beir", str(folder), "--mode", "lexical", "--run", str(other), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["modes"]["worse.trec"]["MRR@10"] == 0.5
    rows = [r for r in document["significance"] if r["metric"] == "MRR@10"]
    assert [(r["a"], r["b"], r["n"]) for r in rows] == [("lexical", "worse.trec", 3)]
    assert rows[0]["delta"] == pytest.approx(document["modes"]["lexical"]["MRR@10"] - 0.5, abs=1e-4)
    assert not rows[0]["significant"]  # three queries cannot show it: the test says so rather than guess
    assert document["provenance"]["beir_files_sha256"]["corpus.jsonl"]
    table = run_cli("eval", "--beir", str(folder), "--mode", "lexical", "--run", str(other), "--report",
                    str(tmp_path / "beir.html")).stdout
    assert "| worse.trec |" in table and "| lexical | worse.trec |" in table
    report = (tmp_path / "beir.html").read_text()
    assert report.count("<img src='data:image/png;base64,") == 3  # recall curves, latency, significance


@pytest.mark.parametrize("content, args, says", [
    ("q1 d1\n", [], "line 1: expected 'qid Q0 docid rank score tag' (6 fields), found 2"),
    ("q9 Q0 d1 1 1 x\n", [], "none of its query ids is judged"),
    (None, [], "no such run file"),
    ("q1 Q0 d1 1 1 x\n", ["qa"], "--run scores other systems' runs against BEIR qrels"),
])
def test_bad_run_files_get_one_line(tmp_path, content, args, says):
    folder = _tiny_beir(tmp_path / "beir")
    path = tmp_path / "run.trec"
    if content is not None:
        path.write_text(content)
    target = [str(DEV)] if args == ["qa"] else ["--beir", str(folder)]
    result = run_cli("eval", *target, "--run", str(path))
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in result.stderr


def test_failed_measures_of_hand_made_results():
    from kzqa.bench.evaluate import QuestionResult, failed_measures
    from kzqa.bench.report import worst_by_type

    def result(**kw):
        base = dict(id="x", type="t", lang="en", answerable=True, rank=1, relevant=1, abstained=False,
                    search_ms=1.0, ask_ms=1.0, answer_evidence=True, first_sentence=True)
        return QuestionResult(**{**base, **kw})

    assert failed_measures(result(), 10) == []
    assert failed_measures(result(rank=4), 10) == ["Recall@1", "Recall@3"]
    assert failed_measures(result(rank=None, answer_evidence=False, abstained=True), 5) == [
        "Recall@1", "Recall@3", "Recall@5", "answer_evidence", "wrongly_abstained"]
    assert failed_measures(result(parts=2, all_parts=False, short_em=0.0), 10) == ["answer_all_parts", "short_em"]
    assert failed_measures(result(answerable=False, abstained=False), 10) == ["abstained_unanswerable"]
    assert failed_measures(result(answerable=False, abstained=True), 10) == []
    rows = [{"type": "a", "n": i} for i in range(30)] + [{"type": "b", "n": 0}]
    kept = worst_by_type(rows, per_type=20)
    assert [len(v) for v in kept.values()] == [20, 1] and kept["a"][0]["n"] == 0  # the order given is kept


def test_failures_of_a_beir_set_are_refused_before_any_work(tmp_path):
    folder = _tiny_beir(tmp_path / "beir")
    result = run_cli("eval", "--beir", str(folder), "--failures", str(tmp_path / "f.jsonl"))
    assert result.returncode == 1 and "--failures lists questions of a QA file" in result.stderr
    assert not (tmp_path / "f.jsonl").exists()
