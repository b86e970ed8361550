"""Retrieval benchmarks: evidence-QA sets (JSONL) and BEIR data sets.

Evidence-QA: a passage is relevant to a question when, after :func:`normalise_evidence` on
both sides, it contains one of the question's evidence strings. ``Recall@k`` is the share of
answerable questions with a relevant passage in the top k (top-k retrieval accuracy, ranx's
``hit_rate@k``); MRR@10 and nDCG@10 use binary relevance over every relevant passage. All IR
metrics are computed by ranx.

Answers are scored against the same evidence: ``answer_evidence`` (the quotes hold an evidence
string), ``answer_first_sentence`` (the first quote does), ``answer_all_parts`` (questions of
two or more ``parts``: every part has one of its strings quoted), ``mean_quotes`` (quoted
sentences per answer given), ``short_em`` / ``short_f1`` (SQuAD exact match and token F1 of
``Answer.short`` against ``answer``, for English questions whose ``answer_type`` is a number,
date, year, name or place), and ``ece`` with ``confident_wrong`` (confidence of every answer
given against whether it quotes the evidence: expected calibration error over ten bins, and
answers at confidence ≥ 0.9 that do not).
"""

from __future__ import annotations

import json
import os
import platform
import re
import string
import time
import unicodedata
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..channels.embedcache import cache_dir
from ..qa.engine import Engine
from ..qa.retrieve import DEFAULT_MODE
from .trec import rank_scores

QA_CUTOFFS = (1, 3, 5, 10)
warnings.filterwarnings("ignore", message=".*unsafe cast.*")  # ranx's numba kernels, harmless
_CHAR_MAP = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-"})


class EvalError(ValueError):
    """Input a benchmark cannot run on (the message names the file and line)."""


def normalise_evidence(text: str) -> str:
    """NFKC; lowercase; ‘ ’ → ', “ ” → ", – — → -; every whitespace character deleted."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_CHAR_MAP)
    return "".join(ch for ch in text if not ch.isspace())


# ---------------------------------------------------------------- evidence-QA


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    evidence: tuple[str, ...]
    type: str = "unlabelled"
    lang: str = "unlabelled"
    answer: str | None = None
    history: tuple[str, ...] = ()
    parts: tuple[tuple[str, ...], ...] = ()  # per part of the question, the evidence strings answering it
    answer_type: str | None = None  # number, date, year, name, place, other, none
    kind: str | None = None  # an unanswerable question's kind (detail, false-premise, trap-year …)

    @property
    def answerable(self) -> bool:
        return bool(self.evidence)


def parse_qa_line(line: str, number: int) -> QAItem:
    """One JSONL line → QAItem; raises EvalError naming the line and what is wrong."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EvalError(f"line {number}: not JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise EvalError(f"line {number}: expected an object, got {type(data).__name__}")
    question, evidence = data.get("question"), data.get("evidence")
    if not isinstance(question, str) or not question.strip():
        raise EvalError(f"line {number}: 'question' must be a non-empty string")
    if not isinstance(evidence, list) or not all(isinstance(e, str) and e.strip() for e in evidence):
        raise EvalError(f"line {number}: 'evidence' must be a list of non-empty strings ([] = unanswerable)")
    history = data.get("history") or []
    parts = data.get("parts") or []
    if not isinstance(parts, list) or not all(isinstance(p, list) and p and all(e in evidence for e in p)
                                              for p in parts):
        raise EvalError(f"line {number}: 'parts' must be a list of non-empty lists of strings from 'evidence'")
    return QAItem(id=str(data.get("id") or f"line{number}"), question=question,
                  evidence=tuple(evidence), type=str(data.get("type") or "unlabelled"),
                  lang=str(data.get("lang") or "unlabelled"), answer=data.get("answer"),
                  history=tuple(h for h in history if isinstance(h, str)),
                  parts=tuple(tuple(p) for p in parts), answer_type=data.get("answer_type"),
                  kind=data.get("unanswerable_kind"))


def load_qa(path: str | Path, strict: bool = False) -> tuple[list[QAItem], list[str]]:
    """Questions of a JSONL file and messages for the lines skipped (``strict``: raise instead)."""
    items, problems = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                items.append(parse_qa_line(line, number))
            except EvalError as exc:
                if strict:
                    raise EvalError(f"{path}: {exc}") from exc
                problems.append(f"{path}: {exc}")
    ids = [i.id for i in items]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise EvalError(f"{path}: duplicate ids: {', '.join(duplicates)}")
    return items, problems


