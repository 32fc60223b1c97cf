"""Real single-node Slurm: the harness, the test profile and the slurm/ profile.

The slow tests start munged/slurmctld/slurmd (src/grcf/pipeline/slurm_cluster.py) and skip
when the binaries are missing (install with .ci/install_slurm.sh).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grcf.pipeline.slurm_cluster import (
        dry_run_resources,
        gpu_flags_by_rule,
        single_node_slurm,
        slurm_available,
    )

REPO = Path(__file__).resolve().parents[1]
PROD_PROFILE = REPO / "slurm"
TEST_PROFILE = REPO / "tests" / "slurm_test_profile"
GPU_RULES = ("features", "train_stage1", "train_stage2")

# A stand-in for the real pipeline: same rule names, trivial shell commands.
# Each job writes the Slurm job id it ran under.
TOY_SNAKEFILE = """
rule all:
    input: "results/summary.txt"

rule validate:
    output: "results/valid.txt"
    shell: "echo validate job=$SLURM_JOB_ID > {output}"

rule features:
    input: "results/valid.txt"
    output: "results/features.txt"
    shell: "echo features job=$SLURM_JOB_ID gpus=${{CUDA_VISIBLE_DEVICES:-none}} > {output}"

rule train_stage1:
    input: "results/features.txt"
    output: "results/model.txt"
    shell: "echo train_stage1 job=$SLURM_JOB_ID gpus=${{CUDA_VISIBLE_DEVICES:-none}} > {output}"

rule summarize:
    input: "results/valid.txt", "results/model.txt"
    output: "results/summary.txt"
    shell: "cat {input} > {output}; echo summarize job=$SLURM_JOB_ID >> {output}"
