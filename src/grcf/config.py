"""params.yaml: load, validate against the JSON schema, resolve one run's settings.

A run is (dataset, variant, seed). Its settings are the base sections, then the dataset's
`overrides`, then the variant's overrides, merged key by key.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path

import yaml

from grcf.errors import GrcfError
from grcf.schema import load_schema, settings_at

RUN_SECTIONS = ("model", "loss", "stage1", "stage2")
DEFAULT_EXPERIMENT = "default"  # the experiment params.yaml alone makes


def experiment_name(params: dict) -> str:
    """The folder name of the experiment `params` make: runs/<it>/, results/<it>/, models/<it>/."""
    return params.get("experiment") or DEFAULT_EXPERIMENT


def load_yaml(path) -> object:
    """A YAML file's content; a syntax error is a GrcfError naming the file, line and column."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context, started = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and started and mark and started.line != mark.line:  # e.g. an unclosed [ two lines up
            problem += f" ({context} at line {started.line + 1})"
        raise GrcfError(f"{where}: not valid YAML: {problem}") from None
    except OSError as e:
        raise GrcfError(f"{path}: cannot read ({e.strerror})") from None


def check_experiment_files(layers, default="params.yaml") -> None:
    """Each experiment file (a --configfile layer) names its experiment, so that its outputs do not
    land in, and overwrite, those of params.yaml or of another experiment."""
    for name, layer in layers:
        if name in (default, "--config"):
            continue
        if not isinstance(layer, dict) or "experiment" not in layer:
            stem = Path(name).stem
            raise GrcfError(f"{name}: an experiment file names its experiment (add `experiment: {stem}`), "
                            f"so its outputs live apart under runs/{stem}/, results/{stem}/, models/{stem}/")


def load_params(path="params.yaml") -> dict:
    path = Path(path)
    if not path.exists():
        raise GrcfError(f"{path}: parameter file not found")
    params = load_yaml(path)
    validate_params(params, path)
    return params


def _origin(dotted_path: tuple, source, layers) -> str:
    """The last of `layers` [(name, dict)] that sets the key at `dotted_path` (later layers override)."""
    found = source
    for name, layer in layers:
        node = layer
        for key in dotted_path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            found = name
    return str(found)


def unknown_settings(params: dict, errors, source="params", layers=()) -> list[str]:
    """One message per key the schema does not name, with the closest valid key."""
    out, seen = [], set()
    for e in errors:
        if e.validator not in ("additionalProperties", "unevaluatedProperties") or not isinstance(e.instance, dict):
            continue
        path = tuple(e.absolute_path)
        allowed = settings_at(params, path)
        for key in e.instance if allowed is not None else ():
            if key in allowed or (*path, key) in seen:
                continue
            seen.add((*path, key))
            dotted = ".".join(map(str, (*path, key)))
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = (f"did you mean {'.'.join(map(str, (*path, close[0])))}?" if close
                    else f"the settings there are {', '.join(sorted(allowed))}")
            out.append(f"{_origin((*path, key), source, layers)}: {dotted} is not a setting; {hint}")
    return out


def validate_params(params: dict, source="params", layers=()) -> None:
    """Check params against the schema; `layers` [(file name, dict)] name the file a typo is in."""
    import jsonschema

    if not isinstance(params, dict):
        raise GrcfError(f"{source}: expected a mapping of settings, got {type(params).__name__}")
    errors = sorted(jsonschema.Draft202012Validator(load_schema()).iter_errors(params), key=str)
    unknown = unknown_settings(params, errors, source, layers)
    if unknown:
        raise GrcfError("\n".join(unknown))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "<top>"
        raise GrcfError(f"{_origin(tuple(e.absolute_path), source, layers)}: invalid at {where}: {e.message}")
    names = (("run", "variants", "variants", "variant"), ("run", "datasets", "datasets", "dataset"),
             ("export", "variants", "variants", "variant"))
    for section, key, defined, what in names:
        for name in params.get(section, {}).get(key, []):
            if name not in params[defined]:
                raise GrcfError(f"{_origin((section, key), source, layers)}: {section}.{key} names unknown {what} "
                                f"{name!r}; {_closest(name, params[defined])}")
    for group, folds in params.get("cv", {}).items():
        unknown = [f for f in folds if f not in params["datasets"]]
        if unknown:
            raise GrcfError(f"{_origin(('cv', group), source, layers)}: cv.{group} names unknown dataset(s) {unknown}; "
                            f"{_closest(unknown[0], params['datasets'])}")
        if group in params["datasets"]:
            raise GrcfError(f"{source}: cv.{group} has the name of a dataset; give the group its own name")


def _closest(name, defined) -> str:
    close = difflib.get_close_matches(str(name), sorted(defined), n=1)
    return f"did you mean {close[0]!r}?" if close else f"defined: {', '.join(sorted(defined))}"


def params_file_for(config: dict, layers=(), default="params.yaml", directory=".grcf/config") -> str:
    """The file a pipeline's `grcf` commands read: `default` when `config` is its content,
    else `config` written once to `<directory>/<content hash>.yaml` (Snakemake's --configfile
    and --config: every job then runs with the configuration Snakemake resolved)."""
    import hashlib

    from grcf.atomic import write_text

    if Path(default).exists() and yaml.safe_load(Path(default).read_text()) == config:
        return default
    text = yaml.safe_dump(config, sort_keys=True)
    path = Path(directory) / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    if not path.exists():
        made_of = " + ".join(name for name, _ in layers) or "a resolved configuration"
        write_text(path, f"# resolved from {made_of}; read by the grcf commands of that run\n{text}")
    return str(path)


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


def main(argv=None) -> int:
    """`python -m grcf.config FILE...`: check params/experiment files before Snakemake reads them
    (a YAML error then names the file and line, not Snakemake's "Config file is not valid JSON or
    YAML"); `make run EXPERIMENT=...` runs it first."""
    import sys

    for f in (sys.argv[1:] if argv is None else argv):
        try:
            load_yaml(f)
        except GrcfError as e:
            print(f"grcf: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