def quotes_evidence(answer, item: QAItem) -> bool:
    """Does the answer, as given (not declined), quote an evidence string of ``item``? The quoted
    sentences are joined and matched after :func:`normalise_evidence`, like passage relevance."""
    if answer.abstained or not item.evidence:
        return False
    return holds_evidence(" ".join(sentence for sentence, _ in answer.quotes), item.evidence)


def holds_evidence(text: str, strings) -> bool:
    """Does ``text`` hold one of ``strings``, both sides after :func:`normalise_evidence`?"""
    quoted = normalise_evidence(text)
    return any(normalise_evidence(e) in quoted for e in strings)


def first_quote_evidence(answer, item: QAItem) -> bool:
    """Does the answer's first quoted sentence hold an evidence string (answer given)?"""
    if answer.abstained or not item.evidence or not answer.quotes:
        return False
    return holds_evidence(answer.quotes[0][0], item.evidence)


def all_parts_quoted(answer, item: QAItem) -> bool:
    """Is every part of the question answered by a quote (each part: one of its strings; a
    question without ``parts`` is one part made of all its evidence)?"""
    if answer.abstained or not item.evidence:
        return False
    quoted = " ".join(sentence for sentence, _ in answer.quotes)
    return all(holds_evidence(quoted, part) for part in (item.parts or (item.evidence,)))


TYPED_ANSWERS = ("number", "date", "year", "name", "place")
_PUNCTUATION = set(string.punctuation)


def _squad_tokens(text: str) -> list[str]:
    """SQuAD's answer normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def squad_em(prediction: str | None, gold: str) -> float:
    return float(prediction is not None and _squad_tokens(prediction) == _squad_tokens(gold))


def squad_f1(prediction: str | None, gold: str) -> float:
    """Token F1 of SQuAD between a predicted and a gold answer (0 for no prediction)."""
    if prediction is None:
        return 0.0
    pred, ref = _squad_tokens(prediction), _squad_tokens(gold)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or not common:
        return float(pred == ref)
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def short_scored(item: QAItem) -> bool:
    """Questions whose short answer is scored: English, answerable, a typed gold answer."""
    return item.answerable and item.lang == "en" and item.answer_type in TYPED_ANSWERS and bool(item.answer)


def calibration(confidences: list[float], correct: list[bool], bins: int = 10) -> tuple[float, list[dict]]:
    """Expected calibration error over ``bins`` equal-width bins, and the reliability table
    (per non-empty bin: its range, count, mean confidence and share correct)."""
    if not confidences:
        return 0.0, []
    conf, ok = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            table.append({"bin": [b / bins, (b + 1) / bins], "n": int(inside.sum()),
                          "confidence": round(float(conf[inside].mean()), 4),
                          "correct": round(float(ok[inside].mean()), 4)})
    return round(float(_ece(conf, ok, axis=0, bins=bins)), 4), table


def normalised_passages(engine: Engine) -> list[tuple[str, str]]:
    """(passage id, normalised text) of every passage, for :func:`relevant_passages`."""
    return [(p.passage_id, normalise_evidence(p.text)) for p in engine.passages]


def relevant_passages(passages: list[tuple[str, str]], item: QAItem) -> set[str]:
    """Ids of the passages (from :func:`normalised_passages`) holding one of the item's evidence strings."""
    needles = [normalise_evidence(e) for e in item.evidence]
    return {pid for pid, text in passages if any(n in text for n in needles)}


