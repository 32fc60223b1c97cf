"""Collect every run of a dataset into one table: mean +- std over seeds, paired comparisons.

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

from .atomic import write_json, write_text
from .errors import GrcfError
from .metrics import LOWER_IS_BETTER

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
        return {"n": 0, "mean_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_wilcoxon": math.nan}
    lo, hi = bootstrap_ci(d)
    p = 1.0 if np.allclose(d, 0) else float(wilcoxon(d).pvalue)
    better = -1 if metric in LOWER_IS_BETTER else 1
    significant = p < 0.05 and (lo > 0 or hi < 0)
    return {
        "n": int(d.size), "mean_diff": float(d.mean()), "ci_low": lo, "ci_high": hi, "p_wilcoxon": p,
        "significant": bool(significant), "better": bool(significant and better * d.mean() > 0),
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


def _fmt(mean, std):
    return "n/a" if not np.isfinite(mean) else f"{mean:.4f} ± {std:.4f}" if np.isfinite(std) else f"{mean:.4f}"


def to_markdown(dataset: str, table: pd.DataFrame, comp: pd.DataFrame, n_seeds: int) -> str:
    metrics = [c[: -len("_mean")] for c in table.columns if c.endswith("_mean")]
    lines = [f"# {dataset}: test metrics, mean ± std over {n_seeds} seed(s)", ""]
    lines.append("| variant | " + " | ".join(metrics) + " |")
    lines.append("|---|" + "---|" * len(metrics))
    for v, row in table.iterrows():
        lines.append(f"| {v} | " + " | ".join(_fmt(row[f'{m}_mean'], row[f'{m}_std']) for m in metrics) + " |")
    if len(comp):
        lines += ["", "## Paired comparisons over seeds", "",
                  "Difference = variant − baseline (for MAE lower is better). `*`: Wilcoxon p < 0.05 and the",
                  "95 % bootstrap CI excludes 0. With n seeds the exact two-sided Wilcoxon p is at least",
                  f"2/2^n ({2 / 2 ** n_seeds:.4f} here), so few seeds cannot show significance by design.", ""]
        key = [m for m in ("MAE", "Corr", "Non0_acc_2", "Mult_acc_7", "acc", "auc", "F1_score") if m in metrics]
        lines.append("| variant | baseline | " + " | ".join(key) + " |")
        lines.append("|---|---|" + "---|" * len(key))
        for (v, b), g in comp.groupby(["variant", "baseline"], sort=False):
            g = g.set_index("metric")
            cells = []
            for m in key:
                r = g.loc[m]
                star = "*" if r.get("significant") else ""
                cells.append(f"{r.mean_diff:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}] p={r.p_wilcoxon:.3f}{star}")
            lines.append(f"| {v} | {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summarize(runs_root, dataset, variants, seeds, out_dir) -> pd.DataFrame:
    out_dir = Path(out_dir)
    df = collect(runs_root, dataset, variants, seeds)
    table = mean_std(df)
    comp = comparisons(df)
    write_text(out_dir / "summary.csv", table.to_csv())
    write_text(out_dir / "comparisons.csv", comp.to_csv(index=False))
    write_text(out_dir / "summary.md", to_markdown(dataset, table, comp, len(seeds)))
    from .backbone_summary import write as write_backbones  # zoo runs: backbones.{csv,md}, backbone_diff.png

    write_backbones(df, runs_root, dataset, out_dir)
    # dvc metrics: nested {variant: {metric_mean: ..}}
    write_json(out_dir / "summary.json", {v: {k: (None if pd.isna(x) else float(x)) for k, x in r.items()}
                                           for v, r in table.iterrows()})
    return table


def summarize_cv(runs_root, folds, variants, seeds, out_dir, group: str) -> pd.DataFrame:
    """Cross-validation: each fold's metrics averaged over seeds, then mean ± std over folds."""
    per_fold = []
    for fold in folds:
        df = collect(runs_root, fold, variants, seeds)
        per_fold.append(df.drop(columns="seed").groupby("variant", sort=False).mean().assign(fold=fold))
    folds_df = pd.concat(per_fold).reset_index()
    table = mean_std(folds_df.drop(columns="fold").assign(seed=0)).rename(columns={"n_seeds": "n_folds"})
    out_dir = Path(out_dir)
    write_text(out_dir / "cv_folds.csv", folds_df.to_csv(index=False))
    write_text(out_dir / "cv_summary.csv", table.to_csv())
    md = to_markdown(group, table.rename(columns={"n_folds": "n_seeds"}), pd.DataFrame(), len(folds))
    md = md.replace(f"mean ± std over {len(folds)} seed(s)",
                    f"mean ± std over {len(folds)} folds (each fold averaged over {len(seeds)} seed(s))")
    write_text(out_dir / "cv_summary.md", md)
    return table
