"""Refit the abstention model and calibrate its confidence: python benchmarks/tune_answer.py [--write].

The protocol (issue 18): questions written blind from the corpus alone, in three batches kept
apart (benchmarks/qa/writers-prompt.md):

- **fit** on ``train.jsonl`` together with the older ``dev.jsonl`` and the two earlier sealed
  batches ``test.jsonl`` and ``test2.jsonl``, each scored once before it joined (the logistic
  regression's weights, on the questions the hard rules do not decline; and the calibration of
  ``Answer.confidence``, from probabilities cross-fitted over five folds, so that it learns from
  probabilities the model gives questions it was not fitted on);
- **choose** on ``validation.jsonl``: which feature set (the one declining most unanswerable
  questions; within two questions of the best is a tie, broken by the lower calibration error),
  the threshold (the one declining most unanswerable questions net of wrongly declined
  answerable ones, with wrong declines ≤ 5%), and the calibration method
  (isotonic or Platt: the lower expected calibration error);
- ``test3.jsonl`` is never read here: it is scored once, at the end, with ``kzqa eval``.

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
FEATURE_SETS = {f"all {len(FEATURES)}": FEATURES, "small 9": SMALL,
                "small 9 + entity check": SMALL + ("entity_missing",)}
CALIBRATIONS = ("isotonic", "platt")
FIT_ON = ("train", "dev", "test", "test2")  # test and test2 were each scored once, then joined the fitting data


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
    """The threshold that declines the most unanswerable questions net of the answerable ones it
    declines (one question, one point), among those whose wrong declines of answerable
    questions stay ≤ MAX_WRONG (questions the hard rules decline count as declined whatever
    the threshold); the lowest such threshold on a tie."""
    prob = lambda fr: 0.0 if hard_decline(fr["f"], model) else model.probability(fr["f"])  # noqa: E731
    answerable = [prob(fr) for fr in frows if fr["item"].answerable]
    unanswerable = [prob(fr) for fr in frows if not fr["item"].answerable]
    best, best_gain = 0.0, None
    for t in sorted({0.0, *answerable, *(p + 1e-9 for p in unanswerable)}):
        wrong = sum(p < t for p in answerable)
        if wrong > MAX_WRONG * len(answerable):
            break
        gain = sum(p < t for p in unanswerable) - wrong
        if best_gain is None or gain > best_gain:
            best, best_gain = t, gain
    return float(best)


def cross_fitted(frows, base: AbstainModel, names: tuple[str, ...], folds: int = 5) -> list[tuple[dict, float]]:
    """Each question with the probability a model fitted on the other folds gives it (0 when a
    hard rule declines it): probabilities the calibration can learn from without having seen
    the question."""
    order = np.random.default_rng(0).permutation(len(frows))
    out = []
    for k in range(folds):
        held = [frows[i] for i in order[k::folds]]
        rest = [frows[i] for j, i in enumerate(order) if j % folds != k]  # the other folds' positions
        model = fit(rest, base, names)
        out += [(fr, 0.0 if hard_decline(fr["f"], model) else model.probability(fr["f"])) for fr in held]
    return out


def calibrate(pairs, threshold: float, method: str) -> dict:
    """A map from the probability of an answer given (at least ``threshold``) to the share of
    such answers that quote the evidence, learnt from (question row, probability) ``pairs``:
    'isotonic' (a step function) or 'platt' (a sigmoid of the log-odds, two parameters),
    stored as points the engine interpolates between."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    given = [(fr, p) for fr, p in pairs if p >= threshold and p > 0.0]  # the answers it would give
    x = np.array([p for _, p in given])
    y = np.array([fr["evidence"] for fr, _ in given], dtype=float)
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, y)
        return {"method": method, "x": [round(float(v), 6) for v in iso.X_thresholds_],
                "y": [round(float(v), 6) for v in iso.y_thresholds_]}
    logit = lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))  # noqa: E731
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(logit(x)[:, None], y.astype(int))
    grid = np.linspace(0.0, 1.0, 101)
    return {"method": method, "x": [round(float(v), 6) for v in grid],
            "y": [round(float(v), 6) for v in lr.predict_proba(logit(grid)[:, None])[:, 1]]}


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
    train = feature_rows(engine, [item for name in FIT_ON for item in load(name)])
    validation = feature_rows(engine, load("validation"))
    base = engine.abstain
    candidates = {}
    for label, names in FEATURE_SETS.items():
        model = fit(train, base, names)
        model = replace(model, threshold=choose_threshold(validation, model))
        pairs = cross_fitted(train, base, names)
        calibrated = [replace(model, calibration=calibrate(pairs, model.threshold, method))
                      for method in CALIBRATIONS]
        model = min(calibrated, key=lambda m: figures(validation, m)["ece"])  # the calibration chosen on validation
        candidates[label] = {"model": model, "train (fit)": figures(train, model),
                             "validation (chosen on)": figures(validation, model)}
    # the feature set that declines most unanswerable validation questions (wrong declines held at ≤ 5%)
    # (within two questions of the best count as a tie, broken by the lower calibration error)
    val = {k: c["validation (chosen on)"] for k, c in candidates.items()}
    best = max(v["unanswerable_declined"] for v in val.values())
    close = [k for k, v in val.items() if (best - v["unanswerable_declined"]) * v["unanswerable"] < 2]
    chosen = min(close, key=lambda k: val[k]["ece"])
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
             f"Fitted on {' + '.join(FIT_ON)} ({report['candidates'][report['chosen']]['train (fit)']['answerable']} answerable, "
             f"{report['candidates'][report['chosen']]['train (fit)']['unanswerable']} unanswerable); feature set, "
             f"threshold (wrong declines ≤ {report['max_wrong']:.0%} on validation) and calibration method chosen on "
             "validation. The sealed batch (test3) is not read here.", "",
             "| features | batch | answer evidence | wrongly declined | unanswerable declined | ru/zh/kk unanswerable declined | ECE | confident wrong |",
             "|---|---|---|---|---|---|---|---|"]
    for label, c in report["candidates"].items():
        for batch in ("train (fit)", "validation (chosen on)"):
            f = c[batch]
            lines.append(f"| {label}{' (shipped)' if label == report['chosen'] else ''} | {batch} | {f['answer_evidence']} "
                         f"| {f['wrongly_declined']} | {f['unanswerable_declined']} | {f['non_english_unanswerable_declined']} "
                         f"| {f['ece']} | {f['confident_wrong']} |")
    m = report["candidates"][report["chosen"]]["model"]
    lines += ["", f"Shipped model (`kzqa/qa/abstain_model.json`): threshold {m['threshold']:.3f}; calibration "
              f"{m['calibration']['method']} (chosen by validation ECE; fitted on cross-fitted train probabilities); "
              "standardised coefficients "
              + ", ".join(f"{n} {c:+.2f}" for n, c in zip(m["names"], m["coef"])) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
