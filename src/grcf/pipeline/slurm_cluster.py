"""A real, throw-away, single-node Slurm cluster: ``grcf slurm up/down`` and the test suite.

Usage (command line; a user trying the ``slurm`` profile on a workstation)::

    eval "$(grcf slurm up --state .slurm-local)"   # starts the daemons, exports SLURM_CONF/PATH
    grcf slurm down --state .slurm-local

Usage (Python)::

    with single_node_slurm(tmp_path) as info:      # start_cluster + stop_cluster
        subprocess.run(["sbatch", "--wrap", "true"], env=info.env, check=True)

What it does: starts ``munged`` with its own key and socket, then
``slurmctld`` and ``slurmd`` in the foreground of their own sessions (so we
know their pids, recorded in ``<state>/cluster.json``) with a generated
``slurm.conf``: no accounting, ``proctrack/linuxproc``, ``task/none``,
``MinJobAge=600`` (so ``squeue`` still sees finished jobs, which the Snakemake
Slurm plugin needs when ``sacct`` is unusable), one partition, the node sized
from ``slurmd -C``, and (by default) one *fake* GPU (``GresTypes=gpu``,
``Gres=gpu:fake:1``, no device file) so that ``--gpus=1`` / ``--gres=gpu:1``
submissions are accepted and scheduled.  Everything (state, spool, logs,
pids, munge key and socket) lives under the state directory; only when its
path is too long for a Unix socket (107 bytes) does the munge socket go to a
``/tmp/grcf-munge-*`` directory, removed again on stop.

``<state>/bin`` holds SLURM_CONF-pinning wrappers of srun/sbatch/...  (see
below); put it first on ``PATH`` and set ``SLURM_CONF`` (``single_node_slurm``
does both in ``os.environ`` for the lifetime of the context) so that
``sbatch``/``squeue``/... and Snakemake's Slurm executor talk to this cluster.
The daemons run as the current user (``SlurmUser``/``SlurmdUser``); as root
that is ``root``. Ports are picked free at start, so a system Slurm on
6817/6818 does not clash.  Install the packages with ``.ci/install_slurm.sh``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

__all__ = [
    "SlurmClusterInfo",
    "SlurmStartError",
    "slurm_available",
    "single_node_slurm",
    "start_cluster",
    "stop_cluster",
    "export_lines",
    "sbatch_calls_from_log",
    "gpu_flags_by_rule",
    "dry_run_resources",
]

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")
WRAPPED_CLIENTS = ("srun", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "sacct")


class SlurmStartError(RuntimeError):
    """The cluster did not come up; the message includes the daemon logs."""


@dataclasses.dataclass(frozen=True)
class SlurmClusterInfo:
    conf: Path  # slurm.conf; also in os.environ["SLURM_CONF"] while active
    root: Path  # everything (state, spool, logs) lives here
    partition: str
    nodename: str
    cpus: int
    real_memory_mb: int
    gpus: int  # fake GPUs on the node (gres gpu:fake:N); 0 = no GresTypes
    gpu_type: str | None
    startup_seconds: float
    logs: dict  # name -> Path of each daemon log
    env: dict  # os.environ copy with SLURM_CONF set, for subprocess env=
    procs: dict = dataclasses.field(default=None, repr=False, compare=False)  # our Popen children

    def run(self, *args: str, check: bool = True, timeout: float = 30):
        """Run a Slurm client command against this cluster; returns CompletedProcess."""
        return subprocess.run(
            list(args), env=self.env, check=check, timeout=timeout,
            capture_output=True, text=True,
        )

    def wait_for_job(self, job_id: str, timeout: float = 60) -> str:
        """Wait until job_id leaves PENDING/RUNNING; return its final state."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            out = self.run("squeue", "-h", "--states=all", "-j", job_id,
                           "-o", "%T", check=False).stdout.strip()
            state = out.splitlines()[0] if out else ""
            if state and state not in {"PENDING", "CONFIGURING", "RUNNING",
                                       "COMPLETING", "REQUEUED", "RESIZING"}:
                return state
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} still {state or 'unknown'} after {timeout}s")

    def log_tail(self, n: int = 40) -> str:
        return _logs_tail(self.logs, n)


