"""Reference values of the drift statistics (crates/oxinfer-core/src/monitor),
computed with NumPy and SciPy as their documentation defines them, for
__test__/fixtures/drift/stats.json. Needs numpy and scipy (scikit-learn's
dependencies: scripts/requirements-fixtures.txt).

    python scripts/make_drift_fixtures.py
"""
import json
import os

import numpy as np
import scipy
from scipy import stats
from scipy.spatial.distance import jensenshannon

OUT = os.path.join(os.path.dirname(__file__), "..", "__test__", "fixtures", "drift", "stats.json")
SAMPLE = 2000
FLOOR = 1e-4


def thin(sorted_values):
    n = len(sorted_values)
    if n <= SAMPLE:
        return sorted_values
    return np.array([sorted_values[i * (n - 1) // (SAMPLE - 1)] for i in range(SAMPLE)])


def number_case(name, ref, cur):
    ref_present = np.sort(ref[~np.isnan(ref)])
    cur_present = np.sort(cur[~np.isnan(cur)])
    edges = np.unique(np.quantile(ref_present, np.arange(1, 10) / 10))
    ref_counts = np.bincount(np.searchsorted(edges, ref_present, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur_present, side="right"), minlength=len(edges) + 1)
    e = np.append(ref_counts, np.isnan(ref).sum()).astype(float)
    a = np.append(cur_counts, np.isnan(cur).sum()).astype(float)
    p = np.maximum(e / e.sum(), FLOOR)
    q = np.maximum(a / a.sum(), FLOOR)
    psi = float(np.sum((q - p) * np.log(q / p)))
    ks = stats.ks_2samp(thin(ref_present), cur_present)
    return {"name": name, "type": "number", "reference": [None if np.isnan(x) else float(x) for x in ref],
            "current": [None if np.isnan(x) else float(x) for x in cur], "psi": psi, "ks": float(ks.statistic)}


def category_case(name, ref, cur):
    cats = sorted(set(ref) | set(cur), key=lambda c: (c is None, c or ""))
    r = np.array([sum(1 for x in ref if x == c) for c in cats], dtype=float)
    o = np.array([sum(1 for x in cur if x == c) for c in cats], dtype=float)
    expected = (r + 0.5) / (r.sum() + 0.5 * len(cats)) * o.sum()
    chi = stats.chisquare(o, expected)
    js = float(jensenshannon(r / r.sum(), o / o.sum(), base=2) ** 2)
    return {"name": name, "type": "category", "reference": ref, "current": cur,
            "chi2": float(chi.statistic), "chi2_p": float(chi.pvalue), "js": js}


def main():
    rng = np.random.default_rng(2026)
    base = rng.normal(0, 1, 3000)
    cases = [
        number_case("same distribution", base, rng.normal(0, 1, 800)),
        number_case("mean shifted by 0.5", base, rng.normal(0.5, 1, 800)),
        number_case("small reference", base[:150], rng.normal(0, 1.5, 120)),
    ]
    with_nan = base[:1000].copy()
    with_nan[::10] = np.nan
    cur_nan = rng.normal(0, 1, 500)
    cur_nan[::3] = np.nan
    cases.append(number_case("missing values grow from 10% to 33%", with_nan, cur_nan))
    colours = ["red", "green", "blue"]
    ref_c = [colours[i] for i in rng.choice(3, 900, p=[0.5, 0.3, 0.2])]
    cases.append(category_case("same proportions", ref_c, [colours[i] for i in rng.choice(3, 400, p=[0.5, 0.3, 0.2])]))
    cases.append(category_case("shifted proportions", ref_c, [colours[i] for i in rng.choice(3, 400, p=[0.2, 0.3, 0.5])]))
    cur_new = [colours[i] for i in rng.choice(3, 300, p=[0.5, 0.3, 0.2])] + ["violet"] * 40 + [None] * 10
    cases.append(category_case("an unseen category and missing values", ref_c, cur_new))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"numpy": np.__version__, "scipy": scipy.__version__, "cases": cases}, f)
    print("wrote", OUT, len(cases), "cases")


if __name__ == "__main__":
    main()
