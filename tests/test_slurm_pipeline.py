"""The real pipeline through the Snakemake Slurm executor, on a throw-away single-node Slurm.

The shrunk embedded pipeline runs with tests/slurm_test_profile (no GPU
requests: the test node's GPU is fake); the committed slurm/ profile is checked
with a dry run (what it would ask Slurm for, per rule).  Wall times are printed
(run pytest with -s to see them).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter

import pytest

from grcf.pipeline.slurm_cluster import dry_run_resources, gpu_flags_by_rule

from support.commands import planned_jobs, snakemake, tool_env
from support.project import REPO, SMALL, copy_project

pytestmark = pytest.mark.slow

TEST_PROFILE = REPO / "tests" / "slurm_test_profile"
VARIANTS = tuple(SMALL[("run", "variants")])
SEEDS = tuple(SMALL[("run", "seeds")])
GPU_RULES = ("features", "train_stage1", "train_stage2")
CPU_RULES = ("validate", "evaluate", "summarize", "report", "export")


def test_pipeline_runs_as_slurm_jobs(slurm_cluster, small_project):
    info = slurm_cluster
    env = tool_env()  # SLURM_CONF and the wrappers' PATH of the session cluster, the venv's grcf first
    t0 = time.monotonic()
    # --jobs 8 (profile: 2): keep Slurm's queue full, so a CPU freed on the
    # 2-core node is reused at once instead of after the plugin's next status
    # poll (its interval backs off by 10 s per poll that sees no job finish)
    rc, log = snakemake(small_project, "--profile", TEST_PROFILE, "--latency-wait", "5",
                        "--jobs", "8", "--verbose", env=env, check=False, timeout=900)
    wall = time.monotonic() - t0
    assert rc == 0, log[-6000:] + "\n" + info.log_tail()
    print(f"\n[timing] Slurm run of the shrunk pipeline (tests/slurm_test_profile, --jobs 8, "
          f"{info.cpus} CPU node): {wall:.1f} s")

    queue = info.run("squeue", "-h", "--states=all", "-o", "%i|%k|%T").stdout.split()
    jobs = {}
    for line in queue:
        jid, comment, state = line.split("|")
        m = re.match(rf"rule_({'|'.join(GPU_RULES + CPU_RULES)})(?:_wildcards_|$)", comment)
        assert m, comment
        jobs[jid] = (m.group(1), state)
    n = len(VARIANTS) * len(SEEDS)
    assert Counter(rule for rule, _ in jobs.values()) == Counter(
        validate=1, features=1, train_stage1=n, train_stage2=n, evaluate=n, summarize=1, report=1, export=1), jobs
    assert all(state == "COMPLETED" for _, state in jobs.values()), jobs

    logs = small_project / ".snakemake" / "slurm_logs"
    for jid, (rule, _) in jobs.items():
        found = list((logs / f"rule_{rule}").rglob(f"{jid}.log"))
        assert found, f"no Slurm log of job {jid} ({rule}) under {logs}"
        if rule in ("train_stage1", "train_stage2"):
            show = info.run("scontrol", "show", "job", jid).stdout
            assert f"JobId={jid}" in show and "JobState=COMPLETED" in show, show
            assert f"Comment=rule_{rule}" in show, show
    # no account on the test cluster: the executor's account guess (which always fails) stays quiet
    assert "SLURM account" not in log, [x for x in log.splitlines() if "SLURM account" in x]
    # the test profile asks for no GPU
    flags = gpu_flags_by_rule(log)
    assert set(flags) >= {"features", "train_stage1", "evaluate"}, flags
    assert not any(flags.values()), flags

    results = small_project / "results" / "default" / "embedded"
    assert (results / "report.html").is_file()
    summary = (results / "summary.md").read_text()
    assert all(v in summary for v in VARIANTS)
    for seed in SEEDS:
        metrics = json.loads((small_project / "runs/default/embedded/grcf" / f"seed{seed}" / "metrics.json").read_text())
        assert metrics["test"]["Corr"] > 0.5, metrics["test"]

    # nothing left to do locally: Snakemake recorded the cluster jobs like local ones
    _, out = snakemake(small_project, "-n")
    assert planned_jobs(out) == Counter()


def test_committed_profile_requests_gpus_for_gpu_rules(tmp_path):
    """`snakemake --profile slurm -n` (no cluster needed) on the full default DAG."""
    project = copy_project(tmp_path / "project", shrink=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRCF_SLURM_")}

    t0 = time.monotonic()
    _, out = snakemake(project, "-n", env=env)
    wall = time.monotonic() - t0
    jobs = planned_jobs(out)
    print(f"\n[timing] `snakemake -n` on the full default DAG ({sum(jobs.values())} jobs, "
          f"nothing run): {wall:.1f} s")
    assert jobs["train_stage1"] == 9, jobs

    _, out = snakemake(project, "--profile", "slurm", "-n", env=env)
    assert planned_jobs(out) == jobs
    res = dry_run_resources(out)
    assert set(res) >= set(GPU_RULES) | set(CPU_RULES), sorted(res)
    for rule in GPU_RULES:
        assert res[rule].get("gpu") == "1" or "gres" in res[rule], (rule, res[rule])
    for rule in CPU_RULES:
        assert "gpu" not in res[rule] and "gres" not in res[rule], (rule, res[rule])
        assert "gpu_model" not in res[rule], (rule, res[rule])
