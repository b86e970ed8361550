"""The corpus vocabulary in the multilingual model: content words, storage, and real mappings."""

from __future__ import annotations

import numpy as np
import pytest

from kzqa.channels.lexical import CorpusStats
from kzqa.channels.vocabulary import (
    MIN_COSINE,
    Vocabulary,
    content_words,
    map_words,
    vocabulary_words,
)
from kzqa.stores.manifest import MULTILINGUAL


@pytest.mark.parametrize("question, lang, expected", [
    ("Сколько граждан Китая живёт в Казахстане?", "ru", ["граждан", "Китая", "живёт", "Казахстане"]),
    ("Қытайда қанша қазақ тұрады?", "kk", ["Қытайда", "қазақ", "тұрады"]),
    ("有多少中国公民住在哈萨克斯坦?", "zh", ["中国", "公民", "哈萨克斯坦"]),
    ("2019年中国对哈萨克斯坦的CNPC投资", "zh", ["中国", "哈萨克斯坦", "CNPC", "投资"]),
])
def test_content_words_are_exact_pieces_without_stopwords(question, lang, expected):
    words = content_words(question, lang)
    assert all(question[s:e] == t for t, s, e in words)
    assert [s for _, s, _ in words] == sorted(s for _, s, _ in words)
    assert [t for t, _, _ in words] == expected


def test_vocabulary_words_keep_letters_and_order_by_passage_count():
    df = {"china": 9, "kazakhstan": 9, "tower": 2}
    words = vocabulary_words({"tower", "china", "kazakhstan", "x1", "of", "97m"}, df, lambda w: w)
    assert words == ["china", "kazakhstan", "tower"]


def test_a_vocabulary_round_trips_through_the_stats_json():
    vocab = Vocabulary(("astana", "tower"), np.array([[0.6, 0.8], [1.0, 0.0]], dtype=np.float16))
    stats = CorpusStats({"tower": 1}, 1, frozenset({"tower", "astana"}), {}, vocabulary=vocab,
                        names=frozenset({"astana"}), acronyms=frozenset({"AIIB"}))
    back = CorpusStats.from_dict(stats.to_dict())
    assert back == stats and back.vocabulary.vectors.dtype == np.float32  # float16 on disk, float32 in use
    old = {k: v for k, v in stats.to_dict().items() if k not in ("vocabulary", "names", "acronyms")}
    assert CorpusStats.from_dict(old).vocabulary is None  # an index built before the vocabulary


def test_the_shipped_index_holds_the_corpus_vocabulary(engine):
    vocab = engine.stats.vocabulary
    assert vocab is not None and {"nazarbayev", "bayterek", "kazakhstan"} <= set(vocab.words)
    assert vocab.vectors.shape == (len(vocab.words), 384)
    norms = np.linalg.norm(vocab.vectors.astype(np.float32), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-2)


@pytest.mark.parametrize("question, lang, token, word", [
    ("Когда Назарбаев приехал в Китай?", "ru", "Назарбаев", "nazarbayev"),
    ("Когда Назарбаев приехал в Китай?", "ru", "Китай", "china"),
    ("Қытайда қанша қазақ тұрады?", "kk", "Қытайда", "china"),
    ("有多少中国公民住在哈萨克斯坦?", "zh", "哈萨克斯坦", "kazakhstan"),
    ("Бәйтерек қанша метр?", "kk", "Бәйтерек", "bayterek"),
])
def test_non_english_words_map_onto_the_corpus_words(engine, question, lang, token, word):
    mapped = {m.token: m for m in map_words(engine.stats.vocabulary, engine.encoders[MULTILINGUAL], question, lang)}
    assert mapped[token].word == word and mapped[token].trusted
    assert mapped[token].cosine >= MIN_COSINE[lang]


def test_words_met_before_are_not_encoded_again(engine):
    from kzqa.channels import vocabulary

    class Counting:
        def __init__(self, encoder):
            self.encoder, self.calls = encoder, []

        def encode_words(self, texts):
            self.calls.append(list(texts))
            return self.encoder.encode_words(texts)

    counting = Counting(engine.encoders[MULTILINGUAL])
    first = map_words(engine.stats.vocabulary, counting, "Когда Назарбаев приехал в Китай?", "ru")
    again = map_words(engine.stats.vocabulary, counting, "Назарбаев и Китай", "ru")
    assert counting.calls == [["Назарбаев", "приехал", "Китай"]]
    assert [(m.word, m.cosine) for m in again] == [(m.word, m.cosine) for m in first if m.token in ("Назарбаев", "Китай")]
    assert len(vocabulary._cache) <= vocabulary._CACHE_WORDS


def test_an_unrelated_word_maps_weakly(engine):
    (m,) = map_words(engine.stats.vocabulary, engine.encoders[MULTILINGUAL], "бешбармак", "ru")
    strong = map_words(engine.stats.vocabulary, engine.encoders[MULTILINGUAL], "Назарбаев", "ru")[0]
    assert m.cosine < strong.cosine
