"""ZipMap fixtures for non-tensor outputs (issue #19).

Writes, under __test__/fixtures/:
  zipmap_strings.onnx   scikit-learn LogisticRegression with string classes
                        ("setosa", "versicolor", "virginica"), converted by
                        skl2onnx with ZipMap on (the default): output_label
                        string [N], output_probability seq(map(string, float)).
  sequence.onnx         x float32 [N, 3] → rows: seq(tensor(float32)), one
                        [3] tensor per row (SplitToSequence), and ids:
                        seq(tensor(int64)), each row's argmax as a [1] tensor;
                        n int32 [N, 3] → whole: its rows as seq(tensor(int32)).
  optional.onnx         x float32 [N] → y (Identity), and two optional
                        outputs: some (holding x) and none (empty).
  optional_slow.onnx    x float32 [64, 64], iters int64 → y: optional, x
                        after `iters` rounds of tanh(x·x) (a Loop), for
                        stopping a run that fetches an optional midway.
  zipmap_expected.json  scikit-learn's predict_proba for both zipmap.onnx
                        (integer classes; the same data and fit as
                        make_fixtures.py) and zipmap_strings.onnx, on 12 rows.

  /tmp/fxvenv/bin/python scripts/make_zipmap_fixtures.py   (scripts/requirements-fixtures.txt)
"""

import json
import os
import sys

import numpy as np
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, os.path.dirname(__file__))
from make_fixtures import IR_VERSION, OPSET, OUT_DIR, finish, zipmap_data  # noqa: E402

CLASSES = np.array(["setosa", "versicolor", "virginica"])
ROWS = [0, 1, 2, 5, 20, 21, 33, 40, 41, 50, 58, 59]


def make_sequence():
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    seq = lambda name, t: helper.make_value_info(name, helper.make_sequence_type_proto(helper.make_tensor_type_proto(t, None)))
    rows, ids = seq("rows", TensorProto.FLOAT), seq("ids", TensorProto.INT64)
    whole = seq("whole", TensorProto.INT32)
    n = helper.make_tensor_value_info("n", TensorProto.INT32, ["N", 3])
    nodes = [
        helper.make_node("SplitToSequence", ["x"], ["rows"], axis=0, keepdims=0),
        helper.make_node("ArgMax", ["x"], ["argmax"], axis=1, keepdims=1),
        helper.make_node("SplitToSequence", ["argmax"], ["ids"], axis=0, keepdims=0),
        helper.make_node("SplitToSequence", ["n"], ["whole"], axis=0, keepdims=0),
    ]
    graph = helper.make_graph(nodes, "sequences", [x, n], [rows, ids, whole])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="oxinfer-fixtures")
    model.ir_version = IR_VERSION
    finish(model, "sequence.onnx")
    s = ort.InferenceSession(os.path.join(OUT_DIR, "sequence.onnx"), providers=["CPUExecutionProvider"])
    r, i, _ = s.run(None, {"x": np.array([[1, 5, 2], [7, 0, 3]], dtype=np.float32), "n": np.zeros((2, 3), dtype=np.int32)})
    assert [a.tolist() for a in r] == [[1, 5, 2], [7, 0, 3]] and [a.tolist() for a in i] == [[1], [0]], (r, i)


def make_optional_slow():
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("MatMul", ["x_in", "x_in"], ["xx"]),
            helper.make_node("Tanh", ["xx"], ["x_out"]),
        ],
        "slow_body",
        [
            helper.make_tensor_value_info("iter_num", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [64, 64]),
        ],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [64, 64])],
    )
    nodes = [
        helper.make_node("Constant", [], ["go"], value=helper.make_tensor("go", TensorProto.BOOL, [], [True])),
        helper.make_node("Loop", ["iters", "go", "x"], ["looped"], body=body),
        helper.make_node("Optional", ["looped"], ["y"]),
    ]
    opt = helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [64, 64]))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64]), helper.make_tensor_value_info("iters", TensorProto.INT64, [])]
    graph = helper.make_graph(nodes, "optional_slow", inputs, [helper.make_value_info("y", opt)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="oxinfer-fixtures")
    model.ir_version = IR_VERSION
    finish(model, "optional_slow.onnx")
    s = ort.InferenceSession(os.path.join(OUT_DIR, "optional_slow.onnx"), providers=["CPUExecutionProvider"])
    x = np.full((64, 64), 0.01, dtype=np.float32)
    (y,) = s.run(None, {"x": x, "iters": np.array(2, dtype=np.int64)})
    want = np.tanh(np.tanh(x @ x) @ np.tanh(x @ x))
    assert np.abs(y - want).max() < 1e-5


def make_optional():
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])
    opt = helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    nodes = [
        helper.make_node("Identity", ["x"], ["y"]),
        helper.make_node("Optional", ["x"], ["some"]),
        helper.make_node("Optional", [], ["none"], type=helper.make_tensor_type_proto(TensorProto.FLOAT, None)),
    ]
    graph = helper.make_graph(nodes, "optionals", [x], [y, helper.make_value_info("some", opt), helper.make_value_info("none", opt)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="oxinfer-fixtures")
    model.ir_version = IR_VERSION
    finish(model, "optional.onnx")
    s = ort.InferenceSession(os.path.join(OUT_DIR, "optional.onnx"), providers=["CPUExecutionProvider"])
    y_, some, none = s.run(None, {"x": np.array([1, 2], dtype=np.float32)})
    assert y_.tolist() == [1, 2] and some.tolist() == [1, 2] and none is None


def main():
    X, y = zipmap_data()
    ints = LogisticRegression(max_iter=1000).fit(X, y)
    strings = LogisticRegression(max_iter=1000).fit(X, CLASSES[y])
    model = convert_sklearn(strings, name="zipmap_strings", initial_types=[("float_input", FloatTensorType([None, 4]))], target_opset={"": OPSET, "ai.onnx.ml": 3})
    model.ir_version = IR_VERSION
    model.producer_name = "oxinfer-fixtures (skl2onnx)"
    path = finish(model, "zipmap_strings.onnx")
    x = X[ROWS]
    expected = {
        "input": x.tolist(),
        "zipmap.onnx": {"classes": ints.classes_.tolist(), "label": ints.predict(x).tolist(), "proba": ints.predict_proba(x).tolist()},
        "zipmap_strings.onnx": {"classes": strings.classes_.tolist(), "label": strings.predict(x).tolist(), "proba": strings.predict_proba(x).tolist()},
    }
    # What onnxruntime (Python) gives agrees with scikit-learn, to float32.
    for name in ("zipmap.onnx", "zipmap_strings.onnx"):
        s = ort.InferenceSession(os.path.join(OUT_DIR, name), providers=["CPUExecutionProvider"])
        label, prob = s.run(None, {"float_input": x})
        want = expected[name]
        got = np.array([[m[c] for c in want["classes"]] for m in prob])
        err = float(np.abs(got - np.array(want["proba"])).max())
        assert err < 1e-5 and [str(v) for v in label.tolist()] == [str(v) for v in want["label"]], (name, err)
        print(f"{name}: max |onnxruntime - predict_proba| {err:.1e}")
    make_sequence()
    make_optional()
    make_optional_slow()
    with open(os.path.join(OUT_DIR, "zipmap_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print("wrote", path, "and zipmap_expected.json")


if __name__ == "__main__":
    main()
