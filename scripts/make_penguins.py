#!/usr/bin/env python3
"""Generate the tabular-pipeline fixtures in __test__/fixtures/penguins/.

Data: node_modules/vega-datasets/data/penguins.json (vega-datasets 3.2.1).
Trains a scikit-learn Pipeline (impute + scale / impute + one-hot, then
LogisticRegression) on rows whose index % 5 != 0, exports only the
LogisticRegression to ONNX, and writes the oxinfer pipeline spec (fitted and
unfitted) plus sklearn's reference outputs for all 344 rows.

Deterministic: with the versions pinned in scripts/requirements-fixtures.txt
re-running it rewrites byte-identical files.

Usage:
    python3 -m venv /tmp/fxvenv
    /tmp/fxvenv/bin/pip install -r scripts/requirements-fixtures.txt
    /tmp/fxvenv/bin/python scripts/make_penguins.py
"""

from __future__ import annotations

import copy
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "node_modules", "vega-datasets", "data", "penguins.json")
OUT_DIR = os.path.join(ROOT, "__test__", "fixtures", "penguins")

RENAME = {
    "Species": "species",
    "Island": "island",
    "Beak Length (mm)": "bill_length_mm",
    "Beak Depth (mm)": "bill_depth_mm",
    "Flipper Length (mm)": "flipper_length_mm",
    "Body Mass (g)": "body_mass_g",
    "Sex": "sex",
}
# Record key order (and spec field order).
FIELDS = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]
COLUMNS = NUMERIC + CATEGORICAL  # column order of the matrix fed to the Pipeline

OPSET = 17
IR_VERSION = 8
TOL = 1e-5


def load_rows():
    """Return (records, species): records without species, None for missing."""
    with open(SRC, encoding="utf-8") as f:
        raw = json.load(f)
    records, species = [], []
    for row in raw:
        r = {RENAME[k]: v for k, v in row.items()}
        species.append(r.pop("species"))
        records.append({k: r[k] for k in FIELDS})
    return records, species


def train_indices(n):
    return [i for i in range(n) if i % 5 != 0]


def to_matrix(records):
    """Object matrix in COLUMNS order: numbers as float (NaN if missing),
    strings as str (np.nan if missing), which SimpleImputer treats as missing."""
    X = np.empty((len(records), len(COLUMNS)), dtype=object)
    for i, r in enumerate(records):
        for j, name in enumerate(COLUMNS):
            v = r[name]
            if name in NUMERIC:
                X[i, j] = np.nan if v is None else float(v)
            else:
                X[i, j] = np.nan if v is None else str(v)
    return X


def build_pipeline():
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num = Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", StandardScaler())])
    cat = Pipeline([
        ("impute", SimpleImputer(strategy="most_frequent")),
        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
    ])
    pre = ColumnTransformer(
        [("num", num, list(range(len(NUMERIC)))),
         ("cat", cat, list(range(len(NUMERIC), len(COLUMNS))))],
        verbose_feature_names_out=False,
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))])


def fit_pipeline(records, species, train_idx):
    """Fit on the train rows. y is the species' index in sorted(set(species)), so
    the ONNX `label` output is int64 (string targets would make it a string
    tensor); returns (pipe, X, classes) with classes[i] the name of class i."""
    X = to_matrix(records)
    classes = sorted(set(species))
    y = np.array([classes.index(s) for s in species], dtype=np.int64)
    pipe = build_pipeline().fit(X[train_idx], y[train_idx])
    assert list(pipe.named_steps["clf"].classes_) == list(range(len(classes)))
    return pipe, X, classes


def fitted_values(pipe):
    pre = pipe.named_steps["pre"]
    num = pre.named_transformers_["num"]
    cat = pre.named_transformers_["cat"]
    imp_num, scaler = num.named_steps["impute"], num.named_steps["scale"]
    imp_cat, enc = cat.named_steps["impute"], cat.named_steps["onehot"]
    return {
        "impute_mean": {f: float(v) for f, v in zip(NUMERIC, imp_num.statistics_)},
        "scaler_mean": {f: float(v) for f, v in zip(NUMERIC, scaler.mean_)},
        "scaler_scale": {f: float(v) for f, v in zip(NUMERIC, scaler.scale_)},
        "impute_most_frequent": {f: str(v) for f, v in zip(CATEGORICAL, imp_cat.statistics_)},
        "categories": {f: [str(c) for c in cats] for f, cats in zip(CATEGORICAL, enc.categories_)},
    }


def feature_names(pipe, fitted):
    names = NUMERIC + [f"{f}={c}" for f in CATEGORICAL for c in fitted["categories"][f]]
    # Check against the ColumnTransformer's own output order.
    sk = list(pipe.named_steps["pre"].get_feature_names_out(COLUMNS))
    want = NUMERIC + [f"{f}_{c}" for f in CATEGORICAL for c in fitted["categories"][f]]
    assert sk == want, (sk, want)
    return names


