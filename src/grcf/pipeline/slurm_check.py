"""Slurm requests that can never run: refused before submission, cancelled while pending.

A job asking for more CPUs, memory, GPUs or time than any node of its partition offers sits in
PENDING (reason ``PartitionConfig``, ...) forever, and Snakemake's Slurm executor waits with it.
The Snakefile's ``onstart`` hook (workflow/rules/slurm.smk) therefore

- compares every job's request with the partition's nodes (``scontrol show partition/node``)
  and stops before anything is submitted, naming the rule, the request, the largest node and
  the ``GRCF_SLURM_*`` variable to change (``slurm/config.yaml`` reads them), and
- starts a watchdog thread that cancels (``scancel``) a job of this workflow pending for a
  reason that cannot clear by waiting (``NEVER_CLEARS``), and says which rule and why.

Set ``GRCF_SLURM_CHECK=0`` to turn both off.
"""

from __future__ import annotations

import dataclasses
import getpass
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


@dataclasses.dataclass
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: dict  # gpu type ("" when untyped) -> count
    state: str

    @property
    def usable(self) -> bool:
        return not re.search(r"DOWN|DRAIN|FAIL|INVAL|NOT_RESPONDING|FUTURE", self.state)

    def gpu_count(self, model: str | None = None) -> int:
        return sum(n for t, n in self.gpus.items() if model in (None, "", t))

    def describe(self) -> str:
        gpus = ", ".join(f"{n} GPU{'s' * (n != 1)}" + (f" ({t})" if t else "") for t, n in self.gpus.items()) or "no GPU"
        return f"{self.name}: {self.cpus} CPUs, {self.mem_mb} MB, {gpus}"


def _run(*args: str) -> str:
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise SlurmRequestError(f"`{' '.join(args)}` failed: {(p.stderr or p.stdout).strip()}")
    return p.stdout


def _fields(line: str) -> dict:
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))


def _gres(text: str) -> dict:
    """'gpu:a100:4(S:0-1),gpu:2' -> {'a100': 4, '': 2}."""
    out: dict = {}
    for item in (text or "").split(","):
        parts = re.sub(r"\(.*?\)", "", item).split(":")
        if parts[0] != "gpu" or len(parts) < 2:
            continue
        kind, count = (parts[1], parts[2]) if len(parts) >= 3 else ("", parts[1])
        if count.isdigit():
            out[kind] = out.get(kind, 0) + int(count)
    return out


def _minutes(limit: str) -> float | None:
    """Slurm time limit ('UNLIMITED', '30', '1-12:00:00', '2:00:00') -> minutes, None = no limit."""
    if not limit or limit in ("UNLIMITED", "INFINITE", "NONE"):
        return None
    days, _, rest = limit.rpartition("-")
    parts = [int(x) for x in rest.split(":")]
    h, m, s = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return int(days or 0) * 1440 + h * 60 + m + s / 60


def partitions() -> dict:
    """name -> {state, max_time_min, nodes: [Node], default}, from `scontrol show partition/node -o`."""
    nodes = {}
    for line in _run("scontrol", "show", "node", "-o").splitlines():
        f = _fields(line)
        if "NodeName" not in f:
            continue
        nodes[f["NodeName"]] = Node(f["NodeName"], int(f.get("CPUTot", 0)), int(f.get("RealMemory", 0)),
                                    _gres(f.get("Gres", "")), f.get("State", ""))
    out = {}
    for line in _run("scontrol", "show", "partition", "-o").splitlines():
        f = _fields(line)
        if "PartitionName" not in f:
            continue
        names = _run("scontrol", "show", "hostnames", f["Nodes"]).split() if f.get("Nodes") not in (None, "", "(null)") else []
        out[f["PartitionName"]] = {"state": f.get("State", "UP"), "max_time_min": _minutes(f.get("MaxTime", "")),
                                   "default": f.get("Default") == "YES",
                                   "nodes": [nodes[n] for n in names if n in nodes]}
    return out


def _request(res: dict) -> dict:
    gpus, model = int(res.get("gpu") or 0), res.get("gpu_model") or None
    if res.get("gres"):
        g = _gres(str(res["gres"]))
        gpus, model = sum(g.values()), (next(iter(g)) or None) if g else None
    return {"partition": res.get("slurm_partition") or None, "cpus": int(res.get("cpus_per_task") or res.get("_cores") or 1),
            "mem_mb": int(res.get("mem_mb") or 0), "runtime": float(res.get("runtime") or 0), "gpus": gpus,
            "gpu_model": model}


