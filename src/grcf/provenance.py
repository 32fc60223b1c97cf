"""The reproducibility record written beside every run's metrics."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata

PACKAGES = ("torch", "numpy", "pyarrow", "transformers", "snakemake", "dvc", "grcf", "mmsa")


def git_state(cwd=".") -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


def package_versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run_record(cfg: dict, seed: int, device: str, params_file=None) -> dict:
    return {
        "seed": seed,
        "device": device,
        "params": cfg,
        "params_file": None if params_file is None else str(params_file),  # params.yaml or a resolved --configfile run
        "git": git_state(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
