"""Writes __test__/fixtures/masked_tokens.onnx, the variable-length model of
the batching tests: input_ids and attention_mask int64 [batch, seq] give
`tokens` float [batch, seq, 8] (each token's embedding, zeroed where the mask
is 0) and `pooled` float [batch, 8] (the masked mean). Padding a request with
id 0 and mask 0 leaves its pooled output unchanged and adds zero rows to its
tokens output, which is what padded batching must undo.

Run with the packages of scripts/requirements-fixtures.txt:
    python scripts/make_padding_model.py
"""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

root = Path(__file__).resolve().parent.parent
rng = np.random.default_rng(7)
V, D = 512, 8
inits = [
    numpy_helper.from_array(rng.standard_normal((V, D)).astype(np.float32), "emb"),
    numpy_helper.from_array(np.array(V, np.int64), "V"),
    numpy_helper.from_array(np.array([1], np.int64), "axes1"),
    numpy_helper.from_array(np.array([2], np.int64), "axes2"),
    numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
]
nodes = [
    helper.make_node("Mod", ["input_ids", "V"], ["hashed"]),
    helper.make_node("Gather", ["emb", "hashed"], ["vectors"], axis=0),  # [B, S, D]
    helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
    helper.make_node("Unsqueeze", ["maskf", "axes2"], ["mask3"]),  # [B, S, 1]
    helper.make_node("Mul", ["vectors", "mask3"], ["tokens"]),
    helper.make_node("ReduceSum", ["tokens", "axes1"], ["summed"], keepdims=0),
    helper.make_node("ReduceSum", ["maskf", "axes1"], ["count"], keepdims=1),
    helper.make_node("Add", ["count", "eps"], ["count_safe"]),
    helper.make_node("Div", ["summed", "count_safe"], ["pooled"]),
]
graph = helper.make_graph(
    nodes,
    "masked_tokens",
    [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
    ],
    [
        helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "seq", D]),
        helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", D]),
    ],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="oxinfer-fixtures")
model.ir_version = 8
onnx.checker.check_model(model, full_check=True)
out = root / "__test__/fixtures/masked_tokens.onnx"
onnx.save(model, out)
print("wrote", out)
