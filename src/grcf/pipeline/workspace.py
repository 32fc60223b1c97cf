"""A separate pipeline workspace: a copy of the workflow with its own params.yaml and outputs.

Used by `grcf sweep`, whose generated candidate variants must not touch the checkout's
params.yaml or outputs. (An experiment over existing variants is a `--configfile` run in the
checkout instead: see experiments/.)
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from grcf.config import validate_params
from grcf.errors import GrcfError

COPY = ("Snakefile", "workflow", "src", "dvc.yaml", ".dvcignore")


def prepare(root, workdir, params: dict) -> Path:
    """Copy the workflow from `root` into `workdir` and write `params` there (data paths made absolute)."""
    root, work = Path(root).resolve(), Path(workdir).resolve()
    validate_params(params, "workspace params")
    params = yaml.safe_load(yaml.safe_dump(params))  # a deep copy
    for ds in params["datasets"].values():
        if "path" in ds and not Path(ds["path"]).is_absolute():
            ds["path"] = str((root / ds["path"]).resolve())
    work.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src, dst = root / name, work / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dst)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return work


def snakemake(work, *targets, cores: int = 2) -> None:
    rc = subprocess.call(["snakemake", "--cores", str(cores), "--rerun-incomplete", *targets], cwd=work)
    if rc:
        raise GrcfError(f"snakemake failed in {work} (exit {rc}); see {work}/logs")
