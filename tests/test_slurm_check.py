"""Slurm requests no node can meet, jobs stuck PENDING for good, and `grcf slurm up/down`.

The slow tests start their own real single-node Slurm (grcf.pipeline.slurm_cluster, ~2 s): they change
the partition or submit jobs, which must not show up in the session cluster other tests count.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from grcf.pipeline import slurm_check
from grcf.pipeline.slurm_check import Node
from grcf.pipeline.slurm_cluster import single_node_slurm, slurm_available

try:  # tests/ on sys.path (rootdir-less "prepend" import mode)
    from conftest import _env, _exe, copy_project, run_cmd
except ImportError:  # tests/ is a package
    from tests.conftest import _env, _exe, copy_project, run_cmd


def _require_slurm():
    ok, why = slurm_available()
    if not ok:
        pytest.skip(why)


def test_check_requests_names_rule_request_node_and_variable():
    parts = {
        "cpu": {"state": "UP", "max_time_min": 60, "default": True,
                "nodes": [Node("c1", 4, 8000, {}, "IDLE"), Node("c2", 16, 64000, {}, "DOWN")]},
        "gpu": {"state": "UP", "max_time_min": None, "default": False,
                "nodes": [Node("g1", 8, 32000, {"a100": 2}, "MIXED")]},
    }
    ok = [("validate", {"cpus_per_task": 4, "mem_mb": 8000, "runtime": 60}),
          ("train_stage1", {"slurm_partition": "gpu", "cpus_per_task": 8, "mem_mb": 32000, "gpu": 2, "gpu_model": "a100"}),
          ("features", {"slurm_partition": "gpu", "gres": "gpu:a100:1", "cpus_per_task": 2})]
    assert slurm_check.check_requests(ok, parts) == []
    bad = [("validate", {"cpus_per_task": 8, "mem_mb": 4000, "runtime": 30}),  # c2 is down
           ("evaluate", {"cpus_per_task": 1, "mem_mb": 100, "runtime": 120}),
           ("train_stage1", {"slurm_partition": "gpu", "cpus_per_task": 8, "mem_mb": 1000, "gpu": 1, "gpu_model": "h100"}),
           ("train_stage2", {"slurm_partition": "gpu", "cpus_per_task": 1, "mem_mb": 1000, "gres": "gpu:a100:4"}),
           ("report", {"slurm_partition": "big", "cpus_per_task": 1})]
    msgs = slurm_check.check_requests(bad, parts)
    assert len(msgs) == 5, msgs
    assert msgs[0].startswith("rule validate asks for 8 CPUs") and "largest node c1: 4 CPUs, 8000 MB" in msgs[0]
    assert "GRCF_SLURM_CPUS_PER_TASK=4" in msgs[0]
    assert "partition time limit 60 min" in msgs[1] and "GRCF_SLURM_RUNTIME=60" in msgs[1]
    assert "of model h100" in msgs[2] and "GRCF_SLURM_GPU_MODEL" in msgs[2]
    assert "4 GPU(s)" in msgs[3] and "2 GPUs (a100)" in msgs[3]
    assert "partition 'big' does not exist" in msgs[4] and "GRCF_SLURM_PARTITION" in msgs[4]


@pytest.mark.slow
def test_impossible_request_fails_fast_feasible_one_runs(tmp_path):
    """The committed slurm/ profile's GPU defaults (8 CPUs, 32 GB) on the small test node: refused
    before any submission; its CPU-only validate job fits and runs."""
    _require_slurm()
    project = copy_project(tmp_path / "project")
    env = _env()
    with single_node_slurm(tmp_path / "cluster") as info:
        env.update(SLURM_CONF=info.env["SLURM_CONF"], PATH=info.env["PATH"])
        t0 = time.monotonic()
        rc, out = run_cmd(["snakemake", "--profile", "slurm"], project, env=env, check=False, timeout=300)
        wall = time.monotonic() - t0
        assert rc != 0, out[-3000:]
        assert "can never be met, so nothing was submitted" in out, out[-3000:]
        line = next(x for x in out.splitlines() if "rule train_stage1 asks for" in x)
        assert "8 CPUs, 32000 MB, 1 GPU(s)" in line and f"largest node {info.nodename}: {info.cpus} CPUs" in line, line
        assert f"GRCF_SLURM_GPU_CPUS={info.cpus}" in line, line
        assert info.run("squeue", "-h", "--states=all").stdout.strip() == ""  # nothing submitted
        print(f"\n[timing] impossible request refused after {wall:.1f} s")

        rc, out = run_cmd(["snakemake", "--profile", "slurm", "--latency-wait", "5",
                           "--slurm-init-seconds-before-status-checks", "2",
                           "features/embedded.validation.json"], project, env=env, timeout=300)
        jobs = info.run("squeue", "-h", "--states=all", "-o", "%k|%T").stdout.split()
    assert jobs == ["rule_validate_wildcards_embedded|COMPLETED"], jobs
    assert json.loads((project / "features/embedded.validation.json").read_text())


@pytest.mark.slow
def test_watchdog_cancels_job_pending_for_good(tmp_path):
    """A job pending on PartitionTimeLimit is cancelled and reported; one waiting for its begin time is not."""
    _require_slurm()
    workdir = tmp_path / "wf"
    workdir.mkdir()
    with single_node_slurm(tmp_path / "cluster") as info:
        info.run("scontrol", "update", f"PartitionName={info.partition}", "MaxTime=1")

        def submit(*args):
            return subprocess.run(["sbatch", "--parsable", *args, "--wrap", "true"], cwd=workdir, env=info.env,
                                  check=True, capture_output=True, text=True).stdout.strip()

        stuck = submit("-t", "5", "--comment", "rule_train_stage1_wildcards_seed0")
        waiting = submit("-t", "1", "--begin", "now+1hour", "--comment", "rule_evaluate")
        deadline = time.monotonic() + 30
        while "PartitionTimeLimit" not in info.run("squeue", "-h", "-j", stuck, "-o", "%r").stdout:
            assert time.monotonic() < deadline, info.run("squeue", "-h", "-o", "%i %r").stdout
            time.sleep(0.5)
        messages = []
        watcher = slurm_check.watch(str(workdir), interval=0.5, log=messages.append)
        try:
            assert info.wait_for_job(stuck, timeout=30) == "CANCELLED"
        finally:
            watcher.stop.set()
        state = info.run("squeue", "-h", "-j", waiting, "-o", "%T").stdout.strip()
    assert state == "PENDING"
    assert len(messages) == 1, messages
    assert f"job {stuck} (rule train_stage1)" in messages[0] and "PartitionTimeLimit" in messages[0]


@pytest.mark.slow
def test_grcf_slurm_up_down(tmp_path):
    """`grcf slurm up` prints what to export, the cluster runs a job, `down` stops every daemon."""
    _require_slurm()
    state = tmp_path / "state"
    before = set(Path("/tmp").glob("grcf-munge-*"))
    env = _env()
    p = subprocess.run([_exe("grcf"), "slurm", "up", "--state", str(state)], env=env, capture_output=True,
                       text=True, timeout=120)
    try:
        assert p.returncode == 0, p.stderr
        assert p.stdout == f"export SLURM_CONF={state / 'slurm.conf'}\nexport PATH={state / 'bin'}:\"$PATH\"\n"
        assert "grcf slurm down" in p.stderr
        pids = json.loads((state / "cluster.json").read_text())["pids"]
        assert set(pids) == {"munged", "slurmctld", "slurmd"}
        shell = (f'eval "$({_exe("grcf")} slurm env --state {state})" && cd {tmp_path} && '
                 "sbatch --parsable --wait -t 1 -o job.out --wrap 'echo ran as job $SLURM_JOB_ID'")
        job = subprocess.run(["bash", "-c", shell], env=env, capture_output=True, text=True, timeout=120)
        assert job.returncode == 0, job.stderr
        assert (tmp_path / "job.out").read_text().strip() == f"ran as job {job.stdout.strip()}"
    finally:
        down = subprocess.run([_exe("grcf"), "slurm", "down", "--state", str(state)], env=env,
                              capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    for name, pid in pids.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        assert stat.rsplit(")", 1)[1].split()[0] == "Z", f"{name} ({pid}) still running"
    assert set(Path("/tmp").glob("grcf-munge-*")) == before  # everything lived under the state folder
    assert not (state / "cluster.json").exists()
    again = subprocess.run([_exe("grcf"), "slurm", "down", "--state", str(state)], env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "no local Slurm is running" in again.stderr