def slurm_available() -> tuple[bool, str]:
    """(True, "") if a single-node Slurm can be started here, else (False, why)."""
    missing = [b for b in DAEMONS + CLIENTS if shutil.which(b) is None
               and not Path("/usr/sbin", b).exists()]
    if missing:
        return False, (
            "Slurm/munge binaries missing: " + ", ".join(missing)
            + " (install with .ci/install_slurm.sh: apt-get install slurm-wlm munge)"
        )
    if os.name != "posix" or not Path("/proc").is_dir():
        return False, "needs Linux (/proc) for proctrack/linuxproc"
    return True, ""


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_hardware() -> dict:
    """Node line values as slurmd itself sees them (else a safe fallback)."""
    hw = {}
    try:
        out = subprocess.run([_which("slurmd"), "-C"], capture_output=True,
                             text=True, timeout=20).stdout
        for key in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket",
                    "ThreadsPerCore", "RealMemory"):
            m = re.search(rf"\b{key}=(\d+)", out)
            if m:
                hw[key] = int(m.group(1))
    except (OSError, subprocess.SubprocessError):
        pass
    if "CPUs" not in hw:
        hw = {"CPUs": len(os.sched_getaffinity(0))}
    if "RealMemory" not in hw:
        with open("/proc/meminfo") as f:
            kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
        hw["RealMemory"] = kb // 1024
    # Declare a little less memory than detected: if the declared RealMemory
    # exceeds what slurmd measures the node is drained as INVALID.
    hw["RealMemory"] = max(256, int(hw["RealMemory"] * 0.95))
    return hw


def _logs_tail(logs: dict, n: int = 40) -> str:
    parts = []
    for name, path in logs.items():
        try:
            lines = Path(path).read_text(errors="replace").splitlines()[-n:]
        except OSError:
            lines = ["<no log>"]
        parts.append(f"--- {name} ({path}) ---\n" + "\n".join(lines))
    return "\n".join(parts)


def _write_conf(root: Path, *, nodename: str, partition: str, hw: dict,
                user: str, munge_socket: Path, gpus: int, gpu_type: str) -> Path:
    for d in ("state", "spool", "log", "run"):
        (root / d).mkdir(parents=True, exist_ok=True)
    node_hw = " ".join(f"{k}={v}" for k, v in hw.items())
    gres = f" Gres=gpu:{gpu_type}:{gpus}" if gpus else ""
    conf = root / "slurm.conf"
    conf.write_text(f"""\
# generated by tests/slurm_cluster.py - single-node test cluster
ClusterName=grcftest
SlurmctldHost={nodename}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}
SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}
SlurmdPidFile={root / 'run' / 'slurmd.pid'}
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log' / 'slurmd.log'}
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups in containers/CI runners
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no slurmdbd: sacct cannot answer, so keep finished jobs visible to squeue
# long enough for Snakemake's status polling (plugin wants >= 3 x its first
# status-check delay, default 3 x 40 s).
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
Waittime=0
{"GresTypes=gpu" if gpus else "# no GresTypes (gpus=0)"}
NodeName={nodename} NodeAddr=127.0.0.1 NodeHostname={nodename} {node_hw}{gres} State=UNKNOWN
PartitionName={partition} Nodes={nodename} Default=YES MaxTime=INFINITE State=UP
""")
    if gpus:
        # Count= without File=: a fake GPU with no device to bind - enough for
        # the scheduler to accept and run --gpus/--gres=gpu jobs.
        (root / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName={nodename} Name=gpu Type={gpu_type} File=/dev/null Count={gpus}\n"
        )
    return conf


