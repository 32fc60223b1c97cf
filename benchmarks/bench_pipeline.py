"""Time to table: start-up vs training per job kind, and the wall time of a variants x seeds matrix.

For each dataset it runs one `grcf train-stage1`, `train-stage2` and `evaluate` job (variant
`grcf`, seed 0) as separate processes, as the pipeline does, and prints per job kind:

- start-up: from process start (spawn) to the first training step (the first loss call), or to
  the first prediction for evaluate (and for a stage that does not train);
- work: from there to the process exit (training epochs, validation, checkpoint);
- total wall time; and CPU time (user + sys, all threads) of each part and of the whole process
  (children included). On a shared, loaded machine the CPU times are the steadier figures.

With `--server` every job goes through a `grcf server` (started once, first; its start-up is
printed): start-up is then the client's start plus the fork.

With `--matrix` it then runs the whole variants x seeds matrix from built features through
Snakemake on `--cores` cores and prints the wall and CPU time, and writes every run's test
metrics to `--out` (JSON) so two code versions can be compared for identical results.

`--project` chooses the code to time (default: this checkout), so the same script measures an
older commit: `git archive <commit> | tar -x -C /tmp/old && python benchmarks/bench_pipeline.py
--project /tmp/old ...`. Features are built once (`--features DATASET=PATH` reuses a built store).

    python benchmarks/bench_pipeline.py --datasets mosi_text embedded \\
        --features mosi_text=features/mosi_text.parquet --matrix --seeds 0 1 2 3 4 --workdir /tmp/bench
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Runs inside each timed job: records when the first step starts, then runs the grcf CLI.
PATCH = r"""
import atexit, json, os, sys, time
marks = {}
def _mark(name):
    if name not in marks and "GRCF_BENCH_SPAWN" in os.environ:  # a timed job (not the matrix's)
        marks[name] = time.time() - float(os.environ["GRCF_BENCH_SPAWN"])
        marks[name + "_cpu"] = time.process_time()  # this process's CPU time (all threads) so far
def _dump():
    if "GRCF_BENCH_OUT" in os.environ:  # a job (a served job's environment is its client's)
        with open(os.environ["GRCF_BENCH_OUT"], "w") as f:
            json.dump({**marks, "exit": time.time() - float(os.environ["GRCF_BENCH_SPAWN"]),
                       "exit_cpu": time.process_time()}, f)
atexit.register(_dump)
import grcf.training.losses as L, grcf.training.train as T
for name in ("stage1_loss", "stage2_loss"):
    fn = getattr(L, name)
    def wrapped(*a, _fn=fn, **k):
        _mark("first_step")
        return _fn(*a, **k)
    setattr(L, name, wrapped)
_predict = T.predict
def predict(*a, **k):
    _mark("first_step")
    return _predict(*a, **k)
T.predict = predict
"""
# Runs inside each timed job: records when the first step starts, then runs the grcf CLI.
CHILD = PATCH + r"""
from grcf import cli
sys.argv = ["grcf", *sys.argv[1:]]
sys.exit((getattr(cli, "run", None) or cli.main)(sys.argv[1:]))  # run: in this process even if $GRCF_SERVER is set
"""
# --server: a `grcf server` whose warm processes (and so their jobs, forked from them) carry the same marks
WARM = PATCH + r"""
from grcf.pipeline.server import warm_process
warm_process(int(sys.argv[-1]), "grcf.cli:run")
"""
SERVER = r"""
import sys
from pathlib import Path
from grcf.pipeline.server import Server
server = Server(Path(sys.argv[1]), "grcf.cli:run")
server.warm_cmd = [sys.executable, "-c", sys.argv[2]]
server.serve()
"""


def env_for(project: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(project / "src")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd, cwd, env) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process and its children."""
    c0, t0 = cpu_children(), time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall, cpu = time.perf_counter() - t0, cpu_children() - c0
    if p.returncode:
        sys.exit(f"{' '.join(map(str, cmd))} failed in {cwd}:\n{p.stdout[-3000:]}")
    return wall, cpu