@dataclass
class QuestionResult:
    id: str
    type: str
    lang: str
    answerable: bool
    rank: int | None  # 1-based rank of the first relevant passage in the ranking searched, None if absent
    relevant: int  # how many passages of the index are relevant
    abstained: bool
    search_ms: float
    ask_ms: float
    metrics: dict[str, float] = field(default_factory=dict)
    query: str = ""
    status: str = ""  # the answer's state: answered, partial or not_covered
    answer_evidence: bool = False  # the answer text quotes an evidence string
    first_sentence: bool = False  # the first quote holds an evidence string
    all_parts: bool = False  # every part of the question has its evidence quoted
    parts: int = 1  # how many parts the question has
    quotes: int = 0  # quoted sentences in the answer (0 when declined)
    confidence: float = 0.0
    short: str | None = None  # the answer's short span
    short_em: float | None = None  # None: the question's short answer is not scored
    short_f1: float | None = None
    kind: str | None = None
    question: str = ""  # as asked
    quoted: list[str] = field(default_factory=list)  # the answer's quoted sentences
    resolved: bool = False  # a follow-up searched with its conversation's topic (query != question)
    ranking: list[str] = field(default_factory=list)  # passage ids found, best first (the run)
    relevant_ids: list[str] = field(default_factory=list)  # passages holding the evidence (the qrels)

    def public(self) -> dict:
        """The fields a report lists per question (the run and qrels go to TREC files instead)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("ranking", "relevant_ids")}


def _qa_metric_names(k: int) -> list[str]:
    return [f"hit_rate@{c}" for c in QA_CUTOFFS if c <= k] + [f"mrr@{k}", f"ndcg@{k}"]


def _ranx_per_query(qrels: dict, run: dict, metrics: list[str]) -> dict[str, dict[str, float]]:
    """{query id: {metric: value}} computed by ranx (only for queries with judgements)."""
    from ranx import Qrels, Run, evaluate

    if not qrels:
        return {}
    qrels_obj = Qrels({q: dict(r) for q, r in qrels.items()})
    run_obj = Run({q: (run.get(q) or {"__none__": 0.0}) for q in qrels})
    scores = evaluate(qrels_obj, run_obj, metrics, return_mean=False, make_comparable=True)
    qids = list(qrels_obj.keys())
    if len(metrics) == 1:
        scores = {metrics[0]: scores}
    return {q: {m: float(scores[m][i]) for m in metrics} for i, q in enumerate(qids)}


def run_qa(engine: Engine, items: list[QAItem], mode: str = DEFAULT_MODE, k: int = 10,
           ask_k: int = 5, resolve=None, progress: bool = False, depth: int | None = None) -> list[QuestionResult]:
    """Search and ask (``ask_k`` passages) every question, timing both. The search ranks
    ``max(k, depth)`` passages (``depth`` for recall curves beyond k); the metrics cut at ``k``.

    ``resolve(history, question) -> query`` rewrites follow-up questions (None: as asked)."""
    from tqdm.auto import tqdm

    depth = max(k, depth or k)
    results, qrels, run = [], {}, {}
    passages = normalised_passages(engine)
    for item in tqdm(items, desc=f"eval {mode}", disable=not progress, unit="q"):
        query = resolve(list(item.history), item.question) if resolve else item.question
        t0 = time.perf_counter()
        hits = engine.search(query, k=depth, mode=mode)
        t1 = time.perf_counter()
        answer = engine.ask(query, k=ask_k, mode=mode)
        t2 = time.perf_counter()
        relevant = relevant_passages(passages, item) if item.answerable else set()
        rank = next((h.rank for h in hits if h.passage_id in relevant), None)
        if relevant:
            qrels[item.id] = {pid: 1 for pid in relevant}
            run[item.id] = rank_scores([h.passage_id for h in hits[:k]])
        short = answer.short  # set only on answers given
        scored = short_scored(item)
        results.append(QuestionResult(
            item.id, item.type, item.lang, item.answerable, rank, len(relevant), answer.abstained,
            (t1 - t0) * 1000, (t2 - t1) * 1000, query=query, status=answer.status,
            answer_evidence=quotes_evidence(answer, item), first_sentence=first_quote_evidence(answer, item),
            all_parts=all_parts_quoted(answer, item), parts=max(1, len(item.parts)),
            quotes=0 if answer.abstained else len(answer.quotes), confidence=float(answer.confidence),
            short=short, short_em=squad_em(short, item.answer) if scored else None,
            short_f1=squad_f1(short, item.answer) if scored else None, kind=item.kind,
            question=item.question, quoted=[] if answer.abstained else [q for q, _ in answer.quotes],
            resolved=query != item.question, ranking=[h.passage_id for h in hits],
            relevant_ids=sorted(relevant)))
    per_query = _ranx_per_query(qrels, run, _qa_metric_names(k))
    for r in results:
        if r.answerable:  # answerable but no passage holds the evidence: every metric is 0
            r.metrics = per_query.get(r.id, {m: 0.0 for m in _qa_metric_names(k)})
    return results


def _label(metric: str) -> str:
    name, cut = metric.split("@")
    return {"hit_rate": "Recall", "recall": "Recall", "mrr": "MRR", "ndcg": "nDCG"}[name] + f"@{cut}"


def question_values(results: list[QuestionResult]) -> dict[str, dict[str, float]]:
    """``{measure: {question id: value}}`` for every figure that is a mean over questions: the
    IR metrics, answer measures and abstention over the questions each applies to, and
    ``mean_quotes`` over the answers given. A table's figure is the mean of its values."""
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    out: dict[str, dict[str, float]] = {}
    if answerable:
        for metric in answerable[0].metrics:
            out[_label(metric)] = {r.id: r.metrics[metric] for r in answerable}
        out["answer_evidence"] = {r.id: float(r.answer_evidence) for r in answerable}
        out["answer_first_sentence"] = {r.id: float(r.first_sentence) for r in answerable}
        multi = [r for r in answerable if r.parts > 1]
        if multi:
            out["answer_all_parts"] = {r.id: float(r.all_parts) for r in multi}
        out["wrongly_abstained"] = {r.id: float(r.abstained) for r in answerable}
        shorts = [r for r in answerable if r.short_f1 is not None]
        if shorts:
            out["short_em"] = {r.id: float(r.short_em) for r in shorts}
            out["short_f1"] = {r.id: float(r.short_f1) for r in shorts}
    if unanswerable:
        out["abstained_unanswerable"] = {r.id: float(r.abstained) for r in unanswerable}
    given = [r for r in results if not r.abstained]
    if given:
        out["mean_quotes"] = {r.id: float(r.quotes) for r in given}
    return out


