"""Evaluation reports as people read them: the Markdown of ``kzqa eval --out`` and the one-file
HTML of ``--report``.

``document`` is what ``kzqa eval --json`` prints: ``{"reports": [...], "significance": [...],
"provenance": {...}}`` (:func:`as_document` makes one from a single report too). The HTML file is
self-contained: its plots are PNG images (matplotlib) embedded as ``data:`` URLs, its style is
inline, and it loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import evaluate as ev

WORST_PER_TYPE = 20


def as_document(document: dict) -> dict:
    """``{"reports": [...], "significance", "provenance"}`` whether ``document`` holds one report
    (the figures at its top level) or several."""
    if "reports" in document:
        return document
    return {"reports": [document], "significance": document.get("significance", []),
            "provenance": document.get("provenance", {})}


# ---------------------------------------------------------------- Markdown

SIGNIFICANCE_TITLE = "Significance (Holm-corrected paired randomisation tests; * p < 0.05):"


def qa_text(document: dict, followups: int = 0, as_asked: bool = False) -> str:
    """The tables ``kzqa eval`` prints for a QA file: one per mode, a line on follow-ups (when
    ``followups`` items carry a history), and the significance table (two modes or more)."""
    document = as_document(document)
    parts = [f"mode: {r['mode']}\n\n{ev.qa_table(r)}" for r in document["reports"]]
    if followups:
        parts.append(f"{followups} items carry a history: searched as typed (--as-asked)." if as_asked else
                     f"{followups} items carry a history: resolved with their conversation's topic, as the chat "
                     "does (--as-asked: as typed).")
    if len(document["reports"]) > 1:
        parts += [SIGNIFICANCE_TITLE, ev.significance_table(document["significance"])]
    return "\n\n".join(parts)


def beir_text(report: dict) -> str:
    """The table ``kzqa eval --beir`` prints, and the significance table."""
    return "\n\n".join([ev.beir_table(report), SIGNIFICANCE_TITLE, ev.significance_table(report["significance"])])



def provenance_lines(prov: dict) -> list[str]:
    """The reproducibility header as Markdown bullets."""
    m = prov.get("machine", {})
    lines = [f"- date: {prov.get('date')}",
             f"- kzqa {prov.get('kzqa')}, git commit {prov.get('git_commit') or 'unknown'}",
             f"- command: `{prov.get('command')}`",
             f"- machine: {m.get('cores')} cores, {m.get('cpu')}, {m.get('os')}, Python {m.get('python')}"]
    if prov.get("index_manifest_sha256"):
        lines.append(f"- index manifest sha256: {prov['index_manifest_sha256']}")
    for name, digest in (prov.get("beir_files_sha256") or {}).items():
        lines.append(f"- {name} sha256: {digest}")
    for channel, fingerprint in (prov.get("models") or {}).items():
        lines.append(f"- model {channel}: {fingerprint}")
    return lines


def markdown(document: dict, tables: str, failures: list[dict] | None = None) -> str:
    """The Markdown report: the reproducibility header, ``tables`` (as printed), and the worst
    failures of each question type when ``failures`` is given (QA)."""
    parts = ["# kzqa eval", "", *provenance_lines(as_document(document)["provenance"]), "", tables]
    if failures is not None:
        parts += ["", "## Worst failures by question type", "", failures_markdown(failures)]
    return "\n".join(parts) + "\n"


def worst_by_type(failures: list[dict], per_type: int = WORST_PER_TYPE) -> dict[str, list[dict]]:
    """The failure rows (worst first, as :func:`kzqa.bench.evaluate.failures` orders them)
    grouped by question type, at most ``per_type`` each."""
    groups: dict[str, list[dict]] = {}
    for row in failures:
        kept = groups.setdefault(row["type"], [])
        if len(kept) < per_type:
            kept.append(row)
    return dict(sorted(groups.items()))


def failures_markdown(failures: list[dict], per_type: int = WORST_PER_TYPE) -> str:
    """The worst failures of each question type as Markdown tables."""
    if not failures:
        return "No question failed a measure."
    parts = []
    for kind, rows in worst_by_type(failures, per_type).items():
        parts += [f"### {kind}", "", ev.markdown_table(
            ["mode", "id", "question", "first relevant rank", "status", "confidence", "failed"],
            [[r["mode"], r["id"], _clip(r["question"]), r["first_relevant_rank"] or "none", r["status"],
              r["confidence"], ", ".join(r["failed"])] for r in rows]), ""]
    return "\n".join(parts).rstrip()


def _clip(text: str, width: int = 90) -> str:
    text = " ".join(text.split()).replace("|", "/")
    return text if len(text) <= width else text[:width - 1] + "…"


# ---------------------------------------------------------------- plots


def _png(draw: Callable, width: float = 7.0, height: float = 3.6) -> str:
    """A figure drawn by ``draw(ax)`` as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    try:
        draw(ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def recall_curves_png(curves: dict[str, list[float]], label: str) -> str:
    def draw(ax):
        for name, curve in curves.items():
            ax.plot(range(1, len(curve) + 1), curve, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("k (passages retrieved)")
        ax.set_ylabel(label)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
    return _png(draw)


def bars_png(groups: dict[str, dict[str, dict]], measure: str) -> str:
    """Bars of ``measure`` per group (x) and system (colour), with their 95% intervals."""
    names = list(groups)
    labels = list(dict.fromkeys(g for figures in groups.values() for g in figures))

    def draw(ax):
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            xs, ys, low, high = [], [], [], []
            for j, g in enumerate(labels):
                f = groups[name].get(g, {})
                if f.get(measure) is None:
                    continue
                lo, hi = (f.get("ci95") or {}).get(measure) or (f[measure], f[measure])
                xs.append(j + i * width)
                ys.append(f[measure])
                low.append(max(0.0, f[measure] - lo))
                high.append(max(0.0, hi - f[measure]))
            ax.bar(xs, ys, width, yerr=[low, high], capsize=3, label=name)
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(labels))])
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(measure)
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=8)
    return _png(draw, height=4.0)


