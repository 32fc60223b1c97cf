"""Pipeline copies: the repository, the shrunk parameters, editing a copy's params.yaml, README commands.

The pipeline tests never run in the repository itself: ``copy_project`` copies the pipeline
(Snakefile, workflow/, params.yaml, dvc.yaml, src/, slurm/, .dvcignore) into a tmp dir and shrinks
params.yaml there so a full run takes about a minute on 2 cores.  Tests change parameters by
editing the copied params.yaml (``edit_params``), or layer an experiment file with ``--configfile``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
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


def readme_commands(prefix: str, page: str = "README.md") -> list[str]:
    """The `inline commands` of a page (README.md or docs/*.md) that start with ``prefix`` (tests run what it tells users)."""
    text = (REPO / page).read_text()
    return [c for c in re.findall(r"`([^`\n]+)`", text) if c.startswith(prefix)]
