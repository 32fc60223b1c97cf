"""How the pipeline's cost grows with the data: text-only CMU-MOSI (2.2k texts) vs CMU-MOSEI (22.8k).

For each dataset, every step runs as its own process, as the pipeline runs it, and is measured
with os.wait4 (wall seconds and the process's peak RSS, its children included):

- features: `grcf features build` (2 torch threads, as the features rule gives it): seconds,
  texts/s (rows / wall, model loading included) and the store's size;
- tensor cache: a process loading train, valid and test through grcf.data.tensor_cache, first
  from the store (a miss: decode + pad + write the cache), then again (a hit: map the cache);
- one run (variant `grcf`, seed 0; 1 torch thread per job, as `threads: 1` in params.yaml):
  `train-stage1`, `train-stage2`, `evaluate`: seconds, epochs, mean s per epoch (the training
  log's `seconds` column) and peak RSS of each job; s per run = the three jobs together.

It prints one Markdown table (a row per figure, a column per dataset) and writes the figures as
JSON. `--features DATASET=PATH` reuses a built store (its build is then not timed again).

    python benchmarks/bench_scale.py --workdir /work/bench/scale --json /work/bench/scale/scale.json

Run it from the repository root (params.yaml's `../shared/data/...` paths are relative to it).
On a shared machine every figure includes the other users' load: the docs say so.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRCF = Path(sys.executable).with_name("grcf")

LOAD = r"""
import json, sys, time
from grcf.data.tensor_cache import load_split_cached
from grcf.config import load_params, resolve_run
cfg = resolve_run(load_params(sys.argv[2]), sys.argv[3], "grcf")
t0 = time.perf_counter()
for split in ("train", "valid", "test"):
    s = load_split_cached(sys.argv[1], split, modalities=cfg.get("modalities"), max_len=cfg["model"].get("max_len"))
    for x in s.features.values():
        x.sum()  # touch every page: a mapped cache is otherwise only promised, not read
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def run_measured(args, *, threads: int, cwd=ROOT) -> dict:
    """Run one process with `threads` torch threads: wall s, peak RSS (MiB; os.wait4 on that child,
    so this job's own peak, its children included), CPU s and stdout."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_scale.{os.getpid()}.out"
    t0 = time.perf_counter()
    with open(out_path, "w") as out, open(str(out_path) + ".err", "w") as err:
        p = subprocess.Popen([str(a) for a in args], cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    text = out_path.read_text()
    if status:
        sys.exit(f"{' '.join(map(str, args))} failed (status {status}):\n"
                 f"{Path(str(out_path) + '.err').read_text()[-3000:]}")
    return {"seconds": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "stdout": text}


def epochs(log: Path) -> tuple[int, float]:
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    secs = [float(r["seconds"]) for r in rows if r.get("seconds")]
    return len(rows), (sum(secs) / len(secs) if secs else float("nan"))


def bench_dataset(name: str, work: Path, params: Path, store: Path | None) -> dict:
    import pyarrow.parquet as pq

    r: dict = {"dataset": name}
    feats = work / "features"
    feats.mkdir(parents=True, exist_ok=True)
    if store is None:
        store = feats / f"{name}.parquet"
        job = run_measured([GRCF, "features", "build", "--params", params, "--dataset", name, "--out", store], threads=2)
        r["features_s"], r["features_rss_mib"] = job["seconds"], job["peak_rss_mib"]
        r["features_cpu_s"] = job["cpu_seconds"]
    r["store"] = str(store)
    r["rows"] = pq.ParquetFile(store).metadata.num_rows
    r["store_mb"] = store.stat().st_size / 1e6
    if "features_s" in r:
        # on a loaded machine wall time measures the other users too; texts per CPU-second does not
        r["texts_per_s"] = r["rows"] / r["features_s"]
        r["texts_per_cpu_s"] = r["rows"] / r["features_cpu_s"]
    for old in store.parent.glob(f".{store.stem}.*"):  # the tensor cache: measure a miss, then a hit
        subprocess.run(["rm", "-rf", str(old)], check=True)
    for kind in ("miss", "hit"):
        job = run_measured([sys.executable, "-c", LOAD, store, params, name], threads=1)
        r[f"cache_{kind}_s"] = json.loads(job["stdout"].strip().splitlines()[-1])["seconds"]
        r[f"cache_{kind}_rss_mib"] = job["peak_rss_mib"]
    run = work / "runs" / name / "grcf" / "seed0"
    run.mkdir(parents=True, exist_ok=True)
    common = ["--params", params, "--dataset", name, "--variant", "grcf", "--seed", "0", "--features", store]
    jobs = {
        "stage1": [GRCF, "train-stage1", *common, "--out", run / "stage1.pt", "--log", run / "stage1.csv"],
        "stage2": [GRCF, "train-stage2", *common, "--init", run / "stage1.pt", "--out", run / "stage2.pt",
                   "--log", run / "stage2.csv"],
        "evaluate": [GRCF, "evaluate", *common, "--model", run / "stage2.pt", "--out-dir", run],
    }
    r["run_s"] = 0.0
    for job_name, args in jobs.items():
        job = run_measured(args, threads=1)
        r[f"{job_name}_s"], r[f"{job_name}_rss_mib"] = job["seconds"], job["peak_rss_mib"]
        r[f"{job_name}_cpu_s"] = job["cpu_seconds"]
        r["run_s"] += job["seconds"]
        if job_name != "evaluate":
            r[f"{job_name}_epochs"], r[f"{job_name}_s_per_epoch"] = epochs(run / f"{job_name}.csv")
    r["test"] = json.loads((run / "metrics.json").read_text())["test"]
    return r


ROWS = [
    ("rows", "texts", "{:,.0f}"),
    ("features_s", "feature build (s)", "{:.0f}"),
    ("texts_per_s", "texts/s (build, model load included)", "{:.0f}"),
    ("features_cpu_s", "feature build CPU time (s, both threads)", "{:.0f}"),
    ("texts_per_cpu_s", "texts per CPU-second (build)", "{:.0f}"),
    ("features_rss_mib", "feature build peak RSS (MiB)", "{:.0f}"),
    ("store_mb", "store size (MB)", "{:.0f}"),
    ("cache_miss_s", "tensor cache miss: load 3 splits (s)", "{:.1f}"),
    ("cache_hit_s", "tensor cache hit: load 3 splits (s)", "{:.2f}"),
    ("cache_miss_rss_mib", "tensor cache miss peak RSS (MiB)", "{:.0f}"),
    ("stage1_s_per_epoch", "stage 1: s per epoch", "{:.2f}"),
    ("stage1_epochs", "stage 1: epochs run", "{:.0f}"),
    ("stage2_s_per_epoch", "stage 2: s per epoch", "{:.2f}"),
    ("stage2_epochs", "stage 2: epochs run", "{:.0f}"),
    ("stage1_rss_mib", "train-stage1 peak RSS (MiB)", "{:.0f}"),
    ("stage2_rss_mib", "train-stage2 peak RSS (MiB)", "{:.0f}"),
    ("evaluate_rss_mib", "evaluate peak RSS (MiB)", "{:.0f}"),
    ("stage1_s", "train-stage1 job (s)", "{:.0f}"),
    ("stage2_s", "train-stage2 job (s)", "{:.0f}"),
    ("evaluate_s", "evaluate job (s)", "{:.0f}"),
    ("run_s", "one run: 3 jobs (s)", "{:.0f}"),
    ("stage1_cpu_s", "train-stage1 CPU time (s)", "{:.0f}"),
    ("stage2_cpu_s", "train-stage2 CPU time (s)", "{:.0f}"),
    ("evaluate_cpu_s", "evaluate CPU time (s)", "{:.0f}"),
]


def table(results: list[dict]) -> str:
    head = "| | " + " | ".join(r["dataset"] for r in results) + " |"
    lines = [head, "|---" * (len(results) + 1) + "|"]
    for key, label, fmt in ROWS:
        if any(key in r for r in results):
            lines.append(f"| {label} | " + " | ".join(fmt.format(r[key]) if key in r else "-" for r in results) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True, help="features/ and runs/ are written here")
    ap.add_argument("--datasets", nargs="+", default=["mosi_text", "mosei_text"])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--features", nargs="*", default=[], metavar="DATASET=PATH", help="reuse a built store")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    given = dict(x.split("=", 1) for x in args.features)
    machine = {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
               "load_avg_start": os.getloadavg(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    results = []
    for name in args.datasets:
        results.append(bench_dataset(name, args.workdir.resolve(), args.params.resolve(),
                                     Path(given[name]).resolve() if name in given else None))
        print(f"{name}: done", file=sys.stderr, flush=True)
    machine["load_avg_end"] = os.getloadavg()
    print(table(results))
    print(f"\nmachine: {machine}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
