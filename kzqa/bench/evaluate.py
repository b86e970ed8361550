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
    ece, table = 0.0, []
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap = abs(conf[inside].mean() - ok[inside].mean())
            ece += inside.mean() * gap
            table.append({"bin": [b / bins, (b + 1) / bins], "n": int(inside.sum()),
                          "confidence": round(float(conf[inside].mean()), 4),
                          "correct": round(float(ok[inside].mean()), 4)})
    return round(float(ece), 4), table


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
    rank: int | None  # 1-based rank of the first relevant passage within k, None if absent
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
           ask_k: int = 5, resolve=None, progress: bool = False) -> list[QuestionResult]:
    """Search (top ``k``) and ask (``ask_k`` passages) every question, timing both.

    ``resolve(history, question) -> query`` rewrites follow-up questions (None: as asked)."""
    from tqdm.auto import tqdm

    results, qrels, run = [], {}, {}
    passages = normalised_passages(engine)
    for item in tqdm(items, desc=f"eval {mode}", disable=not progress, unit="q"):
        query = resolve(list(item.history), item.question) if resolve else item.question
        t0 = time.perf_counter()
        hits = engine.search(query, k=k, mode=mode)
        t1 = time.perf_counter()
        answer = engine.ask(query, k=ask_k, mode=mode)
        t2 = time.perf_counter()
        relevant = relevant_passages(passages, item) if item.answerable else set()
        rank = next((h.rank for h in hits if h.passage_id in relevant), None)
        if relevant:
            qrels[item.id] = {pid: 1 for pid in relevant}
            run[item.id] = {h.passage_id: float(len(hits) - i) for i, h in enumerate(hits)}
        short = answer.short  # set only on answers given
        scored = short_scored(item)
        results.append(QuestionResult(
            item.id, item.type, item.lang, item.answerable, rank, len(relevant), answer.abstained,
            (t1 - t0) * 1000, (t2 - t1) * 1000, query=query, status=answer.status,
            answer_evidence=quotes_evidence(answer, item), first_sentence=first_quote_evidence(answer, item),
            all_parts=all_parts_quoted(answer, item), parts=max(1, len(item.parts)),
            quotes=0 if answer.abstained else len(answer.quotes), confidence=float(answer.confidence),
            short=short, short_em=squad_em(short, item.answer) if scored else None,
            short_f1=squad_f1(short, item.answer) if scored else None, kind=item.kind))
    per_query = _ranx_per_query(qrels, run, _qa_metric_names(k))
    for r in results:
        if r.answerable:  # answerable but no passage holds the evidence: every metric is 0
            r.metrics = per_query.get(r.id, {m: 0.0 for m in _qa_metric_names(k)})
    return results


def _label(metric: str) -> str:
    name, cut = metric.split("@")
    return {"hit_rate": "Recall", "mrr": "MRR", "ndcg": "nDCG"}[name] + f"@{cut}"


def summarise(results: list[QuestionResult]) -> dict:
    """Figures for one group of questions (means of the per-question values)."""
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    out: dict = {"questions": len(results), "answerable": len(answerable), "unanswerable": len(unanswerable)}
    if answerable:
        for metric in answerable[0].metrics:
            out[_label(metric)] = round(float(np.mean([r.metrics[metric] for r in answerable])), 4)
        out["answer_evidence"] = round(float(np.mean([r.answer_evidence for r in answerable])), 4)
        out["answer_first_sentence"] = round(float(np.mean([r.first_sentence for r in answerable])), 4)
        multi = [r for r in answerable if r.parts > 1]
        if multi:
            out["answer_all_parts"] = round(float(np.mean([r.all_parts for r in multi])), 4)
        out["wrongly_abstained"] = round(float(np.mean([r.abstained for r in answerable])), 4)
        shorts = [r for r in answerable if r.short_f1 is not None]
        if shorts:
            out["short_em"] = round(float(np.mean([r.short_em for r in shorts])), 4)
            out["short_f1"] = round(float(np.mean([r.short_f1 for r in shorts])), 4)
    if unanswerable:
        out["abstained_unanswerable"] = round(float(np.mean([r.abstained for r in unanswerable])), 4)
    given = [r for r in results if not r.abstained]
    if given:
        out["mean_quotes"] = round(float(np.mean([r.quotes for r in given])), 3)
        correct = [r.answerable and r.answer_evidence for r in given]
        out["ece"], _ = calibration([r.confidence for r in given], correct)
        out["confident_wrong"] = sum(1 for r, ok in zip(given, correct) if r.confidence >= 0.9 and not ok)
    for what in ("search", "ask"):
        out.update({f"{what}_ms_{k}": v for k, v in percentiles([getattr(r, f"{what}_ms") for r in results]).items()})
    return out


