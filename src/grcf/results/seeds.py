"""Runs over seeds: collect their metrics, mean +- std, and paired comparisons.

Seeds are paired across variants (a seed fixes the initial weights and the batch order), so a
variant is compared with a baseline on the per-seed differences: mean difference, a 95 %
bootstrap CI and the Wilcoxon signed-rank p-value.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from grcf.errors import GrcfError
from grcf.training.metrics import LOWER_IS_BETTER

BASELINES = ("pointwise", "static_pairwise")


def run_dir(runs_root, dataset, variant, seed) -> Path:
    return Path(runs_root) / dataset / variant / f"seed{seed}"


def collect(runs_root, dataset, variants, seeds, split="test") -> pd.DataFrame:
    rows = []
    for v in variants:
        for s in seeds:
            path = run_dir(runs_root, dataset, v, s) / "metrics.json"
            if not path.exists():
                raise GrcfError(f"{path}: metrics missing for {dataset}/{v}/seed{s}; run the pipeline first")
            m = json.loads(path.read_text())
            rows.append({"variant": v, "seed": s, **m[split]})
    return pd.DataFrame(rows)


def mean_std(df: pd.DataFrame) -> pd.DataFrame:
    metrics = [c for c in df.columns if c not in ("variant", "seed")]
    g = df.groupby("variant", sort=False)[metrics]
    out = g.mean().add_suffix("_mean").join(g.std(ddof=1).add_suffix("_std")).join(g.size().rename("n_seeds"))
    return out[[f"{m}_{s}" for m in metrics for s in ("mean", "std")] + ["n_seeds"]]


def bootstrap_ci(d: np.ndarray, n_boot: int = 10000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = rng.choice(d, size=(n_boot, d.size), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired(df: pd.DataFrame, variant: str, baseline: str, metric: str) -> dict:
    a = df[df.variant == variant].set_index("seed")[metric]
    b = df[df.variant == baseline].set_index("seed")[metric]
    seeds = sorted(set(a.index) & set(b.index))
    d = (a.loc[seeds] - b.loc[seeds]).to_numpy(dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"n": 0, "mean_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_wilcoxon": math.nan,
                "significant": False, "better": False}
    lo, hi = bootstrap_ci(d)
    p = 1.0 if np.allclose(d, 0) else float(wilcoxon(d).pvalue)
    direction = -1 if metric in LOWER_IS_BETTER else 1
    significant = p < 0.05 and (lo > 0 or hi < 0)
    # better: the variant's mean is on the good side of the baseline's (significance is its own column)
    return {
        "n": int(d.size), "mean_diff": float(d.mean()), "ci_low": lo, "ci_high": hi, "p_wilcoxon": p,
        "significant": bool(significant), "better": bool(direction * d.mean() > 0),
    }


def comparisons(df: pd.DataFrame) -> pd.DataFrame:
    metrics = [c for c in df.columns if c not in ("variant", "seed")]
    rows = []
    for base in BASELINES:
        if base not in set(df.variant):
            continue
        for v in df.variant.unique():
            if v == base:
                continue
            for m in metrics:
                rows.append({"variant": v, "baseline": base, "metric": m, **paired(df, v, base, m)})
    return pd.DataFrame(rows)


def test_labels(runs_root, dataset, variants, seeds, split="test") -> np.ndarray:
    """The labels of `split`, from the first run's predictions (every run scores the same items)."""
    path = run_dir(runs_root, dataset, variants[0], seeds[0]) / "predictions.csv"
    if not path.exists():
        raise GrcfError(f"{path}: predictions missing for {dataset}; run the pipeline first")
    pred = pd.read_csv(path)
    return pred.loc[pred.split == split, "label"].to_numpy(dtype=float)
