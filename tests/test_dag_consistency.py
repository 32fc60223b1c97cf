"""Snakefile and dvc.yaml describe the same DAG: same steps, outputs, commands, parameters.

Fast (dry run only): Snakemake's side comes from ``snakemake -n -p --forceall``
(every job with its ``output:`` and ``Shell command:``) and, for the values a
rule passes as ``params:``, from Snakemake's API; DVC's side from DVC's own
resolver (``Repo(...).index.stages``, foreach/matrix expanded).  Both run on an
unshrunk copy of the project (the real params.yaml: the full default DAG), so
nothing is written into the repository.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from support.commands import run_cmd, snakemake
from support.project import copy_project

# a Snakemake command ends by sending its output to its log: `> logs/... 2>&1`, or through the
# progress filter for long jobs (`2>&1 | python -m grcf.pipeline.progress logs/... --label '...'`)
LOG_REDIRECT = re.compile(r"\s*(?:>\s*logs/\S+\s+2>&1|2>&1\s*\|\s*python -m grcf\.pipeline\.progress\s+logs/.*)\s*$")
# DVC-only stages: Snakemake checks the params when it reads the Snakefile, before any job
DVC_ONLY = {"check_params"}

# Snakemake's API, in a subprocess (it changes the cwd and sets up logging):
# every job's rule, wildcards and evaluated params, as JSON.
DUMP_PARAMS = r"""
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import DAGSettings, OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=Path("Snakefile"),
                      workdir=Path("."))
    dag = wf.dag(dag_settings=DAGSettings(forceall=True))
    dag.execute_workflow(executor="dryrun")
    jobs = [{"rule": j.rule.name, "wildcards": dict(j.wildcards.items()),
             "params": dict(j.params.items())} for j in wf._workflow.dag.jobs]
Path(sys.argv[1]).write_text(json.dumps(jobs))
"""


def norm(cmd: str) -> str:
    return " ".join(cmd.split())


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("dag") / "project", shrink=False)


def snakemake_steps(output: str) -> Counter:
    """(rule, outputs, command) of every job in ``snakemake -n -p`` output, except ``all``."""
    steps = Counter()
    rule = outputs = None
    for line in output.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):\s*$", line)
        if m:
            rule, outputs = m.group(1), None
            continue
        m = re.match(r"^\s+output: (.*)$", line)
        if m and rule:
            outputs = frozenset(o.strip() for o in m.group(1).split(","))
            continue
        m = re.match(r"^Shell command: (.*)$", line)
        if m and rule == "all":  # no output, "Shell command: None"
            rule = None
            continue
        if m and rule:
            assert outputs is not None, f"rule {rule}: no output line before its shell command"
            steps[(rule, outputs, norm(LOG_REDIRECT.sub("", m.group(1))))] += 1
            rule = None
    return steps


def dvc_stages(project: Path) -> list:
    from dvc.repo import Repo

    repo = Repo(str(project.resolve()), uninitialized=True)
    try:
        return [
            {
                "name": s.name,
                "base": s.name.split("@")[0],
                "outs": frozenset(o.def_path for o in s.outs),  # outs, metrics and plots
                "cmd": norm(s.cmd),
                "params": [p for d in s.deps if hasattr(d, "params") for p in (d.params or [])],
                "deps": {d.def_path for d in s.deps if not hasattr(d, "params")},
            }
            for s in repo.index.stages
        ]
    finally:
        repo.close()


def test_same_steps_outputs_and_commands(project):
    _, out = snakemake(project, "-n", "-p", "--forceall")
    smk = snakemake_steps(out)
    assert smk, out[-3000:]
    assert not any(rule == "all" for rule, _, _ in smk)
    all_jobs = sum(1 for line in out.splitlines() if re.match(r"^(?:local)?rule \w+:\s*$", line))
    assert sum(smk.values()) == all_jobs - 1, "a job without output/shell command lines"

    dvc = Counter((s["base"], s["outs"], s["cmd"]) for s in dvc_stages(project) if s["base"] not in DVC_ONLY)
    assert max(dvc.values()) == 1 and max(smk.values()) == 1
    only_smk = sorted(set(smk) - set(dvc), key=str)
    only_dvc = sorted(set(dvc) - set(smk), key=str)
    assert not only_smk and not only_dvc, (
        "Snakefile and dvc.yaml differ\nonly in Snakemake:\n" + "\n".join(map(str, only_smk))
        + "\nonly in DVC:\n" + "\n".join(map(str, only_dvc)))
    params = yaml.safe_load((project / "params.yaml").read_text())
    run = params["run"]
    n_runs = len(run["datasets"]) * len(run["variants"]) * len(run["seeds"])
    per_rule = Counter(rule for rule, _, _ in smk)
    assert per_rule == Counter(validate=len(run["datasets"]), features=len(run["datasets"]),
                               train_stage1=n_runs, train_stage2=n_runs, evaluate=n_runs,
                               summarize=len(run["datasets"]), report=len(run["datasets"]),
                               export=len(run["datasets"]) * len(params["export"]["variants"]))


def _sources(rule: str, wildcards: dict, name: str, value, params: dict) -> list[str]:
    """The params.yaml keys (dotted) a passed hyperparameter comes from."""
    value = json.loads(value)
    ds, var = wildcards.get("dataset"), wildcards.get("variant")
    if rule == "export":
        return {"seeds": ["run.seeds"], "predict": ["predict"]}[name]
    if rule in ("summarize", "report"):
        assert name == "run", name
        return [f"run.{k}" for k in value]
    if rule in ("validate", "features"):
        kind, path, options = value
        out = [f"datasets.{ds}.source", f"datasets.{ds}.path"]
        for key in options:
            if key == "dataset":  # the wildcard itself
                continue
            if key == "device":
                out.append("device")
            elif key in params["datasets"][ds]:
                out.append(f"datasets.{ds}.{key}")
            elif key in params.get("features", {}):
                out.append(f"features.{key}")
            else:
                raise AssertionError(f"{rule}: unknown key {key!r} in params {name}")
        return out
    # train_stage1 / train_stage2 / evaluate: grcf.config.resolve_run settings
    out = []
    for key in value:
        if key in ("model", "loss", "stage1", "stage2"):
            out += [key, f"datasets.{ds}.overrides.{key}", f"variants.{var}.{key}"]
        elif key == "objective":
            out += ["stage2.objective", f"datasets.{ds}.overrides.stage2.objective",
                    f"variants.{var}.stage2.objective"]
        elif key in ("task", "metrics", "modalities"):
            out.append(f"datasets.{ds}.{key}")
        elif key in ("device", "threads"):
            out.append(key)
        else:
            raise AssertionError(f"{rule}: unknown key {key!r} in params {name}")
    return out


@pytest.fixture(scope="module")
def jobs(project, tmp_path_factory) -> list:
    """Every Snakemake job of the full default DAG: rule, wildcards, evaluated params."""
    dump = tmp_path_factory.mktemp("jobs") / "jobs.json"
    run_cmd([sys.executable, "-c", DUMP_PARAMS, dump], project)
    return [j for j in json.loads(dump.read_text()) if j["rule"] != "all"]


@pytest.fixture(scope="module")
def stages(project) -> dict:
    """DVC's stages by name (foreach/matrix expanded)."""
    return {s["name"]: s for s in dvc_stages(project)}


