#!/usr/bin/env python3
"""Generate the PCA and Platt-scaling parity fixtures in __test__/fixtures/features/.

  iris.csv              copied from the installed scikit-learn package
                        (sklearn/datasets/data/iris.csv, BSD-3-Clause), SHA-256 checked
  pca_reference.json    sklearn PCA(n_components=3, svd_solver='full') fitted on
                        (a) the 4 iris features (150 rows) and (b) the 4 numeric
                        penguins columns of __test__/fixtures/penguins/records.json
                        (rows where all 4 are present): mean_, components_,
                        explained_variance_ (+ ratio, singular values,
                        noise_variance_) and transform() of every row
  platt_reference.json  a seeded 1-D score/label data set and sigmoid fits
                        P(y=1 | f) = 1 / (1 + exp(A*f + B)):
                          - sklearn LogisticRegression(C=1e10) (hard 0/1 targets)
                          - Platt's method with target smoothing (prior
                            correction), Newton + backtracking as in Lin, Lin &
                            Weng (2007), implemented here; cross-checked with
                            sklearn.calibration._sigmoid_calibration and a
                            high-precision scipy minimisation

Deterministic: with the versions pinned in scripts/requirements-features.txt
re-running it rewrites byte-identical files.

Usage:
    python3 -m venv /tmp/featvenv
    /tmp/featvenv/bin/pip install -r scripts/requirements-features.txt
    /tmp/featvenv/bin/python scripts/make_feature_fixtures.py
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil

import numpy as np
import scipy
import sklearn
from scipy.optimize import minimize
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "__test__", "fixtures", "features")
IRIS = os.path.join(OUT_DIR, "iris.csv")
IRIS_SHA256 = "f13ffa8fdd56fd8e6c8d16d4081a3fbd3114bcd0aae4256c43205169cd9d1449"
PENGUINS = os.path.join(ROOT, "__test__", "fixtures", "penguins", "records.json")
PENGUIN_NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
IRIS_FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]


def fl(x):
    """float(s) -> JSON numbers (repr round-trips float64 exactly)."""
    return np.asarray(x, dtype=np.float64).tolist()


# --------------------------------------------------------------------------
# PCA
# --------------------------------------------------------------------------

def load_iris() -> tuple[np.ndarray, np.ndarray, list[str]]:
    if not os.path.exists(IRIS):
        import sklearn.datasets
        src = os.path.join(os.path.dirname(sklearn.datasets.__file__), "data", "iris.csv")
        shutil.copyfile(src, IRIS)
        print(f"copied {src}")
    with open(IRIS, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == IRIS_SHA256, "iris.csv: unexpected SHA-256"
    with open(IRIS, encoding="utf-8") as f:
        rows = [line.strip().split(",") for line in f if line.strip()]
    header = rows[0]  # n_samples, n_features, class names...
    n, d = int(header[0]), int(header[1])
    names = header[2:]
    data = np.array([[float(v) for v in r[:d]] for r in rows[1:]], dtype=np.float64)
    target = np.array([int(r[d]) for r in rows[1:]])
    assert data.shape == (n, d)
    return data, target, names


def load_penguins() -> tuple[np.ndarray, list[int]]:
    with open(PENGUINS, encoding="utf-8") as f:
        recs = json.load(f)["records"]
    idx, rows = [], []
    for i, r in enumerate(recs):
        vals = [r[k] for k in PENGUIN_NUMERIC]
        if all(v is not None for v in vals):
            idx.append(i)
            rows.append([float(v) for v in vals])
    return np.array(rows, dtype=np.float64), idx


def pca_record(X: np.ndarray, features: list[str]) -> dict:
    pca = PCA(n_components=3, svd_solver="full")
    Z = pca.fit_transform(X)
    Zt = pca.transform(X)
    assert np.allclose(Z, Zt, rtol=1e-10, atol=1e-9)  # fit_transform uses U*S, transform X@V.T
    # check the documented maths: transform = (X - mean) @ components.T
    Zm = (X - pca.mean_) @ pca.components_.T
    assert np.allclose(Zt, Zm, rtol=0, atol=1e-9)
    # sign convention (svd_flip, u_based_decision=False): the entry with the
    # largest |value| in each component row is positive
    for row in pca.components_:
        assert row[np.argmax(np.abs(row))] > 0
    return {
        "n_samples": int(X.shape[0]),
        "features": features,
        "X": fl(X),
        "mean_": fl(pca.mean_),
        "components_": fl(pca.components_),
        "explained_variance_": fl(pca.explained_variance_),
        "explained_variance_ratio_": fl(pca.explained_variance_ratio_),
        "singular_values_": fl(pca.singular_values_),
        "noise_variance_": float(pca.noise_variance_),
        "transform": fl(Zt),
    }


# --------------------------------------------------------------------------
# Platt scaling
# --------------------------------------------------------------------------

def make_platt_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20240611)
    n_neg, n_pos = 180, 120
    neg = rng.normal(-1.0, 1.0, n_neg)
    pos = rng.normal(1.2, 1.3, n_pos)
    f = np.concatenate([neg, pos])
    y = np.concatenate([np.zeros(n_neg, int), np.ones(n_pos, int)])
    order = rng.permutation(f.size)
    f = np.round(f[order], 4)  # the stored values are exactly the fitted ones
    y = y[order]
    return f, y


def platt_objective(AB, f, t):
    """Cross-entropy of p = 1/(1+exp(A f + B)) against targets t (stable)."""
    A, B = AB
    z = A * f + B  # p = sigmoid(-z)
    # -[t log p + (1-t) log(1-p)] = t*z + log(1+exp(-z))  (= log1p form)
    loss = np.where(z >= 0, t * z + np.log1p(np.exp(-z)), (t - 1) * z + np.log1p(np.exp(z)))
    p = np.where(z >= 0, np.exp(-z) / (1 + np.exp(-z)), 1 / (1 + np.exp(z)))
    d1 = t - p
    return loss.sum(), np.array([np.sum(f * d1), np.sum(d1)])


def platt_newton(f, y, smooth: bool, gtol: float = 1e-5, maxiter: int = 100):
    """Lin, Lin & Weng (2007), "A note on Platt's probabilistic outputs for
    support vector machines", Algorithm 1 (as in LIBSVM sigmoid_train).
    smooth=True uses Platt's targets (N+ + 1)/(N+ + 2) and 1/(N- + 2);
    smooth=False uses hard 0/1 targets (plain unregularised logistic MLE)."""
    prior1 = float(np.sum(y == 1))
    prior0 = float(np.sum(y != 1))
    if smooth:
        hi, lo = (prior1 + 1.0) / (prior1 + 2.0), 1.0 / (prior0 + 2.0)
    else:
        hi, lo = 1.0, 0.0
    t = np.where(y == 1, hi, lo)
    min_step, sigma = 1e-10, 1e-12
    A, B = 0.0, math.log((prior0 + 1.0) / (prior1 + 1.0))
    fval, _ = platt_objective((A, B), f, t)
    it = 0
    for it in range(maxiter):
        z = A * f + B
        p = np.where(z >= 0, np.exp(-z) / (1 + np.exp(-z)), 1 / (1 + np.exp(z)))
        q = np.where(z >= 0, 1 / (1 + np.exp(-z)), np.exp(z) / (1 + np.exp(z)))
        d2 = p * q
        h11 = sigma + np.sum(f * f * d2)
        h22 = sigma + np.sum(d2)
        h21 = np.sum(f * d2)
        d1 = t - p
        g1, g2 = np.sum(f * d1), np.sum(d1)
        if abs(g1) < gtol and abs(g2) < gtol:
            break
        det = h11 * h22 - h21 * h21
        dA = -(h22 * g1 - h21 * g2) / det
        dB = -(-h21 * g1 + h11 * g2) / det
        gd = g1 * dA + g2 * dB
        step = 1.0
        while step >= min_step:
            nA, nB = A + step * dA, B + step * dB
            nf, _ = platt_objective((nA, nB), f, t)
            if nf < fval + 0.0001 * step * gd:
                A, B, fval = nA, nB, nf
                break
            step /= 2.0
        if step < min_step:
            print("platt_newton: line search failed")
            break
    return float(A), float(B), t, it


def platt_reference() -> dict:
    f, y = make_platt_data()

    # (1) sklearn LogisticRegression, C=1e10 (effectively unregularised)
    lr = LogisticRegression(C=1e10, tol=1e-12, max_iter=10000)
    lr.fit(f.reshape(-1, 1), y)
    w, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    A_lr, B_lr = -w, -b
    A_hard, B_hard, _, it_hard = platt_newton(f, y, smooth=False, gtol=1e-10)

    # (2) Platt with target smoothing
    A_p, B_p, t, it_p = platt_newton(f, y, smooth=True)          # LIBSVM stopping rule
    A_p2, B_p2, _, _ = platt_newton(f, y, smooth=True, gtol=1e-9)  # to convergence
    res = minimize(lambda ab: platt_objective(ab, f, t), x0=np.array([0.0, 0.0]), jac=True,
                   method="BFGS", options={"gtol": 1e-11})
    from sklearn.calibration import _sigmoid_calibration
    A_sk, B_sk = (float(v) for v in _sigmoid_calibration(f, y))

    assert abs(A_lr - A_hard) < 1e-6 and abs(B_lr - B_hard) < 1e-6, (A_lr, A_hard, B_lr, B_hard)
    assert abs(A_p - A_p2) < 1e-7 and abs(B_p - B_p2) < 1e-7
    assert abs(A_p2 - res.x[0]) < 1e-7 and abs(B_p2 - res.x[1]) < 1e-7
    assert abs(A_p2 - A_sk) < 1e-4 and abs(B_p2 - B_sk) < 1e-4, (A_p2, A_sk, B_p2, B_sk)

    probe = np.linspace(-4, 4, 17)
    return {
        "convention": "P(y=1 | f) = 1 / (1 + exp(A*f + B))",
        "data": {
            "generator": "numpy default_rng(20240611): 180 negatives ~ N(-1.0, 1.0), 120 positives ~ N(1.2, 1.3), "
                         "shuffled, scores rounded to 4 decimals",
            "n_negative": int(np.sum(y == 0)),
            "n_positive": int(np.sum(y == 1)),
            "scores": fl(f),
            "labels": y.tolist(),
        },
        "logistic_regression": {
            "what": "sklearn LogisticRegression(C=1e10, tol=1e-12, max_iter=10000) (lbfgs) on x = score, "
                    "hard 0/1 targets. sklearn's own convention is P = 1/(1+exp(-(coef*f + intercept))), so "
                    "A = -coef, B = -intercept.",
            "coef": w,
            "intercept": b,
            "A": A_lr,
            "B": B_lr,
            "A_newton_unregularised": A_hard,
            "B_newton_unregularised": B_hard,
            "note": "A/B_newton_unregularised: the exact MLE (Newton, |grad| < 1e-10, no penalty); differs from "
                    "sklearn's C=1e10 fit by < 1e-6.",
        },
        "platt": {
            "what": "Platt (1999) with target smoothing / prior correction: t = (N+ + 1)/(N+ + 2) for positives, "
                    "1/(N- + 2) for negatives; minimise sum -[t log p + (1-t) log(1-p)]. Newton with backtracking "
                    "line search (Lin, Lin & Weng 2007, LIBSVM sigmoid_train): start A=0, "
                    "B=log((N- + 1)/(N+ + 1)), sigma=1e-12 added to the Hessian diagonal, Armijo 1e-4, "
                    "min_step 1e-10, stop when |dL/dA| and |dL/dB| < 1e-5.",
            "target_positive": float((np.sum(y == 1) + 1.0) / (np.sum(y == 1) + 2.0)),
            "target_negative": float(1.0 / (np.sum(y == 0) + 2.0)),
            "A": A_p,
            "B": B_p,
            "newton_iterations": it_p,
            "A_converged": A_p2,
            "B_converged": B_p2,
            "A_sklearn_sigmoid_calibration": A_sk,
            "B_sklearn_sigmoid_calibration": B_sk,
            "note": "A/B: LIBSVM stopping rule; A/B_converged: same Newton to |grad| < 1e-9 (equal to a scipy "
                    "BFGS minimisation within 1e-7); *_sklearn_sigmoid_calibration: "
                    "sklearn.calibration._sigmoid_calibration (L-BFGS-B, gtol 1e-6), which is what "
                    "CalibratedClassifierCV(method='sigmoid') uses; agrees within 1e-4. Compare with ~1e-6 "
                    "tolerance against A_converged/B_converged.",
        },
        "probe": {
            "scores": fl(probe),
            "p_logistic_regression": fl(1.0 / (1.0 + np.exp(A_lr * probe + B_lr))),
            "p_platt": fl(1.0 / (1.0 + np.exp(A_p2 * probe + B_p2))),
        },
    }


def dumps(obj, level: int = 0) -> str:
    """JSON with one-space indentation, but lists of scalars (and matrix
    rows) kept on one line."""
    pad, pad1 = " " * level, " " * (level + 1)
    if isinstance(obj, dict):
        items = [f"{pad1}{json.dumps(k)}: {dumps(v, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj and all(isinstance(v, list) for v in obj):
        return "[\n" + ",\n".join(pad1 + json.dumps(v) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj)


def write_json(path: str, obj: dict) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(dumps(obj) + "\n")
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == json.loads(json.dumps(obj))
    print(f"{os.path.relpath(path, ROOT)}: {os.path.getsize(path)} bytes")


def main() -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    X_iris, _, names = load_iris()
    X_pen, pen_idx = load_penguins()
    pen = pca_record(X_pen, PENGUIN_NUMERIC)
    pen["row_indices"] = pen_idx
    pca = {
        "meta": {
            "generator": "scripts/make_feature_fixtures.py",
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "estimator": "PCA(n_components=3, svd_solver='full'), whiten=False, float64",
            "transform": "(X - mean_) @ components_.T",
            "explained_variance": "eigenvalues of the sample covariance (divides by n_samples - 1)",
            "sign_convention": "sklearn svd_flip(u_based_decision=False): in each row of components_ the entry "
                               "with the largest absolute value is positive",
        },
        "iris": {**pca_record(X_iris, IRIS_FEATURES), "source": "iris.csv (sklearn/datasets/data/iris.csv)",
                 "classes": names},
        "penguins": {**pen, "source": "__test__/fixtures/penguins/records.json, the rows (indices in row_indices) "
                                      "where all four numeric columns are present; unscaled"},
    }
    write_json(os.path.join(OUT_DIR, "pca_reference.json"), pca)

    platt = {
        "meta": {
            "generator": "scripts/make_feature_fixtures.py",
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        **platt_reference(),
    }
    write_json(os.path.join(OUT_DIR, "platt_reference.json"), platt)
    print(f"iris EVR {pca['iris']['explained_variance_ratio_']}")
    print(f"penguins rows {pca['penguins']['n_samples']}")
    print(f"LR A,B = {platt['logistic_regression']['A']}, {platt['logistic_regression']['B']}")
    print(f"Platt A,B = {platt['platt']['A']}, {platt['platt']['B']} "
          f"(sklearn {platt['platt']['A_sklearn_sigmoid_calibration']}, "
          f"{platt['platt']['B_sklearn_sigmoid_calibration']})")


if __name__ == "__main__":
    main()
