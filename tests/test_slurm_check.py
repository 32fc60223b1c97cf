"""Slurm requests no node can meet, jobs stuck PENDING for good, and `grcf slurm up/down`.

The slow tests start their own real single-node Slurm (grcf.pipeline.slurm_cluster, ~2 s): they change
the partition or submit jobs, which must not show up in the session cluster other tests count.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path

import pytest

from grcf.pipeline import slurm_check
from grcf.pipeline.slurm_cluster import single_node_slurm, slurm_available

from support.commands import BIN, run_cmd, tool_env, venv_exe
from support.project import copy_project


def _require_slurm():
    ok, why = slurm_available()
    if not ok:
        pytest.skip(why)


def test_account_guess_warnings_dropped_others_kept():
    """The Slurm executor's account guess always fails (it hands `| tail -1` to sacct as arguments);
    with no GRCF_SLURM_ACCOUNT the job goes without -A anyway, so its three warnings are dropped."""
    logger = logging.getLogger("grcf-test-account-guess")
    logger.propagate = False
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    slurm_check.quiet_account_guess(logger)
    slurm_check.quiet_account_guess(logger)  # idempotent
    logger.warning("No SLURM account given, trying to guess.")
    logger.warning("No account was given, not able to get a SLURM account via sacct: %s",
                   "/usr/bin/sacct: invalid option -- '1'")
    logger.warning("Unable to guess SLURM account. Trying to proceed without.")
    logger.warning("SLURM-job '7' failed, SLURM status is: 'FAILED'.")
    assert seen == ["SLURM-job '7' failed, SLURM status is: 'FAILED'."]
    assert len(logger.filters) == 1


@pytest.mark.slow
def test_check_requests_is_slurms_answer_in_plain_words(tmp_path):
    """sbatch --test-only decides; the message names the rule, what the nodes have and the variable."""
    _require_slurm()
    with single_node_slurm(tmp_path / "cluster", gpus=1, gpu_type="fake") as info:
        fits = [("validate", {"slurm_partition": "debug", "cpus_per_task": 1, "mem_mb": 100, "runtime": 5}),
                ("evaluate", {"cpus_per_task": info.cpus, "mem_mb": 200}),  # default partition
                ("features", {"slurm_partition": "debug", "gpu": 1, "cpus_per_task": 1, "mem_mb": 100}),
                ("train_stage1", {"gpu": 1, "gpu_model": "fake", "cpus_per_task": 1, "mem_mb": 100}),
                ("train_stage2", {"gres": "gpu:fake:1", "cpus_per_task": 1, "mem_mb": 100})]
        assert slurm_check.check_requests(fits) == []
        bad = [("train_stage1", {"slurm_partition": "debug", "gpu": 1, "gpu_model": "a100", "cpus_per_task": 1,
                                 "mem_mb": 100, "runtime": 5}),
               ("train_stage2", {"gres": "gpu:fake:2", "cpus_per_task": 1, "mem_mb": 100}),
               ("validate", {"cpus_per_task": info.cpus + 1, "mem_mb": 100}),
               ("features", {"gpu": 1, "cpus_per_task": 1, "mem_mb": info.real_memory_mb + 1000}),
               ("report", {"slurm_partition": "big", "cpus_per_task": 1})]
        msgs = slurm_check.check_requests(bad)
        info.run("scontrol", "update", f"PartitionName={info.partition}", "MaxTime=10")
        late = slurm_check.check_requests([("evaluate", {"cpus_per_task": 1, "mem_mb": 100, "runtime": 60})])
        queue = info.run("squeue", "-h", "--states=all").stdout.strip()
    assert queue == ""  # --test-only submits nothing
    assert len(msgs) == 5, msgs
    assert msgs[0].startswith("rule train_stage1 asks for 1 CPUs, 100 MB, 1 GPU(s) of type a100"), msgs[0]
    assert "Slurm says 'Requested node configuration is not available'" in msgs[0], msgs[0]
    assert "no node of partition debug has a GPU of type a100; its nodes have gpu:fake:1" in msgs[0], msgs[0]
    assert "GRCF_SLURM_GPU_MODEL" in msgs[0] and "at most 0" not in msgs[0], msgs[0]
    assert "no node of partition debug has 2 GPUs of type fake; its nodes have gpu:fake:1" in msgs[1], msgs[1]
    assert f"has {info.cpus + 1} CPUs (at most {info.cpus}); set GRCF_SLURM_CPUS_PER_TASK={info.cpus}" in msgs[2]
    assert f"(at most {info.real_memory_mb} MB); set GRCF_SLURM_GPU_MEM_MB={info.real_memory_mb}" in msgs[3]
    assert "CPUs" not in msgs[3].split("Slurm says")[1], msgs[3]  # only the part Slurm refuses is named
    assert "partition big" in msgs[4] and "(partitions: debug)" in msgs[4] and "GRCF_SLURM_PARTITION" in msgs[4]
    assert late == ["rule evaluate asks for 1 CPUs, 100 MB, 0 GPU(s), 60 min on partition debug, longer than "
                    "its time limit of 10 min; set GRCF_SLURM_RUNTIME=10 or lower"], late


@pytest.mark.slow
def test_impossible_request_fails_fast_feasible_one_runs(tmp_path):
    """The committed slurm/ profile's GPU defaults (8 CPUs, 32 GB) on the small test node: refused
    before any submission; its CPU-only validate job fits and runs."""
    _require_slurm()
    project = copy_project(tmp_path / "project")
    env = tool_env()
    with single_node_slurm(tmp_path / "cluster") as info:
        # the cluster's commands, with the venv's grcf first (as `make test` runs it)
        env.update(SLURM_CONF=info.env["SLURM_CONF"], PATH=f"{BIN}{os.pathsep}{info.env['PATH']}")
        t0 = time.monotonic()
        rc, out = run_cmd(["snakemake", "--profile", "slurm"], project, env=env, check=False, timeout=300)
        wall = time.monotonic() - t0
        assert rc != 0, out[-3000:]
        assert "can never be met, so nothing was submitted" in out, out[-3000:]
        line = next(x for x in out.splitlines() if "rule train_stage1 asks for" in x)
        assert "8 CPUs, 32000 MB, 1 GPU(s)" in line and f"has 8 CPUs (at most {info.cpus})" in line, line
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
    env = tool_env()
    p = subprocess.run([venv_exe("grcf"), "slurm", "up", "--state", str(state)], env=env, capture_output=True,
                       text=True, timeout=120)
    try:
        assert p.returncode == 0, p.stderr
        assert p.stdout == (f"export SLURM_CONF={state / 'slurm.conf'}\nexport PATH={state / 'bin'}:\"$PATH\"\n"
                            "export GRCF_SLURM_STATUS_SECONDS=1\n")
        assert "grcf slurm down" in p.stderr
        pids = json.loads((state / "cluster.json").read_text())["pids"]
        assert set(pids) == {"munged", "slurmctld", "slurmd"}
        shell = (f'eval "$({venv_exe("grcf")} slurm env --state {state})" && cd {tmp_path} && '
                 "sbatch --parsable --wait -t 1 -o job.out --wrap 'echo ran as job $SLURM_JOB_ID'")
        job = subprocess.run(["bash", "-c", shell], env=env, capture_output=True, text=True, timeout=120)
        assert job.returncode == 0, job.stderr
        assert (tmp_path / "job.out").read_text().strip() == f"ran as job {job.stdout.strip()}"
    finally:
        down = subprocess.run([venv_exe("grcf"), "slurm", "down", "--state", str(state)], env=env,
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
    again = subprocess.run([venv_exe("grcf"), "slurm", "down", "--state", str(state)], env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "no local Slurm is running" in again.stderr