def percentiles(ms: list[float]) -> dict:
    """``{"p50": …, "p95": …}`` of latencies in milliseconds, rounded to 0.01."""
    return {"p50": round(float(np.percentile(ms, 50)), 2), "p95": round(float(np.percentile(ms, 95)), 2)}


def qa_report(results: list[QuestionResult], mode: str, source: str, k: int) -> dict:
    groups = {"all": summarise(results)}
    for key in ("type", "lang", "kind"):
        for value in sorted({getattr(r, key) for r in results if getattr(r, key) is not None}):
            groups[f"{key}={value}"] = summarise([r for r in results if getattr(r, key) == value])
    given = [r for r in results if not r.abstained]
    _, reliability = calibration([r.confidence for r in given], [r.answerable and r.answer_evidence for r in given])
    return {"kind": "qa", "source": str(source), "mode": mode, "k": k, "groups": groups,
            "reliability": reliability, "questions": [r.__dict__ for r in results], **environment()}


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


def run_beir(folder: str | Path, modes: list[str], split: str = "test", k: int = 100,
             progress: bool = False) -> dict:
    """nDCG@10, MRR@10 and Recall@100 per mode (ranx), with timings and throughput."""
    from ranx import Qrels, Run, evaluate

    started = time.perf_counter()
    data = load_beir(folder, split)
    engine, timing = beir_engine(data, modes, progress)
    results = {}
    from tqdm.auto import tqdm

    for mode in modes:
        run, latencies = {}, []
        for qid, text in tqdm(data.queries.items(), desc=f"beir {mode}", disable=not progress, unit="q"):
            t0 = time.perf_counter()
            hits = engine.search(text, k=k, mode=mode)
            latencies.append((time.perf_counter() - t0) * 1000)
            run[qid] = {h.passage_id: float(len(hits) - i) for i, h in enumerate(hits)} or {"__none__": 0.0}
        scores = evaluate(Qrels(data.qrels), Run(run), ["ndcg@10", "mrr@10", f"recall@{k}"],
                          make_comparable=True)
        results[mode] = {"nDCG@10": round(float(scores["ndcg@10"]), 4),
                         "MRR@10": round(float(scores["mrr@10"]), 4),
                         f"Recall@{k}": round(float(scores[f"recall@{k}"]), 4),
                         **{f"search_ms_{k}": v for k, v in percentiles(latencies).items()}}
    return {"kind": "beir", "source": str(folder), "split": split, "documents": len(data.corpus),
            "queries": len(data.queries), "judgements": sum(len(r) for r in data.qrels.values()),
            "modes": results, "embedding": timing, "seconds": round(time.perf_counter() - started, 1),
            **environment()}


def environment() -> dict:
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}


# ---------------------------------------------------------------- tables


QA_COLUMNS = ["questions", "Recall@1", "Recall@5", "MRR@10", "answer_evidence", "answer_first_sentence",
              "answer_all_parts", "mean_quotes", "short_em", "short_f1", "abstained_unanswerable",
              "wrongly_abstained", "ece", "confident_wrong", "search_ms_p95", "ask_ms_p95"]
QA_HEADERS = ["group", "n", "R@1", "R@5", "MRR@10", "ans.evid", "first", "all parts", "quotes", "short EM",
              "short F1", "abst.unans", "abst.ans", "ECE", "conf.wrong", "search p95", "ask p95 ms"]


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if value <= 1.0 else f"{value:.2f}" if value < 10 else f"{value:.1f}"
    return str(value)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def qa_table(report: dict) -> str:
    rows = [[group] + [figures.get(c) for c in QA_COLUMNS] for group, figures in report["groups"].items()]
    return markdown_table(QA_HEADERS, rows)


def beir_table(report: dict, published: dict[str, float] | None = None) -> str:
    k_key = next(k for k in next(iter(report["modes"].values())) if k.startswith("Recall@"))
    headers = ["mode", "nDCG@10", "MRR@10", k_key, "search p50 ms", "p95 ms"]
    rows = []
    for mode, f in report["modes"].items():
        rows.append([mode, f["nDCG@10"], f["MRR@10"], f[k_key], f["search_ms_p50"], f["search_ms_p95"]])
    if published:
        headers.append("published nDCG@10")
        for row in rows:
            row.append(published.get(row[0]))
    return markdown_table(headers, rows)