def export_onnx(pipe, n_features):
    import onnx
    from onnx import helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    clf = pipe.named_steps["clf"]
    model = convert_sklearn(
        clf,
        name="penguins_logreg",
        initial_types=[("float_input", FloatTensorType([None, n_features]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": OPSET, "ai.onnx.ml": 3},
    )
    if model.ir_version > IR_VERSION:
        model.ir_version = IR_VERSION
    model.producer_name = "oxinfer-fixtures (skl2onnx)"
    # skl2onnx builds opset_import from a set; sort it for reproducible bytes.
    imports = sorted(model.opset_import, key=lambda o: o.domain)
    imports = [helper.make_opsetid(o.domain, o.version) for o in imports]
    del model.opset_import[:]
    model.opset_import.extend(imports)
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(OUT_DIR, "penguins.onnx")
    onnx.save_model(model, path)
    onnx.checker.check_model(path, full_check=True)
    outs = [o.name for o in model.graph.output]
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes, "
          f"ir_version={model.ir_version}, opsets="
          f"{ {o.domain or 'ai.onnx': o.version for o in model.opset_import} }, outputs={outs})")
    return path, outs


def make_spec(fitted, names, label_out, prob_out, classes):
    return {
        "version": 1,
        "name": "penguins-species",
        "description": "Palmer penguins species from island, bill, flipper, body mass and sex "
                       "(scikit-learn LogisticRegression; generated by scripts/make_penguins.py).",
        "model": "penguins.onnx",
        "fields": [{"name": f, "type": "category" if f in CATEGORICAL else "number"} for f in FIELDS],
        "preprocess": [
            {"op": "impute", "fields": NUMERIC, "strategy": "mean", "values": fitted["impute_mean"]},
            {"op": "standard_scale", "fields": NUMERIC,
             "mean": fitted["scaler_mean"], "scale": fitted["scaler_scale"]},
            {"op": "impute", "fields": CATEGORICAL, "strategy": "most_frequent",
             "values": fitted["impute_most_frequent"]},
            *({"op": "one_hot", "field": f, "categories": fitted["categories"][f], "unknown": "ignore"}
              for f in CATEGORICAL),
        ],
        "features": [{"input": "float_input", "names": names}],
        "output": {"tensor": prob_out, "labels": classes, "postprocess": [{"op": "argmax"}]},
    }


def unfit(spec):
    spec = copy.deepcopy(spec)
    for stage in spec["preprocess"]:
        for key in ("values", "mean", "scale", "categories"):
            stage.pop(key, None)
    return spec


def validate(spec):
    import jsonschema

    with open(os.path.join(ROOT, "schema", "pipeline.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(spec)


def write_json(name, text):
    path = os.path.join(OUT_DIR, name)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def rows_json(key, rows, last=False):
    """A JSON array with one element per line (keeps the files diffable)."""
    body = ",\n".join("    " + json.dumps(r) for r in rows)
    return f'  "{key}": [\n{body}\n  ]' + ("\n" if last else ",\n")


def main():
    import onnxruntime as ort
    import sklearn

    os.makedirs(OUT_DIR, exist_ok=True)
    records, species = load_rows()
    assert len(records) == 344, len(records)
    train_idx = train_indices(len(records))
    print(f"{len(records)} rows, {len(train_idx)} train, {len(records) - len(train_idx)} test")

    # 1. records.json
    write_json("records.json", "{\n" + rows_json("records", records)
               + '  "species": ' + json.dumps(species) + "\n}\n")

    # 2-3. fit
    pipe, X, classes = fit_pipeline(records, species, train_idx)
    fitted = fitted_values(pipe)
    names = feature_names(pipe, fitted)
    print("features:", names)
    print("classes:", classes)
    print("fitted:", json.dumps(fitted))

    # 4. ONNX (LogisticRegression only)
    path, outs = export_onnx(pipe, len(names))
    label_out, prob_out = outs
    assert (label_out, prob_out) == ("label", "probabilities"), outs

    # 6 (check). ONNX on sklearn-preprocessed features vs the full Pipeline.
    proba = pipe.predict_proba(X)
    pred = [classes[p] for p in pipe.predict(X)]
    feats = pipe.named_steps["pre"].transform(X).astype(np.float32)
    assert feats.shape == (len(records), len(names)), feats.shape
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    o_label, o_prob = sess.run([label_out, prob_out], {"float_input": feats})
    diff = float(np.max(np.abs(o_prob.astype(np.float64) - proba)))
    print(f"onnxruntime {ort.__version__} vs sklearn {sklearn.__version__} predict_proba: "
          f"max abs diff {diff:.3g} over {len(records)} rows (tolerance {TOL})")
    assert diff <= TOL, diff
    assert o_label.dtype == np.int64 and o_prob.dtype == np.float32, (o_label.dtype, o_prob.dtype)
    assert [classes[i] for i in o_label] == pred, "ONNX labels differ from sklearn predict"
    assert all(classes[int(i)] == p for i, p in zip(np.argmax(proba, axis=1), pred))
    acc = np.mean([pred[i] == species[i] for i in range(len(records)) if i % 5 == 0])
    print(f"test accuracy {acc:.4f}")

    # 5. specs
    spec = make_spec(fitted, names, label_out, prob_out, classes)
    unfitted = unfit(spec)
    validate(spec)
    validate(unfitted)
    write_json("pipeline.json", json.dumps(spec, indent=2) + "\n")
    write_json("pipeline.unfitted.json", json.dumps(unfitted, indent=2) + "\n")

    # 6. reference.json
    write_json("reference.json", "{\n"
               + '  "train_indices": ' + json.dumps(train_idx) + ",\n"
               + rows_json("predict_proba", [[float(p) for p in row] for row in proba])
               + '  "predict": ' + json.dumps(pred) + ",\n"
               + '  "classes": ' + json.dumps(classes) + ",\n"
               + '  "fitted": ' + json.dumps(fitted) + "\n}\n")


if __name__ == "__main__":
    main()
