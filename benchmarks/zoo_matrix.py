"""Backbone x objective on one dataset: every (backbone, objective, seed) run, timed one by one.

Runs the pipeline's own commands (grcf train-stage1, train-stage2, evaluate: what the Snakemake
rules and DVC stages run) in a separate workspace, by default one run at a time so each run's wall
time (stage 1 + stage 2 + evaluation) is measured alone; `--jobs 2 --threads 1` keeps both cores
of a 2-core machine busy (runs then share the machine: their wall times are not alone). Runs are
started backbone by backbone (so a cut-short matrix still has whole backbones), then `grcf
summarize` writes the per-backbone paired comparisons and backbone_diff.png. Runs already
finished are kept (rerun the same command to continue). CPU, frozen features. With the caps below
every backbone but MISA and Self-MM runs in under 2 minutes on mosi_av (1 thread a run; MISA and
Self-MM ~2.5-5); MulT at MMSA's default size needs far more (docs/model_zoo.md). The docs'
table:

    python benchmarks/zoo_matrix.py --dataset mosi_av --workdir ../grcf-zoo --seeds 0 1 2 3 4 \\
        --threads 1 --jobs 2

With a `grcf server` running (`eval "$(grcf server start)"`), the short runs of a small dataset
skip most of their start-up; only wall times are recorded then (the work is the server's).

On a cluster, the same matrix is `run.variants` = the `<objective>_<backbone>` variants of
params.yaml with `snakemake --profile slurm` (one job per run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from grcf.pipeline import workspace
from grcf.atomic import write_text
from grcf.config import deep_merge, load_params
from grcf.results.seeds import run_dir

ROOT = Path(__file__).resolve().parents[1]
BACKBONES = ["fusion", "mult", "mfn", "ef_lstm", "tfn", "lmf", "misa", "self_mm"]
OBJECTIVES = ["pointwise", "static_pairwise", "grcf"]
# ablations of grcf (params.yaml variants); `--objectives grcf_uniform grcf_static_margin` runs them per backbone
ABLATIONS = ["grcf_uniform", "grcf_static_margin"]
# the caps (same for every backbone, so objectives and backbones see the same inputs and budget)
CAPS = {"max_len": {"text": 32, "audio": 150, "vision": 50}, "epochs": 10, "patience": 4}
# MulT at MMSA's MOSI size (4 levels, 50-dim, 10 heads) takes >10 CPU-minutes per run on mosi_av: halve it
BACKBONE_ARGS = {"mult": {"nlevels": 2, "dst_feature_dim_nheads": [30, 6]}}


def variant(objective: str, backbone: str) -> str:
    return objective if backbone == "fusion" else f"{objective}_{backbone}"


def capped_params(dataset: str, seeds: list[int], threads: int) -> dict:
    """params.yaml with the caps, MulT's shrink, and `<objective>_<backbone>` for every objective and ablation."""
    params = load_params(ROOT / "params.yaml")
    params["run"] = {"datasets": [dataset], "variants": [], "seeds": seeds}
    params.update(device="cpu", threads=threads)
    params["model"]["max_len"] = dict(CAPS["max_len"])
    for s in ("stage1", "stage2"):
        params[s].update(epochs=CAPS["epochs"], patience=CAPS["patience"])
    for b in BACKBONES[1:]:
        for o in OBJECTIVES + ABLATIONS:
            v = params["variants"].setdefault(variant(o, b), deep_merge(params["variants"][o], {"model": {"backbone": f"mmsa.{b}"}}))
            if b in BACKBONE_ARGS:
                model = v.setdefault("model", {})
                model["backbone_args"] = {**model.get("backbone_args", {}), **BACKBONE_ARGS[b]}
    return params


