"""Shared fixtures of the pipeline tests (Snakemake, DVC, Slurm).

The pipeline tests never run in the repository itself: ``small_project`` copies
the pipeline (Snakefile, workflow/, params.yaml, dvc.yaml, src/, slurm/,
.dvcignore) into a tmp dir and shrinks params.yaml there so a full run takes
about a minute on 2 cores.  Tests change parameters by editing the copied
params.yaml (``edit_params``), or layer an experiment file with ``--configfile``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from grcf.pipeline.slurm_cluster import single_node_slurm, slurm_available

# nothing in the suite may wait on (or reach) a model hub: every model is an offline one
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# what a pipeline copy needs (src/ is copied so that the `code` inputs and DVC's
# src/grcf dependency exist; the grcf CLI itself runs from the editable install)
PROJECT_FILES = ("Snakefile", "workflow", "params.yaml", "dvc.yaml", "src", "slurm", ".dvcignore")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".snakemake")

# The shrunk configuration: ~1 min for a full run on 2 cores, GRCF still learns.
SMALL = {
    ("datasets", "embedded", "generator", "n_train"): 200,
    ("datasets", "embedded", "generator", "n_valid"): 60,
    ("datasets", "embedded", "generator", "n_test"): 80,
    ("stage1", "epochs"): 3,
    ("stage1", "patience"): 2,
    ("stage2", "epochs"): 3,
    ("stage2", "patience"): 2,
    ("model", "hidden"): 16,
    ("run", "seeds"): [0, 1],
    # two variants: fan-out per variant and the paired comparisons need no more (CI time)
    ("run", "variants"): ["grcf", "pointwise"],
    ("run", "datasets"): ["embedded"],
    # torch threads per job: 1, so `--cores 2` runs two jobs at once (less CPU than 1 x 2 threads)
    ("threads",): 1,
}


def _env() -> dict:
    """The venv's bin first on PATH (snakemake, dvc, grcf), no GRCF_SLURM_* site settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRCF_SLURM_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _exe(name: str) -> str:
    return shutil.which(name, path=str(BIN)) or name


# ------------------------------------------------------------------ project copies


def copy_project(dest: Path, *, shrink: bool = True) -> Path:
    """Copy the pipeline into ``dest`` (created); shrink params.yaml unless told not to."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=IGNORE)
        elif src.exists():
            shutil.copy2(src, dest / name)
    if shrink:
        edit_params(dest, {".".join(k): v for k, v in SMALL.items()})
    return dest


def read_params(project: Path) -> dict:
    return yaml.safe_load((Path(project) / "params.yaml").read_text())


def edit_params(project: Path, changes: dict) -> dict:
    """Set dotted keys (``"stage2.lr": 0.002``) in the project's params.yaml; return the params."""
    path = Path(project) / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        assert last in node, f"params.yaml has no {dotted}"
        node[last] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params


@pytest.fixture
def small_project(tmp_path) -> Path:
    """A shrunk copy of the pipeline in a tmp dir (see SMALL); returns its Path."""
    return copy_project(tmp_path / "project")


# ------------------------------------------------------------------ running tools


def run_cmd(args, cwd, *, env=None, timeout=600, check=True, tail=6000):
    """Run a command; return (returncode, stdout+stderr). ``check``: fail the test with the tail."""
    t0 = time.monotonic()
    try:
        p = subprocess.run([_exe(args[0]), *map(str, args[1:])], cwd=cwd, env=env or _env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"{' '.join(map(str, args))} timed out after {timeout}s in {cwd}\n{out[-tail:]}")
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {p.returncode} in {cwd} "
                    f"after {time.monotonic() - t0:.1f}s; output tail:\n{p.stdout[-tail:]}"
                    + _log_tails(Path(cwd)))
    return p.returncode, p.stdout


def _log_tails(cwd: Path, n: int = 3, lines: int = 25) -> str:
    """Tails of the newest pipeline logs (logs/**/*.log), where a failed grcf command wrote."""
    logs = sorted((cwd / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)[-n:] if (cwd / "logs").is_dir() else []
    return "".join(f"\n--- {p.relative_to(cwd)} ---\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:])
                   for p in logs)


def snakemake(cwd, *args, **kw):
    """``snakemake ARGS`` in cwd; returns (rc, output)."""
    return run_cmd(["snakemake", *args], cwd, **kw)


def dvc(cwd, *args, **kw):
    """``dvc ARGS`` in cwd; returns (rc, output)."""
    return run_cmd(["dvc", *args], cwd, **kw)


# ------------------------------------------------------------------ parsing `snakemake -n`

_STATS_HEAD = re.compile(r"^Job stats:\s*$")
_STATS_ROW = re.compile(r"^(\w+)\s+(\d+)\s*$")


def planned_jobs(output: str) -> Counter:
    """Jobs per rule from ``snakemake -n`` output (its "Job stats:" table); empty if nothing to do.

    The table lists each rule and its job count, then ``total``; "Nothing to be
    done" means no job.  Anything else (no table, no such message) is an error.
    """
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if _STATS_HEAD.match(line):
            jobs = Counter()
            for row in lines[i + 1:]:
                if not row.strip() or row.startswith(("job ", "---")):
                    if jobs:
                        break
                    continue
                m = _STATS_ROW.match(row)
                if not m:
                    break
                if m.group(1) == "total":
                    assert sum(jobs.values()) == int(m.group(2)), output
                    return jobs
                jobs[m.group(1)] = int(m.group(2))
            raise AssertionError("unterminated Job stats table:\n" + output[-3000:])
    if "Nothing to be done" in output:
        return Counter()
    raise AssertionError("no 'Job stats:' table and no 'Nothing to be done' in:\n" + output[-3000:])


def dry_run(cwd, *args) -> Counter:
    """``snakemake -n ARGS`` -> Counter of planned jobs per rule."""
    _, out = snakemake(cwd, "-n", *args)
    return planned_jobs(out)


def readme_commands(prefix: str, page: str = "README.md") -> list[str]:
    """The `inline commands` of a page (README.md or docs/*.md) that start with ``prefix`` (tests run what it tells users)."""
    text = (REPO / page).read_text()
    return [c for c in re.findall(r"`([^`\n]+)`", text) if c.startswith(prefix)]


# ------------------------------------------------------------------ pytest-xdist groups

# Modules whose tests start Slurm daemons: one worker runs them all, so one cluster at a time.
SLURM_MODULES = {"test_slurm_pipeline", "test_slurm_cluster", "test_slurm_check"}


@pytest.hookimpl(wrapper=True)  # the marks must exist before xdist's own hook turns them into groups
def pytest_collection_modifyitems(config, items):
    """`make test` runs `pytest -n 2 --dist loadgroup`: keep the tests of a module-scoped fixture
    on one worker (built once, not once per worker) and every Slurm test on one worker."""
    for item in items:
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        if module in SLURM_MODULES:
            item.add_marker(pytest.mark.xdist_group("slurm"))
            continue
        defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        if any(d.scope == "module" for fds in defs.values() for d in fds):
            item.add_marker(pytest.mark.xdist_group(module))
    return (yield)


# ------------------------------------------------------------------ Slurm


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real single-node Slurm (src/grcf/pipeline/slurm_cluster.py) for the session; skips when unavailable."""
    ok, why = slurm_available()
    if not ok:
        pytest.skip(why)
    with single_node_slurm(tmp_path_factory.mktemp("slurm"), partition="debug",
                           gpus=1, gpu_type="fake") as info:
        yield info