def _wait_for(pred, timeout: float, what: str, procs: dict, logs: dict,
              interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, p in procs.items():
            if p.poll() is not None:
                raise SlurmStartError(
                    f"{name} exited with {p.returncode} while waiting for {what}\n"
                    + _logs_tail(logs))
        if pred():
            return
        time.sleep(interval)
    raise SlurmStartError(f"timed out after {timeout}s waiting for {what}\n"
                          + _logs_tail(logs))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _is_daemon(pid: int, name: str) -> bool:
    """pid still runs `name` (guards against a pid reused since the cluster started)."""
    try:
        return name in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _stop(pids: dict, env: dict, procs: dict | None = None) -> None:
    """Stop the daemons (name -> pid, in start order); ``procs``: our own Popen children to reap."""
    procs = procs or {}

    def running(name):
        p = procs.get(name)
        if p is not None:
            return p.poll() is None
        return _alive(pids[name]) and _is_daemon(pids[name], name)

    if "slurmctld" in pids and running("slurmctld"):
        # cancel whatever is still queued/running, then ask the daemons to exit
        with contextlib.suppress(Exception):
            subprocess.run(["scancel", "--user", getpass.getuser()], env=env,
                           timeout=10, capture_output=True)
        with contextlib.suppress(Exception):
            subprocess.run(["scontrol", "shutdown"], env=env, timeout=10,
                           capture_output=True)
    # reverse start order: slurmd, slurmctld, munged
    for name in reversed(list(pids)):
        if not running(name):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids[name], signal.SIGTERM)
        deadline = time.monotonic() + 10
        while running(name) and time.monotonic() < deadline:
            time.sleep(0.1)
        if running(name):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pids[name], signal.SIGKILL)  # own session: see start_new_session
        if name in procs:
            procs[name].wait(timeout=10)


STATE_FILE = "cluster.json"


