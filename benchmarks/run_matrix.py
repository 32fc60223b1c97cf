"""Run the pipeline for one dataset over a variants x seeds matrix in a separate workspace.

The workspace is a copy of the workflow with `run:` set from the command line (everything else
from params.yaml), so the checkout's outputs are untouched. Prints the summary table and the
wall time. Example (the README's text-only CMU-MOSI table):

    python benchmarks/run_matrix.py --dataset mosi_text --variants all --seeds 0 1 2 3 4 \\
        --workdir ../grcf-mosi-text
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from grcf import workspace
from grcf.config import load_params

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--variants", nargs="+", default=["grcf", "pointwise", "static_pairwise"],
                    help="variant names, or 'all' for every variant in params.yaml except *_finetune (GPU)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()

    params = load_params(ROOT / "params.yaml")
    variants = ([v for v in params["variants"] if not v.endswith("_finetune")]
                if args.variants == ["all"] else args.variants)
    params["run"] = {"datasets": [args.dataset], "variants": variants, "seeds": args.seeds}
    work = workspace.prepare(ROOT, args.workdir, params)
    t0 = time.perf_counter()
    workspace.snakemake(work, cores=args.cores)
    wall = time.perf_counter() - t0
    print((work / "results" / args.dataset / "summary.md").read_text())
    print(f"wall time: {wall:.0f} s on {args.cores} cores ({len(variants)} variants x {len(args.seeds)} seeds)")


if __name__ == "__main__":
    main()
