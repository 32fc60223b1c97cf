"""Collect every run of a dataset into one table: mean +- std over seeds, paired comparisons (seeds.py).

Seeds are paired across variants (a seed fixes the initial weights and the batch order), so a
variant is compared with a baseline on the per-seed differences: mean difference, a 95 %
bootstrap CI and the Wilcoxon signed-rank p-value, each pair once and within one family (default
against default, tuned against tuned; seeds.pairs) and within one backbone.

Beside the scores, each variant's prediction bias (mean prediction minus mean label, predicted-
against truly-positive rate, per split) and its collapsed runs (training.metrics.collapse): a
variant whose predicted-positive rate is BIAS_GAP or more from the true one, or whose runs
collapsed, carries that in its name in the headline tables, and a comparison against a collapsed
baseline says so in its row.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from grcf.atomic import write_json, write_text
from grcf.results import backbone_summary, tables
from grcf.results import seeds as seed_runs
from grcf.results.backbone_summary import write as write_backbones
from grcf.results.reference import binary_reference
from grcf.results.seeds import collect, mean_std, test_labels
from grcf.training.metrics import BIAS_GAP, COLLAPSE_ONE_SIDE, COLLAPSE_STD_RATIO, collapse_reason

BIAS_COLUMNS = ("bias", "pred_positive_rate", "label_positive_rate", "positive_rate_gap")
FAMILY_TITLE = {"default": "Default vs default: every variant with params.yaml's settings",
                "tuned": "Tuned vs tuned: each objective tuned on valid with the same number of trials (`grcf sweep`)"}

def _fmt(mean, std):
    return "n/a" if not np.isfinite(mean) else f"{mean:.4f} ± {std:.4f}" if np.isfinite(std) else f"{mean:.4f}"


def reference_rows(df: pd.DataFrame, labels) -> pd.DataFrame | None:
    """Majority-class and chance rows for a binary task (None for regression)."""
    return binary_reference(labels) if tables.metric_set(_metrics(df)) == "binary" else None


def _metrics(df: pd.DataFrame) -> list[str]:
    return seed_runs.metric_columns(df)


def health_table(h: pd.DataFrame) -> pd.DataFrame:
    """Per variant: how many seeds collapsed, each split's bias columns (mean over seeds) and
    `<split>_sign_bias`: |predicted − true positive rate| >= BIAS_GAP."""
    g = h.groupby("variant", sort=False)
    cols = [f"{sp}_{c}" for sp in ("valid", "test") for c in BIAS_COLUMNS if f"{sp}_{c}" in h.columns]
    out = g[cols].mean()
    out.insert(0, "collapsed_seeds", g["collapsed"].sum().astype(int))
    for sp in ("valid", "test"):
        if f"{sp}_positive_rate_gap" in out.columns:
            out[f"{sp}_sign_bias"] = out[f"{sp}_positive_rate_gap"].abs() >= BIAS_GAP
    return out


def health_lines(table: pd.DataFrame, h: pd.DataFrame, binary: bool) -> list[str]:
    """The summary's section on prediction bias and collapsed runs."""
    where = ("every item; predicted positive = logit > 0; bias = mean predicted probability − positive share"
             if binary else "the items with a nonzero label; bias = mean prediction − mean label")
    lines = ["## Prediction bias and collapsed runs", "",
             f"Mean over seeds. Positive rates over {where}. ⚠: the predicted-positive rate is "
             f"{100 * BIAS_GAP:.0f} points or more from the true rate; the gap is a lower bound on the share of "
             f"sign errors, so it alone costs that much Acc-2. **collapsed**: the test predictions are nearly "
             f"constant (std < {COLLAPSE_STD_RATIO:g} × the labels' std) or ≥ {100 * COLLAPSE_ONE_SIDE:.0f} % on one "
             "side of zero; such a run says little about its objective.", "",
             "| variant | collapsed seeds | valid bias | valid positive: predicted / true | test bias "
             "| test positive: predicted / true |", "|---|---|---|---|---|---|"]
    for v, r in table.iterrows():
        cells = []
        for sp in ("valid", "test"):
            if f"{sp}_bias" not in r or not np.isfinite(r[f"{sp}_bias"]):
                cells += ["n/a", "n/a"]
                continue
            pp, lp = r[f"{sp}_pred_positive_rate"], r[f"{sp}_label_positive_rate"]
            rates = "n/a" if not np.isfinite(pp) else f"{100 * pp:.1f} % / {100 * lp:.1f} %"
            cells += [f"{r[f'{sp}_bias']:+.3f}", rates + (" ⚠" if r.get(f"{sp}_sign_bias") else "")]
        k = int(r.get("collapsed_seeds", 0))
        lines.append(f"| {v} | " + (f"**{k}/{int(r.n_seeds)}**" if k else "0") + " | " + " | ".join(cells) + " |")
    bad = h[h.collapsed.astype(bool)]
    if len(bad):
        lines += ["", "Collapsed runs:", ""]
        for r in bad.itertuples():
            c = {k.removeprefix("collapse_"): getattr(r, k) for k in h.columns if k.startswith("collapse")}
            lines.append(f"- {r.variant} seed {r.seed}: {collapse_reason(c)}")
    return lines


