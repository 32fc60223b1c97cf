"""`grcf sweep` for grcf on one zoo backbone, with the caps of zoo_matrix.py.

Tunes `grcf_<backbone>` on the validation split (seed `--sweep-seed`), then runs the best as
`grcf_<backbone>_tuned` beside `grcf_<backbone>`, `pointwise_<backbone>` and
`static_pairwise_<backbone>` on the seeds and summarises them (test read only there):

    python benchmarks/zoo_sweep.py --backbone tfn --dataset mosi_av --workdir ../grcf-sweep-tfn \\
        --features features/mosi_av.parquet

The space is the issue's: gamma, tau, stage-1 learning rate and epochs (10, the matrix's cap, or 20).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

import zoo_matrix
from grcf.pipeline import workspace
from grcf.pipeline.sweep import run_sweep

SPACE = {"loss.gamma": [0.25, 0.5, 1.0], "loss.tau": [0.5, 1.0, 2.0],
         "stage1.lr": [0.0005, 0.001, 0.002], "stage1.epochs": [10, 20]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--dataset", default="mosi_av")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--sweep-seed", type=int, default=0)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--features", type=Path, help="an already built store of the dataset (else the sweep builds it)")
    ap.add_argument("--cores", type=int, default=2, help="runs at once (1 thread each)")
    args = ap.parse_args()

    params = zoo_matrix.capped_params(args.dataset, args.seeds, threads=1)
    v = lambda o: zoo_matrix.variant(o, args.backbone)  # noqa: E731
    params["sweep"] = {"base": v("grcf"), "dataset": args.dataset, "seed": args.sweep_seed, "method": "random",
                       "trials": args.trials, "sample_seed": 0, "rank_by": "auto",
                       "baselines": [v("pointwise"), v("static_pairwise")], "space": SPACE}
    params["run"]["variants"] = [v("grcf")]
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
    print(result["summary"])


if __name__ == "__main__":
    main()
