"""Calibrate abstention on the dev set: python benchmarks/tune_abstain.py.

Computes the abstention features of every dev question once (default mode, k=5), then sweeps the
thresholds of kzqa.abstain.AbstainParams and prints the trade-off curve: the share of
unanswerable questions abstained on against the share of answerable questions wrongly
abstained on. Writes benchmarks/results/abstention.json and .md (included in results.md).
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import kzqa  # noqa: E402
from kzqa import evaluate as ev  # noqa: E402
from kzqa.abstain import AbstainParams, abstention_features, should_abstain  # noqa: E402


def collect(engine, items, params: AbstainParams) -> list[tuple]:
    """Features of every question (features depend on ``evidence_sentences``, thresholds do not)."""
    rows = []
    for item in items:
        r = engine.retrieve(item.question, k=5)
        candidates = engine._sentence_candidates(r)
        rows.append((item, abstention_features(r, candidates, engine, params)))
    return rows


def rates(rows, params: AbstainParams) -> tuple[float, float]:
    unans = [should_abstain(f, params) for item, f in rows if not item.answerable]
    ans = [should_abstain(f, params) for item, f in rows if item.answerable]
    return sum(unans) / len(unans), sum(ans) / len(ans)


def main() -> None:
    engine = kzqa.load()
    items, _ = ev.load_qa(HERE / "qa" / "dev.jsonl", strict=True)
    base = engine.abstain
    curve = []
    for n_sent in (1, 2, 3, 4):
        rows = collect(engine, items, replace(base, evidence_sentences=n_sent))
        for sim_en, cov, sim_other, typed, type_cov in itertools.product(
                [0.0, 0.2, 0.25, 0.3, 0.35, 0.4], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], [0.0, 0.75, 0.78, 0.8], [False, True],
                [0.0, 0.15, 0.25, 0.35, 0.45]):
            if type_cov and not typed:
                continue
            p = replace(base, min_similarity_en=sim_en, min_coverage=cov, min_similarity_other=sim_other,
                        check_answer_type=typed, evidence_sentences=n_sent, type_min_coverage=type_cov)
            u, a = rates(rows, p)
            curve.append({"evidence_sentences": n_sent, "min_similarity_en": sim_en, "min_coverage": cov,
                          "min_similarity_other": sim_other, "check_answer_type": typed,
                          "type_min_coverage": type_cov,
                          "abstained_unanswerable": round(u, 3), "wrongly_abstained": round(a, 3)})
    rows = collect(engine, items, base)
    # the Pareto front: nothing else abstains more on unanswerable with no more wrong abstentions
    front = [c for c in curve if not any(
        o["abstained_unanswerable"] >= c["abstained_unanswerable"] and o["wrongly_abstained"] <= c["wrongly_abstained"]
        and (o["abstained_unanswerable"], -o["wrongly_abstained"]) != (c["abstained_unanswerable"], -c["wrongly_abstained"])
        for o in curve)]
    front = sorted({(c["abstained_unanswerable"], c["wrongly_abstained"]): c for c in front}.values(),
                   key=lambda c: c["wrongly_abstained"])
    u, a = rates(rows, base)
    detail = [{"id": item.id, "type": item.type, "lang": item.lang, "answerable": item.answerable,
               "abstained": should_abstain(f, base), **{k: v for k, v in f.items() if k != "lang"}}
              for item, f in rows]
    out = {"chosen": {**base.__dict__, "abstained_unanswerable": round(u, 3), "wrongly_abstained": round(a, 3)},
           "front": front, "questions": detail}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "abstention.json").write_text(json.dumps(out, indent=1, ensure_ascii=False, default=str))
    lines = ["## Abstention trade-off (dev set)", "",
             "Produced by `python benchmarks/tune_abstain.py`: every point of the Pareto front of the threshold "
             "sweep (share of the 23 unanswerable questions abstained on, against the share of the 122 "
             "answerable ones wrongly abstained on). Years of the question missing from the closest sentences, "
             "and capitalised names of the question that the corpus never mentions, always abstain.", "",
             "| evidence sentences | min sim (en) | min coverage (en) | min sim (other) | answer type checked "
             "| answer sentence coverage | abstained (unanswerable) | wrongly abstained (answerable) |",
             "|---|---|---|---|---|---|---|---|"]
    for c in front:
        lines.append(f"| {c['evidence_sentences']} | {c['min_similarity_en']} | {c['min_coverage']} | {c['min_similarity_other']} "
                     f"| {'yes' if c['check_answer_type'] else 'no'} | {c['type_min_coverage']} | {c['abstained_unanswerable']:.3f} "
                     f"| {c['wrongly_abstained']:.3f} |")
    lines += ["", f"Chosen (the defaults of `AbstainParams`): evidence sentences {base.evidence_sentences}, min sim (en) {base.min_similarity_en}, min coverage "
              f"{base.min_coverage}, min sim (other) {base.min_similarity_other}, answer type checked "
              f"{'yes' if base.check_answer_type else 'no'}, answer sentence coverage {base.type_min_coverage} → abstained on {u:.3f} of unanswerable, "
              f"wrongly on {a:.3f} of answerable.", ""]
    missed = [d for d in detail if not d["answerable"] and not d["abstained"]]
    wrong = [d for d in detail if d["answerable"] and d["abstained"]]
    lines += [f"Unanswerable questions still answered: {', '.join(d['id'] for d in missed) or 'none'}. "
              f"Answerable questions wrongly abstained on: {', '.join(d['id'] for d in wrong) or 'none'}.", ""]
    (HERE / "results" / "abstention.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
