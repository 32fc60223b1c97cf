"""Backbone x objective: which backbone each run used, and per backbone the paired comparisons.

A zoo variant is named `<objective>_<backbone>` (params.yaml); the backbone itself is read from
each run's run_info.json, so the table holds whatever the runs were trained with. Per backbone,
each objective is compared with that backbone's pointwise and static_pairwise runs on the same
seeds (seeds.paired: mean difference, bootstrap 95 % CI, Wilcoxon p).
"""

from __future__ import annotations

import json
from pathlib import Path

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
    """seeds.collect's frame + backbone and objective columns."""
    bb = [backbone_of(runs_root, dataset, v, s) for v, s in zip(df.variant, df.seed)]
    return df.assign(backbone=[b.split(".", 1)[-1] for b in bb],
                     objective=[objective_of(v, b) for v, b in zip(df.variant, bb)])


def comparisons(df: pd.DataFrame) -> pd.DataFrame:
    """seeds.comparisons within each backbone, its objectives in the role of variants; and each grcf
    ablation or tuned grcf (`grcf_*`) against that backbone's grcf."""
    parts = []
    for bb, g in df.groupby("backbone", sort=False):
        g = g.drop(columns=["variant", "backbone"]).rename(columns={"objective": "variant"})
        comp = seeds.comparisons(g)
        metrics = [c for c in g.columns if c not in ("variant", "seed")]
        if "grcf" in set(g.variant):
            extra = [{"variant": v, "baseline": "grcf", "metric": m, **seeds.paired(g, v, "grcf", m)}
                     for v in g.variant.unique() if v.startswith("grcf_") for m in metrics]
            comp = pd.concat([comp, pd.DataFrame(extra)], ignore_index=True) if extra else comp
        parts.append(comp.rename(columns={"variant": "objective"}).assign(backbone=bb))
    comp = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return comp[["backbone", *(c for c in comp.columns if c != "backbone")]] if len(comp) else comp


def to_markdown(dataset, df: pd.DataFrame, comp: pd.DataFrame) -> str:
    keys = [m for m in ("Corr", "MAE", "Non0_acc_2", "Mult_acc_7", "auc", "acc", "f1") if m in df.columns]
    g = df.groupby(["backbone", "objective"], sort=False)[keys]
    mean, std, n = g.mean(), g.std(ddof=1).fillna(0.0), g.size()
    lines = [f"# {dataset}: backbone x objective (test, mean ± std over seeds)", "",
             "| backbone | objective | seeds | " + " | ".join(keys) + " |", "|---" * (len(keys) + 3) + "|"]
    for (bb, obj) in mean.index:
        cells = [f"{mean.loc[(bb, obj), k]:.4f} ± {std.loc[(bb, obj), k]:.4f}" for k in keys]
        lines.append(f"| {bb} | {obj} | {n[(bb, obj)]} | " + " | ".join(cells) + " |")
    if len(comp):
        lines += ["", "Paired per backbone (same seeds): difference = objective − baseline, 95 % bootstrap CI;",
                  "`*`: Wilcoxon p < 0.05.", "",
                  "| backbone | objective | baseline | metric | diff | 95 % CI | p | n |", "|---|---|---|---|---|---|---|---|"]
        for r in comp[comp.metric.isin(["Corr", "MAE"])].itertuples():
            star = "*" if r.p_wilcoxon < 0.05 else ""
            lines.append(f"| {r.backbone} | {r.objective} | {r.baseline} | {r.metric} | {r.mean_diff:+.4f}{star} "
                         f"| [{r.ci_low:+.4f}, {r.ci_high:+.4f}] | {r.p_wilcoxon:.3f} | {r.n} |")
    return "\n".join(lines) + "\n"


def diff_figure(comp: pd.DataFrame, out) -> None:
    """Per backbone: grcf − pointwise in Corr and MAE with the 95 % CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = comp[(comp.objective == "grcf") & (comp.baseline == "pointwise")]
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.5 * max(sel.backbone.nunique(), 2) + 1.5), sharey=True)
    for ax, metric, better in zip(axes, ("Corr", "MAE"), ("higher", "lower")):
        d = sel[sel.metric == metric]
        y = range(len(d))
        ax.errorbar(d.mean_diff, list(y), xerr=[d.mean_diff - d.ci_low, d.ci_high - d.mean_diff], fmt="o", capsize=3)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(list(y), d.backbone)
        ax.set_title(f"{metric}: grcf − pointwise ({better} is better)")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write(df: pd.DataFrame, runs_root, dataset, out_dir) -> pd.DataFrame | None:
    """backbones.{csv,md} and backbone_diff.png beside the summary; None when every run is fusion."""
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