def test_every_dvc_stage_waits_for_the_params_check(stages):
    """A params typo must fail `dvc repro` before DVC removes any output: every stage depends on the
    stamp of the first stage, which checks the whole params.yaml."""
    check = stages["check_params"]
    assert ".grcf/params.checked" in check["outs"] and check["cmd"].startswith("grcf check-params")
    for name, stage in stages.items():
        if name != "check_params":
            assert ".grcf/params.checked" in stage["deps"], name


def test_snakemake_params_covered_by_dvc_params(project, jobs, stages):
    params = yaml.safe_load((project / "params.yaml").read_text())

    def stage_name(rule, wc):
        if rule == "export":
            return f"export@{wc['dataset']}-{wc['variant']}"
        if rule in ("validate", "features", "summarize", "report"):
            return f"{rule}@{wc['dataset']}"
        return f"{rule}@{wc['dataset']}-{wc['variant']}-{wc['seed']}"

    missing = {}
    for job in jobs:
        assert job["params"], f"rule {job['rule']} passes no params (Snakemake's params rerun trigger)"
        stage = stages[stage_name(job["rule"], job["wildcards"])]
        dvc_params = stage["params"]
        for name, value in job["params"].items():
            if name == "code":  # the code fingerprint: test_code_deps_match
                continue
            for src in _sources(job["rule"], job["wildcards"], name, value, params):
                if not any(src == p or src.startswith(p + ".") for p in dvc_params):
                    missing.setdefault(stage["base"], set()).add(src)
    assert not missing, ("hyperparameters a Snakemake rule passes (its rerun trigger) that the "
                         f"DVC stage does not track in its params: {missing}")


def test_code_deps_match(project, jobs, stages, monkeypatch):
    """Each Snakemake job's code fingerprint is that of the modules grcf.pipeline.codedeps computes for
    its step (and dataset), and the DVC stage depends on exactly those modules' files (a
    `foreach` stage cannot vary its deps per dataset, so it takes every format's)."""
    from grcf.pipeline import codedeps

    params = yaml.safe_load((project / "params.yaml").read_text())
    monkeypatch.chdir(project)  # module paths relative to the project root, as the Snakefile sees them
    assert {j["rule"] for j in jobs} <= set(codedeps.STEPS)
    fingerprints, every_format = {}, {}
    for job in jobs:
        rule, wc = job["rule"], job["wildcards"]
        ds = params["datasets"][wc["dataset"]]
        narrow = (ds["source"], tuple(ds.get("modalities") or ())) if rule in codedeps.PER_DATASET else (None, ())
        if (rule, narrow) not in fingerprints:
            files = codedeps.modules(rule, narrow[0], list(narrow[1]) or None)
            fingerprints[rule, narrow] = files, codedeps.fingerprint(files)
        files, fingerprint = fingerprints[rule, narrow]
        assert job["params"]["code"] == fingerprint, (rule, wc)
        name = f"{rule}@{wc['dataset']}" + "".join(f"-{wc[k]}" for k in ("variant", "seed") if k in wc)
        dvc_code = {d for d in stages[name]["deps"] if d.startswith("src/")}
        if rule not in every_format:
            every_format[rule] = set(codedeps.packages(codedeps.modules(rule)))
        assert dvc_code == every_format[rule], (
            f"dvc.yaml stage {rule}: its src/grcf deps are not what `python -m grcf.pipeline.codedeps` lists; "
            "`python -m grcf.pipeline.codedeps --write dvc.yaml` updates them")
        # the layer grain: sub-package folders and base modules, each module Snakemake counts covered
        assert len(dvc_code) <= 12, sorted(dvc_code)
        assert all(codedeps.covers(dvc_code, f) for f in files), sorted(f for f in files if not codedeps.covers(dvc_code, f))
        assert any(Path(project, d).is_dir() for d in dvc_code), sorted(dvc_code)
