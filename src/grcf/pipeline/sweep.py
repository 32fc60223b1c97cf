"""Hyperparameter sweep with the same budget for every objective.

The sweep section of params.yaml names the objectives to tune (`bases`, variants of params.yaml:
grcf, pointwise, static_pairwise or their zoo forms), a search space of dotted keys per
objective (`spaces`) and a grid or a seeded random sample of each, with the same number of
trials for every objective: a comparison of tuned objectives is fair only if each had the same
chance. Each candidate becomes a variant `sweep_<base>_NNN` of a workspace's params.yaml and
runs on the sweep seed; candidates are ranked on the validation split only (test is never read
here), beside the objective's own params.yaml settings (`include_default`, on by default: the
`<base>` run on the sweep seed, winning ties, so tuning never picks a setting worse on valid than
the untuned one). The best of each objective becomes `<base>_tuned`, which runs on `run.seeds` beside the
untuned objectives; the summary then compares default against default and tuned against tuned
(results.seeds.pairs), and test is evaluated once, there.

The older form `base` + `space` tunes one objective; `baselines` adds untuned variants beside.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pandas as pd
import yaml

from grcf.pipeline import workspace
from grcf.atomic import write_text
from grcf.config import deep_merge, experiment_name
from grcf.errors import GrcfError
from grcf.training.metrics import LOWER_IS_BETTER

TUNED = "_tuned"


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


def objectives(params: dict) -> tuple[dict[str, dict], list[str]]:
    """({base: search space}, untuned variants to run beside) from params' `sweep` section."""
    sweep = params.get("sweep")
    if not sweep:
        raise GrcfError("params.yaml has no `sweep` section")
    if {"bases", "spaces"} & set(sweep) and {"base", "space"} & set(sweep):
        raise GrcfError("the sweep section has both `bases`/`spaces` and the one-objective `base`/`space`; keep one form")
    if "bases" in sweep:
        bases, spaces = list(sweep["bases"]), sweep.get("spaces") or {}
        if missing := [b for b in bases if b not in spaces]:
            raise GrcfError(f"sweep.spaces has no search space for {missing} (every objective in sweep.bases needs one)")
        if extra := sorted(set(spaces) - set(bases)):
            raise GrcfError(f"sweep.spaces names {extra}, which sweep.bases does not tune")
        baselines = list(sweep.get("baselines", []))
    elif "base" in sweep and "space" in sweep:
        bases, spaces = [sweep["base"]], {sweep["base"]: sweep["space"]}
        baselines = list(sweep.get("baselines", ["pointwise", "static_pairwise"]))
    else:
        raise GrcfError("the sweep section needs `bases` and `spaces` (or the one-objective form `base` and `space`)")
    if unknown := [b for b in bases if b not in params["variants"]]:
        raise GrcfError(f"sweep.bases names unknown variants {unknown}")
    if dup := sorted({b for b in bases if bases.count(b) > 1}):
        raise GrcfError(f"sweep.bases lists {dup} twice")
    if unknown := [v for v in baselines if v not in params["variants"]]:
        raise GrcfError(f"sweep.baselines names unknown variants {unknown}")
    return {b: spaces[b] for b in bases}, [v for v in baselines if v not in bases]


def plan(params: dict) -> dict[str, list[dict]]:
    """The candidates of each objective; refused unless every objective gets the same number."""
    sweep = params["sweep"]
    spaces, _ = objectives(params)
    method, trials, sample_seed = sweep.get("method", "random"), sweep.get("trials", 8), sweep.get("sample_seed", 0)
    out = {b: candidates(space, method, trials, sample_seed) for b, space in spaces.items()}
    sizes = {b: len(c) for b, c in out.items()}
    if len(set(sizes.values())) > 1:
        how = ("give every objective a grid of the same size" if method == "grid"
               else f"give every space at least sweep.trials = {trials} grid points")
        raise GrcfError(f"unequal tuning budget, trials per objective: {sizes}; {how}")
    return out


def candidate_name(base: str, i: int) -> str:
    return f"sweep_{base}_{i:03d}"


def run_sweep(root, params: dict, workdir, cores: int = 2) -> dict:
    sweep = params.get("sweep") or {}
    trials = plan(params)  # every check before any job
    _, baselines = objectives(params)
    dataset, seed = sweep["dataset"], sweep["seed"]
    ws = yaml.safe_load(yaml.safe_dump(params))
    names = {}
    for base, flats in trials.items():
        for i, flat in enumerate(flats):
            names[candidate_name(base, i)] = (base, flat)
            ws["variants"][candidate_name(base, i)] = deep_merge(params["variants"][base], as_override(flat))
    # each objective's untuned settings are scored too, as the run `<base>` on the sweep seed (which the
    # seeds run anyway when the sweep seed is one of them); listed first, so they win ties
    defaults = {base: (base, {}) for base in trials} if sweep.get("include_default", True) else {}
    scored = {**defaults, **names}
    ws["run"] = {"datasets": [dataset], "variants": list(scored), "seeds": [seed]}
    work = workspace.prepare(root, workdir, ws)
    runs = work / "runs" / experiment_name(ws) / dataset
    results = work / "results" / experiment_name(ws) / dataset
    workspace.snakemake(work, *[str((runs / n / f"seed{seed}" / "metrics.json").relative_to(work)) for n in scored],
                        cores=cores)

    metric = rank_metric(params, dataset, sweep)
    rows = []
    for name, (base, flat) in scored.items():
        valid = json.loads((runs / name / f"seed{seed}" / "metrics.json").read_text())["valid"]
        rows.append({"objective": base, "variant": name, f"valid_{metric}": valid[metric], **flat})  # never test
    table = pd.DataFrame(rows).sort_values(f"valid_{metric}", ascending=metric in LOWER_IS_BETTER, kind="stable")
    table.insert(1, "rank", table.groupby("objective", sort=False).cumcount() + 1)
    order = {b: i for i, b in enumerate(trials)}
    table = (table.assign(_o=table.objective.map(order)).sort_values(["_o", "rank"], kind="stable")
             .drop(columns="_o").reset_index(drop=True))
    best, tuned = {}, {}
    for base in trials:
        top = table[(table.objective == base) & (table["rank"] == 1)].iloc[0]
        best[base] = scored[top.variant][1]  # {}: params.yaml's settings were the best
        tuned[base + TUNED] = deep_merge(params["variants"][base], as_override(best[base]))
    ws["variants"].update(tuned)
    # default objectives first, then the tuned ones: the summary compares each family within itself
    ws["run"] = {"datasets": [dataset], "variants": [*trials, *baselines, *tuned], "seeds": params["run"]["seeds"]}
    workspace.prepare(root, work, ws)
    workspace.snakemake(work, *[str((results / f).relative_to(work)) for f in ("summary.md", "report.html")],
                        cores=cores)
    write_text(results / "sweep.csv", table.to_csv(index=False))
    snippet = yaml.safe_dump({"variants": tuned}, sort_keys=False)
    write_text(results / "best_variant.yaml", snippet)
    return {"workdir": str(work), "ranking": table, "best": best, "variant_yaml": snippet,
            "trials": {b: len(t) for b, t in trials.items()}, "results": str(results),
            "summary": (results / "summary.md").read_text()}


def results_dir(workdir, params: dict) -> Path:
    return Path(workdir) / "results" / experiment_name(params) / params["sweep"]["dataset"]
