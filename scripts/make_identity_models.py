"""Writes __test__/fixtures/features/identity{3,8}.onnx: y = x for x float32
[batch, n]. Pipelines use them to expose their assembled features unchanged,
so feature-generation stages can be checked against references directly.
Run: python scripts/make_identity_models.py (needs onnx; see requirements-fixtures.txt)."""
from pathlib import Path

import onnx
from onnx import TensorProto, helper

out = Path(__file__).resolve().parent.parent / "__test__" / "fixtures" / "features"
for n in (3, 8):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], f"identity{n}", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="oxinfer-fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, out / f"identity{n}.onnx")
    print("wrote", out / f"identity{n}.onnx")