def _ece(confidences: np.ndarray, correct: np.ndarray, axis: int = -1, bins: int = 10) -> np.ndarray:
    """:func:`calibration`'s error along ``axis`` (for many resamples at once): the sum over bins
    of |Σ confidence − Σ correct| / n."""
    which = np.minimum((confidences * bins).astype(int), bins - 1)
    gaps = [np.abs(np.sum(np.where(which == b, confidences - correct, 0.0), axis=axis)) for b in range(bins)]
    return np.sum(gaps, axis=0) / confidences.shape[axis]


def _p50(x, axis=-1):
    return np.percentile(x, 50, axis=axis)


def _p95(x, axis=-1):
    return np.percentile(x, 95, axis=axis)


def summarise(results: list[QuestionResult]) -> dict:
    """Figures for one group of questions (means of the per-question values), each with its 95%
    bootstrap interval over the questions under ``"ci95"``."""
    from .stats import interval, paired_interval

    answerable = [r for r in results if r.answerable]
    out: dict = {"questions": len(results), "answerable": len(answerable),
                 "unanswerable": len(results) - len(answerable)}
    ci: dict[str, list[float] | None] = {}
    for measure, values in question_values(results).items():
        digits = 3 if measure == "mean_quotes" else 4
        out[measure] = round(float(np.mean(list(values.values()))), digits)
        ci[measure] = interval(list(values.values()), digits=digits)
    given = [r for r in results if not r.abstained]
    if given:
        confidences = [r.confidence for r in given]
        correct = [float(r.answerable and r.answer_evidence) for r in given]
        out["ece"], _ = calibration(confidences, [bool(c) for c in correct])
        ci["ece"] = paired_interval(_ece, confidences, correct)
        wrong = [float(c >= 0.9 and not ok) for c, ok in zip(confidences, correct)]
        out["confident_wrong"] = int(sum(wrong))
        ci["confident_wrong"] = interval(wrong, np.sum, digits=1)
    for what in ("search", "ask"):
        ms = [getattr(r, f"{what}_ms") for r in results]
        out.update({f"{what}_ms_{k}": v for k, v in percentiles(ms).items()})
        ci[f"{what}_ms_p50"] = interval(ms, _p50, digits=2)
        ci[f"{what}_ms_p95"] = interval(ms, _p95, digits=2)
    out["ci95"] = ci
    return out


def percentiles(ms: list[float]) -> dict:
    """``{"p50": …, "p95": …}`` of latencies in milliseconds, rounded to 0.01."""
    return {"p50": round(float(np.percentile(ms, 50)), 2), "p95": round(float(np.percentile(ms, 95)), 2)}


