"""The fast-loading tokenizer of the multilingual question encoder gives the ids tokenizers gives."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT

from kzqa.channels.unigram import write_sorted_vocab

FOLDER = ROOT / "embeddings" / "multilingual.onnx"
ODD = ["", " ", "   ", "  leading", "trailing  ", "a  b   c", "tab\there", "new\nline", "▁", "▁▁x", "<unk>", "<s>",
       "😀 emoji 🇰🇿", "𓀀 hieroglyph", "\ue000 private", "中国和哈萨克斯坦", "Қазақстан мен Қытай", "Казахстан и Китай",
       "ＦＵＬＬ　ｗｉｄｔｈ", "x" * 3000, "97 meters", "Nur-Sultan (Astana)", "e.g. U.S.A.", "l'été", "İstanbul"]


@pytest.fixture(scope="module")
def e5():
    from kzqa.channels.e5onnx import OnnxE5

    return OnnxE5(FOLDER, quantized="q4", long_text="window")


def texts() -> list[str]:
    out = list(ODD)
    for path in sorted((ROOT / "benchmarks" / "qa").glob("*.jsonl")):
        out += [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for path in sorted((ROOT / "corpus").glob("*.txt")):
        paragraphs = [p for p in path.read_text(encoding="utf-8").split("\n") if p.strip()]
        out += paragraphs + [s for p in paragraphs for s in p.split(". ")]
    return out


def test_the_sorted_vocabulary_gives_the_same_ids_as_tokenizers(e5):
    assert e5._fast is not None, "the shipped export has no vocab.sorted.bin"
    every = texts()
    assert len(every) > 1500
    for prefix in ("query: ", "passage: ", ""):
        batch = [prefix + t for t in every]
        fast, slow = e5._content_fast(batch), e5._content_tokenizers(batch)
        wrong = [(t, f, s) for t, f, s in zip(batch, fast, slow) if f != s]
        assert wrong == [], wrong[:3]


def test_small_calls_use_it_and_large_ones_tokenizers(e5):
    from kzqa.channels.e5onnx import FAST_MAX_TEXTS

    fresh = type(e5)(FOLDER, quantized="q4", long_text="window")
    fresh.encode_queries(["How tall is the Bayterek tower?"])
    assert "_tok" not in vars(fresh)  # a question never builds tokenizers' model
    fresh.count_tokens_many(["a passage"] * (FAST_MAX_TEXTS + 1))
    assert "_tok" in vars(fresh)


def test_the_file_is_made_the_same_way_every_time_and_only_from_a_unigram_model(tmp_path):
    write_sorted_vocab(FOLDER / "tokenizer.json", tmp_path / "v.bin")
    assert (tmp_path / "v.bin").read_bytes() == (FOLDER / "vocab.sorted.bin").read_bytes()
    with pytest.raises(ValueError, match="Unigram"):
        write_sorted_vocab(ROOT / "embeddings" / "dense.onnx" / "tokenizer.json", tmp_path / "w.bin")
