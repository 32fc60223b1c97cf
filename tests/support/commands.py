"""Running the venv's tools (snakemake, dvc, grcf) from a test, and reading ``snakemake -n``'s plan."""

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

BIN = Path(sys.executable).parent


def tool_env() -> dict:
    """The venv's bin first on PATH (snakemake, dvc, grcf), no GRCF_SLURM_* site settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRCF_SLURM_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def venv_exe(name: str) -> str:
    """The venv's ``name`` executable (its full path), or ``name`` itself when the venv has none."""
    return shutil.which(name, path=str(BIN)) or name


def run_cmd(args, cwd, *, env=None, timeout=600, check=True, tail=6000):
    """Run a command; return (returncode, stdout+stderr). ``check``: fail the test with the tail."""
    t0 = time.monotonic()
    try:
        p = subprocess.run([venv_exe(args[0]), *map(str, args[1:])], cwd=cwd, env=env or tool_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"{' '.join(map(str, args))} timed out after {timeout}s in {cwd}\n{out[-tail:]}")
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {p.returncode} in {cwd} "
                    f"after {time.monotonic() - t0:.1f}s; output tail:\n{p.stdout[-tail:]}"
                    + log_tails(Path(cwd)))
    return p.returncode, p.stdout


def log_tails(cwd: Path, n: int = 3, lines: int = 25) -> str:
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
