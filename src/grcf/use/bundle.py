"""Model bundles: a trained run as a self-contained folder that `grcf predict` reads.

A bundle holds `model.safetensors` (weights and buffers: input statistics, calibration
scale/bias), `config.json` (architecture, dims, task, label range and every feature setting of
the training store), `metrics.json` (valid and test metrics of the exported run) and a
`README.md` model card. Loading reads only safetensors and JSON (never a pickle) and rebuilds
the model through `grcf.training.model.build_model`, so any backbone the factory knows is bundled alike.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from grcf.errors import GrcfError
from grcf.provenance import file_sha256
from grcf.training.spec import backbone_spec

log = logging.getLogger(__name__)

FORMAT = "grcf-bundle"
FORMAT_VERSION = 1
FILES = ("model.safetensors", "config.json", "metrics.json", "README.md")
DEFAULT_PREDICT = {"max_segment_seconds": 30.0}


class BundleError(GrcfError):
    def __init__(self, path, message):
        super().__init__(f"{path}: {message}")


# ------------------------------------------------------------------ export


def seed_dirs(run_root, seeds=None) -> list[Path]:
    run_root = Path(run_root)
    if seeds is not None:
        dirs = [run_root / f"seed{s}" for s in seeds]
    else:
        dirs = sorted((p for p in run_root.glob("seed*") if p.is_dir()), key=lambda p: p.name)
    if not dirs:
        raise GrcfError(f"{run_root}: no seed<k> run folders")
    return dirs


def validation_score(run_dir: Path, select: str) -> float:
    """The run's stage-2 selection score (higher is better) on the validation split only."""
    import pandas as pd

    from grcf.training.metrics import selection_score

    path = run_dir / "predictions.csv"
    if not path.exists():
        raise GrcfError(f"{path}: not found; run `grcf evaluate` for this run first")
    df = pd.read_csv(path)
    valid = df[df["split"] == "valid"]
    if valid.empty:
        raise GrcfError(f"{path}: no validation rows to choose a seed by")
    return float(selection_score(select, valid["prediction"].to_numpy(), valid["label"].to_numpy()))


def pick_seed(run_root, seeds=None) -> tuple[Path, dict]:
    """(run folder of the best seed by validation score, {seed folder: score})."""
    scores = {}
    for d in seed_dirs(run_root, seeds):
        select = _read_json(d / "run_info.json")["params"]["stage2"]["select"]
        scores[d] = validation_score(d, select)
    best = max(scores, key=lambda d: (scores[d], -int(d.name[4:])))  # ties: the lowest seed
    return best, {d.name: s for d, s in scores.items()}


def feature_settings(store_meta: dict) -> dict:
    """The extraction settings that produced a training store, per modality, from its metadata
    (producer strings in their canonical form, whatever version of grcf wrote the store)."""
    from grcf.data.extractors import canonical, settings_of

    out = {}
    mods = store_meta.get("modalities", {})
    if "text" in mods:
        t = mods["text"]
        producer = canonical(t.get("producer"))
        out["text"] = {"producer": producer, "dim": t.get("dim"), "level": t.get("level"),
                       "model": settings_of(producer).get("model"), "max_length": t.get("max_length")}
    if "audio" in mods:
        a = mods["audio"]
        producer = canonical(a.get("producer"))
        out["audio"] = {"producer": producer, "dim": a.get("dim"), "backend": settings_of(producer).get("backend"),
                        "sample_rate": a.get("sample_rate"), "hop_seconds": a.get("hop_seconds")}
    if "vision" in mods:
        v = mods["vision"]
        out["vision"] = {"producer": canonical(v.get("producer")), "dim": v.get("dim"), "fps": v.get("fps")}
    return out


def export_bundle(run_root, out_dir, *, seed: int | None = None, seeds=None, features=None,
                  predict_settings: dict | None = None) -> Path:
    """Write the bundle of the best-validation seed (or `seed`) of runs/<dataset>/<variant>."""
    import torch

    from grcf.data.store import read_meta

    run_root, out_dir = Path(run_root), Path(out_dir)
    if seed is not None:
        run_dir, scores = run_root / f"seed{seed}", None
        if not run_dir.is_dir():
            raise GrcfError(f"{run_dir}: run folder not found")
    else:
        run_dir, scores = pick_seed(run_root, seeds)
    info = _read_json(run_dir / "run_info.json")
    cfg = info["params"]
    metrics = _read_json(run_dir / "metrics.json")
    ckpt_path = run_dir / "stage2.pt"
    if not ckpt_path.exists():
        raise GrcfError(f"{ckpt_path}: checkpoint not found")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    features = Path(features) if features else Path("features") / f"{cfg['dataset']}.parquet"
    store_meta = read_meta(features)
    dims = {m: int(d) for m, d in ckpt["dims"].items()}
    for m, d in dims.items():  # the store must be the one the run was trained on
        sd = store_meta.get("modalities", {}).get(m, {}).get("dim")
        if sd is not None and int(sd) != d and not (m == "text" and backbone_spec(ckpt["model_cfg"]).text_is_tokens):
            raise GrcfError(f"{features}: {m} dim {sd} differs from the checkpoint's {d}; pass the run's feature store")
    model_cfg = ckpt["model_cfg"]
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "grcf_version": _version("grcf"),
        "torch_version": _version("torch"),
        "dataset": cfg["dataset"],
        "variant": cfg["variant"],
        "seed": int(info["seed"]),
        "selection": {"split": "valid", "score": cfg["stage2"]["select"], "scores_by_seed": scores},
        "task": cfg["task"],
        "metrics_kind": cfg["metrics"],
        "label_range": store_meta.get("label_range"),
        "modalities": list(dims),
        "dims": dims,
        "model_cfg": model_cfg,
        "features": {"source_producer": store_meta.get("producer"), **feature_settings(store_meta)},
        "store_meta": store_meta,
        "predict": {**DEFAULT_PREDICT, **(predict_settings or {})},
    }
    if backbone_spec(model_cfg).is_zoo:
        config["mmsa_version"] = _version("MMSA")
    state = {k: v.detach().cpu().contiguous() for k, v in ckpt["state_dict"].items()}
    _write_bundle(out_dir, state, config, {k: metrics.get(k) for k in ("valid", "test")}, run_dir)
    return out_dir


