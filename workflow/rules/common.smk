# Helpers shared by the rules: paths, and the resolved settings each rule passes as `params`
# (Snakemake's params rerun trigger then reruns exactly what a parameter change affects).
import functools
import json
import os
import sys
from pathlib import Path

from grcf.pipeline import codedeps, preflight, sources
from grcf.data import datasets
from grcf.data.datasets import feature_options
from grcf.config import (check_experiment_files, experiment_name, load_yaml, params_file_for, resolve_run,
                         validate_params)


def config_layers():
    """(name, settings) of params.yaml, each --configfile and --config, in the order Snakemake merges them."""
    files = ["params.yaml", *(os.path.relpath(f) for f in workflow.config_settings.configfiles)]
    layers = [(f, load_yaml(f) or {}) for f in files if os.path.exists(f)]
    return layers + ([("--config", dict(workflow.config_settings.config))] if workflow.config_settings.config else [])


# the same check as every grcf command; a typo is reported with the file it is in
validate_params(config, "params.yaml", layers=config_layers())
# an experiment file names itself, so that its outputs never land on another experiment's
check_experiment_files(config_layers())
# what the grcf commands read: params.yaml, or the resolved --configfile/--config settings
PARAMS_FILE = params_file_for(config, config_layers())
# Every output of this experiment lives under its name (params.yaml alone: `default`): two
# experiments on the same dataset keep their runs, tables and bundles apart. The feature stores
# are the dataset's and shared (their settings are the rerun trigger of the features rule).
EXP = experiment_name(config)
RUN = f"runs/{EXP}/{{dataset}}/{{variant}}/seed{{seed}}"
RESULTS = f"results/{EXP}/{{dataset}}"
MODELS = f"models/{EXP}/{{dataset}}/{{variant}}"
LOGS = f"logs/{EXP}"

wildcard_constraints:
    dataset=r"[A-Za-z0-9_]+",
    variant=r"[A-Za-z0-9_]+",
    seed=r"\d+",


def progress(label):
    """The end of a long job's command: its whole output to its log, a short progress line per
    bar on the console (grcf.pipeline.progress)."""
    return f"2>&1 | python -m grcf.pipeline.progress {{log}} --label '{label}'"


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def run_settings(w, *keys):
    cfg = resolve_run(config, w.dataset, w.variant)
    return as_json({k: cfg[k] for k in keys})


def stage1_settings(w):
    cfg = resolve_run(config, w.dataset, w.variant)
    keys = ("model", "loss", "stage1", "task", "metrics", "modalities", "device")
    return as_json({**{k: cfg[k] for k in keys}, "objective": cfg["stage2"]["objective"]})


@functools.lru_cache(maxsize=None)
def _fingerprint(step, source=None, modalities=None):
    return codedeps.fingerprint(codedeps.modules(step, source, modalities))


def code(step):
    """The step's rerun trigger for code: a fingerprint of the grcf modules its command runs
    (computed from the imports; comments, docstrings and formatting do not change it)."""
    def fingerprint(w):
        if step not in codedeps.PER_DATASET:
            return _fingerprint(step)
        ds = config["datasets"][w.dataset]
        return _fingerprint(step, ds["source"], tuple(ds.get("modalities") or ()) or None)

    return fingerprint


def dataset_settings(w):
    return as_json(feature_options(config, w.dataset))


@functools.lru_cache(maxsize=None)
def _manifest(dataset):
    files = datasets.source_files(*feature_options(config, dataset))
    return [str(sources.refresh(f".grcf/sources/{dataset}.sha256", files))] if files else []


def dataset_sources(w):
    """The user's files a dataset is built from, as one manifest of their paths and hashes (none
    for the embedded generator): a failing job lists one input, not one per clip, and only a
    change to a file the build reads (not a touch, not a file beside them) reruns it."""
    return _manifest(w.dataset)


def runs_of(pattern):
    def inputs(w):
        return expand(pattern, dataset=w.dataset, variant=config["run"]["variants"], seed=config["run"]["seeds"])

    return inputs


def runs_of_variant(pattern):
    """One (dataset, variant)'s runs over the seeds."""
    def inputs(w):
        return expand(pattern, dataset=w.dataset, variant=w.variant, seed=config["run"]["seeds"])

    return inputs


def exported_models():
    """Bundles of the exported variants this run trains (a sweep or a subset run trains others)."""
    variants = [v for v in config.get("export", {}).get("variants", []) if v in config["run"]["variants"]]
    return expand(MODELS, dataset=config["run"]["datasets"], variant=variants)


def require_grcf_on_path():
    """Stop before the first job, with one line naming the fix, when the rules' `grcf` is missing."""
    problem = preflight.grcf_on_path()
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(1)
