"""Refit the abstention model and calibrate its confidence: python benchmarks/tune_answer.py [--write].

The protocol (issue 18): questions written blind from the corpus alone, in three batches kept
apart (benchmarks/qa/writers-prompt.md):

- **fit** on ``train.jsonl`` together with the older ``dev.jsonl`` (the logistic regression's
  weights, on the questions the hard rules do not decline);
- **choose** on ``validation.jsonl``: which feature set, the threshold (the highest whose
  wrong declines of answerable validation questions stay ≤ 5%), and the calibration of
  ``Answer.confidence`` (isotonic regression from the model's probability to the share of
  answers given that quote the evidence);
- ``test.jsonl`` is never read here: it is scored once, at the end, with ``kzqa eval``.

Sentence selection uses the shipped ``SelectionParams`` (chosen on validation, see
benchmarks/results.md). Writes kzqa/qa/abstain_model.json (with --write) and
benchmarks/results/answer-tuning.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import kzqa  # noqa: E402
from kzqa.bench import (  # noqa: E402
    FEATURES,
    AbstainModel,
    decide,
    hard_decline,
    sentence_text,
)
from kzqa.bench import evaluate as ev

MAX_WRONG = 0.05
# Fewer, more general signals: similarity, key-term coverage and whether the type asked for is there.
SMALL = ("is_en", "sim_en", "sim_other", "chosen_sim_en", "chosen_sim_other", "coverage", "answer_coverage",
         "type_missing", "missing_idf")
FEATURE_SETS = {"all 16": FEATURES, "small 9": SMALL}


def feature_rows(engine, items) -> list[dict]:
    """Every question retrieved once (hybrid, k=5), with its abstention features and whether
    the chosen sentences hold its evidence."""
    out = []
    for item in items:
        r = engine.retrieve(item.question, k=5)
        _, chosen, f = engine.answer_features(r)  # exactly what Engine.ask decides on
        quoted = " ".join(sentence_text(r.hits, c) for c in chosen)
        out.append({"item": item, "f": f, "evidence": item.answerable and ev.holds_evidence(quoted, item.evidence)})
    return out


def fit(frows, base: AbstainModel, names: tuple[str, ...]) -> AbstainModel:
    """A logistic regression over ``names`` on the questions the hard rules leave (threshold 0.5)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    soft = [fr for fr in frows if not hard_decline(fr["f"], base)]
    x = np.array([[float(fr["f"][n]) for n in names] for fr in soft])
    y = np.array([fr["item"].answerable for fr in soft], dtype=int)
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit((x - scaler.mean_) / scale, y)
    return replace(base, names=tuple(names), mean=tuple(map(float, scaler.mean_)), scale=tuple(map(float, scale)),
                   coef=tuple(map(float, lr.coef_[0])), intercept=float(lr.intercept_[0]), threshold=0.5,
                   calibration=None)


def choose_threshold(frows, model: AbstainModel) -> float:
    """The highest threshold whose wrong declines of answerable questions stay ≤ MAX_WRONG
    (questions declined by the hard rules count as declined whatever the threshold)."""
    answerable = [fr for fr in frows if fr["item"].answerable]
    probs = sorted(0.0 if hard_decline(fr["f"], model) else model.probability(fr["f"]) for fr in answerable)
    allowed = int(MAX_WRONG * len(answerable))
    return float(probs[allowed]) if probs else 0.5


def calibrate(frows, model: AbstainModel) -> dict:
    """Isotonic map from the probability of the answers given to the share that quote the evidence."""
    from sklearn.isotonic import IsotonicRegression

    decided = [(fr, *decide(fr["f"], model)) for fr in frows]
    x = np.array([p for _, status, p in decided if status == "answered"])
    y = np.array([fr["evidence"] for fr, status, _ in decided if status == "answered"], dtype=float)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, y)
    return {"x": [round(float(v), 6) for v in iso.X_thresholds_], "y": [round(float(v), 6) for v in iso.y_thresholds_]}