def qa_report(results: list[QuestionResult], mode: str, source: str, k: int) -> dict:
    """One mode's report: figures with intervals for all questions and per type, language and
    unanswerable kind; the reliability table; each question's result; how many follow-ups
    (items with a history) were searched with their conversation's topic."""
    groups = {"all": summarise(results)}
    for key in ("type", "lang", "kind"):
        for value in sorted({getattr(r, key) for r in results if getattr(r, key) is not None}):
            groups[f"{key}={value}"] = summarise([r for r in results if getattr(r, key) == value])
    given = [r for r in results if not r.abstained]
    _, reliability = calibration([r.confidence for r in given], [r.answerable and r.answer_evidence for r in given])
    judged = {r.id: dict.fromkeys(r.relevant_ids, 1) for r in results if r.answerable}  # as Recall@k
    depth = max((len(r.ranking) for r in results), default=k)
    return {"kind": "qa", "source": str(source), "mode": mode, "k": k, "groups": groups,
            "reliability": reliability, "followups_resolved": sum(r.resolved for r in results),
            "recall_curve": recall_curve({r.id: r.ranking for r in results}, judged, depth, any_relevant=True),
            "questions": [r.public() for r in results], **environment()}


def qa_document(results: dict[str, list[QuestionResult]], source: str | Path, k: int, provenance: dict) -> dict:
    """What ``kzqa eval --json`` prints for a QA file: with one mode its report, with several
    ``{"reports": [...]}``; either way with ``significance`` and ``provenance``."""
    reports = [qa_report(r, mode, source, k) for mode, r in results.items()]
    extra = {"significance": qa_significance(results), "provenance": provenance}
    return {**reports[0], **extra} if len(reports) == 1 else {"reports": reports, **extra}


def write_qa_runs(results: dict[str, list[QuestionResult]], folder: Path, k: int) -> None:
    """Each mode's top-``k`` rankings as ``folder/<mode>.trec`` and the passages holding each
    question's evidence as ``folder/qrels.trec`` (see :mod:`kzqa.bench.trec`)."""
    from . import trec

    for mode, rows in results.items():
        trec.write_run(Path(folder) / f"{mode}.trec", {r.id: r.ranking[:k] for r in rows}, f"kzqa-{mode}")
    first = next(iter(results.values()))
    trec.write_qrels(Path(folder) / "qrels.trec", {r.id: dict.fromkeys(r.relevant_ids, 1) for r in first
                                                   if r.relevant_ids})


def qa_significance(results: dict[str, list[QuestionResult]]) -> list[dict]:
    """Paired tests between every two modes (``results[mode]``) on every measure both have,
    over all questions (see :func:`kzqa.bench.stats.significance`)."""
    from .stats import significance

    values = {mode: question_values(r) for mode, r in results.items()}
    measures = list(dict.fromkeys(m for v in values.values() for m in v))
    return significance(values, measures)


BINARY_MEASURES = {"answer_evidence": "answer_evidence", "first_sentence": "answer_first_sentence",
                   "all_parts": "answer_all_parts"}


def failed_measures(r: QuestionResult, k: int) -> list[str]:
    """The measures question ``r`` failed: a Recall@c with no relevant passage in the top c, an
    answer measure not met, a short answer not exactly right, an answerable question declined,
    an unanswerable one answered."""
    if not r.answerable:
        return [] if r.abstained else ["abstained_unanswerable"]
    failed = [f"Recall@{c}" for c in QA_CUTOFFS if c <= k and (r.rank is None or r.rank > c)]
    failed += [label for name, label in BINARY_MEASURES.items()
               if not getattr(r, name) and (name != "all_parts" or r.parts > 1)]
    if r.short_em is not None and r.short_em < 1:
        failed.append("short_em")
    if r.abstained:
        failed.append("wrongly_abstained")
    return failed


def failures(results: list[QuestionResult], mode: str, k: int) -> list[dict]:
    """One row per question that failed any measure (:func:`failed_measures`), worst first: no
    relevant passage found, then by how many measures failed."""
    rows = []
    for r in results:
        failed = failed_measures(r, k)
        if failed:
            rows.append({"id": r.id, "mode": mode, "question": r.question or r.query, "query": r.query,
                         "type": r.type, "lang": r.lang, "first_relevant_rank": r.rank, "status": r.status,
                         "quoted": r.quoted, "confidence": round(r.confidence, 4), "failed": failed})
    return sorted(rows, key=worst_first)


