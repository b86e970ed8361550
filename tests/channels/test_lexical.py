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


def test_the_saved_index_scores_as_bm25s_does_without_importing_it(documents, tmp_path):
    """SavedBM25 (NumPy only) against bm25s.BM25.load on the same files: every corpus sentence as
    a query, with and without a document mask; and a fresh process that asks never imports bm25s."""
    import subprocess
    import sys

    import numpy as np
    from conftest import ROOT

    from kzqa.channels.lexical import LexicalIndex, SavedBM25

    texts = [d.text[s:e] for d in documents.values() for s, e in sentence_spans(d.text)]
    LexicalIndex.build(texts[:400]).save(tmp_path)
    ours, theirs = SavedBM25.load(tmp_path), bm25s.BM25.load(str(tmp_path), show_progress=False)
    mask = (np.arange(ours.scores["num_docs"]) % 3 == 0).astype(np.float32)
    for query in tokenize(texts[::3]):
        terms = [t for t in query if t in theirs.vocab_dict]
        if not terms:
            continue
        for weights in (None, mask):
            assert np.allclose(ours.get_scores(terms, weights), theirs.get_scores(terms, weight_mask=weights),
                               rtol=0, atol=1e-6)
    probe = "import sys, kzqa; kzqa.load().ask('How tall is the Bayterek tower?'); print('bm25s' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"
