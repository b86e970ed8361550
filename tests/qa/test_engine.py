"""What an engine does before its first question: a one-off question loads only what it needs; a
server's warm-up loads the rest (fresh processes, so nothing is already imported)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

ASK = "import sys, kzqa; e = kzqa.load(); e.ask('How tall is the Bayterek tower?'); "


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          timeout=300)
    return done.stdout.strip().splitlines()[-1]


def test_an_english_question_never_waits_for_the_chinese_word_list():
    assert _run(ASK + "print('jieba' in sys.modules)") == "False"


def test_a_servers_warm_up_loads_the_chinese_word_list_and_runs_the_models():
    code = ("import sys, threading, kzqa; from kzqa.channels import vocabulary; e = kzqa.load(); e.warm_up(); "
            "[t.join() for t in threading.enumerate() if t.name == 'kzqa-jieba']; "
            "print(vocabulary._jieba.cache_info().currsize == 1 and 'jieba' in sys.modules)")
    assert _run(code) == "True"
