#!/usr/bin/env python3
"""Throughput of the scikit-learn penguins Pipeline (baseline for oxinfer).

Loads __test__/fixtures/penguins/records.json, re-trains the Pipeline of
scripts/make_penguins.py deterministically on the train rows listed in
reference.json (nothing is pickled), builds 100,000 records by cycling the 344,
and times Pipeline.predict_proba from the raw records (NaN/None matrix, as the
Pipeline expects) at batch 1 and batch 1024. Prints one JSON line.

    /tmp/fxvenv/bin/python scripts/bench_sklearn_penguins.py [--batch1-calls 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.dont_write_bytecode = True  # no scripts/__pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_penguins as mp  # noqa: E402

N = 100_000


def main():
    import sklearn

    ap = argparse.ArgumentParser()
    ap.add_argument("--batch1-calls", type=int, default=3000)
    args = ap.parse_args()

    with open(os.path.join(mp.OUT_DIR, "records.json"), encoding="utf-8") as f:
        data = json.load(f)
    with open(os.path.join(mp.OUT_DIR, "reference.json"), encoding="utf-8") as f:
        ref = json.load(f)
    records, species = data["records"], data["species"]
    pipe, X344, _ = mp.fit_pipeline(records, species, ref["train_indices"])
    # Same model as the fixtures?
    assert np.max(np.abs(pipe.predict_proba(X344) - np.array(ref["predict_proba"]))) < 1e-12

    X = mp.to_matrix([records[i % len(records)] for i in range(N)])

    # batch 1: single-record calls, extrapolated to records/s
    for i in range(100):  # warm-up
        pipe.predict_proba(X[i:i + 1])
    n1 = args.batch1_calls
    t = time.perf_counter()
    for i in range(n1):
        pipe.predict_proba(X[i:i + 1])
    b1 = n1 / (time.perf_counter() - t)

    # batch 1024 over all 100k records
    pipe.predict_proba(X[:1024])  # warm-up
    t = time.perf_counter()
    for s in range(0, N, 1024):
        pipe.predict_proba(X[s:s + 1024])
    b1024 = N / (time.perf_counter() - t)

    print(json.dumps({
        "batch1_records_per_s": round(b1, 1),
        "batch1024_records_per_s": round(b1024, 1),
        "batch1_calls": n1,
        "records": N,
        "sklearn": sklearn.__version__,
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
