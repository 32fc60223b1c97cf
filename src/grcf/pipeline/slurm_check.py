"""Slurm requests that can never run: refused before submission, cancelled while pending.

A job asking for more CPUs, memory, GPUs or time than any node of its partition offers sits in
PENDING (reason ``PartitionConfig``, ...) forever, and Snakemake's Slurm executor waits with it.
The Snakefile's ``onstart`` hook (workflow/rules/slurm.smk) therefore

- asks Slurm itself whether each rule's request could ever run (``sbatch --test-only`` with the
  partition, CPUs, memory, GPUs and time the executor will submit) and stops before anything is
  submitted, naming the rule, what Slurm said, what the partition's nodes have and the
  ``GRCF_SLURM_*`` variable to change (``slurm/config.yaml`` reads them), and
- starts a watchdog thread that cancels (``scancel``) a job of this workflow pending for a
  reason that cannot clear by waiting (``NEVER_CLEARS``), and says which rule and why.

Set ``GRCF_SLURM_CHECK=0`` to turn both off.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import subprocess
import sys
import threading

# Pending reasons only an administrator or a changed request can clear.
NEVER_CLEARS = (
    "PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "PartitionDown", "PartitionInactive",
    "BadConstraints", "InvalidAccount", "InvalidQOS", "QOSMaxCpuPerJobLimit",
    "QOSMaxMemoryPerJob", "QOSMaxGRESPerJob", "QOSMaxNodePerJobLimit", "QOSMaxWallDurationPerJobLimit",
    "QOSMinGRES", "QOSMinCpuNotSatisfied", "QOSMinMemory", "AssocMaxCpuPerJobLimit", "AssocMaxNodePerJobLimit",
    "AssocMaxWallDurationPerJobLimit", "AssocMaxMemPerJob", "AssocMaxGRESPerJob", "MaxMemPerLimit",
    "MaxCpuPerAccount", "DependencyNeverSatisfied",
)


class SlurmRequestError(RuntimeError):
    pass


def _run(*args: str) -> str:
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise SlurmRequestError(f"`{' '.join(args)}` failed: {(p.stderr or p.stdout).strip()}")
    return p.stdout


def _minutes(limit: str) -> float | None:
    """Slurm time limit ('infinite', '30', '1-12:00:00', '2:00:00') -> minutes, None = no limit."""
    if not limit or limit.upper() in ("UNLIMITED", "INFINITE", "NONE", "N/A"):
        return None
    days, _, rest = limit.rpartition("-")
    parts = [int(x) for x in rest.split(":")]
    h, m, s = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return int(days or 0) * 1440 + h * 60 + m + s / 60


def _request(res: dict) -> dict:
    """The executor's resources of one job -> what it will ask sbatch for."""
    gres = str(res["gres"]) if res.get("gres") else None
    gpus, model = int(res.get("gpu") or 0), res.get("gpu_model") or None
    if gres:  # 'gpu:a100:2' / 'gpu:2'
        parts = gres.split(",")[0].split(":")
        gpus = int(parts[-1]) if parts[-1].isdigit() else 1
        model = parts[1] if len(parts) == 3 else None
    return {"partition": res.get("slurm_partition") or None, "account": res.get("slurm_account") or None,
            "cpus": int(res.get("cpus_per_task") or res.get("_cores") or 1), "mem_mb": int(res.get("mem_mb") or 0),
            "runtime": float(res.get("runtime") or 0), "gpus": gpus, "gpu_model": model, "gres": gres}


def _sbatch_args(req: dict, only: str | None = None) -> list[str]:
    """sbatch options of `req` (as the Slurm executor passes them); `only`: just that part, the rest minimal."""
    keep = (lambda what: only in (None, what))
    args = ["sbatch", "--test-only", "--parsable", "-o", "/dev/null", "-c", str(req["cpus"] if keep("cpus") else 1)]
    if req["partition"]:
        args.append(f"--partition={req['partition']}")
    if req["account"]:
        args.append(f"--account={req['account']}")
    if req["mem_mb"] and keep("mem_mb"):
        args.append(f"--mem={req['mem_mb']}")
    if req["runtime"] and only is None:
        args.append(f"--time={max(1, int(req['runtime']))}")
    if req["gpus"] and keep("gpus"):
        args.append(f"--gres={req['gres']}" if req["gres"] else
                    f"--gpus={req['gpu_model']}:{req['gpus']}" if req["gpu_model"] else f"--gpus={req['gpus']}")
    return args + ["--wrap", "true"]


def _slurm_says(args: list[str]) -> str | None:
    """None when Slurm could run the job (some day), else its reason."""
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if p.returncode == 0:
        return None
    lines = [ln.strip() for ln in (p.stderr or p.stdout).splitlines() if ln.strip()]
    # sbatch prints "sbatch: error: ..." then "allocation failure: <reason>"; the last line is the reason
    return re.sub(r"^(sbatch: error: |allocation failure: )", "", lines[-1]) if lines else f"exit {p.returncode}"


