"""Builds the small models of the examples (deterministic, seeded):

- examples/text/bag_of_embeddings.onnx: input_ids int64 [batch, seq] and
  attention_mask int64 [batch, seq] -> logits float32 [batch, 2]. Token ids are
  hashed into 4096 rows (ids mod 4096) of an 16-wide embedding table, mean-pooled
  under the mask, then a linear layer. Untrained: it shows the data path
  (tokenizer.json -> ids -> model) end to end, not a useful classifier.
- examples/image/channel_stats.onnx: pixels float32 [batch, 3, H, W] -> float32
  [batch, 2]: per-channel means, then a fixed linear layer (brightness and a
  red-blue balance), which is easy to check by hand.

Run: python scripts/make_example_models.py (onnx, numpy; see requirements-fixtures.txt).
"""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

root = Path(__file__).resolve().parent.parent
rng = np.random.default_rng(7)


def save(model, path):
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    print("wrote", path)


# Text: bag of embeddings.
V, D = 4096, 16
emb = numpy_helper.from_array((rng.standard_normal((V, D)) * 0.5).astype(np.float32), "emb")
w = numpy_helper.from_array((rng.standard_normal((D, 2)) * 0.5).astype(np.float32), "w")
b = numpy_helper.from_array(np.zeros(2, np.float32), "b")
vsize = numpy_helper.from_array(np.array(V, np.int64), "V")
axes1 = numpy_helper.from_array(np.array([1], np.int64), "axes1")
eps = numpy_helper.from_array(np.array(1e-6, np.float32), "eps")
nodes = [
    helper.make_node("Mod", ["input_ids", "V"], ["hashed"]),
    helper.make_node("Gather", ["emb", "hashed"], ["vectors"], axis=0),  # [B, S, D]
    helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),  # [B, S]
    helper.make_node("Unsqueeze", ["maskf", "axes2"], ["mask3"]),  # [B, S, 1]
    helper.make_node("Mul", ["vectors", "mask3"], ["masked"]),
    helper.make_node("ReduceSum", ["masked", "axes1"], ["summed"], keepdims=0),  # [B, D]
    helper.make_node("ReduceSum", ["maskf", "axes1"], ["count"], keepdims=1),  # [B, 1]
    helper.make_node("Add", ["count", "eps"], ["count_safe"]),
    helper.make_node("Div", ["summed", "count_safe"], ["pooled"]),
    helper.make_node("MatMul", ["pooled", "w"], ["mm"]),
    helper.make_node("Add", ["mm", "b"], ["logits"]),
]
graph = helper.make_graph(
    nodes,
    "bag_of_embeddings",
    [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
    ],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
    [emb, w, b, vsize, axes1, numpy_helper.from_array(np.array([2], np.int64), "axes2"), eps],
)
save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="oxinfer-examples"), root / "examples/text/bag_of_embeddings.onnx")

# Image: channel statistics.
wm = numpy_helper.from_array(np.array([[1 / 3, 1.0], [1 / 3, 0.0], [1 / 3, -1.0]], np.float32), "wm")
nodes = [
    helper.make_node("ReduceMean", ["pixels"], ["means"], axes=[2, 3], keepdims=0),  # [B, 3] (opset 17: axes attribute)
    helper.make_node("MatMul", ["means", "wm"], ["stats"]),
]
graph = helper.make_graph(
    nodes,
    "channel_stats",
    [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
    [helper.make_tensor_value_info("stats", TensorProto.FLOAT, ["batch", 2])],
    [wm],
)
save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="oxinfer-examples"), root / "examples/image/channel_stats.onnx")