def start_cluster(root, *, partition: str = "debug", gpus: int = 1,
                  gpu_type: str = "fake", timeout: float = 90) -> SlurmClusterInfo:
    """Start munged + slurmctld + slurmd under ``root`` and return once the node is idle.

    The daemons run in their own sessions and outlive the caller; ``stop_cluster(root)`` stops
    them (their pids are in ``root/cluster.json``).  Everything is written under ``root``,
    except the munge socket's directory when ``root`` is too long for a Unix socket path
    (then a ``/tmp/grcf-munge-*`` directory, removed by ``stop_cluster``).  Raises
    SlurmStartError (with daemon log tails, everything started stopped again) if the node does
    not reach ``idle`` within ``timeout`` seconds.  ``gpus=0`` configures no GRES at all.
    """
    ok, why = slurm_available()
    if not ok:
        raise SlurmStartError(why)
    t0 = time.monotonic()
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if (root / STATE_FILE).exists():
        state = json.loads((root / STATE_FILE).read_text())
        if any(_alive(p) and _is_daemon(p, n) for n, p in state["pids"].items()):
            raise SlurmStartError(f"a cluster is already running from {root} (stop it first)")
    user = getpass.getuser()
    nodename = socket.gethostname().split(".")[0]
    hw = _node_hardware()
    # the munge socket's directory must be 0700 (munged checks) and short (sun_path limit)
    mdir = root / "munge"
    if len(str(mdir / "munge.sock")) < 100:
        shutil.rmtree(mdir, ignore_errors=True)
        mdir.mkdir(mode=0o700)
    else:
        mdir = Path(tempfile.mkdtemp(prefix="grcf-munge-", dir="/tmp"))
    munge_socket = mdir / "munge.sock"
    conf = _write_conf(root, nodename=nodename, partition=partition, hw=hw,
                       user=user, munge_socket=munge_socket, gpus=gpus,
                       gpu_type=gpu_type)
    logs = {
        "munged": mdir / "munged.log",
        "slurmctld": root / "log" / "slurmctld.log",
        "slurmd": root / "log" / "slurmd.log",
    }
    # snakemake-executor-plugin-slurm-jobstep (0.6.1) strips every SLURM_*
    # variable except the job id ones - SLURM_CONF included - before its
    # nested `srun` inside the job; srun then finds no config ("fetch_config:
    # DNS SRV lookup failed").  Real clusters use /etc/slurm/slurm.conf or
    # configless mode; here we put wrappers that pin SLURM_CONF first on PATH
    # (jobs inherit PATH through sbatch --export=ALL), touching no system file.
    bindir = root / "bin"
    bindir.mkdir(exist_ok=True)
    for tool in WRAPPED_CLIENTS:
        real = shutil.which(tool)
        if real and Path(real).parent != bindir:
            w = bindir / tool
            w.write_text(f'#!/bin/sh\nSLURM_CONF="{conf}" exec "{real}" "$@"\n')
            w.chmod(0o755)
    path = os.environ.get("PATH", "")
    if str(bindir) not in path.split(os.pathsep):
        path = f"{bindir}{os.pathsep}{path}"
    env = dict(os.environ, SLURM_CONF=str(conf), PATH=path)
    # don't let a surrounding Slurm job's variables leak into sbatch calls
    for k in list(env):
        if k.startswith(("SLURM_JOB", "SLURM_STEP", "SBATCH_", "SALLOC_")):
            del env[k]
    procs: dict[str, subprocess.Popen] = {}

    def write_state():
        state = {"pids": {n: p.pid for n, p in procs.items()}, "conf": str(conf),
                 "bin": str(bindir), "munge_dir": str(mdir), "partition": partition,
                 "nodename": nodename, "cpus": hw["CPUs"], "real_memory_mb": hw["RealMemory"],
                 "gpus": gpus, "gpu_type": gpu_type if gpus else None,
                 "logs": {k: str(v) for k, v in logs.items()}}
        tmp = root / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, root / STATE_FILE)

    def start(name, argv):
        with open(root / "log" / f"{name}.stdout", "ab") as out:
            procs[name] = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        write_state()  # so that stop_cluster finds whatever is running

    try:
        key = mdir / "munge.key"
        subprocess.run([_which("mungekey"), "--create", "--keyfile", str(key)],
                       check=True, capture_output=True, timeout=30)
        key.chmod(0o600)
        start("munged", [_which("munged"), "--foreground", "--force",
                         f"--socket={munge_socket}", f"--key-file={key}",
                         f"--log-file={logs['munged']}",
                         f"--pid-file={mdir / 'munged.pid'}",
                         f"--seed-file={mdir / 'munged.seed'}"])
        _wait_for(munge_socket.exists, 20, "munged socket", procs, logs)

        start("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(conf)])
        _wait_for(lambda: subprocess.run(["scontrol", "ping"], env=env,
                                         capture_output=True, text=True,
                                         timeout=10).stdout.count("UP") > 0,
                  timeout, "slurmctld to answer 'scontrol ping'", procs, logs)

        start("slurmd", [_which("slurmd"), "-D", "-N", nodename, "-f", str(conf)])

        def node_idle():
            st = subprocess.run(["sinfo", "-h", "-n", nodename, "-o", "%T"],
                                env=env, capture_output=True, text=True,
                                timeout=10).stdout.strip()
            if st.startswith(("drain", "down", "inval", "fail")) and not st.endswith("*"):
                detail = subprocess.run(["scontrol", "show", "node", nodename],
                                        env=env, capture_output=True, text=True,
                                        timeout=10).stdout
                raise SlurmStartError(f"node {nodename} is {st}:\n{detail}\n"
                                      + _logs_tail(logs))
            return st == "idle"

        _wait_for(node_idle, timeout, f"node {nodename} idle", procs, logs)
    except BaseException:
        _stop({n: p.pid for n, p in procs.items()}, env, procs)
        _remove_state(root, mdir)
        raise
    return SlurmClusterInfo(
        conf=conf, root=root, partition=partition, nodename=nodename,
        cpus=hw["CPUs"], real_memory_mb=hw["RealMemory"], gpus=gpus,
        gpu_type=gpu_type if gpus else None,
        startup_seconds=round(time.monotonic() - t0, 2), logs=logs, env=env,
        procs=procs,
    )


def _remove_state(root: Path, mdir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (root / STATE_FILE).unlink()
    shutil.rmtree(mdir, ignore_errors=True)


def stop_cluster(root, procs: dict | None = None) -> bool:
    """Stop the cluster started from ``root``; False if none was running there."""
    root = Path(root).resolve()
    try:
        state = json.loads((root / STATE_FILE).read_text())
    except FileNotFoundError:
        return False
    env = dict(os.environ, SLURM_CONF=state["conf"],
               PATH=f"{state['bin']}{os.pathsep}{os.environ.get('PATH', '')}")
    _stop(state["pids"], env, procs)
    _remove_state(root, Path(state["munge_dir"]))
    return True


def _exports(conf, bindir) -> str:
    import shlex

    # status checks every second, not after the plugin's 40 s: on this one node a poll costs
    # nothing and a small run otherwise waits mostly on the next check (slurm/config.yaml)
    return (f"export SLURM_CONF={shlex.quote(str(conf))}\n"
            f"export PATH={shlex.quote(str(bindir))}:\"$PATH\"\n"
            "export GRCF_SLURM_STATUS_SECONDS=1\n")


def export_lines(info: SlurmClusterInfo) -> str:
    """Shell lines that point Slurm's clients at the cluster (for `eval "$(grcf slurm up)"`)."""
    return _exports(info.conf, info.root / "bin")


def state_exports(root) -> str:
    """export_lines of the cluster running from ``root``."""
    state = json.loads((Path(root).resolve() / STATE_FILE).read_text())
    return _exports(state["conf"], state["bin"])


@contextlib.contextmanager
def single_node_slurm(tmpdir, *, partition: str = "debug", gpus: int = 1,
                      gpu_type: str = "fake", timeout: float = 90
                      ) -> Iterator[SlurmClusterInfo]:
    """``start_cluster`` for the duration of a with-block, with SLURM_CONF and PATH set in os.environ."""
    old_conf = os.environ.get("SLURM_CONF")
    old_path = os.environ.get("PATH", "")
    info = start_cluster(tmpdir, partition=partition, gpus=gpus, gpu_type=gpu_type,
                         timeout=timeout)
    try:
        os.environ["SLURM_CONF"] = str(info.conf)
        os.environ["PATH"] = info.env["PATH"]
        yield info
    finally:
        try:
            stop_cluster(info.root, info.procs)
        finally:
            if old_conf is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old_conf
            if os.environ.get("PATH") == info.env["PATH"]:
                os.environ["PATH"] = old_path


# --- checking what the Snakemake Slurm plugin submitted ----------------------

_SBATCH_RE = re.compile(r"sbatch call: (sbatch .*?)(?: --wrap=| /dev/stdin|$)",
                        re.MULTILINE)


def sbatch_calls_from_log(text: str) -> list[str]:
    """The ``sbatch ...`` options the plugin logged (needs ``snakemake --verbose``).

    The plugin logs ``sbatch call: sbatch --parsable --job-name ... --comment
    rule_<name>... --gpus=1 --wrap="..."`` at debug level; the ``--wrap``
    payload is dropped here.
    """
    return [m.group(1) for m in _SBATCH_RE.finditer(text)]


def gpu_flags_by_rule(text: str) -> dict[str, list[str]]:
    """Map rule name -> GPU flags (``--gpus=..``/``--gres=..``) seen in its sbatch call."""
    out: dict[str, list[str]] = {}
    for call in sbatch_calls_from_log(text):
        m = re.search(r"--comment '?rule_([A-Za-z0-9_]+?)(?:_wildcards_[^' ]*)?'?(?: |$)", call)
        rule = m.group(1) if m else "?"
        out.setdefault(rule, []).extend(
            re.findall(r"(--gpus[= ]\S+|--gres[= ]\S+|--gpus-per-\S+)", call))
    return out


_DRY_RULE_RE = re.compile(r"^(?:local)?rule (\w+):\s*$")
_DRY_RES_RE = re.compile(r"^\s+resources: (.*)$")


def dry_run_resources(text: str) -> dict[str, dict[str, str]]:
    """Parse ``snakemake -n`` output: rule name -> {resource: value}.

    No cluster needed: ``snakemake --profile slurm -n`` evaluates the
    profile's default-/set-resources and prints them per job, e.g.
    ``resources: ..., runtime=720, cpus_per_task=8, gpu=1, gpu_model=a100``.
    The Slurm plugin turns gpu=N into ``--gpus=N``, gpu+gpu_model into
    ``--gpus=MODEL:N`` and gres=S into ``--gres=S`` (utils.set_gres_string),
    so asserting on these keys asserts on the sbatch flags.  Values are the
    printed strings; the last job of a rule wins.
    """
    out: dict[str, dict[str, str]] = {}
    rule = None
    for line in text.splitlines():
        m = _DRY_RULE_RE.match(line)
        if m:
            rule = m.group(1)
            continue
        m = _DRY_RES_RE.match(line)
        if m and rule:
            res = {}
            for item in m.group(1).split(", "):
                k, _, v = item.partition("=")
                res[k.strip()] = v.strip()
            out[rule] = res
            rule = None
    return out