def run_one(work: Path, dataset: str, v: str, seed: int, threads: int) -> tuple[float, float | None]:
    """(wall seconds, CPU seconds of the three commands): on a shared machine CPU time is the steadier figure."""
    d = f"runs/{dataset}/{v}/seed{seed}"
    common = ["--params", "params.yaml", "--dataset", dataset, "--variant", v, "--seed", str(seed),
              "--features", f"features/{dataset}.parquet"]
    steps = [["train-stage1", *common, "--out", f"{d}/stage1.pt", "--log", f"{d}/stage1_log.csv"],
             ["train-stage2", *common, "--init", f"{d}/stage1.pt", "--out", f"{d}/stage2.pt", "--log", f"{d}/stage2_log.csv"],
             ["evaluate", *common, "--model", f"{d}/stage2.pt", "--out-dir", d]]
    log = work / "logs" / d / "bench.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0, cpu = time.perf_counter(), 0.0
    with open(log, "w") as f:
        for step in steps:
            p = subprocess.Popen(["grcf", *step], cwd=work, stdout=f, stderr=subprocess.STDOUT,
                                 env={**os.environ, "OMP_NUM_THREADS": str(threads)})
            # wait4: this command's own CPU, right also when other runs go on beside it
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            cpu += usage.ru_utime + usage.ru_stime
            if p.returncode:
                raise subprocess.CalledProcessError(p.returncode, ["grcf", *step], output=f"see {log}")
    # through a `grcf server` the work is done by the server's children, not ours: no CPU figure
    return time.perf_counter() - t0, None if os.environ.get("GRCF_SERVER") else cpu


def finished(work: Path, dataset: str, v: str, seed: int) -> bool:
    return (run_dir(work / "runs", dataset, v, seed) / "metrics.json").exists()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mosi_av")
    ap.add_argument("--backbones", nargs="+", default=BACKBONES)
    ap.add_argument("--objectives", nargs="+", default=OBJECTIVES)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--features", type=Path, help="an already built store of the dataset (else: grcf features build)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per run (the floats of some zoo backbones depend on it)")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (default 1: each run timed alone)")
    args = ap.parse_args()

    params = capped_params(args.dataset, args.seeds, args.threads)
    variants = [variant(o, b) for b in args.backbones for o in args.objectives]
    params["run"]["variants"] = variants
    work = workspace.prepare(ROOT, args.workdir, params)
    store = work / "features" / f"{args.dataset}.parquet"
    if not store.exists():
        store.parent.mkdir(exist_ok=True)
        if args.features:
            shutil.copy2(args.features, store)
        else:
            subprocess.run(["grcf", "features", "build", "--params", "params.yaml", "--dataset", args.dataset,
                            "--out", str(store)], cwd=work, check=True)
    times_path = work / "results" / args.dataset / "wall_times.json"
    times_path.parent.mkdir(parents=True, exist_ok=True)
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    todo = [(b, o, seed) for b in args.backbones for seed in args.seeds for o in args.objectives
            if not finished(work, args.dataset, variant(o, b), seed)]
    lock = threading.Lock()

    def timed(job):
        b, o, seed = job
        v = variant(o, b)
        wall, cpu = run_one(work, args.dataset, v, seed, args.threads)
        with lock:
            times[f"{v}/seed{seed}"] = {"backbone": b, "objective": o, "seed": seed, "seconds": wall,
                                        "cpu_seconds": cpu, "threads": args.threads, "jobs": args.jobs}
            write_text(times_path, json.dumps(times, indent=1))
            print(f"{v} seed{seed}: {wall:.0f} s wall" + (f", {cpu:.0f} s CPU" if cpu is not None else ""), flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        for f in [pool.submit(timed, job) for job in todo]:
            f.result()
    # every variant of the workspace finished on all seeds (earlier calls' backbones and ablations too)
    done = [v for v in params["variants"] if all(finished(work, args.dataset, v, s) for s in args.seeds)]
    params["run"]["variants"] = done
    (work / "params.yaml").write_text(__import__("yaml").safe_dump(params, sort_keys=False))
    subprocess.run(["grcf", "summarize", "--params", "params.yaml", "--dataset", args.dataset, "--runs", "runs",
                    "--out-dir", f"results/{args.dataset}"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    res = work / "results" / args.dataset
    # backbones.md exists only when a zoo backbone ran (a fusion-only matrix has the plain summary)
    print((res / "backbones.md" if (res / "backbones.md").exists() else res / "summary.md").read_text())
    by_bb = {}
    for t in times.values():
        cpu = t.get("cpu_seconds")
        by_bb.setdefault(t["backbone"], []).append((t["seconds"], float("nan") if cpu is None else cpu))
    print("| backbone | runs | wall s per run (mean, min-max) | CPU s per run (mean) |\n|---|---|---|---|")
    for b, s in by_bb.items():
        w = [x[0] for x in s]
        print(f"| {b} | {len(s)} | {sum(w) / len(w):.0f} ({min(w):.0f}-{max(w):.0f}) | {sum(x[1] for x in s) / len(s):.0f} |")


if __name__ == "__main__":
    main()