def prepare(project: Path, work: Path, params: dict, dataset: str, features: Path | None, env) -> Path:
    """A workspace with `params` and the dataset's features (validation included) already built."""
    sys.path.insert(0, str(project / "src"))
    from grcf.pipeline import workspace

    work = workspace.prepare(project, work, params)
    store = work / "features" / f"{dataset}.parquet"
    store.parent.mkdir(exist_ok=True)
    if features is not None and not store.exists():
        shutil.copyfile(features, store)
    timed(["snakemake", "--cores", "2", f"features/{dataset}.validation.json"], work, env)
    if features is None:
        timed(["snakemake", "--cores", "2", str(store.relative_to(work))], work, env)
    store.touch()  # newer than its inputs: Snakemake keeps it
    return work


def job_times(work: Path, dataset: str, env, repeat: int = 1) -> list[dict]:
    """One timing dict per job kind for each repeat (the first repeat builds any cache)."""
    return [_job_times(work, dataset, env) for _ in range(repeat)]


def _job_times(work: Path, dataset: str, env) -> dict:
    run = f"runs/{dataset}/grcf/seed0"
    common = ["--params", "params.yaml", "--dataset", dataset, "--variant", "grcf", "--seed", "0",
              "--features", f"features/{dataset}.parquet"]
    jobs = {
        "train-stage1": ["train-stage1", *common, "--out", f"{run}/stage1.pt", "--log", f"{run}/stage1_log.csv"],
        "train-stage2": ["train-stage2", *common, "--init", f"{run}/stage1.pt", "--out", f"{run}/stage2.pt",
                         "--log", f"{run}/stage2_log.csv"],
        "evaluate": ["evaluate", *common, "--model", f"{run}/stage2.pt", "--out-dir", run],
    }
    out = {}
    for kind, args in jobs.items():
        marks = work / f".bench_{kind}.json"
        marks.unlink(missing_ok=True)
        e = {**env, "GRCF_BENCH_SPAWN": repr(time.time()), "GRCF_BENCH_OUT": str(marks)}
        served = "GRCF_SERVER" in env  # the `grcf` command hands the job to the server
        wall, cpu = timed([str(Path(sys.executable).parent / "grcf"), *args] if served
                          else [sys.executable, "-c", CHILD, *args], work, e)
        m = json.loads(marks.read_text())
        if served:
            cpu += m["exit_cpu"]  # the client's CPU (rusage) + the served child's own
        out[kind] = {"startup_s": m["first_step"], "work_s": wall - m["first_step"], "total_s": wall, "cpu_s": cpu,
                     "startup_cpu_s": m["first_step_cpu"], "work_cpu_s": m["exit_cpu"] - m["first_step_cpu"]}
    return out


def start_server(workdir: Path, env) -> tuple[Path, float]:
    """A server with the marks of CHILD in it, stopped when this script exits; (its socket, seconds until it serves)."""
    sock = workdir.resolve() / "grcf-server.sock"
    sock.parent.mkdir(parents=True, exist_ok=True)
    sock.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(sock), WARM], env=env, stdout=subprocess.DEVNULL)
    atexit.register(lambda: (proc.terminate(), proc.wait()))  # also when a step fails (sys.exit): it stops its warm processes
    while not sock.exists():
        if proc.poll() is not None:
            sys.exit("the grcf server did not start")
        time.sleep(0.02)
    return sock, time.perf_counter() - t0


