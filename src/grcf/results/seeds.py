"""Runs over seeds: collect their metrics, mean +- std, and paired comparisons.

Seeds are paired across variants (a seed fixes the initial weights and the batch order), so a
variant is compared with a baseline on the per-seed differences: mean difference, a 95 %
bootstrap CI and the Wilcoxon signed-rank p-value.

Each pair is listed once, a variant against a baseline, and only within one family: default
variants against the default baselines, tuned ones (`<base>_tuned`, from `grcf sweep`) against
the tuned baselines, never tuned against default (that would credit the objective with the
tuning). A baseline's collapsed seeds (training.metrics.collapse) are counted beside each pair.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from grcf.errors import GrcfError
from grcf.training.metrics import LOWER_IS_BETTER, collapse, prediction_bias

BASELINES = ("pointwise", "static_pairwise")
TUNED = "_tuned"  # `grcf sweep` names a tuned configuration `<base>_tuned`
# columns of a per-run frame that are not metrics
NOT_METRICS = ("variant", "seed", "backbone", "objective", "collapsed")


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
    metrics = metric_columns(df)
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


def family(name: str) -> str:
    return "tuned" if str(name).endswith(TUNED) else "default"


def pairs(names) -> list[tuple[str, str, str]]:
    """(variant, baseline, family): every name against each baseline of its own family, each pair
    once (a baseline against the baselines before it: static_pairwise vs pointwise, not back)."""
    names = list(dict.fromkeys(names))
    out = []
    for fam, suffix in (("default", ""), ("tuned", TUNED)):
        bases = [b + suffix for b in BASELINES if b + suffix in names]
        for i, base in enumerate(bases):
            out += [(v, base, fam) for v in names if family(v) == fam and v not in bases[: i + 1]]
    return out


def metric_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in NOT_METRICS]


def collapsed_seeds(df: pd.DataFrame, name: str, seeds=None) -> int:
    """How many of `name`'s runs (on `seeds`, default all) are collapsed; 0 without the column."""
    if "collapsed" not in df.columns:
        return 0
    g = df[df.variant == name]
    if seeds is not None:
        g = g[g.seed.isin(seeds)]
    return int(g.collapsed.fillna(False).astype(bool).sum())


def compare(df: pd.DataFrame, variant: str, baseline: str, fam: str, metrics) -> list[dict]:
    seeds = sorted(set(df[df.variant == variant].seed) & set(df[df.variant == baseline].seed))
    extra = {"comparison": fam, "baseline_collapsed": collapsed_seeds(df, baseline, seeds),
             "variant_collapsed": collapsed_seeds(df, variant, seeds)}
    return [{"variant": variant, "baseline": baseline, "metric": m, **extra, **paired(df, variant, baseline, m)}
            for m in metrics]


def comparisons(df: pd.DataFrame) -> pd.DataFrame:
    metrics = metric_columns(df)
    rows = []
    for v, base, fam in pairs(df.variant.unique()):
        rows += compare(df, v, base, fam, metrics)
    return pd.DataFrame(rows)


def read_predictions(runs_root, dataset, variant, seed) -> pd.DataFrame:
    path = run_dir(runs_root, dataset, variant, seed) / "predictions.csv"
    if not path.exists():
        raise GrcfError(f"{path}: predictions missing for {dataset}/{variant}/seed{seed}; run the pipeline first")
    return pd.read_csv(path)


def run_health(runs_root, dataset, variant, seed, kind: str) -> dict:
    """A run's prediction bias per split and whether its test predictions collapsed, from its
    predictions.csv (so runs evaluated before metrics.json held them are judged the same way)."""
    pred = read_predictions(runs_root, dataset, variant, seed)
    out = {"variant": variant, "seed": seed}
    for split in ("valid", "test"):
        d = pred[pred.split == split]
        if not len(d):
            continue
        b = prediction_bias(kind, d.prediction.to_numpy(float), d.label.to_numpy(float))
        out.update({f"{split}_{k}": v for k, v in b.items()})
        if split == "test":
            out.update({f"collapse_{k}" if k != "collapsed" else k: v
                        for k, v in collapse(d.prediction.to_numpy(float), d.label.to_numpy(float)).items()})
    return out


def run_collapsed(runs_root, dataset, variant, seed) -> bool:
    pred = read_predictions(runs_root, dataset, variant, seed)
    d = pred[pred.split == "test"]
    return bool(len(d)) and collapse(d.prediction.to_numpy(float), d.label.to_numpy(float))["collapsed"]


def health(runs_root, dataset, variants, seeds, kind: str) -> pd.DataFrame:
    return pd.DataFrame([run_health(runs_root, dataset, v, s, kind) for v in variants for s in seeds])


def test_labels(runs_root, dataset, variants, seeds, split="test") -> np.ndarray:
    """The labels of `split`, from the first run's predictions (every run scores the same items)."""
    path = run_dir(runs_root, dataset, variants[0], seeds[0]) / "predictions.csv"
    if not path.exists():
        raise GrcfError(f"{path}: predictions missing for {dataset}; run the pipeline first")
    pred = pd.read_csv(path)
    return pred.loc[pred.split == split, "label"].to_numpy(dtype=float)
