"""Tiny BERT models for transformers.js on oxinfer (issue #19), with a real tokenizer.

Writes __test__/fixtures/bert/:
  tiny-bert/        feature extraction: last_hidden_state float32 [batch, seq, 128]
  tiny-bert-sst/    text classification: logits float32 [batch, 2] (NEGATIVE, POSITIVE)
each in transformers.js's layout (config.json, tokenizer.json,
tokenizer_config.json, onnx/model.onnx).

The tokenizer is a real WordPiece tokenizer.json (BERT's normaliser,
pre-tokeniser and [CLS] $A [SEP] template), trained by HF `tokenizers` on the
committed text corpus (__test__/fixtures/text/lines.json, licence texts). The models are BERT encoders (2 layers, hidden size
128, 2 heads, intermediate 512, 128 positions), written as ONNX graphs here
(opset 17: Gather embeddings, LayerNormalization, attention with the additive
mask, an erf GELU) with seeded random weights, and checked against a NumPy
forward pass with onnxruntime. They are untrained: their numbers are
arbitrary but fixed, which is what comparing two runtimes needs.

  python3 -m venv /tmp/bertvenv
  /tmp/bertvenv/bin/pip install -r scripts/requirements-bert.txt
  /tmp/bertvenv/bin/python scripts/make_bert_fixtures.py

For benchmarks, `--shape minilm --out DIR` writes DIR/minilm-shaped/ instead:
the same tokenizer and graph at all-MiniLM-L6-v2's size (6 layers, hidden
384, 12 heads, intermediate 1536; about 45 MB, not committed).
"""

import json
import math
import os
import shutil

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.join(ROOT, "__test__", "fixtures", "bert")
HIDDEN, LAYERS, HEADS, FFN, POSITIONS = 128, 2, 2, 512, 128
VOCAB = 1000  # asked of the trainer; the models' embeddings take the size it gives (vocab_size())
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer():
    lines = json.load(open(os.path.join(ROOT, "__test__", "fixtures", "text", "lines.json")))["lines"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=VOCAB, special_tokens=SPECIAL, min_frequency=1, continuing_subword_prefix="##")
    tok.train_from_iterator(lines, trainer=trainer)
    # The trainer numbers tied tokens differently from run to run: renumber
    # them in a fixed order (special tokens first, then sorted), so the file
    # is the same every time (tokenising depends on the set, not the ids).
    trained = tok.get_vocab()
    vocab = {t: i for i, t in enumerate(SPECIAL + sorted(t for t in trained if t not in SPECIAL))}
    tok.model = models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100, continuing_subword_prefix="##")
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


class Graph:
    """An ONNX graph under construction: initializers from NumPy, nodes by helper."""

    def __init__(self, rng):
        self.rng, self.nodes, self.inits, self.n = rng, [], [], 0

    def w(self, name, shape, scale=0.02, value=None):
        a = value if value is not None else (self.rng.standard_normal(shape) * scale).astype(np.float32)
        self.inits.append(numpy_helper.from_array(a, name))
        return name, a

    def c(self, values, dtype=np.int64):
        self.n += 1
        name = f"const_{self.n}"
        self.inits.append(numpy_helper.from_array(np.array(values, dtype=dtype), name))
        return name

    def op(self, kind, inputs, **attrs):
        self.n += 1
        out = f"{kind.lower()}_{self.n}"
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out