def matrix(work: Path, dataset: str, variants, seeds, cores: int, env) -> dict:
    targets = [f"runs/default/{dataset}/{v}/seed{s}/metrics.json" for v in variants for s in seeds]  # the default experiment
    plan = subprocess.run(["snakemake", "-n", *targets, "--rerun-triggers", "mtime"], cwd=work, env=env,
                          capture_output=True, text=True).stdout
    if "features " in plan or "validate " in plan:
        sys.exit(f"the matrix would rebuild features in {work}:\n{plan[-2000:]}")
    wall, cpu = timed(["snakemake", "--cores", str(cores), *targets, "--rerun-triggers", "mtime"], work, env)
    if "GRCF_SERVER" in env:
        cpu = float("nan")  # the served jobs are the server's children, not ours: not in our rusage
    metrics = {t: json.loads((work / t).read_text())["test"] for t in targets}
    return {"wall_s": wall, "cpu_s": cpu, "jobs": 3 * len(targets), "metrics": metrics}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", type=Path, default=ROOT, help="the checkout whose code is timed (default: this one)")
    ap.add_argument("--datasets", nargs="+", default=["mosi_text", "embedded"])
    ap.add_argument("--features", nargs="*", default=[], metavar="DATASET=PATH", help="already built stores")
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--matrix", action="store_true", help="also time the variants x seeds matrix")
    ap.add_argument("--matrix-only", action="store_true", help="time only the matrix, not the single jobs")
    ap.add_argument("--variants", nargs="+", default=["all"], help="'all': every variant except *_finetune")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override params.yaml in the workspace (dotted key, YAML value), e.g. stage1.epochs=1: "
                         "start-up does not depend on the epochs, so a short run measures it as well")
    ap.add_argument("--repeat", type=int, default=1, help="time the single jobs this many times (the minimum is kept)")
    ap.add_argument("--out", type=Path, help="write every figure (and the matrix's metrics) here as JSON")
    ap.add_argument("--server", action="store_true", help="run every job through a `grcf server` (started first, timed)")
    args = ap.parse_args()

    project = args.project.resolve()
    env = env_for(project)
    built = dict(kv.split("=", 1) for kv in args.features)
    params = yaml.safe_load((project / "params.yaml").read_text())
    for ds in params["datasets"].values():  # data paths from this checkout, so --project may live anywhere
        if "path" in ds and not Path(ds["path"]).is_absolute():
            ds["path"] = str((ROOT / ds["path"]).resolve())
    for item in args.set:
        key, value = item.split("=", 1)
        *parents, last = key.split(".")
        node = params
        for k in parents:
            node = node[k]
        node[last] = yaml.safe_load(value)
    variants = ([v for v in params["variants"] if not v.endswith("_finetune")]
                if args.variants == ["all"] else args.variants)
    report = {"project": str(project), "cpus": os.cpu_count(), "load_before": os.getloadavg(), "set": args.set,
              "datasets": {}}
    if args.server:
        sock, report["server_start_s"] = start_server(args.workdir, env)
        env["GRCF_SERVER"] = str(sock)
        print(f"grcf server started in {report['server_start_s']:.2f} s (once; every job below runs through it)")
    for dataset in args.datasets:
        params["run"] = {"datasets": [dataset], "variants": variants, "seeds": args.seeds}
        feats = Path(built[dataset]).resolve() if dataset in built else None
        work = prepare(project, args.workdir / dataset, params, dataset, feats, env)
        res = {"jobs": [] if args.matrix_only else job_times(work, dataset, env, args.repeat)}
        print(f"\n{dataset}: one job each (variant grcf, seed 0), {args.repeat} time(s)")
        print(f"{'job':<17}{'start-up s':>11}{'work s':>8}{'total s':>9} | CPU s: {'start-up':>9}{'work':>7}{'total':>7}")
        for r, jobs in enumerate(res["jobs"], 1):
            for kind, t in jobs.items():
                print(f"{kind + ' #' + str(r):<17}{t['startup_s']:>11.2f}{t['work_s']:>8.2f}{t['total_s']:>9.2f} | "
                      f"{'':7}{t['startup_cpu_s']:>9.2f}{t['work_cpu_s']:>7.2f}{t['cpu_s']:>7.2f}")
        if args.matrix or args.matrix_only:
            shutil.rmtree(work / "runs", ignore_errors=True)
            res["matrix"] = matrix(work, dataset, variants, args.seeds, args.cores, env)
            mx = res["matrix"]
            print(f"matrix {len(variants)} variants x {len(args.seeds)} seeds ({mx['jobs']} jobs) on {args.cores} "
                  f"cores: wall {mx['wall_s']:.1f} s, CPU {mx['cpu_s']:.1f} s")
        report["datasets"][dataset] = res
    report["load_after"] = os.getloadavg()
    print(f"\nload average before/after: {report['load_before'][0]:.1f} / {report['load_after'][0]:.1f} "
          f"on {report['cpus']} CPUs")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