def worst_first(row: dict) -> tuple:
    """Sort key of failure rows, worst first: no relevant passage found, then more measures
    failed, then a later first relevant passage."""
    return row["first_relevant_rank"] is not None, -len(row["failed"]), -(row["first_relevant_rank"] or 0)


# ---------------------------------------------------------------- BEIR


@dataclass
class BeirData:
    corpus: dict[str, dict]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(folder: str | Path, split: str = "test") -> BeirData:
    """corpus.jsonl, queries.jsonl and qrels/<split>.tsv of a BEIR folder (only judged queries)."""
    folder = Path(folder)
    for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (folder / name).exists():
            raise EvalError(f"{folder}: not a BEIR folder ({name} is missing)")
    corpus = {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                corpus[str(d["_id"])] = {"title": d.get("title") or "", "text": d.get("text") or ""}
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / f"qrels/{split}.tsv", encoding="utf-8") as f:
        for n, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if n == 0 and parts[0] == "query-id" or len(parts) < 3:
                continue
            if int(parts[2]) > 0:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    queries = {}
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                if str(q["_id"]) in qrels:
                    queries[str(q["_id"])] = q["text"]
    return BeirData(corpus, queries, {q: r for q, r in qrels.items() if q in queries})


def beir_engine(data: BeirData, modes: list[str], progress: bool = False) -> tuple[Engine, dict]:
    """An in-memory engine over the BEIR corpus: one passage per document (title + text)."""
    from ..channels.embedcache import EmbeddingCache
    from ..channels.encoders import DEFAULT_MODEL, MULTILINGUAL_MODEL, get_encoder
    from ..channels.lexical import LexicalIndex
    from ..ingest.corpus import Document, Section
    from ..ingest.passages import Passage
    from ..stores.building import stats_of
    from ..stores.files import FileStore
    from ..stores.filewrite import faiss_index
    from ..stores.manifest import DENSE, LEXICAL, MULTILINGUAL

    ids = list(data.corpus)
    texts = [f"{d['title']} {d['text']}".strip() for d in data.corpus.values()]
    passages = [Passage(i, i, data.corpus[i]["title"], "", t, 0, len(t)) for i, t in zip(ids, texts)]
    documents = {i: Document(i, i, t, [Section("", 0, len(t))], data.corpus[i]["title"])
                 for i, t in zip(ids, texts)}
    needs = set(modes) | ({DENSE, LEXICAL} if "hybrid" in modes else set())
    encoders, vectors, timing = {}, {}, {}
    for channel, model in ((DENSE, DEFAULT_MODEL), (MULTILINGUAL, MULTILINGUAL_MODEL)):
        if channel in needs:
            encoders[channel] = get_encoder(model)
            t0 = time.perf_counter()
            vecs, fresh = EmbeddingCache(cache_dir() / "embeddings", encoders[channel]).embed(texts, progress)
            embedded = int(fresh.sum())
            seconds = time.perf_counter() - t0
            timing[channel] = {"embedded": embedded, "cached": len(texts) - embedded,
                               "seconds": round(seconds, 2),
                               "docs_per_s": round(embedded / seconds, 1) if embedded else None}
            vectors[channel] = faiss_index(vecs, "Flat")
    t0 = time.perf_counter()
    lexical = LexicalIndex.build(texts) if LEXICAL in needs else None
    if lexical:
        timing[LEXICAL] = {"seconds": round(time.perf_counter() - t0, 2)}
    store = FileStore(Path("."), {"channels": {}}, documents, passages, vectors,
                      {c: np.zeros((0, encoders[c].dim), np.float32) for c in encoders}, lexical,
                      stats_of(list(documents.values()), passages))
    return Engine(store, encoders), timing


def recall_curve(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]], depth: int = 100,
                 any_relevant: bool = False) -> list[float]:
    """Mean recall at 1 … ``depth`` over the judged queries: the share of each query's relevant
    documents in its top c (``any_relevant``: 1 when one of them is, as QA's Recall@k)."""
    curve = np.zeros(depth)
    for qid, relevant in qrels.items():
        found = np.array([d in relevant for d in rankings.get(qid, [])[:depth]] + [False] * depth)[:depth]
        hits = np.cumsum(found)
        curve += (hits > 0) if any_relevant else hits / max(1, len(relevant))
    return [round(float(v), 4) for v in curve / max(1, len(qrels))]