def figures(frows, model: AbstainModel) -> dict:
    """Answer evidence, declines and calibration of ``model`` on these questions."""
    ans = [fr for fr in frows if fr["item"].answerable]
    una = [fr for fr in frows if not fr["item"].answerable]
    out = [(fr, *decide(fr["f"], model)) for fr in frows]
    given = [(fr, model.confidence(p)) for fr, status, p in out if status == "answered"]
    ece, _ = ev.calibration([c for _, c in given], [fr["evidence"] for fr, _ in given])
    status = {fr["item"].id: s for fr, s, _ in out}
    return {"answerable": len(ans), "unanswerable": len(una),
            "answer_evidence": round(float(np.mean([status[fr["item"].id] == "answered" and fr["evidence"] for fr in ans])), 3),
            "wrongly_declined": round(float(np.mean([status[fr["item"].id] != "answered" for fr in ans])), 3),
            "unanswerable_declined": round(float(np.mean([status[fr["item"].id] != "answered" for fr in una])), 3),
            "non_english_unanswerable_declined": round(float(np.mean(
                [status[fr["item"].id] != "answered" for fr in una if fr["item"].lang != "en"] or [0.0])), 3),
            "ece": ece, "confident_wrong": sum(1 for fr, c in given if c >= 0.9 and not fr["evidence"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="write kzqa/qa/abstain_model.json")
    args = parser.parse_args()
    engine = kzqa.load()
    load = lambda name: ev.load_qa(HERE / "qa" / f"{name}.jsonl", strict=True)[0]  # noqa: E731
    train = feature_rows(engine, load("train") + load("dev"))
    validation = feature_rows(engine, load("validation"))
    base = engine.abstain
    candidates = {}
    for label, names in FEATURE_SETS.items():
        model = fit(train, base, names)
        model = replace(model, threshold=choose_threshold(validation, model))
        model = replace(model, calibration=calibrate(validation, model))
        candidates[label] = {"model": model, "train (fit)": figures(train, model),
                             "validation (chosen on)": figures(validation, model)}
    # the feature set that declines most unanswerable validation questions (wrong declines held at ≤ 5%)
    chosen = max(candidates, key=lambda k: candidates[k]["validation (chosen on)"]["unanswerable_declined"])
    shipped = candidates[chosen]["model"]
    report = {"chosen": chosen, "max_wrong": MAX_WRONG,
              "candidates": {k: {**{n: v for n, v in c.items() if n != "model"}, "model": c["model"].to_dict()}
                             for k, c in candidates.items()}}
    print(json.dumps({k: {n: v for n, v in c.items() if n != "model"} for k, c in report["candidates"].items()}, indent=1))
    print("chosen:", chosen)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "answer-tuning.json").write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str))
    (HERE / "results" / "answer-tuning.md").write_text(render(report))
    if args.write:
        (ROOT / "kzqa" / "qa" / "abstain_model.json").write_text(json.dumps(shipped.to_dict(), indent=1) + "\n")
        print("wrote kzqa/qa/abstain_model.json")


def render(report: dict) -> str:
    lines = ["## Abstention and confidence (`benchmarks/tune_answer.py`)", "",
             f"Fitted on train + dev ({report['candidates'][report['chosen']]['train (fit)']['answerable']} answerable, "
             f"{report['candidates'][report['chosen']]['train (fit)']['unanswerable']} unanswerable); feature set, "
             f"threshold (wrong declines ≤ {report['max_wrong']:.0%} on validation) and isotonic calibration chosen on "
             "validation. The test batch is not read here.", "",
             "| features | batch | answer evidence | wrongly declined | unanswerable declined | ru/zh/kk unanswerable declined | ECE | confident wrong |",
             "|---|---|---|---|---|---|---|---|"]
    for label, c in report["candidates"].items():
        for batch in ("train (fit)", "validation (chosen on)"):
            f = c[batch]
            lines.append(f"| {label}{' (shipped)' if label == report['chosen'] else ''} | {batch} | {f['answer_evidence']} "
                         f"| {f['wrongly_declined']} | {f['unanswerable_declined']} | {f['non_english_unanswerable_declined']} "
                         f"| {f['ece']} | {f['confident_wrong']} |")
    m = report["candidates"][report["chosen"]]["model"]
    lines += ["", f"Shipped model (`kzqa/qa/abstain_model.json`): threshold {m['threshold']:.3f}; standardised coefficients "
              + ", ".join(f"{n} {c:+.2f}" for n, c in zip(m["names"], m["coef"])) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