def _comparison_note(r) -> str:
    return backbone_summary.collapse_note(r)


def selection_noise(valid: pd.DataFrame, n_valid: int) -> list[str]:
    """How much the validation split can tell models apart: its size and the selected models' spread."""
    metrics = _metrics(valid)
    kind = tables.metric_set(metrics)
    key = {"binary": ["acc", "auc"], "mosi": ["MAE", "Corr"], "sims": ["MAE", "Corr"]}.get(kind, metrics[:2])
    lines = ["## Model selection noise (validation split)", ""]
    if kind == "binary" and n_valid:
        acc = float(valid["acc"].mean())
        se = math.sqrt(max(acc * (1 - acc), 1e-12) / n_valid)
        lines.append(f"Validation has {n_valid} items: one item moves validation accuracy by {100 / n_valid:.1f} "
                     f"points, and the binomial standard error of an accuracy near {100 * acc:.0f} % is "
                     f"{100 * se:.1f} points, so epochs and models closer than that are not told apart. "
                     "Raise the dataset's `valid_fraction` for a steadier selection (fewer training items).")
    else:
        lines.append(f"Validation has {n_valid} items.")
    lines += ["", "Validation score of the selected model, mean ± std (min–max) over seeds:", "",
              "| variant | " + " | ".join(f"valid {m}" for m in key) + " |", "|---|" + "---|" * len(key)]
    for v, g in valid.groupby("variant", sort=False):
        cells = [f"{g[m].mean():.4f} ± {g[m].std(ddof=1):.4f} ({g[m].min():.4f}–{g[m].max():.4f})"
                 if len(g) > 1 else f"{g[m].mean():.4f}" for m in key]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return lines


