"""Writes an MLServer model folder for benchmark/server.mjs: the scikit-learn
penguins Pipeline, trained as scripts/make_penguins.py trains it (same rows,
same predictions as the fixtures), saved with joblib, and its
model-settings.json for mlserver-sklearn. Usage: python mlserver_penguins.py DIR"""

import json
import os
import sys

import joblib
import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import make_penguins as mp  # noqa: E402

out = sys.argv[1]
with open(os.path.join(mp.OUT_DIR, "records.json"), encoding="utf-8") as f:
    data = json.load(f)
with open(os.path.join(mp.OUT_DIR, "reference.json"), encoding="utf-8") as f:
    ref = json.load(f)
pipe, X, _ = mp.fit_pipeline(data["records"], data["species"], ref["train_indices"])
assert np.max(np.abs(pipe.predict_proba(X) - np.array(ref["predict_proba"]))) < 1e-12
joblib.dump(pipe, os.path.join(out, "model.joblib"))
with open(os.path.join(out, "model-settings.json"), "w", encoding="utf-8") as f:
    json.dump({"name": "penguins", "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"uri": "./model.joblib", "version": "1"}}, f)
print(json.dumps({"columns": mp.COLUMNS}))