"""

# Site settings for the production profile that fit the 1-fake-GPU test node.
SMALL_SITE_ENV = {
    "GRCF_SLURM_PARTITION": "debug",
    "GRCF_SLURM_GPU_MODEL": "fake",
    "GRCF_SLURM_MEM_MB": "256",
    "GRCF_SLURM_GPU_MEM_MB": "256",
    "GRCF_SLURM_RUNTIME": "5",
    "GRCF_SLURM_GPU_RUNTIME": "5",
    "GRCF_SLURM_GPU_CPUS": "1",
    "GRCF_SLURM_JOBS": "2",
}


def _snakemake(workdir: Path, *args: str, env: dict | None = None, timeout=600):
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
    return subprocess.run(
        [exe, *args], cwd=workdir, env=env or os.environ.copy(),
        capture_output=True, text=True, timeout=timeout,
    )


def _toy(tmp_path: Path) -> Path:
    wf = tmp_path / "wf"
    wf.mkdir()
    (wf / "Snakefile").write_text(TOY_SNAKEFILE)
    return wf


def _require_slurm():
    ok, why = slurm_available()
    if not ok:
        pytest.skip(why)


@pytest.mark.slow
def test_sbatch_wrap_job(tmp_path):
    _require_slurm()
    with single_node_slurm(tmp_path / "cluster") as info:
        assert os.environ["SLURM_CONF"] == str(info.conf)
        out = tmp_path / "job.out"
        jid = info.run("sbatch", "--parsable", "-p", info.partition, "-o", str(out),
                       "--wrap", "echo hello from $SLURM_JOB_ID on $(hostname)").stdout.strip()
        assert re.fullmatch(r"\d+", jid), jid
        # the controller knows the job while it is queued/running and after
        # it ended (MinJobAge keeps finished jobs around)
        assert jid in info.run("squeue", "-h", "--states=all", "-o", "%i").stdout.split()
        assert info.wait_for_job(jid, timeout=60) == "COMPLETED", info.log_tail()
        show = info.run("scontrol", "show", "job", jid).stdout
        assert f"JobId={jid}" in show and "JobState=COMPLETED" in show
        assert out.read_text().strip() == f"hello from {jid} on {info.nodename}"
    assert "SLURM_CONF" not in os.environ or os.environ["SLURM_CONF"] != str(info.conf)


@pytest.mark.slow
def test_test_profile_runs_jobs_as_slurm_jobs(tmp_path):
    """tests/slurm_test_profile: every rule becomes a Slurm job, no GPU asked."""
    _require_slurm()
    wf = _toy(tmp_path)
    with single_node_slurm(tmp_path / "cluster") as info:
        p = _snakemake(wf, "--profile", str(TEST_PROFILE), "--verbose")
        log = p.stdout + p.stderr
        assert p.returncode == 0, log[-4000:] + info.log_tail()
        queue = info.run("squeue", "-h", "--states=all", "-o", "%i|%k|%T").stdout
    jobs = {c.removeprefix("rule_"): (i, s) for i, c, s in
            (line.split("|") for line in queue.split())}
    assert set(jobs) == {"validate", "features", "train_stage1", "summarize"}
    assert all(s == "COMPLETED" for _, s in jobs.values()), jobs
    for rule, (jid, _) in jobs.items():
        assert (wf / ".snakemake" / "slurm_logs" / f"rule_{rule}" / f"{jid}.log").is_file()
    assert f"validate job={jobs['validate'][0]}" in (wf / "results/summary.txt").read_text()
    assert not any(gpu_flags_by_rule(log).values()), gpu_flags_by_rule(log)


@pytest.mark.slow
def test_production_profile_requests_gpus(tmp_path):
    """slurm/ profile, site settings via GRCF_SLURM_*: GPU rules get --gpus."""
    _require_slurm()
    wf = _toy(tmp_path)
    with single_node_slurm(tmp_path / "cluster", gpus=1, gpu_type="fake") as info:
        env = dict(os.environ, **SMALL_SITE_ENV)
        p = _snakemake(wf, "--profile", str(PROD_PROFILE), "--verbose",
                       "--latency-wait", "5",
                       "--slurm-init-seconds-before-status-checks", "2", env=env)
        log = p.stdout + p.stderr
        assert p.returncode == 0, log[-4000:] + info.log_tail()
    flags = gpu_flags_by_rule(log)
    assert flags["features"] == ["--gpus=fake:1"], flags
    assert flags["train_stage1"] == ["--gpus=fake:1"], flags
    assert flags["validate"] == [] and flags["summarize"] == [], flags
    # the job really got the (fake) GPU from Slurm
    assert "gpus=0" in (wf / "results/model.txt").read_text()


def test_production_profile_dry_run_resources(tmp_path):
    """No cluster needed: -n prints the resources the plugin turns into flags."""
    wf = _toy(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRCF_SLURM_")}
    p = _snakemake(wf, "--profile", str(PROD_PROFILE), "-n", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    res = dry_run_resources(p.stdout + p.stderr)
    for rule in ("features", "train_stage1"):
        assert res[rule]["gpu"] == "1" and "gpu_model" not in res[rule], res[rule]
        assert "slurm_partition" not in res[rule]
    for rule in ("validate", "summarize"):
        assert "gpu" not in res[rule] and "gres" not in res[rule], res[rule]
    assert "slurm_account" not in res["validate"]

    env.update(GRCF_SLURM_GRES="gpu:a100:2", GRCF_SLURM_ACCOUNT="all",
               GRCF_SLURM_PARTITION="cpu", GRCF_SLURM_GPU_PARTITION="gpu",
               GRCF_SLURM_CPUS_PER_TASK="3")
    p = _snakemake(wf, "--profile", str(PROD_PROFILE), "-n", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    res = dry_run_resources(p.stdout + p.stderr)
    assert res["features"]["gres"] == "gpu:a100:2" and "gpu" not in res["features"]
    assert res["features"]["slurm_partition"] == "gpu"
    assert res["validate"]["slurm_partition"] == "cpu"
    assert res["validate"]["slurm_account"] == "all"  # a string, not builtins.all
    assert res["validate"]["cpus_per_task"] == "3"