def reliability_png(tables: dict[str, list[dict]]) -> str:
    def draw(ax):
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
        for name, table in tables.items():
            ax.plot([b["confidence"] for b in table], [b["correct"] for b in table], marker="o", label=name)
        ax.set_xlabel("answer confidence (mean per bin)")
        ax.set_ylabel("share of answers quoting the evidence")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
    return _png(draw, width=5.5, height=4.5)


def latency_png(latencies: dict[str, list[float]]) -> str:
    def draw(ax):
        names = list(latencies)
        ax.boxplot([latencies[n] for n in names], showfliers=True)
        ax.set_xticks(range(1, len(names) + 1))
        ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("milliseconds")
        ax.set_yscale("log")
    return _png(draw)


def significance_png(rows: list[dict]) -> str:
    """Holm-corrected p of every pair (rows) on every measure (columns); * marks p < 0.05."""
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    pairs = list(dict.fromkeys((r["a"], r["b"]) for r in rows))
    grid = np.full((len(pairs), len(metrics)), np.nan)
    for r in rows:
        grid[pairs.index((r["a"], r["b"])), metrics.index(r["metric"])] = r["p"]

    def draw(ax):
        image = ax.imshow(grid, cmap="viridis_r", vmin=0, vmax=1, aspect="auto")
        for i in range(len(pairs)):
            for j in range(len(metrics)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.3f}{'*' if grid[i, j] < 0.05 else ''}", ha="center", va="center",
                            fontsize=7, color="black" if grid[i, j] < 0.5 else "white")
        ax.set_xticks(range(len(metrics)))
        ax.set_xticklabels(metrics, rotation=35, ha="right", fontsize=7)
        ax.set_yticks(range(len(pairs)))
        ax.set_yticklabels([f"{a} vs {b}" for a, b in pairs], fontsize=8)
        ax.figure.colorbar(image, ax=ax, label="p (Holm)")
    return _png(draw, width=8.0, height=1.2 + 0.45 * len(pairs))


# ---------------------------------------------------------------- HTML