def build(classifier, seed, vocab):
    rng = np.random.default_rng(seed)
    g = Graph(rng)
    params = {}

    def dense(x, name, fan_in, fan_out):
        w, wa = g.w(f"{name}.weight", (fan_in, fan_out))
        b, ba = g.w(f"{name}.bias", (fan_out,))
        params[name] = (wa, ba)
        return g.op("Add", [g.op("MatMul", [x, w]), b])

    def layer_norm(x, name):
        gamma, ga = g.w(f"{name}.gamma", (HIDDEN,), value=(1 + rng.standard_normal(HIDDEN) * 0.05).astype(np.float32))
        beta, ba = g.w(f"{name}.beta", (HIDDEN,), value=(rng.standard_normal(HIDDEN) * 0.02).astype(np.float32))
        params[name] = (ga, ba)
        return g.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=1e-12)

    # Embeddings: words + positions (0..seq-1) + token types, then LayerNorm.
    word, params["word"] = g.w("embeddings.word", (vocab, HIDDEN))
    pos, params["pos"] = g.w("embeddings.position", (POSITIONS, HIDDEN))
    typ, params["type"] = g.w("embeddings.token_type", (2, HIDDEN))
    seq = g.op("Gather", [g.op("Shape", ["input_ids"]), g.c(1)], axis=0)
    positions = g.op("Range", [g.c(0), seq, g.c(1)])
    x = g.op("Add", [g.op("Add", [g.op("Gather", [word, "input_ids"]), g.op("Gather", [pos, positions])]), g.op("Gather", [typ, "token_type_ids"])])
    x = layer_norm(x, "embeddings.norm")
    # The additive mask: 0 where attended, -10000 elsewhere, [batch, 1, 1, seq].
    m = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    mask = g.op("Unsqueeze", [g.op("Mul", [g.op("Sub", [g.c(1.0, np.float32), m]), g.c(-10000.0, np.float32)]), g.c([1, 2])])
    dh = HIDDEN // HEADS
    for l in range(LAYERS):
        p = f"layer{l}"

        def heads(t):
            return g.op("Transpose", [g.op("Reshape", [t, g.c([0, 0, HEADS, dh])])], perm=[0, 2, 1, 3])

        q, k, v = (heads(dense(x, f"{p}.{n}", HIDDEN, HIDDEN)) for n in ("q", "k", "v"))
        scores = g.op("Add", [g.op("Div", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]), g.c(math.sqrt(dh), np.float32)]), mask])
        ctx = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        ctx = g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]), g.c([0, 0, HIDDEN])])
        x = layer_norm(g.op("Add", [dense(ctx, f"{p}.o", HIDDEN, HIDDEN), x]), f"{p}.norm1")
        h = dense(x, f"{p}.ffn1", HIDDEN, FFN)
        # GELU as BERT has it: x · ½(1 + erf(x / √2)).
        gelu = g.op("Mul", [g.op("Mul", [h, g.c(0.5, np.float32)]), g.op("Add", [g.op("Erf", [g.op("Div", [h, g.c(math.sqrt(2), np.float32)])]), g.c(1.0, np.float32)])])
        x = layer_norm(g.op("Add", [dense(gelu, f"{p}.ffn2", FFN, HIDDEN), x]), f"{p}.norm2")
    ids = helper.make_tensor_value_info
    inputs = [ids(n, TensorProto.INT64, ["batch_size", "sequence_length"]) for n in ("input_ids", "attention_mask", "token_type_ids")]
    if classifier:
        first = g.op("Gather", [x, g.c(0)], axis=1)
        pooled = g.op("Tanh", [dense(first, "pooler", HIDDEN, HIDDEN)])
        g.nodes.append(helper.make_node("Identity", [dense(pooled, "classifier", HIDDEN, 2)], ["logits"]))
        outputs = [ids("logits", TensorProto.FLOAT, ["batch_size", 2])]
    else:
        g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
        outputs = [ids("last_hidden_state", TensorProto.FLOAT, ["batch_size", "sequence_length", HIDDEN])]
    graph = helper.make_graph(g.nodes, "tiny_bert", inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="oxinfer make_bert_fixtures.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, params


def reference(params, classifier, input_ids, attention_mask, token_type_ids):
    """The same BERT in NumPy, to check the graph."""

    def ln(x, name):
        g, b = params[name]
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * g + b

    def dense(x, name):
        w, b = params[name]
        return x @ w + b

    s = input_ids.shape[1]
    x = params["word"][input_ids] + params["pos"][np.arange(s)][None] + params["type"][token_type_ids]
    x = ln(x, "embeddings.norm")
    mask = ((1 - attention_mask.astype(np.float32)) * -10000.0)[:, None, None, :]
    dh = HIDDEN // HEADS
    erf = np.vectorize(math.erf)
    for l in range(LAYERS):
        p = f"layer{l}"
        split = lambda t: t.reshape(t.shape[0], s, HEADS, dh).transpose(0, 2, 1, 3)
        q, k, v = (split(dense(x, f"{p}.{n}")) for n in ("q", "k", "v"))
        a = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh) + mask
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        ctx = (a @ v).transpose(0, 2, 1, 3).reshape(x.shape)
        x = ln(dense(ctx, f"{p}.o") + x, f"{p}.norm1")
        h = dense(x, f"{p}.ffn1")
        x = ln(dense(h * 0.5 * (1 + erf(h / math.sqrt(2))), f"{p}.ffn2") + x, f"{p}.norm2")
    if classifier:
        return dense(np.tanh(dense(x[:, 0], "pooler")), "classifier")
    return x


