"""TREC run and qrels files: kzqa's rankings out, other systems' rankings in.

A run file has one line per retrieved document, ``qid Q0 docid rank score tag``; a qrels file
``qid 0 docid relevance``. Both are what ``trec_eval``, ``ir_measures`` and ranx read. kzqa
writes each ranking's score as ``len(ranking) - rank + 1``: tools that sort by score (and break
ties by document id, as trec_eval does) then keep kzqa's order exactly, which its fused scores,
which can tie, would not guarantee. So ``read_run(write_run(run))`` gives back the same order,
and scoring the written files with any of those tools reproduces kzqa's figures.
"""

from __future__ import annotations

from pathlib import Path

Ranking = dict[str, list[str]]  # query id → document ids, best first


class RunFileError(ValueError):
    """A file that is not a TREC run or qrels file (the message names the file and line)."""


def rank_scores(docs: list[str]) -> dict[str, float]:
    """A ranking's scores as kzqa writes and scores them: ``len(docs) - rank + 1`` (distinct, so
    no tool can reorder ties)."""
    return {doc: float(len(docs) - i) for i, doc in enumerate(docs)}


def write_run(path: str | Path, rankings: Ranking, tag: str) -> Path:
    """Write ``rankings`` as a TREC run tagged ``tag`` (queries with no documents are left out)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = "".join(tag.split()) or "kzqa"
    with open(path, "w", encoding="utf-8") as f:
        for qid, docs in rankings.items():
            for rank, (doc, score) in enumerate(rank_scores(docs).items(), 1):
                f.write(f"{qid} Q0 {doc} {rank} {score:g} {tag}\n")
    return path


def write_qrels(path: str | Path, qrels: dict[str, dict[str, int]]) -> Path:
    """Write judgements ``{qid: {docid: relevance}}`` as a TREC qrels file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for qid, docs in qrels.items():
            for doc, relevance in docs.items():
                f.write(f"{qid} 0 {doc} {relevance}\n")
    return path


def read_run(path: str | Path) -> dict[str, dict[str, float]]:
    """A TREC run as ``{qid: {docid: score}}``. RunFileError names the first malformed line (not
    six fields, a score that is not a number, a document listed twice for one query)."""
    path = Path(path)
    run: dict[str, dict[str, float]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFileError(f"cannot read run file {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 6:
            raise RunFileError(f"{path}, line {number}: expected 'qid Q0 docid rank score tag' "
                               f"(6 fields), found {len(fields)}")
        qid, _, doc, _, score, _ = fields
        try:
            value = float(score)
        except ValueError:
            raise RunFileError(f"{path}, line {number}: the score {score!r} is not a number") from None
        if doc in run.setdefault(qid, {}):
            raise RunFileError(f"{path}, line {number}: document {doc} listed twice for query {qid}")
        run[qid][doc] = value
    if not run:
        raise RunFileError(f"{path}: an empty run file")
    return run


def ranked(run: dict[str, dict[str, float]]) -> Ranking:
    """A run's documents per query, best first: by score, ties by document id descending (as
    trec_eval orders them)."""
    return {qid: [d for d, _ in sorted(docs.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]
            for qid, docs in run.items()}
