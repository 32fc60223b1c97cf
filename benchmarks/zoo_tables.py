"""The model-zoo tables of docs/model_zoo.md, from one zoo_matrix.py or zoo_sweep.py workspace (nothing typed by hand).

    python benchmarks/zoo_tables.py ../grcf-zoo --dataset mosi_av [--save benchmarks/results/zoo_mosi_av]

Prints, as Markdown: backbone x objective (test, mean ± std over seeds, collapsed runs counted),
grcf − pointwise and grcf − static pairwise per backbone (paired, 95 % bootstrap CI), default
against default and, for a sweep's workspace, tuned against tuned (never tuned against default),
each grcf ablation against that backbone's grcf, and the time per run (median wall / CPU seconds, with the threads and parallel
runs they were measured with). `--save DIR` also writes the per-run test metrics and times
(`runs.csv`), the paired comparisons behind the tables (`comparisons.csv`) and copies the
workspace's `backbones.md`, `backbone_diff.png` and a sweep's `sweep.csv` and `best_variant.yaml`, so the tables can be checked without the workspace.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from grcf.results import backbone_summary
from grcf.results.seeds import TUNED, collect, family
from zoo_matrix import ABLATIONS, BACKBONES, OBJECTIVES

KEYS = ["Corr", "MAE", "Non0_acc_2", "Mult_acc_7"]


def runs_root(work: Path, dataset: str) -> Path:
    """runs/ of a zoo_matrix.py workspace (runs/<dataset>/...), or runs/<experiment>/ of a pipeline one."""
    if (work / "runs" / dataset).is_dir():
        return work / "runs"
    found = sorted(p.parent for p in (work / "runs").glob(f"*/{dataset}") if p.is_dir())
    if len(found) > 1:
        raise SystemExit(f"{work}/runs holds {dataset} of several experiments: {[p.name for p in found]}")
    return found[0] if found else work / "runs"


def train_seconds(run: Path) -> float | None:
    """Seconds spent in the training epochs of both stages (their logs' `seconds`): a pipeline
    workspace's only timing, without process start-up, feature loading or evaluation."""
    logs = [pd.read_csv(run / f"stage{i}_log.csv") for i in (1, 2) if (run / f"stage{i}_log.csv").exists()]
    timed = [log["seconds"] for log in logs if "seconds" in log]  # a skipped stage's log has no epochs
    return sum(float(x.sum()) for x in timed) if timed else None


def per_run(work: Path, dataset: str) -> pd.DataFrame:
    """Every finished run of the workspace: backbone, objective, seed, test metrics, collapsed, wall and CPU seconds."""
    runs = runs_root(work, dataset)
    pairs = sorted((p.parent.parent.name, int(p.parent.name.removeprefix("seed")))
                   for p in (runs / dataset).glob("*/seed*/metrics.json"))
    if not pairs:
        raise SystemExit(f"{runs / dataset}: no finished run (no */seed*/metrics.json); is {work} a zoo_matrix.py workspace?")
    frames = [collect(runs, dataset, [v], [s]) for v, s in pairs]
    df = backbone_summary.annotate(pd.concat(frames, ignore_index=True), runs, dataset)
    times_path = work / "results" / runs.relative_to(work / "runs") / dataset / "wall_times.json"
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    t = [times.get(f"{v}/seed{s}", {}) for v, s in zip(df.variant, df.seed)]
    df = df.assign(wall_s=[x.get("seconds") for x in t], cpu_s=[x.get("cpu_seconds") for x in t],
                   threads=[x.get("threads") for x in t], jobs=[x.get("jobs") for x in t],
                   train_s=[train_seconds(runs / dataset / v / f"seed{s}") for v, s in zip(df.variant, df.seed)])
    # the matrix's order: backbones as zoo_matrix lists them, then objectives, ablations, anything else
    rank = lambda order, x: order.index(x) if x in order else len(order)  # noqa: E731
    key = df.backbone.map(lambda b: rank(BACKBONES, b)) * 100 + df.objective.map(
        lambda o: rank(OBJECTIVES + [x + TUNED for x in OBJECTIVES] + ABLATIONS, o))
    return df.assign(_k=key).sort_values(["_k", "objective", "seed"], kind="stable").drop(columns="_k").reset_index(drop=True)


def complete(df: pd.DataFrame) -> pd.DataFrame:
    """Only (backbone, objective) cells with every seed of the workspace: a half-run cell is not a row."""
    n = df.groupby(["backbone", "objective"]).seed.transform("size")
    return df[n == df.seed.nunique()]


def main_table(df: pd.DataFrame, objectives) -> str:
    d = df[df.objective.isin(objectives)]
    return backbone_summary.to_markdown("", d, pd.DataFrame()).split("\n", 2)[2].rstrip()


def _ci(comp: pd.DataFrame, bb: str, objective: str, baseline: str, metric: str) -> str:
    sel = comp[(comp.backbone == bb) & (comp.objective == objective) & (comp.baseline == baseline) & (comp.metric == metric)]
    if not len(sel):
        return "–"
    r = sel.iloc[0]
    cell = f"{r.mean_diff:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]".replace("-", "−")
    k = getattr(r, "baseline_collapsed", 0)
    return cell + (f" ⚠ {baseline} collapsed {int(k)}/{int(r.n)}" if pd.notna(k) and k > 0 else "")


def diff_table(comp: pd.DataFrame, metrics=("Corr", "MAE"), suffix: str = "") -> str:
    """grcf against each baseline of its family (suffix "" default, TUNED tuned), per backbone:
    mean paired difference [95 % bootstrap CI], a collapsed baseline named in the cell."""
    grcf = "grcf" + suffix
    bases = [b + suffix for b in ("pointwise", "static_pairwise")
             if ((comp.objective == grcf) & (comp.baseline == b + suffix)).any()]
    rows = ["| backbone | " + " | ".join(f"{m} − {b.replace('_', ' ')}" for b in bases for m in metrics) + " |",
            "|---|" + "---|" * (len(bases) * len(metrics))]
    for bb in comp[comp.objective == grcf].backbone.unique():
        rows.append(f"| {bb} | " + " | ".join(_ci(comp, bb, grcf, b, m) for b in bases for m in metrics) + " |")
    return "\n".join(rows)


def ablation_table(df: pd.DataFrame, comp: pd.DataFrame, metrics=("Corr", "MAE")) -> str:
    """Each `grcf_*` variant (ablation, tuned): mean ± std and its paired difference from that backbone's grcf."""
    rows = ["| backbone | variant | " + " | ".join(metrics) + " | " + " | ".join(f"{m} − grcf" for m in metrics) + " |",
            "|---|---|" + "---|" * (2 * len(metrics))]
    abl = df[df.objective.str.startswith("grcf_") & (df.objective != "grcf" + TUNED)]
    for (bb, obj), g in abl.groupby(["backbone", "objective"], sort=False):
        ref = "grcf" + (TUNED if family(obj) == "tuned" else "")  # never a tuned ablation against default grcf
        stats = [f"{g[m].mean():.4f} ± {g[m].std(ddof=1):.4f}" for m in metrics]
        rows.append(f"| {bb} | {obj} | " + " | ".join(stats) + " | "
                    + " | ".join(_ci(comp, bb, obj, ref, m) for m in metrics) + " |")
    return "\n".join(rows)


def chosen_table(df: pd.DataFrame, work: Path, res: Path, runs: Path, dataset: str) -> str:
    """For a sweep's workspace: each objective's chosen settings and its validation score on the
    sweep seed, beside that of params.yaml's settings (what the tuning gained where it was chosen).
    `df` (per_run) names each objective's backbone: its untuned variant runs on every seed."""
    ranking = pd.read_csv(res / "sweep.csv")
    named = df.drop_duplicates("variant").set_index("variant")
    seed = yaml.safe_load((work / "params.yaml").read_text())["sweep"]["seed"]
    metric = next(c for c in ranking.columns if c.startswith("valid_"))
    rows = [f"| backbone | objective | {metric} default | {metric} tuned | chosen settings |", "|---|---|---|---|---|"]
    for _, r in ranking[ranking["rank"] == 1].iterrows():
        default = runs / dataset / r.objective / f"seed{seed}" / "metrics.json"
        before = json.loads(default.read_text())["valid"][metric.removeprefix("valid_")] if default.exists() else None
        settings = ("params.yaml's (the default won)" if r.variant == r.objective else
                    ", ".join(f"{k} {v:g}" for k, v in r.drop(["objective", "rank", "variant", metric]).dropna().items()))
        bb, obj = named.loc[r.objective, ["backbone", "objective"]]
        rows.append(f"| {bb} | {obj} | {'–' if before is None else f'{before:.4f}'} | {r[metric]:.4f} | {settings} |")
    return "\n".join(rows)


def time_table(df: pd.DataFrame) -> str:
    """Per backbone: zoo_matrix.py's wall and CPU seconds a run where it timed them, and the training
    epochs' seconds (stage logs) of every run."""
    rows = ["| backbone | runs timed | threads × runs at once | median wall s | median CPU s | max wall s | median training s |",
            "|---|---|---|---|---|---|---|"]
    med = lambda x, f=np.median: f"{f(x.dropna()):.0f}" if x.notna().any() else "–"  # noqa: E731
    for bb, g in df.dropna(subset=["wall_s", "train_s"], how="all").groupby("backbone", sort=False):
        timed = g.dropna(subset=["wall_s"])
        setting = ", ".join(sorted({f"{int(t)} × {int(j)}" for t, j in zip(timed.threads.fillna(0), timed.jobs.fillna(1))})) or "–"
        rows.append(f"| {bb} | {len(g)} | {setting} | {med(g.wall_s)} | {med(g.cpu_s)} | {med(g.wall_s, np.max)} | {med(g.train_s)} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--dataset", default="mosi_av")
    ap.add_argument("--save", type=Path, help="a folder for runs.csv, comparisons.csv, backbones.md and backbone_diff.png")
    args = ap.parse_args()

    df = per_run(args.workdir, args.dataset)
    runs = runs_root(args.workdir, args.dataset)
    res = args.workdir / "results" / runs.relative_to(args.workdir / "runs") / args.dataset
    full = complete(df)
    comp = backbone_summary.comparisons(full.drop(columns=["wall_s", "cpu_s", "threads", "jobs", "train_s"]))
    print(f"## {args.dataset}: {df.backbone.nunique()} backbones, {len(df)} runs "
          f"({len(full)} in cells with all {df.seed.nunique()} seeds)\n")
    print(main_table(full, ["pointwise", "static_pairwise", "grcf"]) + "\n")
    if len(comp) and (comp.objective == "grcf").any():
        print("Default vs default (params.yaml's settings for every objective):\n")
        print(diff_table(comp) + "\n")
    tuned = [o + TUNED for o in ("pointwise", "static_pairwise", "grcf")]
    if full.objective.isin(tuned).any():
        print("Tuned vs tuned (each objective tuned on valid with the same number of trials):\n")
        print(main_table(full, tuned) + "\n")
        if len(comp) and (comp.objective == "grcf" + TUNED).any():
            print(diff_table(comp, suffix=TUNED) + "\n")
    if (res / "sweep.csv").exists():
        print("Chosen on the validation split (sweep seed):\n")
        print(chosen_table(df, args.workdir, res, runs, args.dataset) + "\n")
    if len(comp) and (full.objective.str.startswith("grcf_") & ~full.objective.isin(tuned)).any():
        print(ablation_table(full, comp) + "\n")
    print(time_table(df))
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        cols = ["backbone", "objective", "variant", "seed", *[k for k in KEYS if k in df], "collapsed", "wall_s", "cpu_s",
                "threads", "jobs", "train_s"]
        df[cols].to_csv(args.save / "runs.csv", index=False, float_format="%.6g")
        comp.to_csv(args.save / "comparisons.csv", index=False, float_format="%.6g")
        if len(comp) and (comp.objective == "grcf").any():  # drawn here: the workspace's may predate the tuned panels
            backbone_summary.diff_figure(comp, args.save / "backbone_diff.png")
        for name in ("backbones.md", "sweep.csv", "best_variant.yaml"):
            if (res / name).exists():
                shutil.copy2(res / name, args.save / name)
        print(f"\nsaved in {args.save}")


if __name__ == "__main__":
    main()