# Shapes for benchmarks only (not committed): all-MiniLM-L6-v2's, the
# encoder transformers.js users most often run for feature extraction.
SHAPES = {"minilm": dict(HIDDEN=384, LAYERS=6, HEADS=12, FFN=1536)}


def main():
    import argparse

    global OUT
    ap = argparse.ArgumentParser(description="Writes the tiny BERT fixtures, or with --shape a larger feature-extraction model for benchmarks.")
    ap.add_argument("--shape", choices=sorted(SHAPES), help="write only a feature-extraction model of this shape (named after it) under --out")
    ap.add_argument("--out", help="the folder to write into (default: the fixtures folder)")
    args = ap.parse_args()
    if args.shape and not args.out:
        ap.error("--shape needs --out: benchmark models are not committed")
    models_ = (("tiny-bert", False, 1), ("tiny-bert-sst", True, 2))
    if args.shape:
        globals().update(SHAPES[args.shape])
        models_ = ((f"{args.shape}-shaped", False, 3),)
    if args.out:
        OUT = os.path.abspath(args.out)
    if not args.shape and os.path.isdir(OUT):
        shutil.rmtree(OUT)
    tok = train_tokenizer()
    texts = ["Redistribution and use in source and binary forms are permitted.", "THE SOFTWARE IS PROVIDED AS IS, WITHOUT WARRANTY OF ANY KIND."]
    for name, classifier, seed in models_:
        if os.path.isdir(os.path.join(OUT, name)):
            shutil.rmtree(os.path.join(OUT, name))
        d = os.path.join(OUT, name)
        os.makedirs(os.path.join(d, "onnx"))
        model, params = build(classifier, seed, tok.get_vocab_size())
        onnx.save(model, os.path.join(d, "onnx", "model.onnx"))
        tok.save(os.path.join(d, "tokenizer.json"))
        config = {
            "model_type": "bert",
            "architectures": ["BertForSequenceClassification" if classifier else "BertModel"],
            "vocab_size": tok.get_vocab_size(),
            "hidden_size": HIDDEN,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": HEADS,
            "intermediate_size": FFN,
            "hidden_act": "gelu",
            "max_position_embeddings": POSITIONS,
            "type_vocab_size": 2,
            "layer_norm_eps": 1e-12,
            "pad_token_id": 0,
        }
        if classifier:
            config["id2label"] = {"0": "NEGATIVE", "1": "POSITIVE"}
            config["label2id"] = {"NEGATIVE": 0, "POSITIVE": 1}
        json.dump(config, open(os.path.join(d, "config.json"), "w"), indent=2)
        json.dump(
            {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": POSITIONS, "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]"},
            open(os.path.join(d, "tokenizer_config.json"), "w"),
            indent=2,
        )
        # The graph equals the NumPy BERT, through onnxruntime.
        enc = tok.encode_batch(texts)
        s = max(len(e.ids) for e in enc)
        ids = np.array([e.ids + [0] * (s - len(e.ids)) for e in enc], dtype=np.int64)
        mask = np.array([[1] * len(e.ids) + [0] * (s - len(e.ids)) for e in enc], dtype=np.int64)
        types = np.zeros_like(ids)
        sess = ort.InferenceSession(os.path.join(d, "onnx", "model.onnx"), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
        want = reference(params, classifier, ids, mask, types)
        err = float(np.abs(got - want).max())
        assert err < 1e-4, (name, err)
        print(f"{name}: {os.path.getsize(os.path.join(d, 'onnx', 'model.onnx'))} bytes, max |onnx - numpy| {err:.2e}, output {got.shape}")


if __name__ == "__main__":
    main()
