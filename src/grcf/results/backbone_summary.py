"""Backbone x objective: which backbone each run used, and per backbone the paired comparisons.

A zoo variant is named `<objective>_<backbone>` (params.yaml); the backbone itself is read from
each run's run_info.json, so the table holds whatever the runs were trained with. Per backbone,
each objective is compared with that backbone's pointwise and static_pairwise runs on the same
seeds (seeds.paired: mean difference, bootstrap 95 % CI, Wilcoxon p): default objectives against
the default baselines, tuned ones (`<objective>_tuned`) against the tuned baselines, never across.
Collapsed runs (constant or one-sided predictions) are counted per cell and beside each pair.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from grcf.atomic import atomic_path, write_text
from grcf.errors import GrcfError
from grcf.results import seeds
from grcf.results.seeds import run_dir


def backbone_of(runs_root, dataset, variant, seed) -> str:
    info = run_dir(runs_root, dataset, variant, seed) / "run_info.json"
    if not info.is_file():
        raise GrcfError(f"{info}: not found (`grcf evaluate` writes it beside metrics.json; the backbone is read from it)")
    return json.loads(info.read_text())["params"]["model"].get("backbone", "fusion")


def objective_of(variant: str, backbone: str) -> str:
    """grcf_tfn -> grcf; grcf_tfn_tuned (a sweep's `<base>_tuned`) -> grcf_tuned."""
    short = backbone.split(".", 1)[-1]
    if backbone == "fusion":
        return variant
    if variant.endswith("_" + short):
        return variant[: -len(short) - 1]
    return variant.replace(f"_{short}_", "_", 1)


def annotate(df: pd.DataFrame, runs_root, dataset) -> pd.DataFrame:
    """seeds.collect's frame + backbone, objective and collapsed (test predictions) columns."""
    bb = [backbone_of(runs_root, dataset, v, s) for v, s in zip(df.variant, df.seed)]
    return df.assign(backbone=[b.split(".", 1)[-1] for b in bb],
                     objective=[objective_of(v, b) for v, b in zip(df.variant, bb)],
                     collapsed=[seeds.run_collapsed(runs_root, dataset, v, s) for v, s in zip(df.variant, df.seed)])


def _ablations(g: pd.DataFrame, metrics) -> list[dict]:
    """Each grcf ablation (`grcf_*`) against the grcf of its family (default or tuned)."""
    rows = []
    for fam, ref in (("default", "grcf"), ("tuned", "grcf" + seeds.TUNED)):
        if ref in set(g.variant):
            for v in g.variant.unique():
                if v.startswith("grcf_") and v != ref and seeds.family(v) == fam:
                    rows += seeds.compare(g, v, ref, fam, metrics)
    return rows


def comparisons(df: pd.DataFrame) -> pd.DataFrame:
    """seeds.comparisons within each backbone, its objectives in the role of variants; and each grcf
    ablation against that backbone's grcf of the same family."""
    parts = []
    for bb, g in df.groupby("backbone", sort=False):
        g = g.drop(columns=["variant", "backbone"]).rename(columns={"objective": "variant"})
        comp = seeds.comparisons(g)
        if extra := _ablations(g, seeds.metric_columns(g)):
            comp = pd.concat([comp, pd.DataFrame(extra)], ignore_index=True)
        parts.append(comp.rename(columns={"variant": "objective"}).assign(backbone=bb))
    comp = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return comp[["backbone", *(c for c in comp.columns if c != "backbone")]] if len(comp) else comp


def per_variant(df: pd.DataFrame) -> pd.DataFrame:
    """summarize's comparisons for one dataset: pairs within each backbone (never a zoo variant
    against the fusion baselines), named by variant."""
    parts = []
    for _, g in df.groupby("backbone", sort=False):
        if g.groupby("objective").variant.nunique().max() > 1:  # objective names clash: pair by variant
            parts.append(seeds.comparisons(g.drop(columns=["backbone", "objective"])))
            continue
        names = dict(zip(g.objective, g.variant))
        comp = seeds.comparisons(g.drop(columns=["variant", "backbone"]).rename(columns={"objective": "variant"}))
        if len(comp):
            parts.append(comp.assign(variant=comp.variant.map(names), baseline=comp.baseline.map(names)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def collapse_note(r) -> str:
    """The note beside a paired comparison whose baseline (or variant) collapsed on some seeds."""
    notes = []
    for who in ("baseline", "variant"):
        k = pd.to_numeric(getattr(r, f"{who}_collapsed", 0), errors="coerce")
        if pd.notna(k) and k > 0:
            notes.append(f"{who} collapsed on {int(k)}/{int(r.n)} seeds")
    return "⚠ " + "; ".join(notes) if notes else ""


FAMILY_TITLE = {"default": "Default vs default (every objective with params.yaml's settings)",
                "tuned": "Tuned vs tuned (each objective tuned on valid with the same number of trials)"}


def to_markdown(dataset, df: pd.DataFrame, comp: pd.DataFrame) -> str:
    keys = [m for m in ("Corr", "MAE", "Non0_acc_2", "Mult_acc_7", "auc", "acc", "f1") if m in df.columns]
    g = df.groupby(["backbone", "objective"], sort=False)
    mean, std, n = g[keys].mean(), g[keys].std(ddof=1).fillna(0.0), g.size()
    collapsed = g.collapsed.sum() if "collapsed" in df.columns else None
    lines = [f"# {dataset}: backbone x objective (test, mean ± std over seeds)", "",
             "| backbone | objective | seeds | " + " | ".join(keys) + " | collapsed |", "|---" * (len(keys) + 4) + "|"]
    for (bb, obj) in mean.index:
        cells = [f"{mean.loc[(bb, obj), k]:.4f} ± {std.loc[(bb, obj), k]:.4f}" for k in keys]
        k = 0 if collapsed is None else int(collapsed[(bb, obj)])
        lines.append(f"| {bb} | {obj} | {n[(bb, obj)]} | " + " | ".join(cells) + " | "
                     + (f"**collapsed {k}/{n[(bb, obj)]}**" if k else "") + " |")
    if collapsed is not None and collapsed.sum():
        lines += ["", "**collapsed**: test predictions nearly constant (std < 0.1 × the labels' std) or ≥ 95 % on "
                  "one side of zero; such a run's scores say little about its objective."]
    if len(comp):
        lines += ["", "Paired per backbone (same seeds): difference = objective − baseline, 95 % bootstrap CI;",
                  "`*`: Wilcoxon p < 0.05. Tuned objectives are compared only with tuned baselines."]
        fams = comp.comparison.fillna("default") if "comparison" in comp.columns else pd.Series("default", comp.index)
        for fam in ("default", "tuned"):
            sel = comp[(fams == fam) & comp.metric.isin(["Corr", "MAE"])]
            if not len(sel):
                continue
            lines += ["", f"### {FAMILY_TITLE[fam]}", "",
                      "| backbone | objective | baseline | metric | diff | 95 % CI | p | n | note |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for r in sel.itertuples():
                star = "*" if r.p_wilcoxon < 0.05 else ""
                lines.append(f"| {r.backbone} | {r.objective} | {r.baseline} | {r.metric} | {r.mean_diff:+.4f}{star} "
                             f"| [{r.ci_low:+.4f}, {r.ci_high:+.4f}] | {r.p_wilcoxon:.3f} | {r.n} | {collapse_note(r)} |")
    return "\n".join(lines) + "\n"


def diff_figure(comp: pd.DataFrame, out) -> None:
    """Per backbone: grcf − each baseline in Corr and MAE with the 95 % CI, default against default
    and, for a sweep's workspace, tuned against tuned (two markers a row, never across)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = [(fam, suffix) for fam, suffix in (("default", ""), ("tuned", seeds.TUNED))
            if ((comp.objective == "grcf" + suffix) & (comp.baseline == "pointwise" + suffix)).any()]
    baselines = [b for b in ("pointwise", "static_pairwise")
                 if any(((comp.objective == "grcf" + x) & (comp.baseline == b + x)).any() for _, x in fams)]
    backbones = list(dict.fromkeys(comp[comp.objective.isin([f"grcf{x}" for _, x in fams])].backbone))
    fig, axes = plt.subplots(len(baselines), 2, squeeze=False, sharey=True,
                             figsize=(10, (0.45 * max(len(backbones), 2) + 1.2) * len(baselines)))
    offsets = {"default": -0.15, "tuned": 0.15} if len(fams) > 1 else {"default": 0.0, "tuned": 0.0}
    for row, base in zip(axes, baselines):
        for ax, metric, better in zip(row, ("Corr", "MAE"), ("higher", "lower")):
            for fam, suffix in fams:
                d = comp[(comp.objective == "grcf" + suffix) & (comp.baseline == base + suffix) & (comp.metric == metric)]
                x, y = d.mean_diff.to_numpy(), np.array([backbones.index(b) + offsets[fam] for b in d.backbone])
                collapsed = (d.get("baseline_collapsed", pd.Series(0, d.index)).fillna(0) > 0).to_numpy()
                color, marker = ("tab:blue", "o") if fam == "default" else ("tab:orange", "s")
                ax.errorbar(d.mean_diff, y, xerr=[d.mean_diff - d.ci_low, d.ci_high - d.mean_diff], fmt="none",
                            capsize=3, color=color)
                if (~collapsed).any():  # no legend entry for markers that are not drawn
                    ax.scatter(x[~collapsed], y[~collapsed], marker=marker, color=color, zorder=3, label=f"{fam} vs {fam}")
                if collapsed.any():
                    ax.scatter(x[collapsed], y[collapsed], marker=marker, facecolors="white", edgecolors=color, zorder=3,
                               label=f"{fam} vs {fam}, baseline collapsed on a seed")
            ax.axvline(0, color="grey", lw=0.8)
            ax.set_yticks(range(len(backbones)), backbones)
            ax.set_title(f"{metric}: grcf − {base.replace('_', ' ')} ({better} is better)", fontsize=10)
    axes[0][0].invert_yaxis()  # backbones top-down in the tables' order
    # one legend for the figure: a collapsed baseline may show in one panel only
    entries = {label: handle for ax in axes.flat for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.tight_layout(rect=(0, 0.04 * (1 + len(entries) // 2) / len(baselines), 1, 1))
    fig.legend(list(entries.values()), list(entries), loc="lower center", ncol=2, fontsize=8, frameon=False)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write(df: pd.DataFrame, runs_root, dataset, out_dir) -> pd.DataFrame | None:
    """backbones.{csv,md} and backbone_diff.png beside the summary; None when every run is fusion."""
    if "backbone" not in df.columns:
        df = annotate(df, runs_root, dataset)
    if set(df.backbone) == {"fusion"}:
        return None
    out_dir = Path(out_dir)
    comp = comparisons(df)
    write_text(out_dir / "backbones.csv", comp.to_csv(index=False))
    write_text(out_dir / "backbones.md", to_markdown(dataset, df, comp))
    if len(comp) and ((comp.objective == "grcf") & (comp.baseline == "pointwise")).any():
        diff_figure(comp, out_dir / "backbone_diff.png")
    return comp
