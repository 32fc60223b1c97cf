"""`grcf sweep` on zoo backbones with the caps of zoo_matrix.py: every objective tuned alike.

Tunes `grcf_<backbone>`, `pointwise_<backbone>` and `static_pairwise_<backbone>` of each
backbone on the validation split (seed `--sweep-seed`), each over its own space below with the
same number of trials (`--trials`), then runs each best as `<objective>_<backbone>_tuned` beside
the untuned objectives on the seeds and summarises them in one workspace (test read only there):
backbones.md then holds default vs default and tuned vs tuned, each with paired CIs
(docs/tuning.md):

    python benchmarks/zoo_sweep.py --backbones tfn lmf --dataset mosi_av --workdir ../grcf-sweep \\
        --features features/mosi_av.parquet
    python benchmarks/zoo_tables.py ../grcf-sweep --dataset mosi_av

`--no-caps` keeps params.yaml's settings and its own `sweep.spaces` (the fusion model on a
text-only dataset, for example: `--backbones fusion --dataset mosi_text --no-caps`).

`--objectives grcf` alone is the older, unequal protocol (grcf tuned, the baselines run untuned
beside); its tuned grcf is then compared with nothing, since a tuned objective is only compared
with tuned baselines.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

import zoo_matrix
from grcf.config import load_params
from grcf.pipeline import workspace
from grcf.pipeline.sweep import run_sweep

# each objective's own knobs; epochs 10 (the matrix's cap) or 20. Point-wise runs are stage 2
# alone, so its learning rate is stage 2's: the space reaches the rates that helped by hand (2e-3, 5e-3).
STAGE2 = {"stage2.lr": [0.0005, 0.001, 0.002, 0.005], "stage2.epochs": [10, 20],
          "stage2.weight_decay": [0.0, 0.0001, 0.001], "stage2.batch_size": [16, 32, 64]}
SPACES = {
    "grcf": {"loss.gamma": [0.25, 0.5, 1.0], "loss.tau": [0.5, 1.0, 2.0],
             "stage1.lr": [0.0005, 0.001, 0.002], "stage1.epochs": [10, 20]},
    "pointwise": STAGE2,
    "static_pairwise": {**STAGE2, "loss.static_margin": [0.25, 0.5, 1.0], "loss.rank_weight": [0.5, 1.0, 2.0]},
}


def sweep_section(backbones, dataset: str, objectives, trials: int, sweep_seed: int, spaces=None) -> dict:
    """Every (backbone, objective) an objective of the sweep, each with its objective's space."""
    spaces = spaces or SPACES
    if missing := [o for o in objectives if o not in spaces]:
        raise SystemExit(f"no search space for {missing}")
    bases = {zoo_matrix.variant(o, b): spaces[o] for b in backbones for o in objectives}
    # the objectives not tuned still run, untuned, beside (their default-vs-default comparisons)
    untuned = [zoo_matrix.variant(o, b) for b in backbones for o in SPACES if o not in objectives]
    return {"bases": list(bases), "dataset": dataset, "seed": sweep_seed, "method": "random",
            "trials": trials, "sample_seed": 0, "rank_by": "auto", "spaces": bases, "baselines": untuned}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", "--backbone", nargs="+", required=True, choices=zoo_matrix.BACKBONES)
    ap.add_argument("--dataset", default="mosi_av")
    ap.add_argument("--objectives", nargs="+", default=list(SPACES), choices=list(SPACES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--sweep-seed", type=int, default=0)
    ap.add_argument("--trials", type=int, default=8, help="per objective (the same for each)")
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--features", type=Path, help="an already built store of the dataset (else the sweep builds it)")
    ap.add_argument("--cores", type=int, default=2, help="runs at once (1 thread each)")
    ap.add_argument("--no-caps", action="store_true", help="params.yaml's settings and sweep.spaces, not the zoo caps")
    args = ap.parse_args()

    if args.no_caps:
        params = load_params(zoo_matrix.ROOT / "params.yaml")
        params["run"] = {"datasets": [args.dataset], "variants": [], "seeds": args.seeds}
        params.update(device="cpu", threads=1)
        spaces = params["sweep"]["spaces"]
    else:
        params, spaces = zoo_matrix.capped_params(args.dataset, args.seeds, threads=1), SPACES
    params["sweep"] = sweep_section(args.backbones, args.dataset, args.objectives, args.trials, args.sweep_seed, spaces)
    params["run"]["variants"] = list(params["sweep"]["bases"])
    store = args.workdir / "features" / f"{args.dataset}.parquet"
    if args.features and not store.exists():
        # the given store stands in for the features rule: its validation input first, then the store, newer
        workspace.prepare(zoo_matrix.ROOT, args.workdir, params)
        store.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["grcf", "validate", "--params", "params.yaml", "--dataset", args.dataset,
                        "--out", f"features/{args.dataset}.validation.json"], cwd=args.workdir, check=True)
        shutil.copy2(args.features, store)
        os.utime(store)
    result = run_sweep(zoo_matrix.ROOT, params, args.workdir, cores=args.cores)
    print(result["ranking"].to_markdown(index=False))
    print(result["variant_yaml"])
    backbones = Path(result["results"]) / "backbones.md"
    print(backbones.read_text() if backbones.exists() else result["summary"])


if __name__ == "__main__":
    main()
