# Helpers shared by the rules: paths, and the resolved settings each rule passes as `params`
# (Snakemake's params rerun trigger then reruns exactly what a parameter change affects).
import glob
import json
import os

import yaml

from grcf.cli import feature_options
from grcf.config import resolve_run

PARAMS_FILE = "params.yaml"
RUN = "runs/{dataset}/{variant}/seed{seed}"
# code is an input of every step, so a code change reruns what it may affect
SRC = sorted(glob.glob("src/grcf/**/*.py", recursive=True))

wildcard_constraints:
    dataset=r"[A-Za-z0-9_]+",
    variant=r"[A-Za-z0-9_]+",
    seed=r"\d+",

with open(PARAMS_FILE) as _f:
    if config != yaml.safe_load(_f):
        raise ValueError("config differs from params.yaml: the grcf commands read params.yaml, so edit it there instead of using --config")


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def run_settings(w, *keys):
    cfg = resolve_run(config, w.dataset, w.variant)
    return as_json({k: cfg[k] for k in keys})


def stage1_settings(w):
    cfg = resolve_run(config, w.dataset, w.variant)
    keys = ("model", "loss", "stage1", "task", "metrics", "modalities", "device")
    return as_json({**{k: cfg[k] for k in keys}, "objective": cfg["stage2"]["objective"]})


def dataset_settings(w):
    return as_json(feature_options(config, w.dataset))


def dataset_sources(w):
    """The user's files a dataset is built from (none for the embedded generator)."""
    kind, path, options = feature_options(config, w.dataset)
    if path is None:
        return []
    if kind == "mustard" and str(options.get("split", "")).startswith("fold"):
        return [path, os.path.join(os.path.dirname(path), "split_indices.p")]
    return [path]


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
    return expand("models/{dataset}/{variant}", dataset=config["run"]["datasets"], variant=variants)
