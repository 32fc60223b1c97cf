"""The reproducibility record written beside every run's metrics."""

from __future__ import annotations

import hashlib
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


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks (a clip or a weights file may be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
