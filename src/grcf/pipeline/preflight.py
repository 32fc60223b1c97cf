"""What the pipeline checks before its first job, and what `make run` prints after its last.

`grcf_on_path()` runs in the Snakefile's `onstart`: every rule calls the `grcf` command, so
without it on PATH each job would fail with exit 127 and the cause would be only in the logs.
`python -m grcf.pipeline.preflight tables [EXPERIMENT_FILE]` prints the summary tables of the
experiment just run (params.yaml alone, or layered with that file), nothing of other experiments.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

FIX = "run it through `make run` (EXPERIMENT=experiments/<name>.yaml for an experiment), or `source .venv/bin/activate` first"


def grcf_on_path(path: str | None = None, prefix: str | None = None) -> str | None:
    """None when the `grcf` command the rules run is this environment's; else the one line to show."""
    found = shutil.which("grcf", path=path if path is not None else os.environ.get("PATH", ""))
    own = Path(prefix or sys.prefix) / "bin" / "grcf"
    if found is None:
        return f"grcf: the `grcf` command is not on PATH, so every job would fail; {FIX}"
    if own.is_file() and Path(found).resolve() != own.resolve():
        return (f"grcf: the `grcf` on PATH ({found}) is not this environment's ({own}); jobs would run "
                f"another installation; {FIX}")
    return None


def tables(experiment_file: str | None = None, params="params.yaml", out=sys.stdout) -> int:
    """Print results/<experiment>/<dataset>/summary.md of each run dataset of the experiment."""
    from grcf.config import deep_merge, experiment_name, load_yaml

    config = load_yaml(params)
    if experiment_file:
        config = deep_merge(config, load_yaml(experiment_file) or {})
    name = experiment_name(config)
    missing = 0
    for dataset in config["run"]["datasets"]:
        summary = Path("results") / name / dataset / "summary.md"
        if summary.is_file():
            print(summary.read_text(), file=out)
        else:
            missing += 1
            print(f"grcf: {summary} not found (the run did not finish?)", file=sys.stderr)
    return 1 if missing else 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tables"]:
        return tables(argv[1] if len(argv) > 1 and argv[1] else None)
    problem = grcf_on_path()
    if problem:
        print(problem, file=sys.stderr)
    return 1 if problem else 0


if __name__ == "__main__":
    raise SystemExit(main())
