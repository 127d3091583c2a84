#!/usr/bin/env python3
"""Generate the ONNX test fixtures in __test__/fixtures/.

Deterministic: every random tensor comes from np.random.default_rng with a
fixed seed, and ONNX serialisation is stable, so re-running this script with
the versions pinned in scripts/requirements-fixtures.txt rewrites byte-identical
files.

Usage:
    python3 -m venv /tmp/fxvenv
    /tmp/fxvenv/bin/pip install -r scripts/requirements-fixtures.txt
    /tmp/fxvenv/bin/python scripts/make_fixtures.py [--skip-timing]

Each model is checked with onnx.checker (full_check) and run once through
onnxruntime; the results are printed. `expected.json` holds a seeded input and
onnxruntime's output for tiny_mlp.onnx so the Node tests can compare.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "__test__", "fixtures")

OPSET = 17
IR_VERSION = 8  # onnxruntime 1.30 accepts ir_version <= 10 (11 with newer builds)


def opsets(**extra):
    ops = [helper.make_opsetid("", OPSET)]
    for domain, version in extra.items():
        ops.append(helper.make_opsetid(domain.replace("_", "."), version))
    return ops


def finish(model: onnx.ModelProto, name: str) -> str:
    """Validate, save and return the path."""
    # skl2onnx builds opset_import from a set, whose order depends on the
    # string hash seed; sort it so the bytes on disk are reproducible.
    imports = sorted(model.opset_import, key=lambda o: o.domain)
    imports = [helper.make_opsetid(o.domain, o.version) for o in imports]
    del model.opset_import[:]
    model.opset_import.extend(imports)
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(OUT_DIR, name)
    onnx.save_model(model, path)
    # Re-load from disk and check again, so what we ship is what we checked.
    onnx.checker.check_model(path, full_check=True)
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes, "
          f"ir_version={model.ir_version}, opsets="
          f"{ {o.domain or 'ai.onnx': o.version for o in model.opset_import} })")
    return path


# ---------------------------------------------------------------------------
# a. all_types.onnx
# ---------------------------------------------------------------------------
ALL_TYPES = [
    ("float32", TensorProto.FLOAT, np.float32),
    ("float64", TensorProto.DOUBLE, np.float64),
    ("float16", TensorProto.FLOAT16, np.float16),
    ("int8", TensorProto.INT8, np.int8),
    ("uint8", TensorProto.UINT8, np.uint8),
    ("int16", TensorProto.INT16, np.int16),
    ("uint16", TensorProto.UINT16, np.uint16),
    ("int32", TensorProto.INT32, np.int32),
    ("uint32", TensorProto.UINT32, np.uint32),
    ("int64", TensorProto.INT64, np.int64),
    ("uint64", TensorProto.UINT64, np.uint64),
    ("bool", TensorProto.BOOL, np.bool_),
    ("string", TensorProto.STRING, object),
]


def make_all_types() -> str:
    inputs, outputs, nodes = [], [], []
    for name, elem, _ in ALL_TYPES:
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem, ["batch", "n"]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem, ["batch", "n"]))
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"],
                                      name=f"identity_{name}"))
    graph = helper.make_graph(nodes, "all_types", inputs, outputs)
    model = helper.make_model(graph, opset_imports=opsets(), ir_version=IR_VERSION,
                              producer_name="oxinfer-fixtures", producer_version="1.0",
                              model_version=7, doc_string="All tensor types round trip")
    helper.set_model_props(model, {"author": "oxinfer", "purpose": "round-trip"})
    return finish(model, "all_types.onnx")


# ---------------------------------------------------------------------------
# b. dims.onnx
# ---------------------------------------------------------------------------
def make_dims() -> str:
    # None -> a dim with neither dim_value nor dim_param (dynamic, unnamed).
    shape = ["batch", None, 3]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    node = helper.make_node("Mul", ["x", "two"], ["y"], name="times_two")
    graph = helper.make_graph([node], "dims", [x], [y], initializer=[two])
    model = helper.make_model(graph, opset_imports=opsets(), ir_version=IR_VERSION,
                              producer_name="oxinfer-fixtures", producer_version="1.0")
    dim1 = model.graph.input[0].type.tensor_type.shape.dim[1]
    assert dim1.WhichOneof("value") is None, dim1
    return finish(model, "dims.onnx")


# ---------------------------------------------------------------------------
# c. tiny_mlp.onnx
# ---------------------------------------------------------------------------
def tiny_mlp_weights():
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((16, 32)) * 0.3).astype(np.float32)
    b1 = (rng.standard_normal((32,)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((32, 2)) * 0.3).astype(np.float32)
    b2 = (rng.standard_normal((2,)) * 0.3).astype(np.float32)
    return w1, b1, w2, b2


def make_tiny_mlp() -> str:
    w1, b1, w2, b2 = tiny_mlp_weights()
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((w1, "W1"), (b1, "B1"), (w2, "W2"), (b2, "B2"))]
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "B1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["h_relu"], name="relu"),
        helper.make_node("Gemm", ["h_relu", "W2", "B2"], ["y"], name="fc2"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
    graph = helper.make_graph(nodes, "tiny_mlp", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=opsets(), ir_version=IR_VERSION,
                              producer_name="oxinfer-fixtures", producer_version="1.0")
    return finish(model, "tiny_mlp.onnx")


# ---------------------------------------------------------------------------
# d. heavy_matmul.onnx
# ---------------------------------------------------------------------------
def make_heavy_matmul() -> str:
    rng = np.random.default_rng(1)
    w1 = (rng.standard_normal((1024, 1024)) * 0.03).astype(np.float32)
    w2 = (rng.standard_normal((1024, 1024)) * 0.03).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2")]
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h1"], name="mm1"),
        helper.make_node("MatMul", ["h1", "W2"], ["h2"], name="mm2"),
        helper.make_node("MatMul", ["h2", "W1"], ["y"], name="mm3"),  # W1 reused
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1024])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1024])
    graph = helper.make_graph(nodes, "heavy_matmul", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=opsets(), ir_version=IR_VERSION,
                              producer_name="oxinfer-fixtures", producer_version="1.0")
    return finish(model, "heavy_matmul.onnx")


# ---------------------------------------------------------------------------
# e. slow_loop.onnx
# ---------------------------------------------------------------------------
def make_slow_loop() -> str:
    rng = np.random.default_rng(2)
    w = (rng.standard_normal((256, 256)) * 0.05).astype(np.float32)

    # Loop body: (iter_num, cond_in, x_in) -> (cond_out, x_out)
    # W is an outer-scope initializer, visible inside the subgraph.
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep_going"),
            helper.make_node("MatMul", ["x_in", "W"], ["xw"], name="body_matmul"),
            helper.make_node("Tanh", ["xw"], ["x_out"], name="body_tanh"),
        ],
        "slow_loop_body",
        [
            helper.make_tensor_value_info("iter_num", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [256, 256]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [256, 256]),
        ],
    )
    cond = numpy_helper.from_array(np.array(True), "cond_init")
    loop = helper.make_node("Loop", ["iters", "cond_init", "x"], ["y"], name="loop",
                            body=body)
    graph = helper.make_graph(
        [loop], "slow_loop",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [256, 256]),
            helper.make_tensor_value_info("iters", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [256, 256])],
        initializer=[numpy_helper.from_array(w, "W"), cond],
    )
    model = helper.make_model(graph, opset_imports=opsets(), ir_version=IR_VERSION,
                              producer_name="oxinfer-fixtures", producer_version="1.0")
    return finish(model, "slow_loop.onnx")


# ---------------------------------------------------------------------------
# f. zipmap.onnx (scikit-learn LogisticRegression via skl2onnx, ZipMap on)
# ---------------------------------------------------------------------------
def zipmap_data():
    rng = np.random.default_rng(3)
    centers = np.array([[0, 0, 0, 0], [3, 3, 0, 0], [0, 3, 3, 3]], dtype=np.float64)
    labels = np.repeat(np.arange(3), 20)
    feats = centers[labels] + rng.standard_normal((labels.size, 4))
    return feats.astype(np.float32), labels.astype(np.int64)


def make_zipmap() -> str:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    X, y = zipmap_data()
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    model = convert_sklearn(
        clf,
        name="zipmap_logreg",
        initial_types=[("float_input", FloatTensorType([None, 4]))],
        target_opset={"": OPSET, "ai.onnx.ml": 3},
    )  # zipmap defaults to True
    model.ir_version = IR_VERSION
    model.producer_name = "oxinfer-fixtures (skl2onnx)"
    return finish(model, "zipmap.onnx")


# ---------------------------------------------------------------------------
# g. add_int64.onnx
# ---------------------------------------------------------------------------
def make_add_int64() -> str:
    a = helper.make_tensor_value_info("a", TensorProto.INT64, [3])
    b = helper.make_tensor_value_info("b", TensorProto.INT64, [3])
    c = helper.make_tensor_value_info("c", TensorProto.INT64, [3])
    node = helper.make_node("Add", ["a", "b"], ["c"], name="add")
    graph = helper.make_graph([node], "add_int64", [a, b], [c])
    model = helper.make_model(graph, opset_imports=opsets(), ir_version=IR_VERSION,
                              producer_name="oxinfer-fixtures", producer_version="1.0")
    return finish(model, "add_int64.onnx")


# ---------------------------------------------------------------------------
# Run everything once through onnxruntime
# ---------------------------------------------------------------------------
def session(path, threads=None):
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def describe(sess):
    ins = ", ".join(f"{i.name}:{i.type}{i.shape}" for i in sess.get_inputs())
    outs = ", ".join(f"{o.name}:{o.type}{o.shape}" for o in sess.get_outputs())
    return f"inputs [{ins}] outputs [{outs}]"


def timed(sess, feeds, repeat=1):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = sess.run(None, feeds)
        best = min(best, time.perf_counter() - t0)
    return out, best


def run_all(paths, skip_timing: bool):
    import onnxruntime as ort
    print(f"\nonnxruntime {ort.__version__}, onnx {onnx.__version__}")

    # a. all_types
    s = session(paths["all_types"])
    print("all_types:", describe(s))
    meta = s.get_modelmeta()
    print(f"  meta: producer={meta.producer_name!r} version={meta.version} "
          f"doc={meta.description!r} custom={meta.custom_metadata_map}")
    assert meta.version == 7 and meta.custom_metadata_map == {"author": "oxinfer",
                                                              "purpose": "round-trip"}
    feeds = {}
    for name, _, dt in ALL_TYPES:
        if name == "string":
            arr = np.array([["a", "bc"], ["", "ü"]], dtype=object)
        elif name == "bool":
            arr = np.array([[True, False], [False, True]])
        else:
            arr = np.array([[0, 1], [2, 3]]).astype(dt)
        feeds[f"in_{name}"] = arr
    outs = s.run(None, feeds)
    for (name, _, _), o in zip(ALL_TYPES, outs):
        assert np.array_equal(o, feeds[f"in_{name}"]) and o.dtype == feeds[f"in_{name}"].dtype
    print("  all 13 outputs equal their inputs")

    # b. dims
    s = session(paths["dims"])
    print("dims:", describe(s))
    x = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    (y,) = s.run(None, {"x": x})
    assert np.array_equal(y, x * 2)
    print(f"  y.shape={y.shape}, y == 2x")

    # c. tiny_mlp
    s = session(paths["tiny_mlp"])
    print("tiny_mlp:", describe(s))
    x = np.random.default_rng(42).standard_normal((4, 16)).astype(np.float32)
    (y,) = s.run(None, {"x": x})
    w1, b1, w2, b2 = tiny_mlp_weights()
    ref = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    assert np.allclose(y, ref, atol=1e-5), (y, ref)
    print(f"  y={y.tolist()}")
    expected = {
        "tiny_mlp": {
            "model": "tiny_mlp.onnx",
            "inputSeed": "np.random.default_rng(42).standard_normal((4, 16)).astype(float32)",
            "input": {"name": "x", "dims": list(x.shape), "data": [float(v) for v in x.ravel()]},
            "output": {"name": "y", "dims": list(y.shape), "data": [float(v) for v in y.ravel()]},
            "tolerance": 1e-5,
        }
    }
    with open(os.path.join(OUT_DIR, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")
    print("  wrote __test__/fixtures/expected.json")

    # d. heavy_matmul
    s = session(paths["heavy_matmul"], threads=1)
    print("heavy_matmul:", describe(s))
    for batch in (1, 64, 256, 512):
        x = np.random.default_rng(5).standard_normal((batch, 1024)).astype(np.float32)
        (y,), t = timed(s, {"x": x}, repeat=5)
        print(f"  batch {batch:3d}, 1 thread: best of 5 = {t * 1000:6.1f} ms; "
              f"y.shape={y.shape} |y| mean={np.abs(y).mean():.3f}")

    # e. slow_loop
    s = session(paths["slow_loop"])
    print("slow_loop:", describe(s))
    x = np.random.default_rng(6).standard_normal((256, 256)).astype(np.float32)
    (y1,), t1 = timed(s, {"x": x, "iters": np.array(1, dtype=np.int64)})
    w = numpy_helper.to_array(onnx.load(paths["slow_loop"]).graph.initializer[0])
    assert np.allclose(y1, np.tanh(x @ w), atol=1e-5)
    print(f"  iters=1: {t1 * 1000:.1f} ms (default threads)")
    if skip_timing:
        print("  iters=20000: skipped (--skip-timing)")
    else:
        (y2,), t2 = timed(s, {"x": x, "iters": np.array(20000, dtype=np.int64)})
        print(f"  iters=20000: {t2:.2f} s (default threads)")
        assert t2 > 2.0, "slow_loop with iters=20000 should take more than 2 s"
        s1 = session(paths["slow_loop"], threads=1)
        (_,), t3 = timed(s1, {"x": x, "iters": np.array(20000, dtype=np.int64)})
        print(f"  iters=20000: {t3:.2f} s (1 thread)")
        assert t3 > 2.0

    # f. zipmap
    s = session(paths["zipmap"])
    print("zipmap:", describe(s))
    X, _ = zipmap_data()
    label, prob = s.run(None, {"float_input": X[[0, 20, 40]]})
    print(f"  output_label={label.tolist()} ({label.dtype})")
    print(f"  output_probability={[{k: round(v, 4) for k, v in m.items()} for m in prob]}")
    assert label.dtype == np.int64 and isinstance(prob, list) and isinstance(prob[0], dict)

    # g. add_int64
    s = session(paths["add_int64"])
    print("add_int64:", describe(s))
    (c,) = s.run(None, {"a": np.array([1, 2, 3], np.int64),
                        "b": np.array([10, 20, 2**40], np.int64)})
    assert c.tolist() == [11, 22, 2**40 + 3]
    print(f"  c={c.tolist()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-timing", action="store_true",
                    help="skip the slow (tens of seconds) iters=20000 timing of slow_loop")
    ap.add_argument("--no-run", action="store_true", help="only write and check the models")
    args = ap.parse_args()

    os.makedirs(OUT_DIR, exist_ok=True)
    paths = {
        "all_types": make_all_types(),
        "dims": make_dims(),
        "tiny_mlp": make_tiny_mlp(),
        "heavy_matmul": make_heavy_matmul(),
        "slow_loop": make_slow_loop(),
        "zipmap": make_zipmap(),
        "add_int64": make_add_int64(),
    }
    size = os.path.getsize(paths["heavy_matmul"])
    assert size < 10 * 1024 * 1024, size
    if not args.no_run:
        run_all(paths, args.skip_timing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