def _nodes(partition: str | None) -> tuple[str, list[dict]]:
    """(partition name, its nodes as {name, cpus, mem_mb, gres}) from `sinfo`; the default partition for None."""
    if partition is None:
        names = _run("sinfo", "-h", "-o", "%P").split()
        partition = next((p.rstrip("*") for p in names if p.endswith("*")), "")
    out = _run("sinfo", "-h", "-N", "-p", partition, "-o", "%n|%c|%m|%G|%l")
    nodes = []
    for line in out.splitlines():
        name, cpus, mem, gres, limit = line.split("|")
        nodes.append({"name": name, "cpus": int(cpus.rstrip("+")), "mem_mb": int(mem.rstrip("+")),
                      "gres": "" if gres == "(null)" else gres, "max_time_min": _minutes(limit)})
    return partition, nodes


def _var(req: dict, what: str) -> str:
    gpu = req["gpus"] > 0
    return {"cpus": "GRCF_SLURM_GPU_CPUS" if gpu else "GRCF_SLURM_CPUS_PER_TASK",
            "mem_mb": "GRCF_SLURM_GPU_MEM_MB" if gpu else "GRCF_SLURM_MEM_MB",
            "runtime": "GRCF_SLURM_GPU_RUNTIME" if gpu else "GRCF_SLURM_RUNTIME",
            "partition": "GRCF_SLURM_GPU_PARTITION" if gpu else "GRCF_SLURM_PARTITION"}[what]


def _explain(req: dict, what: str, pname: str, nodes: list[dict]) -> str:
    """Plain words for one part of the request no node of the partition has, and the variable to set."""
    if what == "cpus":
        most = max(n["cpus"] for n in nodes)
        return f"no node of partition {pname} has {req['cpus']} CPUs (at most {most}); set {_var(req, 'cpus')}={most} or lower"
    if what == "mem_mb":
        most = max(n["mem_mb"] for n in nodes)
        return (f"no node of partition {pname} has {req['mem_mb']} MB of memory (at most {most} MB); "
                f"set {_var(req, 'mem_mb')}={most} or lower")
    have = ", ".join(sorted({n["gres"] for n in nodes if n["gres"]})) or "no GPUs"
    types = {item.split(":")[1] for n in nodes for item in re.sub(r"\(.*?\)", "", n["gres"]).split(",")
             if item.startswith("gpu:") and item.count(":") == 2}
    fix = "set GRCF_SLURM_GPUS / GRCF_SLURM_GPU_MODEL / GRCF_SLURM_GRES to what they have"
    if req["gpu_model"] and req["gpu_model"] not in types:
        return (f"no node of partition {pname} has a GPU of type {req['gpu_model']}; its nodes have {have}; "
                f"{fix}, or pick another partition with {_var(req, 'partition')}")
    kind = f" of type {req['gpu_model']}" if req["gpu_model"] else ""
    return f"no node of partition {pname} has {req['gpus']} GPU{'s' * (req['gpus'] != 1)}{kind}; its nodes have {have}; {fix}"


def check_requests(requests) -> list[str]:
    """[(rule, resources dict)] -> one message per rule whose request Slurm says can never run."""
    problems, seen = [], set()
    for rule, res in requests:
        req = _request(res)
        key = (rule, tuple(sorted(req.items())))
        if key in seen:
            continue
        seen.add(key)
        ask = (f"{req['cpus']} CPUs, {req['mem_mb']} MB, {req['gpus']} GPU(s)"
               + (f" of type {req['gpu_model']}" if req["gpu_model"] else "") + f", {req['runtime']:g} min")
        where = f"partition {req['partition']}" if req["partition"] else "the default partition"
        said = _slurm_says(_sbatch_args(req))
        if said is None:
            # Slurm accepts a job over the partition's time limit and leaves it pending for good
            # (unless the site sets EnforcePartLimits); its limit is one number to compare with
            pname, nodes = _nodes(req["partition"])
            limit = min((n["max_time_min"] for n in nodes if n["max_time_min"] is not None), default=None)
            if limit is not None and req["runtime"] > limit:
                problems.append(f"rule {rule} asks for {ask} on partition {pname}, longer than its time limit "
                                f"of {limit:g} min; set {_var(req, 'runtime')}={limit:g} or lower")
            continue
        if "partition" in said.lower():
            parts = [p.rstrip("*") for p in _run("sinfo", "-h", "-o", "%P").split()]
            problems.append(f"rule {rule} asks for {where}: Slurm says {said!r} (partitions: "
                            f"{', '.join(parts) or 'none'}); set {_var(req, 'partition')}")
            continue
        pname, nodes = _nodes(req["partition"])
        # which part alone Slurm refuses (asking again with only that part of the request)
        parts = [w for w in ("cpus", "mem_mb", "gpus") if (w != "gpus" or req["gpus"])
                 and _slurm_says(_sbatch_args(req, only=w)) is not None]
        why = "; ".join(_explain(req, w, pname, nodes) for w in parts) if nodes else "it has no nodes"
        if not parts and nodes:
            why = (f"no single node has all of it (nodes: "
                   + ", ".join(f"{n['name']} {n['cpus']} CPUs {n['mem_mb']} MB {n['gres'] or 'no GPUs'}" for n in nodes)
                   + f"); lower {_var(req, 'cpus')} / {_var(req, 'mem_mb')} or the GPU request")
        problems.append(f"rule {rule} asks for {ask} on {where}; Slurm says {said!r} (sbatch --test-only): {why}")
    return problems


