"""Glued words of PDF text are split in cleaning, with exact offsets, and real words are left alone."""

from __future__ import annotations

import pytest
from conftest import CORPUS, INSAMER

from kzqa.ingest.corpus import read_corpus
from kzqa.ingest.glued import repair_glued_words, split_token

SAMPLE = ("With 97 meters the tower marks the yearof Nur-Sultan becoming capital andsymbolizes the culture. "
          "The trade was second toRussia, beside the$30 billion deal. Payments in tenge, a roadmap-free "
          "transboundary river, AktobeMunaiGas and BalkhashLake stay as they are.")


def test_glued_words_are_split_with_exact_offsets():
    fixed, repairs = repair_glued_words(SAMPLE)
    assert [(r.token, r.words) for r in repairs] == [
        ("yearof", "year of"), ("andsymbolizes", "and symbolizes"), ("toRussia", "to Russia"), ("the$", "the $")]
    for r in repairs:
        assert fixed[r.start:r.end] == r.words and r.words.replace(" ", "") == r.token
    # deleting the one space inside each repair gives the input back, character for character
    restored, pos = [], 0
    for r in repairs:
        restored += [fixed[pos:r.start], r.words.replace(" ", "")]
        pos = r.end
    assert "".join(restored + [fixed[pos:]]) == SAMPLE
    assert "the yearof" not in fixed and "AktobeMunaiGas" in fixed and "BalkhashLake" in fixed


@pytest.mark.parametrize("token", ["tenge", "transboundary", "sinophobia", "beshbarmak", "kazakhstan", "arrest"])
def test_real_words_and_names_are_left_alone(token):
    assert split_token(token) is None


def test_text_without_glue_is_unchanged():
    text = "Kazakhstan and China signed a $30 billion deal in 2013."
    assert repair_glued_words(text) == (text, [])


def test_the_shipped_pdf_text_is_repaired_and_counted(tmp_path):
    (tmp_path / f"{INSAMER}.txt").write_bytes((CORPUS / f"{INSAMER}.txt").read_bytes())
    doc = read_corpus(tmp_path).documents[0]
    assert "the year of Nur-Sultan" in doc.text and "capital and symbolizes" in doc.text
    assert "yearof" not in doc.text and doc.repaired_words >= 15
    assert doc.to_dict()["repaired_words"] == doc.repaired_words
