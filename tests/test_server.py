"""`grcf server`: jobs forked from a warm process give what a fresh process gives.

Real processes throughout: a server started with `grcf server start`, `grcf` commands that hand
their job to it through $GRCF_SERVER, and jobs it must refuse running in their own process.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml

from grcf.pipeline.server import Server, source_fingerprint
from support.commands import run_cmd, tool_env, venv_exe
from support.project import REPO
from support.stores import small_store


def _project(tmp: Path, epochs=2, patience=6) -> tuple[Path, list]:
    """params.yaml with a toy Parquet dataset; the common arguments of a job on it."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    store = small_store(tmp / "toy.parquet", n=60)
    params["datasets"]["toy"] = {"source": "parquet", "path": str(store), "task": "regression", "metrics": "mosi"}
    params["run"]["datasets"] = ["toy"]
    params["model"]["hidden"] = 8
    params.update(device="cpu", threads=1)
    for s in ("stage1", "stage2"):
        params[s].update(epochs=epochs, batch_size=8, patience=patience)
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp, ["--params", "params.yaml", "--dataset", "toy", "--variant", "grcf", "--seed", "0", "--features", str(store)]


def _jobs(common, run):
    return [["train-stage1", *common, "--out", f"{run}/s1.pt", "--log", f"{run}/s1.csv"],
            ["train-stage2", *common, "--init", f"{run}/s1.pt", "--out", f"{run}/s2.pt", "--log", f"{run}/s2.csv"],
            ["evaluate", *common, "--model", f"{run}/s2.pt", "--out-dir", run]]


