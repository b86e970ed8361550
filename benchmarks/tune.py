"""Tune chunking and fusion on the dev set: python benchmarks/tune.py [--quick].

For each chunking configuration an index is built in a temporary folder; every dev question is
ranked once per channel; fusion settings are then scored from those rankings. Writes
benchmarks/results/tuning.json and benchmarks/results/tuning.md (included in results.md).
Selection rule: English MRR@10, then paraphrase R@5; for other languages MRR@10.
(Ranks here are plain first-relevant ranks; the published figures come from `kzqa eval`.)
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import kzqa  # noqa: E402
from kzqa import ChunkParams  # noqa: E402
from kzqa.bench import detect_language, evaluate as ev, rrf  # noqa: E402

CHUNKINGS = [
    ChunkParams(target_words=120, overlap_sentences=1, prefix=True),
    ChunkParams(target_words=80, overlap_sentences=1, prefix=True),
    ChunkParams(target_words=60, overlap_sentences=1, prefix=True),
    ChunkParams(target_words=160, overlap_sentences=1, prefix=True),
    ChunkParams(target_words=80, overlap_sentences=1, prefix=False),
    ChunkParams(target_words=120, overlap_sentences=1, prefix=False),
    ChunkParams(target_words=80, overlap_sentences=0, prefix=True),
    ChunkParams(target_words=160, overlap_sentences=1, prefix=False),
    ChunkParams(target_words=140, overlap_sentences=1, prefix=False),
    ChunkParams(target_words=140, overlap_sentences=1, prefix=True),
]
CHANNELS = ["dense", "dense_sent", "multilingual", "multilingual_sent", "lexical"]
DEPTH = 50


def channel_rankings(engine, query: str) -> dict[str, list[int]]:
    """Row rankings per channel, sentence-level variants included (the engine's own scoring)."""
    _, candidates = engine.candidates(query, CHANNELS, DEPTH)
    return {c: [row for row, _ in cands] for c, cands in candidates.items()}


def first_rank(ranking: list[int], relevant: set[int], k: int = 10) -> int | None:
    return next((r for r, i in enumerate(ranking[:k], 1) if i in relevant), None)


def figures(ranks: list[int | None]) -> dict:
    n = len(ranks) or 1
    return {"R@1": sum(r == 1 for r in ranks if r) / n, "R@5": sum(r <= 5 for r in ranks if r) / n,
            "MRR@10": sum(1 / r for r in ranks if r) / n}


def evaluate_config(index: Path, items) -> dict:
    engine = kzqa.load(index, check=False)
    rows = {p.passage_id: i for i, p in enumerate(engine.passages)}
    data = []
    for item in items:
        if not item.answerable:
            continue
        relevant = {rows[pid] for pid in ev.relevant_passages(engine, item)}
        data.append((item, detect_language(item.question), channel_rankings(engine, item.question), relevant))
    return {"engine": engine, "data": data}


def score_fusion(data, weights: dict[str, float], k0: float, group) -> dict:
    ranks = []
    for item, lang, rankings, relevant in data:
        if not group(item, lang):
            continue
        fused = rrf(rankings, weights, k0)
        order = sorted(fused, key=lambda i: (-fused[i], i))
        ranks.append(first_rank(order, relevant))
    return figures(ranks)


EN = lambda item, lang: item.lang == "en"  # noqa: E731
PARA = lambda item, lang: item.type == "paraphrase"  # noqa: E731
OTHER = lambda item, lang: item.lang != "en"  # noqa: E731


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="only the first two chunkings")
    args = parser.parse_args()
    items, _ = ev.load_qa(HERE / "qa" / "dev.jsonl", strict=True)
    english_grid = [dict(zip(CHANNELS, w)) for w in itertools.product(
        [0, 0.5, 1], [0, 0.5, 1], [0, 0.5, 1], [0, 0.5, 1], [0, 0.5, 1, 1.5])]
    english_grid = [w for w in english_grid if sum(w.values()) > 0]
    other_grid = [dict(zip(CHANNELS, w)) for w in itertools.product([0, 0.25], [0, 0.25], [0, 0.5, 1], [0, 0.5, 1], [0])]
    other_grid = [w for w in other_grid if w["multilingual"] + w["multilingual_sent"] > 0]
    k0s = [5, 10, 20, 40, 60]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, params in enumerate(CHUNKINGS[:2] if args.quick else CHUNKINGS):
            index = Path(tmp) / f"index{n}"
            summary = kzqa.build(ROOT / "corpus", index, params=params)
            cfg = evaluate_config(index, items)
            single = {c: {g: score_fusion(cfg["data"], {c: 1}, 60, f) for g, f in
                          (("en", EN), ("paraphrase", PARA), ("other", OTHER))} for c in CHANNELS}
            best_en = max(((w, k0, score_fusion(cfg["data"], w, k0, EN), score_fusion(cfg["data"], w, k0, PARA))
                           for w in english_grid for k0 in k0s),
                          key=lambda t: (round(t[2]["MRR@10"], 4), t[3]["R@5"], t[2]["R@5"]))
            best_other = max(((w, k0, score_fusion(cfg["data"], w, k0, OTHER)) for w in other_grid for k0 in k0s),
                             key=lambda t: (round(t[2]["MRR@10"], 4), t[2]["R@5"]))
            equal = {c: 1 for c in ("dense", "multilingual", "lexical")}
            results.append({
                "chunking": params.to_dict(), "passages": summary.passages,
                "median_words": float(np.median(summary.words)), "single": single,
                "rrf_equal_k60": {"en": score_fusion(cfg["data"], equal, 60, EN),
                                  "paraphrase": score_fusion(cfg["data"], equal, 60, PARA)},
                "best_en": {"weights": best_en[0], "k0": best_en[1], "en": best_en[2], "paraphrase": best_en[3]},
                "best_other": {"weights": best_other[0], "k0": best_other[1], "other": best_other[2]},
            })
            print(json.dumps(results[-1], indent=1), flush=True)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "tuning.json").write_text(json.dumps(results, indent=1))
    (HERE / "results" / "tuning.md").write_text(render(results))