# ------------------------------------------------------------ the executor's account guess

# snakemake-executor-plugin-slurm (2.8.0) guesses a missing account with `sacct ... | tail -1`
# split into arguments, so sacct always fails ("invalid option -- '1'") and the job goes without -A,
# which is what slurm/config.yaml means by leaving GRCF_SLURM_ACCOUNT unset: Slurm's default account.
_ACCOUNT_GUESS = ("No SLURM account given, trying to guess.",
                  "No account was given, not able to get a SLURM account via sacct:",
                  "Unable to guess SLURM account. Trying to proceed without.")


class _NoAccountGuess(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = str(record.getMessage())
        except Exception:  # a record whose args do not format: not ours to judge
            return True
        return not msg.startswith(_ACCOUNT_GUESS)


def quiet_account_guess(logger: logging.Logger | None = None) -> None:
    """Drop the executor's failing account-guess warnings (idempotent)."""
    logger = logger or logging.getLogger("snakemake.logging")
    if not any(isinstance(f, _NoAccountGuess) for f in logger.filters):
        logger.addFilter(_NoAccountGuess())


# ---------------------------------------------------------------- while running


def _dead_partition(name: str) -> bool:
    try:
        state = _run("sinfo", "-h", "-p", name, "-o", "%a|%t").split()
    except SlurmRequestError:
        return True
    usable = [s for s in state if s.startswith("up|") and not re.search(r"down|drain|fail|inval|futur", s)]
    return not usable


def pending_never_clearing(workdir: str) -> list[dict]:
    """This user's PENDING jobs submitted from `workdir` (by Snakemake: comment rule_*) stuck for good."""
    out = _run("squeue", "-h", "-u", getpass.getuser(), "-t", "PENDING", "-o", "%i|%k|%P|%Z|%r")
    stuck = []
    for line in out.splitlines():
        try:
            jid, comment, partition, wd, reason = line.split("|", 4)
        except ValueError:
            continue
        if not comment.startswith("rule_") or os.path.realpath(wd) != os.path.realpath(workdir):
            continue
        code = reason.split(",")[0].strip()
        # ReqNodeNotAvail also shows during maintenance reservations: final only on a dead partition
        if code in NEVER_CLEARS or (code == "ReqNodeNotAvail" and _dead_partition(partition)):
            rule = re.sub(r"^rule_|_wildcards_.*$", "", comment)
            stuck.append({"job": jid, "rule": rule, "reason": reason})
    return stuck


def watch(workdir: str, *, interval: float = 30.0, stop: threading.Event | None = None, log=None) -> threading.Thread:
    """Daemon thread: every `interval` s, cancel this workflow's jobs pending for good, and say why."""
    stop = stop or threading.Event()
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    def loop():
        cancelled = set()
        while not stop.wait(interval):
            try:
                stuck = pending_never_clearing(workdir)
            except (SlurmRequestError, OSError, subprocess.SubprocessError):
                continue
            for job in stuck:
                if job["job"] in cancelled:
                    continue
                subprocess.run(["scancel", job["job"]], capture_output=True, timeout=60)
                cancelled.add(job["job"])
                log(f"grcf: cancelled Slurm job {job['job']} (rule {job['rule']}): pending for a reason that does not "
                    f"clear by waiting ({job['reason']}); see slurm/config.yaml for the GRCF_SLURM_* settings")

    t = threading.Thread(target=loop, name="grcf-slurm-watchdog", daemon=True)
    t.stop = stop
    t.start()
    return t


def onstart(workflow) -> None:
    """The Snakefile's hook: with the slurm executor, refuse impossible requests, then watch the queue."""
    plugin = getattr(workflow, "executor_plugin", None)
    if getattr(plugin, "name", None) != "slurm":
        return
    quiet_account_guess()
    if os.environ.get("GRCF_SLURM_CHECK", "1") == "0":
        return
    requests = [(job.rule.name, dict(job.resources.items())) for job in workflow.dag.needrun_jobs()
                if not job.is_local]
    try:
        problems = check_requests(requests)
    except (SlurmRequestError, OSError, subprocess.SubprocessError) as e:  # e.g. no sbatch on this host
        print(f"grcf: cannot ask Slurm, requests not checked: {e}", file=sys.stderr)
    else:
        if problems:
            raise SlurmRequestError("these Slurm requests can never be met, so nothing was submitted:\n  "
                                    + "\n  ".join(problems))
    watch(os.getcwd(), interval=float(os.environ.get("GRCF_SLURM_WATCH_SECONDS", "30")))
