"""A Unigram tokenizer that loads in ~30 ms: the multilingual question encoder's vocabulary as a
sorted piece list, searched with ``bisect``, and the same Viterbi search as the ``tokenizers``
library's Unigram model (float64 sums, pieces at a position tried shortest first, a path replaced
only when strictly better, one ``<unk>`` per unknown character scored at the lowest score − 10).

``tokenizers`` needs ~0.45 s to build its model from the 16.7 MB tokenizer.json (and ~0.15 s to
free it at exit); this file is read in one go. It is slower per text (0.2 ms a question against
0.05 ms), so it serves questions and words; a build's bulk passages still go through
``tokenizers``. The ids are the same, checked on the corpus, the question sets and odd strings
(``tests/channels/test_unigram.py``).

File layout (little-endian): uint32 n, float64 unk score, n float32 scores, n int32 ids, then the
n pieces in UTF-8 joined by "\\n", all in Python's string order of the pieces.
"""

from __future__ import annotations

import json
import re
import struct
from array import array
from bisect import bisect_left
from pathlib import Path

UNK_PENALTY = 10.0
_SPACES = re.compile(" {2,}")
_SPACE_MARK = "\u2581"


def write_sorted_vocab(tokenizer_json: Path, out: Path) -> None:
    """Write the sorted vocabulary file of a tokenizer.json holding a Unigram model (made by
    :func:`kzqa.channels.e5onnx.build_tokenizer`: no byte fallback, no newline in a piece)."""
    model = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))["model"]
    if model.get("type") != "Unigram" or model.get("byte_fallback"):
        raise ValueError(f"{tokenizer_json} does not hold a Unigram model without byte fallback")
    vocab = model["vocab"]
    if any("\n" in piece for piece, _ in vocab) or len({piece for piece, _ in vocab}) != len(vocab):
        raise ValueError(f"{tokenizer_json}: a piece holds a newline or appears twice")
    order = sorted(range(len(vocab)), key=lambda i: vocab[i][0])
    scores = array("f", [vocab[i][1] for i in order])
    if scores.tolist() != [vocab[i][1] for i in order]:
        raise ValueError(f"{tokenizer_json}: a score is not a float32")
    ids = array("i", order)
    unk_score = min(score for _, score in vocab) - UNK_PENALTY
    with open(out, "wb") as f:
        f.write(struct.pack("<Id", len(vocab), unk_score))
        f.write(scores.tobytes())
        f.write(ids.tobytes())
        f.write("\n".join(vocab[i][0] for i in order).encode("utf-8"))


class SortedUnigram:
    """The vocabulary file of :func:`write_sorted_vocab`; ``encode(text)`` gives the ids of a
    text already passed through the model's normalisation table (no <s>/</s>)."""

    def __init__(self, path: Path, unk_id: int):
        data = Path(path).read_bytes()
        n, self.unk_score = struct.unpack_from("<Id", data, 0)
        self.unk_id = unk_id
        self.scores = array("f", data[12:12 + 4 * n])
        self.ids = array("i", data[12 + 4 * n:12 + 8 * n])
        self.pieces = data[12 + 8 * n:].decode("utf-8").split("\n")
        if len(self.pieces) != n or len(self.scores) != n or len(self.ids) != n:
            raise ValueError(f"{path}: {len(self.pieces)} pieces for {n} scores")

    def encode(self, text: str) -> list[int]:
        """Runs of spaces become one, spaces become '▁' and a '▁' starts the text (as the
        Metaspace step does); then the best-scoring split into pieces."""
        s = _SPACES.sub(" ", text).replace(" ", _SPACE_MARK)
        if s and s[0] != _SPACE_MARK:
            s = _SPACE_MARK + s
        n = len(s)
        if not n:
            return []
        pieces, ids, scores, count = self.pieces, self.ids, self.scores, len(self.pieces)
        best, start, token = [0.0] * (n + 1), [-1] * (n + 1), [0] * (n + 1)
        for i in range(n):
            base, single, lo = best[i], False, 0
            for j in range(i + 1, n + 1):
                sub = s[i:j]
                k = bisect_left(pieces, sub, lo)
                if k == count:
                    break
                lo = k
                if pieces[k] != sub:
                    if not pieces[k].startswith(sub):
                        break  # no piece starts with sub, so none with a longer prefix either
                    continue
                value = base + scores[k]
                if start[j] < 0 or value > best[j]:
                    best[j], start[j], token[j] = value, i, ids[k]
                single = single or j == i + 1
            if not single:  # no piece for this character alone: one <unk> for it
                value = base + self.unk_score
                if start[i + 1] < 0 or value > best[i + 1]:
                    best[i + 1], start[i + 1], token[i + 1] = value, i, self.unk_id
        out, j = [], n
        while j > 0:
            out.append(token[j])
            j = start[j]
        return out[::-1]