@pytest.fixture
def short_dir():
    """A folder with a short path: a Unix socket's path holds at most 107 bytes, tmp_path may be longer."""
    d = Path(tempfile.mkdtemp(prefix="grcf-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def server(tmp_path, short_dir):
    sock = short_dir / "srv.sock"
    _, out = run_cmd(["grcf", "server", "start", "--socket", sock], tmp_path)
    assert f"export GRCF_SERVER={sock}" in out and sock.is_socket()
    yield sock
    run_cmd(["grcf", "server", "stop", "--socket", sock], tmp_path, check=False)
    assert not sock.exists()


def _served_env(sock, **extra):
    return {**tool_env(), "GRCF_SERVER": str(sock), **extra}


def _log(sock):
    return sock.with_suffix(".log").read_text()


@pytest.mark.slow  # > 10 s on 2 cores
def test_a_served_job_gives_what_a_fresh_process_gives(tmp_path, server):
    work, common = _project(tmp_path)
    for job in _jobs(common, "served"):
        _, out = run_cmd(["grcf", *job], work, env=_served_env(server))
        assert "running in this process" not in out
    for job in _jobs(common, "local"):
        run_cmd(["grcf", *job], work)
    served = [line for line in _log(server).splitlines() if line.startswith("grcf server: job ")]
    assert len(served) == 3 and all(f"(in {work})" in line for line in served)  # the server ran all three
    a, b = work / "served", work / "local"
    assert json.loads((a / "metrics.json").read_text()) == json.loads((b / "metrics.json").read_text())
    assert (a / "predictions.csv").read_bytes() == (b / "predictions.csv").read_bytes()
    for ckpt in ("s1.pt", "s2.pt"):
        sa, sb = (torch.load(d / ckpt, weights_only=False)["state_dict"] for d in (a, b))
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow  # > 10 s on 2 cores
def test_a_job_with_other_thread_settings_gets_a_warm_process_of_its_own(tmp_path, server):
    work, common = _project(tmp_path)
    # Snakemake sets OMP_NUM_THREADS & co. per job from the rule's threads: read at import, so a warm
    # process started with that environment serves it
    threads = str(int(os.environ.get("OMP_NUM_THREADS", "1")) + 1)
    for run in ("a", "b"):
        _, out = run_cmd(["grcf", *_jobs(common, run)[0]], work, env=_served_env(server, OMP_NUM_THREADS=threads))
        assert "running in this process" not in out and (work / run / "s1.pt").is_file()
    run_cmd(["grcf", "evaluate", "--help"], work, env=_served_env(server))
    log = _log(server)
    assert log.count("warm process") == 2 and f"OMP_NUM_THREADS={threads}" in log  # one per environment, kept
    assert log.count("grcf server: job ") == 3


def test_a_job_inside_a_slurm_allocation_runs_in_its_own_process(tmp_path, server):
    # the server is not part of that allocation: the job would escape its limits
    rc, out = run_cmd(["grcf", "evaluate", "--help"], tmp_path, env=_served_env(server, SLURM_JOB_ID="4242"))
    assert rc == 0 and "outside the server's allocation" in out and "usage: grcf evaluate" in out
    assert "refused grcf evaluate --help" in _log(server)


def test_no_server_answering_runs_the_job_here(tmp_path):
    rc, out = run_cmd(["grcf", "evaluate", "--help"], tmp_path, env=_served_env(tmp_path / "none.sock"))
    assert rc == 0 and "no server answers" in out and "usage: grcf evaluate" in out


def test_the_server_notices_that_grcf_source_changed(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    srv = Server(tmp_path / "s.sock", "grcf.cli:run")
    srv.package, srv.fingerprint = pkg, source_fingerprint(pkg)
    assert not srv.source_changed()
    (pkg / "sub" / "b.py").write_text("y = 2\n")  # then its warm processes (stale modules) are replaced
    assert srv.source_changed() and not srv.source_changed()


def test_exit_status_and_errors_come_back(tmp_path, server):
    work, common = _project(tmp_path)
    rc, out = run_cmd(["grcf", "evaluate", *common, "--model", "missing.pt", "--out-dir", "x"], work,
                      env=_served_env(server), check=False)
    assert rc == 1 and "grcf: error:" in out and "missing.pt" in out
    rc, out = run_cmd(["grcf", "no-such-command"], work, env=_served_env(server), check=False)
    assert rc == 2 and "invalid choice" in out


def _start_long_job(work, common, sock):
    """A served training job that runs until killed; (client process, the job's pid)."""
    job = _jobs(common, "long")[0]
    client = subprocess.Popen([venv_exe("grcf"), *job], cwd=work, env=_served_env(sock),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = [ln for ln in _log(sock).splitlines() if ln.startswith("grcf server: job ") and "long/s1.pt" in ln]
        if lines:
            return client, int(lines[-1].split()[3].rstrip(":"))
        time.sleep(0.1)
    client.kill()
    pytest.fail("the server never started the job")


def _gone(pid, wait=15.0) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_the_job_follows_its_client_signals_and_death(tmp_path, server):
    work, common = _project(tmp_path, epochs=100000, patience=100000)
    client, pid = _start_long_job(work, common, server)
    time.sleep(1.0)
    assert client.poll() is None and not _gone(pid, wait=0.1)
    client.send_signal(signal.SIGTERM)  # what Snakemake or Slurm send to cancel a job: passed on
    assert client.wait(timeout=30) == 128 + signal.SIGTERM
    assert _gone(pid)
    client, pid = _start_long_job(work, common, server)
    client.kill()  # SIGKILL can't be passed on: the job sees its client's end of the socket close
    client.wait(timeout=30)
    assert _gone(pid)
    assert server.is_socket()  # the server itself serves on


def test_start_refuses_a_second_server_and_replaces_a_dead_ones_socket(tmp_path, server, short_dir):
    rc, out = run_cmd(["grcf", "server", "start", "--socket", server], tmp_path, check=False)
    assert rc == 1 and "already answers" in out
    rc, out = run_cmd(["grcf", "server", "start", "--socket", tmp_path / ("x" * 100) / "s.sock"], tmp_path, check=False)
    assert rc == 1 and "too long for a Unix socket" in out
    dead = short_dir / "dead.sock"
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(str(dead))
    s.close()  # a socket file nobody listens on, as a killed server leaves
    run_cmd(["grcf", "server", "start", "--socket", dead], tmp_path)
    try:
        rc, out = run_cmd(["grcf", "evaluate", "--help"], tmp_path, env=_served_env(dead))
        assert "usage: grcf evaluate" in out and "grcf server: job" in _log(dead)
    finally:
        run_cmd(["grcf", "server", "stop", "--socket", dead], tmp_path)


@pytest.mark.slow  # a small Snakemake run, ~20 s
def test_snakemake_runs_every_job_through_the_server(tmp_path, server):
    from support.commands import snakemake
    from support.project import copy_project, edit_params

    project = copy_project(tmp_path / "project")
    store = small_store(tmp_path / "toy.parquet", n=60)
    params = edit_params(project, {"run.datasets": ["toy"], "run.seeds": [0]})
    params["datasets"]["toy"] = {"source": "parquet", "path": str(store), "task": "regression", "metrics": "mosi"}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    targets = [f"runs/default/toy/{v}/seed0/metrics.json" for v in params["run"]["variants"]]  # params.yaml: the default experiment
    snakemake(project, "--cores", "2", *targets, env=_served_env(server))
    logs = {p: p.read_text() for p in (project / "logs").rglob("*.log")}
    assert logs and not [p for p, text in logs.items() if "running in this process" in text]
    served = [ln for ln in _log(server).splitlines() if ln.startswith("grcf server: job ") and f"(in {project})" in ln]
    kinds = sorted(ln.split()[5] for ln in served)  # "grcf server: job PID: grcf <command> ..."
    n = len(params["run"]["variants"])
    assert kinds.count("train-stage1") == n and kinds.count("train-stage2") == n and kinds.count("evaluate") == n
    for t in targets:
        assert json.loads((project / t).read_text())["test"]["MAE"] >= 0