def _var(req: dict, what: str) -> str:
    gpu = req["gpus"] > 0
    return {"cpus": "GRCF_SLURM_GPU_CPUS" if gpu else "GRCF_SLURM_CPUS_PER_TASK",
            "mem_mb": "GRCF_SLURM_GPU_MEM_MB" if gpu else "GRCF_SLURM_MEM_MB",
            "runtime": "GRCF_SLURM_GPU_RUNTIME" if gpu else "GRCF_SLURM_RUNTIME",
            "gpus": "GRCF_SLURM_GPUS / GRCF_SLURM_GPU_MODEL / GRCF_SLURM_GRES",
            "partition": "GRCF_SLURM_GPU_PARTITION" if gpu else "GRCF_SLURM_PARTITION"}[what]


def check_requests(requests, parts: dict | None = None) -> list[str]:
    """[(rule, resources dict)] -> one message per rule whose request no node of its partition can meet."""
    parts = partitions() if parts is None else parts
    default = next((p for p, v in parts.items() if v["default"]), None)
    problems, seen = [], set()
    for rule, res in requests:
        req = _request(res)
        key = (rule, tuple(sorted(req.items())))
        if key in seen:
            continue
        seen.add(key)
        pname = req["partition"] or default
        ask = (f"{req['cpus']} CPUs, {req['mem_mb']} MB, {req['gpus']} GPU(s)"
               + (f" of model {req['gpu_model']}" if req["gpu_model"] else "") + f", {req['runtime']:g} min")
        if pname not in parts:
            problems.append(f"rule {rule}: partition {pname!r} does not exist (partitions: {', '.join(parts) or 'none'}); "
                            f"set {_var(req, 'partition')}")
            continue
        part = parts[pname]
        nodes = [n for n in part["nodes"] if n.usable]
        if not part["state"].startswith("UP") or not nodes:
            problems.append(f"rule {rule}: partition {pname} is {part['state']} with {len(nodes)} usable node(s); "
                            f"pick another with {_var(req, 'partition')}")
            continue
        too_much = []
        if not any(n.cpus >= req["cpus"] for n in nodes):
            too_much.append("cpus")
        if not any(n.mem_mb >= req["mem_mb"] for n in nodes):
            too_much.append("mem_mb")
        if req["gpus"] and not any(n.gpu_count(req["gpu_model"]) >= req["gpus"] for n in nodes):
            too_much.append("gpus")
        if not too_much and not any(n.cpus >= req["cpus"] and n.mem_mb >= req["mem_mb"]
                                    and n.gpu_count(req["gpu_model"]) >= req["gpus"] for n in nodes):
            too_much = ["cpus", "mem_mb"] + (["gpus"] if req["gpus"] else [])  # no single node has all
        if part["max_time_min"] is not None and req["runtime"] > part["max_time_min"]:
            too_much.append("runtime")
        if too_much:
            largest = max(nodes, key=lambda n: (n.gpu_count(req["gpu_model"]), n.cpus, n.mem_mb))
            fits = {"cpus": largest.cpus, "mem_mb": largest.mem_mb, "gpus": largest.gpu_count(req["gpu_model"]),
                    "runtime": part["max_time_min"]}
            limit = f"; partition time limit {part['max_time_min']:g} min" if "runtime" in too_much else ""
            fix = ", ".join(f"{_var(req, w)}={fits[w]:g}" if w != "gpus" else f"{_var(req, w)} (at most {fits[w]} GPUs)"
                            for w in dict.fromkeys(too_much))
            problems.append(f"rule {rule} asks for {ask} on partition {pname}, more than any node offers "
                            f"(largest node {largest.describe()}{limit}); set {fix} or lower")
    return problems


# ---------------------------------------------------------------- while running


def _dead_partition(name: str) -> bool:
    part = partitions().get(name)
    return part is None or not part["state"].startswith("UP") or not any(n.usable for n in part["nodes"])


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
    if getattr(plugin, "name", None) != "slurm" or os.environ.get("GRCF_SLURM_CHECK", "1") == "0":
        return
    requests = [(job.rule.name, dict(job.resources.items())) for job in workflow.dag.needrun_jobs()
                if not job.is_local]
    try:
        parts = partitions()
    except (SlurmRequestError, OSError, subprocess.SubprocessError) as e:  # e.g. no scontrol on this host
        print(f"grcf: cannot read the partitions, requests not checked: {e}", file=sys.stderr)
    else:
        problems = check_requests(requests, parts)
        if problems:
            raise SlurmRequestError("these Slurm requests can never be met, so nothing was submitted:\n  "
                                    + "\n  ".join(problems))
    watch(os.getcwd(), interval=float(os.environ.get("GRCF_SLURM_WATCH_SECONDS", "30")))