def to_markdown(dataset: str, table: pd.DataFrame, comp: pd.DataFrame, n_seeds: int,
                reference: pd.DataFrame | None = None, what: str | None = None,
                noise: list[str] | None = None, health: list[str] | None = None) -> str:
    metrics = [c[: -len("_mean")] for c in table.columns if c.endswith("_mean")]
    what = what or f"mean ± std over {n_seeds} seed(s)"
    cols = tables.headline_columns(metrics)
    lines = [f"# {dataset}: test metrics, {what}", ""]
    lines += tables.markdown_headline(table, reference)
    lines += ["", tables.units_note(cols)]
    if reference is not None:
        lines.append(f"*{reference.index[0]}*: always the test split's most frequent class; *{reference.index[1]}*: "
                     "a fair coin per item (expected value). Both on the same test items.")
    if noise:
        lines += [""] + noise
    lines += ["", "## All metrics", "", "| variant | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for v, row in table.iterrows():
        lines.append(f"| {v} | " + " | ".join(_fmt(row[f'{m}_mean'], row[f'{m}_std']) for m in metrics) + " |")
    if health:
        lines += [""] + health
    if len(comp):
        key = [x for x in tables.comparison_columns(metrics) if x[1] in set(comp.metric)]
        lines += ["", "## Paired comparisons over seeds", "",
                  "Difference = variant − baseline, in the table's units (percentage points for %), with the",
                  "95 % bootstrap CI and the Wilcoxon p; ↑/↓ say which sign is better. `*`: p < 0.05 and the CI",
                  "excludes 0. With n seeds the exact two-sided Wilcoxon p is at least",
                  f"2/2^n ({2 / 2 ** n_seeds:.4f} here), so few seeds cannot show significance by design.",
                  "Each pair once; tuned variants only against tuned baselines, never against default ones."]
        fams = comp["comparison"] if "comparison" in comp.columns else pd.Series("default", index=comp.index)
        for fam in ("default", "tuned"):
            part = comp[fams == fam]
            if not len(part):
                continue
            lines += ["", f"### {FAMILY_TITLE[fam]}", ""]
            lines.append("| variant | baseline | " + " | ".join(f"{name} {tables.arrow(c)}" for c, _, name in key)
                         + " | note |")
            lines.append("|---|---|" + "---|" * len(key) + "---|")
            for (v, b), g in part.groupby(["variant", "baseline"], sort=False):
                g = g.set_index("metric")
                cells = []
                for c, m, _ in key:
                    r = g.loc[m]
                    star = "*" if r.get("significant") else ""
                    cells.append(f"{tables.diff(c, r.mean_diff)} [{tables.diff(c, r.ci_low)}, "
                                 f"{tables.diff(c, r.ci_high)}] p={r.p_wilcoxon:.3f}{star}")
                note = _comparison_note(g.iloc[0]) if "baseline_collapsed" in g.columns else ""
                lines.append(f"| {v} | {b} | " + " | ".join(cells) + f" | {note} |")
    return "\n".join(lines) + "\n"


def headline_json(table: pd.DataFrame, reference: pd.DataFrame | None) -> dict:
    """The DVC summary metrics: a few headline means per variant (and reference row), 4 decimals."""
    keys = tables.headline_metrics([c[: -len("_mean")] for c in table.columns if c.endswith("_mean")])
    out = {str(v): {k: (None if pd.isna(r[f"{k}_mean"]) else round(float(r[f"{k}_mean"]), 4)) for k in keys}
           for v, r in table.iterrows()}
    if reference is not None:
        out.update({str(name).replace(" ", "_"): {k: round(float(r[k]), 4) for k in keys if k in r}
                    for name, r in reference.iterrows()})
    return out


def summarize(runs_root, dataset, variants, seeds, out_dir) -> pd.DataFrame:
    out_dir = Path(out_dir)
    df = collect(runs_root, dataset, variants, seeds)
    valid = collect(runs_root, dataset, variants, seeds, split="valid")
    annotated = backbone_summary.annotate(df, runs_root, dataset)
    binary = tables.metric_set(_metrics(df)) == "binary"
    h = seed_runs.health(runs_root, dataset, variants, seeds, "binary" if binary else "mosi")
    table = mean_std(df)
    table = table.join(health_table(h))
    comp = backbone_summary.per_variant(annotated)
    reference = reference_rows(df, test_labels(runs_root, dataset, variants, seeds))
    noise = selection_noise(valid, len(test_labels(runs_root, dataset, variants, seeds, split="valid")))
    write_text(out_dir / "summary.csv", table.to_csv())
    write_text(out_dir / "comparisons.csv", comp.to_csv(index=False))
    md = to_markdown(dataset, table, comp, len(seeds), reference, noise=noise, health=health_lines(table, h, binary))
    write_text(out_dir / "summary.md", md)
    tex = tables.latex_headline(dataset, table, reference, len(seeds))
    if len(comp):
        tex += "\n" + tables.latex_comparisons(dataset, comp, _metrics(df), len(seeds))
    write_text(out_dir / "summary.tex", tex)

    write_backbones(annotated, runs_root, dataset, out_dir)
    # dvc metrics: what a person reads; every metric stays in summary.csv and the runs' metrics.json
    write_json(out_dir / "summary.json", headline_json(table, reference))
    return table


def summarize_cv(runs_root, folds, variants, seeds, out_dir, group: str) -> pd.DataFrame:
    """Cross-validation: each fold's metrics averaged over seeds, then mean ± std over folds."""
    per_fold, refs = [], []
    for fold in folds:
        df = collect(runs_root, fold, variants, seeds)
        per_fold.append(df.drop(columns="seed").groupby("variant", sort=False).mean().assign(fold=fold))
        ref = reference_rows(df, test_labels(runs_root, fold, variants, seeds))
        if ref is not None:
            refs.append(ref)
    folds_df = pd.concat(per_fold).reset_index()
    table = mean_std(folds_df.drop(columns="fold").assign(seed=0)).rename(columns={"n_seeds": "n_folds"})
    reference = sum(refs[1:], refs[0]) / len(refs) if refs else None  # mean over folds
    out_dir = Path(out_dir)
    what = f"mean ± std over {len(folds)} folds (each fold averaged over {len(seeds)} seed(s))"
    write_text(out_dir / "cv_folds.csv", folds_df.to_csv(index=False))
    write_text(out_dir / "cv_summary.csv", table.to_csv())
    write_text(out_dir / "cv_summary.md", to_markdown(group, table, pd.DataFrame(), len(folds), reference, what=what))
    write_text(out_dir / "cv_summary.tex", tables.latex_headline(
        group, table, reference, len(folds), what=what.replace("±", "$\\pm$")))
    return table
