"""The corpus's English vocabulary in the multilingual model's space, so that a Russian, Chinese
or Kazakh question's content words can be read as the corpus's English words.

``Vocabulary.build(words, encoder)`` embeds each word once, at build time (about 1 ms a word
here); ``map_words(vocabulary, encoder, question, lang)`` returns one
:class:`MappedWord` per content word of the question, ``question[m.start:m.end] == m.token``,
with the corpus word nearest to it (``m.word``) and their cosine (``m.cosine``). The cosine of
e5-small is compressed (unrelated words still score about 0.85): names and main nouns map
well ('Назарбаев' → nazarbayev 0.89, 'Қытайда' → china 0.91, '哈萨克斯坦' → kazakhstan 0.88),
function words do not: a mapping is ``trusted`` at or above the language's
:data:`MIN_COSINE` (Chinese words, cut by jieba, score lower for the same quality).
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MAX_WORDS = 20_000  # the vocabulary of a large corpus: its most frequent words
# Below it a mapping is as likely noise as a translation: read off the train batch's ru/zh/kk
# questions' mappings ('哈萨克斯坦' → kazakhstan 0.881, '越境' → beijing 0.872, 'Билаша' → bilash
# 0.903, 'биржа' → bitabarova 0.878; stopwords such as 'в' are left out before mapping).
MIN_COSINE = {"zh": 0.878, "ru": 0.88, "kk": 0.88}

# Words that carry no topic in the three languages the corpus is asked in (besides English).
_STOPWORDS = frozenset("""
в во на и с со к ко о об обо из по до за от у для при под над что чем как какой какая какое какие каком
какого какую каких кто кого кому когда где куда откуда сколько почему зачем это этот эта эти тот та те был
была были было быть ли же не ни а или его её ее их он она оно они год году года годах лет также ещё еще
уже свой своей своих согласно данным статье документе документах
және мен бен пен да де та те қай қандай қанша неше нешінші кім кімге қашан қайда неге қалай бұл осы ол олар
туралы үшін бойынша жылы жылға жылдары болды болған еді деп сол
的 了 是 在 和 与 及 或 有 为 对 把 被 从 到 向 于 也 都 就 而 但 吗 呢 吧 哪 哪个 哪些 哪一年 什么 怎么 如何
为什么 多少 几 谁 何时 哪里 这 那 这个 那个 其中 当时 目前 根据 文件 文章 是否
""".split())
_CJK = "\u3400-\u4dbf\u4e00-\u9fff"
_CJK_RUN = re.compile(f"[{_CJK}]+")
_WORD = re.compile(f"[^\\W\\d_{_CJK}][^\\W{_CJK}’'\\-]*(?:[’'\\-][^\\W{_CJK}]+)*")  # a word of any script but Chinese


@dataclass(frozen=True)
class MappedWord:
    """A content word of a question (``question[start:end] == token``), the corpus word
    nearest to it in the multilingual model and their cosine."""

    token: str
    start: int
    end: int
    word: str
    cosine: float
    trusted: bool = False  # cosine at or above MIN_COSINE for the question's language


@dataclass(frozen=True)
class Vocabulary:
    """Corpus words and their unit vectors (one row per word) in one model: float32 in memory,
    float16 when stored."""

    words: tuple[str, ...]
    vectors: np.ndarray
    plain: bool = False  # embedded without a prefix (the encoder's encode_words), else as questions

    @classmethod
    def build(cls, words, encoder) -> "Vocabulary":
        """Embed ``words``: plainly when the encoder can (:func:`encode_words`), else as questions."""
        words = tuple(words)
        plain = hasattr(encoder, "encode_words")
        vectors = encode_words(encoder, list(words), plain) if words else np.zeros((0, 1), np.float32)
        return cls(words, np.asarray(vectors, dtype=np.float32), plain)

    def to_dict(self) -> dict:
        """JSON-ready, the vectors rounded to float16: ``Vocabulary.from_dict(v.to_dict())`` has
        the same words and vectors as ``v`` when they are float16 values already (as read)."""
        return {"words": list(self.words), "dim": int(self.vectors.shape[1]), "plain": self.plain,
                "vectors_f16_base64": base64.b64encode(self.vectors.astype(np.float16).tobytes()).decode("ascii")}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        raw = np.frombuffer(base64.b64decode(data["vectors_f16_base64"]), dtype=np.float16)
        return cls(tuple(data["words"]), raw.reshape(len(data["words"]), int(data["dim"])).astype(np.float32),
                   bool(data.get("plain", False)))

    def __eq__(self, other) -> bool:
        return (isinstance(other, Vocabulary) and self.words == other.words and self.plain == other.plain
                and np.array_equal(self.vectors, other.vectors))

    def __hash__(self) -> int:
        return hash(self.words)


def encode_words(encoder, words: list[str], plain: bool) -> np.ndarray:
    """``encoder``'s vectors of single words: without a prefix (``plain``, when the encoder has
    ``encode_words``) or as questions."""
    if plain and hasattr(encoder, "encode_words"):
        return encoder.encode_words(words)
    return encoder.encode_queries(words)


def vocabulary_words(words, df: dict[str, int], stem) -> list[str]:
    """The corpus words worth mapping onto: letters only, at least three of them, at most
    MAX_WORDS, those whose stem is in the most passages first (ties alphabetical)."""
    kept = [w for w in words if re.fullmatch(r"[a-z][a-z\-]{2,}", w)]
    return sorted(kept, key=lambda w: (-df.get(stem(w), 0), w))[:MAX_WORDS]


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def warm_up() -> None:
    """Load the Chinese word list (about half a second), so that no question waits for it."""
    _jieba()


def content_words(question: str, lang: str) -> list[tuple[str, int, int]]:
    """(token, start, end) of each content word of a non-English question, in order:
    ``question[start:end] == token``. Chinese runs are cut into words with jieba; words of one
    character, digits and the stopwords of Russian, Kazakh and Chinese question words are left
    out."""
    out = []
    if lang == "zh":
        for run in _CJK_RUN.finditer(question):
            at = run.start()
            for piece in _jieba().lcut(run.group(0), HMM=True):
                if len(piece) >= 2 and piece not in _STOPWORDS:
                    out.append((piece, at, at + len(piece)))
                at += len(piece)
    for m in _WORD.finditer(question):
        token = m.group(0)
        if len(token) >= 3 and token.lower() not in _STOPWORDS:
            out.append((token, m.start(), m.end()))
    return sorted(out, key=lambda t: t[1])


def map_words(vocabulary: Vocabulary, encoder, question: str, lang: str) -> list[MappedWord]:
    """Each content word of ``question`` (:func:`content_words`) with its nearest corpus word."""
    words = content_words(question, lang)
    if not words or not vocabulary.words:
        return []
    vectors = _word_vectors(encoder, [t for t, _, _ in words], vocabulary.plain)
    sims = vectors @ vocabulary.vectors.T
    best = sims.argmax(axis=1)
    floor = MIN_COSINE.get(lang, max(MIN_COSINE.values()))
    return [MappedWord(t, s, e, vocabulary.words[b], float(sims[i, b]), float(sims[i, b]) >= floor)
            for i, ((t, s, e), b) in enumerate(zip(words, best))]


_CACHE_WORDS = 50_000  # about 75 MB of vectors at most
_cache: OrderedDict[tuple[int, bool, str], np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


def _word_vectors(encoder, tokens: list[str], plain: bool) -> np.ndarray:
    """The encoder's vectors of ``tokens``, one row each; words met before (the most recent
    _CACHE_WORDS, per encoder) are not encoded again: questions in one language share many."""
    with _cache_lock:
        known = {t: _cache[(id(encoder), plain, t)] for t in tokens if (id(encoder), plain, t) in _cache}
    fresh = list(dict.fromkeys(t for t in tokens if t not in known))
    if fresh:
        encoded = np.asarray(encode_words(encoder, fresh, plain), dtype=np.float32)
        known.update(zip(fresh, encoded))
        with _cache_lock:
            for t, v in zip(fresh, encoded):
                _cache[(id(encoder), plain, t)] = v
            while len(_cache) > _CACHE_WORDS:
                _cache.popitem(last=False)
    return np.vstack([known[t] for t in tokens])
