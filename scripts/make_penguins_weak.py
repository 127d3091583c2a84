"""A deliberately weaker penguins classifier, for champion/challenger tests
of the `feedback` switch policy: the same preprocessing and input as
`penguins.onnx` ([N, 10] float32 `float_input`; outputs `label` int64 and
`probabilities` float32 [N, 3]), but a LogisticRegression that sees only
body mass (the other nine columns are zeroed before fitting, so their
weights are 0). Also writes the preprocessed features of all 344 rows, so
that a test can feed either model without a pipeline.

Run with the fixtures venv (see __test__/fixtures/penguins/README.md):
    /tmp/fxvenv/bin/python scripts/make_penguins_weak.py
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import make_penguins as mp  # noqa: E402

KEEP = 3  # body_mass_g, after the scaler


def main():
    import onnx
    import onnxruntime as ort
    from onnx import helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    records, species = mp.load_rows()
    train_idx = mp.train_indices(len(records))
    pipe, X, classes = mp.fit_pipeline(records, species, train_idx)
    feats = pipe.named_steps["pre"].transform(X).astype(np.float32)
    y = np.array([classes.index(s) for s in species], dtype=np.int64)
    masked = np.zeros_like(feats)
    masked[:, KEEP] = feats[:, KEEP]
    weak = LogisticRegression(max_iter=1000).fit(masked[train_idx], y[train_idx])

    model = convert_sklearn(
        weak,
        name="penguins_weak_logreg",
        initial_types=[("float_input", FloatTensorType([None, feats.shape[1]]))],
        options={id(weak): {"zipmap": False}},
        target_opset={"": mp.OPSET, "ai.onnx.ml": 3},
    )
    model.ir_version = min(model.ir_version, mp.IR_VERSION)
    model.producer_name = "oxinfer-fixtures (skl2onnx)"
    imports = [helper.make_opsetid(o.domain, o.version) for o in sorted(model.opset_import, key=lambda o: o.domain)]
    del model.opset_import[:]
    model.opset_import.extend(imports)
    # The weights of the zeroed columns are 0, so the full features give
    # the same answers as the masked ones.
    path = os.path.join(mp.OUT_DIR, "penguins_weak.onnx")
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, path)

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    label, proba = sess.run(["label", "probabilities"], {"float_input": feats})
    diff = float(np.max(np.abs(proba.astype(np.float64) - weak.predict_proba(masked))))
    assert diff <= mp.TOL, diff
    strong = ort.InferenceSession(os.path.join(mp.OUT_DIR, "penguins.onnx"), providers=["CPUExecutionProvider"])
    s_label = strong.run(["label"], {"float_input": feats})[0]
    acc_weak, acc_strong = float(np.mean(label == y)), float(np.mean(s_label == y))
    print(f"wrote {os.path.relpath(path, mp.ROOT)}: accuracy {acc_weak:.4f} (penguins.onnx {acc_strong:.4f}) over all 344 rows")
    out = {
        "note": "preprocessed features of records.json (pipeline.json's steps, float32), the species index per row, and each model's accuracy over all rows",
        "classes": classes,
        "features": [[float(v) for v in row] for row in feats],
        "species": [int(v) for v in y],
        "accuracy": {"penguins.onnx": acc_strong, "penguins_weak.onnx": acc_weak},
    }
    with open(os.path.join(mp.OUT_DIR, "features.json"), "w", encoding="utf-8") as f:
        json.dump(out, f)
        f.write("\n")


if __name__ == "__main__":
    main()
