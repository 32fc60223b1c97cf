"""Hyperparameter sweep: candidates are generated variants run as jobs of the same pipeline.

The sweep section of params.yaml names a base variant, a search space of dotted keys and a
grid or a seeded random sample of it. Each candidate becomes a variant `sweep_NNN` of a
workspace's params.yaml and runs on the sweep seed; candidates are ranked on the validation
split only. The best becomes the variant `<base>_tuned`, which then runs on `run.seeds` beside
the baselines and is evaluated on test once, in the summary.
"""

from __future__ import annotations

import itertools
import json
import random

import pandas as pd
import yaml

from grcf.pipeline import workspace
from grcf.atomic import write_text
from grcf.config import deep_merge
from grcf.errors import GrcfError
from grcf.training.metrics import LOWER_IS_BETTER


def candidates(space: dict, method: str, trials: int, sample_seed: int) -> list[dict]:
    keys = sorted(space)
    grid = [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]
    if method == "grid":
        return grid
    rng = random.Random(sample_seed)
    return rng.sample(grid, min(trials, len(grid)))


def as_override(flat: dict) -> dict:
    """{"loss.gamma": 1.0} -> {"loss": {"gamma": 1.0}}"""
    out: dict = {}
    for dotted, value in flat.items():
        *parents, last = dotted.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def rank_metric(params: dict, dataset: str, sweep: dict) -> str:
    if sweep.get("rank_by", "auto") != "auto":
        return sweep["rank_by"]
    return "acc" if params["datasets"][dataset].get("task") == "classification" else "MAE"


def run_sweep(root, params: dict, workdir, cores: int = 2) -> dict:
    sweep = params.get("sweep")
    if not sweep:
        raise GrcfError("params.yaml has no `sweep` section")
    base, dataset, seed = sweep["base"], sweep["dataset"], sweep["seed"]
    if base not in params["variants"]:
        raise GrcfError(f"sweep.base names unknown variant {base!r}")
    baselines = sweep.get("baselines", ["pointwise", "static_pairwise"])
    if unknown := [v for v in baselines if v not in params["variants"]]:
        raise GrcfError(f"sweep.baselines names unknown variants {unknown}")
    trials = candidates(sweep["space"], sweep.get("method", "random"), sweep.get("trials", 8), sweep.get("sample_seed", 0))
    names = [f"sweep_{i:03d}" for i in range(len(trials))]
    ws = yaml.safe_load(yaml.safe_dump(params))
    for name, flat in zip(names, trials):
        ws["variants"][name] = deep_merge(params["variants"][base], as_override(flat))
    ws["run"] = {"datasets": [dataset], "variants": names, "seeds": [seed]}
    work = workspace.prepare(root, workdir, ws)
    workspace.snakemake(work, *[f"runs/{dataset}/{n}/seed{seed}/metrics.json" for n in names], cores=cores)

    metric = rank_metric(params, dataset, sweep)
    rows = []
    for name, flat in zip(names, trials):
        valid = json.loads((work / "runs" / dataset / name / f"seed{seed}" / "metrics.json").read_text())["valid"]
        rows.append({"variant": name, **flat, f"valid_{metric}": valid[metric]})  # test is never read here
    table = pd.DataFrame(rows).sort_values(f"valid_{metric}", ascending=metric in LOWER_IS_BETTER)
    best = trials[names.index(table.iloc[0]["variant"])]
    tuned = f"{base}_tuned"
    ws["variants"][tuned] = deep_merge(params["variants"][base], as_override(best))
    ws["run"] = {"datasets": [dataset], "variants": [tuned, base, *baselines], "seeds": params["run"]["seeds"]}
    workspace.prepare(root, work, ws)
    workspace.snakemake(work, f"results/{dataset}/summary.md", f"results/{dataset}/report.html", cores=cores)
    write_text(work / "results" / dataset / "sweep.csv", table.to_csv(index=False))
    snippet = yaml.safe_dump({"variants": {tuned: ws["variants"][tuned]}}, sort_keys=False)
    write_text(work / "results" / dataset / "best_variant.yaml", snippet)
    return {"workdir": str(work), "ranking": table, "best": best, "variant_yaml": snippet,
            "summary": (work / "results" / dataset / "summary.md").read_text()}