def _write_bundle(out_dir: Path, state: dict, config: dict, metrics: dict, run_dir: Path) -> None:
    from safetensors.torch import save_file

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        config["weights_sha256"] = file_sha256(tmp / "model.safetensors")
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=_np) + "\n")
        (tmp / "metrics.json").write_text(json.dumps({**metrics, "run": str(run_dir)}, indent=2, sort_keys=True, default=_np) + "\n")
        (tmp / "README.md").write_text(model_card(config, metrics))
        os.chmod(tmp, 0o755)
        if out_dir.exists():  # replace: old aside, new in, old removed
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def model_card(config: dict, metrics: dict) -> str:
    f = config["features"]
    mods = ", ".join(config["modalities"])
    lines = [
        f"# grcf model: {config['dataset']} / {config['variant']} (seed {config['seed']})",
        "",
        f"Task: {config['task']} ({config['metrics_kind']} metrics), label range {config['label_range']}.",
        f"Modalities it was trained with: {mods}. Chosen by validation {config['selection']['score']}"
        + (f" among seeds {config['selection']['scores_by_seed']}" if config["selection"]["scores_by_seed"] else " (seed given)")
        + "; the test split was not used to choose it.",
        "",
        "## Metrics",
        "",
        "| split | " + " | ".join(sorted((metrics.get("test") or {}))) + " |",
        "|---|" + "---|" * len(metrics.get("test") or {}),
    ]
    for split in ("valid", "test"):
        m = metrics.get(split) or {}
        lines.append(f"| {split} | " + " | ".join(f"{m[k]:.4f}" for k in sorted(m)) + " |")
    lines += ["", "## Features", ""]
    for m in config["modalities"]:
        s = f.get(m, {})
        lines.append(f"- {m}: " + ", ".join(f"{k}={v}" for k, v in s.items() if v is not None))
    lines += [
        "",
        "## Intended use and limits",
        "",
        "Research use: sentiment (or the dataset's label) of short English monologue clips like the"
        f" training data ({config['dataset']}). Text is read by the encoder above"
        f" ({(f.get('text') or {}).get('model') or 'n/a'}), so other languages are out of scope; audio and"
        " face features come from grcf's own extractors, so the model only applies to inputs whose"
        " features grcf extracts the same way (`grcf predict` refuses others). Inputs lacking a modality"
        " are scored with it marked absent, as in training. Scores are not calibrated probabilities"
        " unless the task is classification.",
        "",
        "```bash",
        "grcf predict <this folder> video.mp4 -o predictions.csv",
        "```",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ load


@dataclass
class Bundle:
    path: Path
    config: dict
    metrics: dict
    model: object

    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def modalities(self) -> list[str]:
        return list(self.config["modalities"])


def load_bundle(path, device="cpu") -> Bundle:
    """Rebuild the model of a bundle folder; refuse a bundle whose files do not match."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from grcf.training.model import build_model

    path = Path(path)
    if not path.is_dir():
        raise BundleError(path, "bundle folder not found" if not path.exists() else "a bundle is a folder (from `grcf export`)")
    for name in ("model.safetensors", "config.json", "metrics.json"):
        if not (path / name).is_file():
            raise BundleError(path, f"incomplete bundle: {name} is missing")
    config = _read_json(path / "config.json", BundleError)
    metrics = _read_json(path / "metrics.json", BundleError)
    if config.get("format") != FORMAT:
        raise BundleError(path / "config.json", f"not a grcf bundle config (format {config.get('format')!r})")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(path / "config.json", f"bundle format version {version} is newer than this grcf reads"
                          f" ({FORMAT_VERSION}); upgrade grcf")
    for key in ("dims", "model_cfg", "task", "modalities", "features"):
        if key not in config:
            raise BundleError(path / "config.json", f"missing key {key!r}")
    weights = path / "model.safetensors"
    digest = config.get("weights_sha256")
    if digest and file_sha256(weights) != digest:
        raise BundleError(weights, "weights do not match config.json (sha256 differs): files from different bundles?")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise BundleError(weights, f"unreadable weights ({type(e).__name__}: {e})") from None
    # config.json keys are sorted; the fusion head's input order is the modality order
    dims = {m: int(config["dims"][m]) for m in config["modalities"]}
    model = build_model(dims, config["model_cfg"])
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise BundleError(weights, f"weights do not fit the architecture in config.json (missing {missing[:3]}, unexpected {extra[:3]})")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise BundleError(weights, f"weights do not fit the architecture: {k} has shape {tuple(state[k].shape)},"
                              f" config.json implies {tuple(v.shape)}")
    model.load_state_dict(state)
    model.to(device).eval()
    return Bundle(path=path, config=config, metrics=metrics, model=model)


# ------------------------------------------------------------------ helpers


def _read_json(path: Path, err=GrcfError):
    if not path.exists():
        raise err(path, "not found") if err is BundleError else GrcfError(f"{path}: not found")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        msg = f"not valid JSON ({e})"
        raise (err(path, msg) if err is BundleError else GrcfError(f"{path}: {msg}")) from None


def _version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _np(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