def beir_figures(values: dict[str, dict[str, float]], latencies: list[float] | None) -> dict:
    """A system's means with their intervals (and its search latency, when kzqa ran it)."""
    from .stats import interval

    out: dict = {m: round(float(np.mean(list(v.values()))), 4) for m, v in values.items()}
    ci = {m: interval(list(v.values())) for m, v in values.items()}
    if latencies:
        out.update({f"search_ms_{k}": v for k, v in percentiles(latencies).items()})
        ci["search_ms_p50"] = interval(latencies, _p50, digits=2)
        ci["search_ms_p95"] = interval(latencies, _p95, digits=2)
    out["ci95"] = ci
    return out


def run_beir(folder: str | Path, modes: list[str], split: str = "test", k: int = 100,
             progress: bool = False, runs: list[Path] | None = None, run_out: Path | None = None) -> dict:
    """nDCG@10, MRR@10 and Recall@``k`` (ranx, per query) with 95% intervals, for each of kzqa's
    ``modes`` and each external TREC run of ``runs`` (named by file name), scored against the
    same qrels; pairwise significance between all of them; recall curves to 100. ``run_out``:
    each mode's ranking is written there as ``<mode>.trec``, and the judged qrels as ``qrels.trec``."""
    from tqdm.auto import tqdm

    from . import trec

    started = time.perf_counter()
    data = load_beir(folder, split)
    rankings: dict[str, dict[str, list[str]]] = {}
    latencies: dict[str, list[float]] = {}
    timing: dict = {}
    models: dict[str, str] = {}
    if modes:
        engine, timing = beir_engine(data, modes, progress)
        models = {c: e.fingerprint() for c, e in engine.encoders.items()}
        for mode in modes:
            rankings[mode], latencies[mode] = {}, []
            for qid, text in tqdm(data.queries.items(), desc=f"beir {mode}", disable=not progress, unit="q"):
                t0 = time.perf_counter()
                hits = engine.search(text, k=k, mode=mode)
                latencies[mode].append((time.perf_counter() - t0) * 1000)
                rankings[mode][qid] = [h.passage_id for h in hits]
            if run_out is not None:
                trec.write_run(Path(run_out) / f"{mode}.trec", rankings[mode], f"kzqa-{mode}")
        if run_out is not None:
            trec.write_qrels(Path(run_out) / "qrels.trec", data.qrels)
    for path in runs or []:
        name = Path(path).name
        if name in rankings:
            raise EvalError(f"two systems named {name}: rename one of the run files")
        external = trec.ranked(trec.read_run(path))
        if not set(external) & set(data.qrels):
            raise EvalError(f"{path}: none of its query ids is judged in {folder} ({split} split)")
        rankings[name] = external
    metrics = ["ndcg@10", "mrr@10", f"recall@{k}"]
    values = {}
    for name, ranking in rankings.items():
        run = {qid: rank_scores(docs[:k]) for qid, docs in ranking.items()}
        per_query = _ranx_per_query(data.qrels, run, metrics)
        values[name] = {_label(m): {q: per_query[q][m] for q in per_query} for m in metrics}
    from .stats import significance

    results = {name: beir_figures(values[name], latencies.get(name)) for name in rankings}
    for name in rankings:
        results[name]["source"] = "kzqa" if name in latencies else "run file"
    return {"kind": "beir", "source": str(folder), "split": split, "documents": len(data.corpus),
            "queries": len(data.queries), "judgements": sum(len(r) for r in data.qrels.values()),
            "modes": results, "significance": significance(values, [_label(m) for m in metrics]),
            "recall_curve": {name: recall_curve(r, data.qrels) for name, r in rankings.items()},
            "latencies_ms": {name: [round(v, 2) for v in ms] for name, ms in latencies.items()},
            "embedding": timing, "models": models, "seconds": round(time.perf_counter() - started, 1),
            **environment()}


