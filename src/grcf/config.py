"""params.yaml: load, validate against the JSON schema, resolve one run's settings.

A run is (dataset, variant, seed). Its settings are the base sections, then the dataset's
`overrides`, then the variant's overrides, merged key by key.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from .errors import GrcfError

RUN_SECTIONS = ("model", "loss", "stage1", "stage2")
SCHEMA = Path(__file__).with_name("params.schema.yaml")


def load_params(path="params.yaml") -> dict:
    path = Path(path)
    if not path.exists():
        raise GrcfError(f"{path}: parameter file not found")
    with open(path) as f:
        params = yaml.safe_load(f)
    validate_params(params, path)
    return params


def validate_params(params: dict, source="params") -> None:
    import jsonschema

    with open(SCHEMA) as f:
        schema = yaml.safe_load(f)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(params), key=str)
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "<top>"
        raise GrcfError(f"{source}: invalid at {where}: {e.message}")
    for name in params["run"]["variants"]:
        if name not in params["variants"]:
            raise GrcfError(f"{source}: run.variants names unknown variant {name!r}")
    for name in params["run"]["datasets"]:
        if name not in params["datasets"]:
            raise GrcfError(f"{source}: run.datasets names unknown dataset {name!r}")
    for name in params.get("export", {}).get("variants", []):
        if name not in params["variants"]:
            raise GrcfError(f"{source}: export.variants names unknown variant {name!r}")
    for group, folds in params.get("cv", {}).items():
        unknown = [f for f in folds if f not in params["datasets"]]
        if unknown:
            raise GrcfError(f"{source}: cv.{group} names unknown dataset(s) {unknown}")
        if group in params["datasets"]:
            raise GrcfError(f"{source}: cv.{group} has the name of a dataset; give the group its own name")


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def dataset_config(params: dict, dataset: str) -> dict:
    try:
        return params["datasets"][dataset]
    except KeyError:
        raise GrcfError(f"unknown dataset {dataset!r}; params.yaml defines {sorted(params['datasets'])}") from None


def resolve_run(params: dict, dataset: str, variant: str) -> dict:
    """Everything one (dataset, variant) run uses, with `auto` choices made for the task."""
    if variant not in params["variants"]:
        raise GrcfError(f"unknown variant {variant!r}; params.yaml defines {sorted(params['variants'])}")
    ds = dataset_config(params, dataset)
    cfg = {k: params[k] for k in RUN_SECTIONS}
    cfg = deep_merge(cfg, ds.get("overrides", {}))
    cfg = deep_merge(cfg, params["variants"][variant])
    task = ds.get("task", "regression")
    classification = task == "classification"
    if cfg["stage1"]["select"] == "auto":
        cfg["stage1"]["select"] = "auc" if classification else "corr"
    if cfg["stage2"]["select"] == "auto":
        cfg["stage2"]["select"] = "acc" if classification else "mae"
    if cfg["stage2"]["objective"] == "auto":
        cfg["stage2"]["objective"] = "bce" if classification else "mae"
    cfg.update(
        task=task,
        metrics=ds.get("metrics", "binary" if classification else "mosi"),
        modalities=ds.get("modalities"),
        device=params.get("device", "auto"),
        threads=params.get("threads", 0),
        dataset=dataset,
        variant=variant,
    )
    return cfg
