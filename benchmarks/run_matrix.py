"""Run the pipeline for one dataset over a variants x seeds matrix in a separate workspace.

The workspace is a copy of the workflow with `run:` set from the command line (everything else
from params.yaml), so the main checkout's outputs are untouched. Prints the summary table and
the wall time. Example (the README's text-only CMU-MOSI table):

    python benchmarks/run_matrix.py --dataset mosi_text --variants all --seeds 0 1 2 3 4 \
        --workdir ../grcf-mosi-text
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COPY = ["Snakefile", "workflow", "src", "dvc.yaml", ".dvcignore"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--variants", nargs="+", default=["grcf", "pointwise", "static_pairwise"],
                    help="variant names, or 'all' for every variant in params.yaml")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    variants = list(params["variants"]) if args.variants == ["all"] else args.variants
    params["run"] = {"datasets": [args.dataset], "variants": variants, "seeds": args.seeds}
    ds = params["datasets"][args.dataset]
    if "path" in ds:  # relative data paths are relative to the checkout
        ds["path"] = str((ROOT / ds["path"]).resolve())
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src, dst = ROOT / name, work / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dst)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    t0 = time.perf_counter()
    rc = subprocess.call(["snakemake", "--cores", str(args.cores), "--rerun-incomplete"], cwd=work)
    wall = time.perf_counter() - t0
    if rc:
        sys.exit(rc)
    print((work / "results" / args.dataset / "summary.md").read_text())
    print(f"wall time: {wall:.0f} s on {args.cores} cores ({len(variants)} variants x {len(args.seeds)} seeds)")


if __name__ == "__main__":
    main()
