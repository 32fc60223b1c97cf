"""Kill and resume, atomic outputs, and bit-for-bit reproducibility (issue: reliability)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from support.commands import snakemake, tool_env, venv_exe
from support.project import REPO, copy_project, edit_params

TARGET = "runs/default/embedded/grcf/seed0/metrics.json"
RESUME = "runs/default/embedded/grcf/seed0/stage1.pt.resume"
# long enough to be killed mid-run; no early stop so both runs train the same epochs
LONG_STAGE1 = {"stage1.epochs": 12, "stage1.patience": 50, "run.seeds": [0], "run.variants": ["grcf"]}


def _metrics(project):
    return json.loads((project / TARGET).read_text())


@pytest.mark.slow
def test_sigkill_mid_stage1_then_rerun_gives_identical_metrics(tmp_path):
    reference = copy_project(tmp_path / "reference")
    edit_params(reference, LONG_STAGE1)
    snakemake(reference, "--cores", "1", TARGET)

    killed = copy_project(tmp_path / "killed")
    edit_params(killed, LONG_STAGE1)
    proc = subprocess.Popen([venv_exe("snakemake"), "--cores", "1", TARGET], cwd=killed, env=tool_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    epoch = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if (killed / RESUME).exists():
            try:
                epoch = torch.load(killed / RESUME, weights_only=True)["state"]["epoch"]
            except Exception:  # caught between write and rename: try again
                epoch = 0
            if epoch >= 3:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "stage 1 finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job, as a node failure or preemption would
    proc.wait()
    assert epoch >= 3
    assert not (killed / "runs/default/embedded/grcf/seed0/stage1.pt").exists()
    assert (killed / RESUME).exists()

    snakemake(killed, "--unlock")
    snakemake(killed, "--cores", "1", "--rerun-incomplete", TARGET)
    log = (killed / "logs/default/embedded/grcf/seed0/stage1.log").read_text()
    assert "resuming from" in log
    assert not (killed / RESUME).exists()  # removed once the stage finished
    assert _metrics(killed) == _metrics(reference)


def test_killed_write_leaves_no_output_and_rerun_finishes(tmp_path):
    out = tmp_path / "features" / "embedded.parquet"
    code = (
        "import os, signal, sys\n"
        "from grcf.atomic import atomic_path\n"
        f"with atomic_path({str(out)!r}) as tmp:\n"
        "    tmp.write_bytes(b'PAR1 half a file')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    rc = subprocess.run([sys.executable, "-c", code]).returncode
    assert rc == -signal.SIGKILL
    assert not out.exists()
    assert list(out.parent.glob(".embedded.parquet.*.tmp"))  # the killed write's temp file
    subprocess.run([venv_exe("grcf"), "features", "embedded", str(out), "--params", str(REPO / "params.yaml")],
                   cwd=tmp_path, check=True, env=tool_env())
    from grcf.data.store import load_split

    assert len(load_split(out, "train")) > 0
    assert not list(out.parent.glob(".embedded.parquet.*.tmp"))  # the rerun cleared it


@pytest.mark.slow
def test_same_commit_params_seed_give_identical_results(tmp_path):
    runs = []
    for name in ("a", "b"):
        project = copy_project(tmp_path / name)
        edit_params(project, {"run.seeds": [3], "run.variants": ["grcf"]})
        snakemake(project, "--cores", "2", "runs/default/embedded/grcf/seed3/metrics.json")
        runs.append(project)
    a, b = (json.loads((p / "runs/default/embedded/grcf/seed3/metrics.json").read_text()) for p in runs)
    assert a == b
    sa, sb = (torch.load(p / "runs/default/embedded/grcf/seed3/stage2.pt", weights_only=True)["state_dict"] for p in runs)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    info = json.loads((runs[0] / "runs/default/embedded/grcf/seed3/run_info.json").read_text())
    assert info["seed"] == 3 and info["device"] == "cpu"
    assert info["params"]["variant"] == "grcf" and info["packages"]["torch"]
    assert {"commit", "dirty"} <= set(info["git"])