def provenance(command: str, engine: Engine | None = None, beir_folder: str | Path | None = None,
               split: str = "test") -> dict:
    """What a report needs to be reproduced: the date, kzqa's version and git commit, the index
    manifest's sha256 (of its canonical JSON) or the BEIR files' sha256, the models' fingerprints,
    the machine, and the exact ``command``."""
    import hashlib
    import subprocess

    from .._version import __version__
    from ..channels.checksums import known_sha256

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = commit and subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                          capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, False
    out: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "kzqa": __version__,
                 "git_commit": f"{commit}{' (uncommitted changes)' if dirty else ''}" if commit else None,
                 "command": command, "machine": machine()}
    if engine is not None:
        if engine.manifest.get("channels"):
            canonical = json.dumps(engine.manifest, sort_keys=True, ensure_ascii=False).encode("utf-8")
            out["index_manifest_sha256"] = hashlib.sha256(canonical).hexdigest()
        out["models"] = {c: e.fingerprint() for c, e in engine.encoders.items()}
    if beir_folder is not None:
        folder = Path(beir_folder)
        out["beir_files_sha256"] = {name: known_sha256(folder / name)
                                    for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv")}
    return out


def machine() -> dict:
    """Cores, CPU model, OS and Python of this machine."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


def environment() -> dict:
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}


# ---------------------------------------------------------------- tables


QA_COLUMNS = ["questions", "Recall@1", "Recall@5", "MRR@10", "answer_evidence", "answer_first_sentence",
              "answer_all_parts", "mean_quotes", "short_em", "short_f1", "abstained_unanswerable",
              "wrongly_abstained", "ece", "confident_wrong", "search_ms_p95", "ask_ms_p95"]
QA_HEADERS = ["group", "n", "R@1", "R@5", "MRR@10", "ans.evid", "first", "all parts", "quotes", "short EM",
              "short F1", "abst.unans", "abst.ans", "ECE", "conf.wrong", "search p95", "ask p95 ms"]


def cell_text(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if value <= 1.0 else f"{value:.2f}" if value < 10 else f"{value:.1f}"
    return str(value)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell_text(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def with_interval(figures: dict, column: str) -> str | None:
    """A table cell: the figure and its 95% interval, ``0.896 [0.851, 0.938]``."""
    value = figures.get(column)
    if value is None:
        return None
    ci = (figures.get("ci95") or {}).get(column)
    if not ci or ci[0] == ci[1]:
        return cell_text(value)
    return f"{cell_text(value)} [{cell_text(ci[0])}, {cell_text(ci[1])}]"


def qa_rows(report: dict) -> tuple[list[str], list[list]]:
    """The QA table of one mode: headers and rows (group, n, then each figure with its interval)."""
    rows = [[group, figures.get("questions")] + [with_interval(figures, c) for c in QA_COLUMNS[1:]]
            for group, figures in report["groups"].items()]
    return QA_HEADERS, rows


def qa_table(report: dict) -> str:
    return markdown_table(*qa_rows(report))


def beir_rows(report: dict, published: dict[str, float] | None = None) -> tuple[list[str], list[list]]:
    """The BEIR table: a row per system (kzqa's modes, then run files) with intervals."""
    k_key = next(k for k in next(iter(report["modes"].values())) if k.startswith("Recall@"))
    headers = ["system", "nDCG@10", "MRR@10", k_key, "search p50 ms", "p95 ms"]
    rows = []
    for mode, f in report["modes"].items():
        rows.append([mode] + [with_interval(f, c) for c in ("nDCG@10", "MRR@10", k_key, "search_ms_p50",
                                                               "search_ms_p95")])
    if published:
        headers.append("published nDCG@10")
        for row in rows:
            row.append(published.get(row[0]))
    return headers, rows


def beir_table(report: dict, published: dict[str, float] | None = None) -> str:
    return markdown_table(*beir_rows(report, published))


def significance_rows(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Pairs × measures: the difference of means (a − b), its Holm-corrected p, and * when
    p < 0.05."""
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    pairs = list(dict.fromkeys((r["a"], r["b"]) for r in rows))
    cell = {(r["a"], r["b"], r["metric"]): f"{r['delta']:+.3f} ({p_text(r['p'])}){' *' if r['significant'] else ''}"
            for r in rows}
    return ["a", "b"] + metrics, [[a, b] + [cell.get((a, b, m)) for m in metrics] for a, b in pairs]


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p {p:.3f}"


def significance_table(rows: list[dict]) -> str:
    if not rows:
        return "(one system: nothing to compare)"
    return markdown_table(*significance_rows(rows))