def _f(x: float) -> str:
    return f"{x:.3f}"


def render(results: list[dict]) -> str:
    lines = ["## Tuning (dev set, answerable questions)", "",
             "Produced by `python benchmarks/tune.py`. Each row is one chunking (target words, overlap "
             "sentences, title/section prefix embedded or not). Single channels use their own ranking; "
             "`*_sent` rank a passage by its best sentence. The fused columns give the best weighted RRF "
             "found on a grid (weights per channel in {0, 0.5, 1, 1.5}, k0 in {5, 10, 20, 40, 60}).", "",
             "| chunking | passages | median words | dense MRR (en) | lexical MRR (en) | multilingual MRR (en) "
             "| RRF equal k0=60 MRR (en) | best fused MRR (en) | R@5 (en) | R@5 (paraphrase) | best fused MRR (other) "
             "| R@5 (other) |", "|" + "---|" * 12]
    for r in results:
        c = r["chunking"]
        lines.append(
            f"| {c['target_words']}w / {c['overlap_sentences']} / {'prefix' if c['prefix'] else 'no prefix'} "
            f"| {r['passages']} | {r['median_words']:.0f} | {_f(r['single']['dense']['en']['MRR@10'])} "
            f"| {_f(r['single']['lexical']['en']['MRR@10'])} | {_f(r['single']['multilingual']['en']['MRR@10'])} "
            f"| {_f(r['rrf_equal_k60']['en']['MRR@10'])} | {_f(r['best_en']['en']['MRR@10'])} "
            f"| {_f(r['best_en']['en']['R@5'])} | {_f(r['best_en']['paraphrase']['R@5'])} "
            f"| {_f(r['best_other']['other']['MRR@10'])} | {_f(r['best_other']['other']['R@5'])} |")
    lines += ["", "Best fusion settings per chunking:", ""]
    for r in results:
        c = r["chunking"]
        w_en = {k: v for k, v in r["best_en"]["weights"].items() if v}
        w_ot = {k: v for k, v in r["best_other"]["weights"].items() if v}
        lines.append(f"- {c['target_words']}w/{c['overlap_sentences']}/{'prefix' if c['prefix'] else 'no prefix'}: "
                     f"English {w_en} k0={r['best_en']['k0']}; other languages {w_ot} k0={r['best_other']['k0']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