def html_table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th scope='col'>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(ev.cell_text(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(png: str, alt: str, caption: str) -> str:
    return (f"<figure><img src='data:image/png;base64,{png}' alt='{html.escape(alt, quote=True)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


STYLE = """body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}th,td{border:1px solid #bbb;padding:.25rem .5rem;
text-align:left}th{background:#eee}figure{margin:1.5rem 0}img{max-width:100%}figcaption{font-size:.9rem;color:#333}
code{background:#f3f3f3;padding:0 .2rem}"""


def write_html(document: dict, path: str | Path, failures: list[dict] | None = None) -> Path:
    """Write the report of ``document`` (QA or BEIR, one system or several) to ``path`` as one
    self-contained HTML file: the reproducibility header, the tables with intervals, recall@k
    curves, bars per question type and language (QA), a reliability diagram (QA), the latency
    distribution, the significance matrix and table, and the worst failures (QA)."""
    document = as_document(document)
    reports, rows = document["reports"], document.get("significance") or []
    beir = reports[0].get("kind") == "beir"
    prov = document.get("provenance") or {}
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>kzqa eval — {html.escape(str(reports[0].get('source')))}</title>",
             f"<style>{STYLE}</style></head><body><main>",
             f"<h1>kzqa eval: {html.escape(str(reports[0].get('source')))}</h1>",
             "<h2>How this was made</h2><ul>" + "".join(
                 f"<li>{html.escape(line[2:])}</li>" for line in provenance_lines(prov)) + "</ul>"]
    if beir:
        report = reports[0]
        parts += [f"<h2>Figures (95% bootstrap intervals over {report['queries']} queries)</h2>",
                  html_table(*ev.beir_rows(report)),
                  "<h2>Recall@k</h2>", _figure(recall_curves_png(report["recall_curve"], "Recall@k"),
                                                "Recall at k from 1 to 100 for each system",
                                                "Mean recall of the judged documents in the top k, per system.")]
        latencies = report.get("latencies_ms") or {}
    else:
        for report in reports:
            note = (f" {report['followups_resolved']} follow-ups were searched with their conversation's topic, "
                    "as the chat does." if report.get("followups_resolved") else "")
            parts += [f"<h2>Mode {html.escape(report['mode'])}: figures (95% bootstrap intervals)</h2>",
                      f"<p>{report['groups']['all']['questions']} questions.{html.escape(note)}</p>",
                      html_table(*ev.qa_rows(report))]
        curves = {r["mode"]: r["recall_curve"] for r in reports if r.get("recall_curve")}
        parts += ["<h2>Recall@k</h2>", _figure(recall_curves_png(curves, "Recall@k (any relevant passage)"),
                                               "Recall at k for each mode",
                                               "Share of answerable questions with a passage holding the evidence "
                                               "in the top k.")]
        for key, title in (("type", "question type"), ("lang", "language")):
            groups = {r["mode"]: {g.split("=", 1)[1]: f for g, f in r["groups"].items() if g.startswith(key + "=")}
                      for r in reports}
            for measure in ("Recall@5", "answer_evidence"):
                parts.append(_figure(bars_png(groups, measure), f"{measure} per {title} and mode with 95% intervals",
                                     f"{measure} per {title}; error bars are 95% bootstrap intervals."))
        parts += ["<h2>Calibration</h2>", _figure(
            reliability_png({r["mode"]: r.get("reliability") or [] for r in reports}),
            "Reliability diagram: answer confidence against the share of correct answers",
            "Answers given, in ten confidence bins: a calibrated system lies on the diagonal.")]
        latencies = {}
        for r in reports:
            latencies[f"{r['mode']} search"] = [q["search_ms"] for q in r["questions"]]
            latencies[f"{r['mode']} ask"] = [q["ask_ms"] for q in r["questions"]]
    if latencies:
        parts += ["<h2>Latency</h2>", _figure(latency_png(latencies), "Latency distribution per system",
                                              "Milliseconds per question (box: quartiles; whiskers: 1.5 IQR).")]
    parts.append("<h2>Significance</h2>")
    if rows:
        parts += [_figure(significance_png(rows), "Holm-corrected p-values of every pair on every measure",
                          "Paired randomisation tests, Holm-corrected per measure; * marks p < 0.05."),
                  html_table(*ev.significance_rows(rows))]
    else:
        parts.append("<p>One system: nothing to compare.</p>")
    if failures is not None:
        parts.append("<h2>Worst failures by question type</h2>")
        for kind, kept in worst_by_type(failures).items():
            parts += [f"<h3>{html.escape(kind)}</h3>", html_table(
                ["mode", "id", "question", "first relevant rank", "status", "confidence", "failed", "quoted"],
                [[r["mode"], r["id"], r["question"], r["first_relevant_rank"] or "none", r["status"], r["confidence"],
                  ", ".join(r["failed"]), " / ".join(r["quoted"])[:300]] for r in kept])]
    parts.append("</main></body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
