"""The BM25 tokenizer equals bm25s's own; the index ranks like bm25s."""

import random

import bm25s
import pytest

from kzqa.channels.lexical import _stemmer, tokenize
from kzqa.ingest.passages import sentence_spans


def _bm25s_tokenize(texts):
    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)


def test_tokenize_equals_bm25s_on_the_corpus_sentences(documents):
    sentences = [d.text[s:e] for d in documents.values() for s, e in sentence_spans(d.text)]
    assert len(sentences) > 100
    assert tokenize(sentences) == _bm25s_tokenize(sentences)
    assert [tokenize([s])[0] for s in sentences[:50]] == _bm25s_tokenize(sentences[:50])


@pytest.mark.parametrize("seed", range(5))
def test_tokenize_equals_bm25s_on_random_text(seed):
    rng = random.Random(seed)
    alphabet = "ab cdÉé ΣσЖж中文 _1'-.\n\t" + "The and of running RUNS ran"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(200)]
    texts += ["", "   ", "the and of", "A"]
    assert tokenize(texts) == _bm25s_tokenize(texts)
