"""Model bundles for the tests: trained and exported in this process by the pipeline's own steps.

`small_params` and `train_and_export` are the one way the tests (and bench_predict) make a bundle.
`text_bundle` is the API and demo tests' model: the shipped one, or a tiny one trained here. The tiny bundle is the real pipeline in small: a text-only MMSA raw root from 360 rows of the
shared MOSI label.csv, features with the offline MiniLM, 8 epochs per stage, `grcf export`.
About half a minute on 2 cores; the tests use it when the shipped model is absent (or when
GRCF_TEST_TINY_BUNDLE=1, to test the code without the shipped weights).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MOSI = REPO.parent / "shared" / "data" / "mosi"
SIZES = {"train": 240, "valid": 60, "test": 60}


def shipped_bundle() -> Path | None:
    from grcf.use.api import is_bundle, pretrained_path

    path = pretrained_path()
    return path if is_bundle(path) and not os.environ.get("GRCF_TEST_TINY_BUNDLE") else None


def small_params(tmp: Path, name: str, dataset: dict, *, seeds=(0,), epochs: int = 1, hidden: int | None = 8) -> dict:
    """params.yaml with `dataset` alone as `name` and the grcf variant, `epochs` per stage (no early stop
    before), written to tmp/params.yaml and loaded as the pipeline loads it. `hidden=None` keeps the default."""
    from grcf.config import load_params

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"] = {name: dataset}
    params["run"] = {"datasets": [name], "variants": ["grcf"], "seeds": list(seeds)}
    params["export"] = {"variants": ["grcf"]}
    params.pop("cv", None)
    params["sweep"]["dataset"] = name
    params["device"] = "cpu"
    params["threads"] = 1
    for stage in ("stage1", "stage2"):
        params[stage].update(epochs=epochs, patience=epochs)
    if hidden is not None:
        params["model"]["hidden"] = hidden
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    return load_params(tmp / "params.yaml")


def train_and_export(tmp: Path, params: dict, name: str, *, progress: bool = False) -> Path:
    """The pipeline's steps in this process: features, both stages and evaluation for each seed of
    `params`, then `grcf export` of the best-validation seed. Returns the bundle's folder."""
    from grcf.cli import main
    from grcf.config import resolve_run
    from grcf.data.datasets import build, feature_options
    from grcf.training.evaluate import evaluate_run
    from grcf.training.train import train_stage1, train_stage2

    store = tmp / "features" / f"{name}.parquet"
    kind, src, options = feature_options(params, name)
    build(kind, src, store, {**options, "progress": progress})
    cfg = resolve_run(params, name, "grcf")
    for seed in params["run"]["seeds"]:
        run = tmp / "runs" / name / "grcf" / f"seed{seed}"
        train_stage1(cfg, store, run / "stage1.pt", run / "stage1_log.csv", seed)
        train_stage2(cfg, store, run / "stage1.pt", run / "stage2.pt", run / "stage2_log.csv", seed)
        evaluate_run(cfg, store, run / "stage2.pt", run, seed)
    bundle = tmp / "models" / name / "grcf"
    assert main(["export", str(tmp / "runs" / name / "grcf"), str(bundle), "--features", str(store),
                 "--params", str(tmp / "params.yaml")]) == 0
    return bundle


def mini_mosi_root(out: Path) -> pd.DataFrame:
    """An MMSA raw root at `out` of the 27 shared MOSI clips (symlinked) and their label.csv rows:
    video 03bSnISJMiM is train, clips 1-7 of the other valid, the rest test. Returns the rows."""
    if not (MOSI / "Raw").is_dir():
        pytest.skip(f"{MOSI}/Raw (shared real data) not present")
    labels = pd.read_csv(MOSI / "label.csv", dtype=str, keep_default_na=False)
    clips = sorted(MOSI.glob("Raw/*/*.mp4"))
    keep = {(p.parent.name, p.stem) for p in clips}
    rows = labels[[(v, c) in keep for v, c in zip(labels.video_id, labels.clip_id)]].copy()
    rows["mode"] = ["train" if v == "03bSnISJMiM" else "valid" if int(c) <= 7 else "test"
                    for v, c in zip(rows.video_id, rows.clip_id)]
    (out / "Raw").mkdir(parents=True, exist_ok=True)
    rows.to_csv(out / "label.csv", index=False)
    for p in clips:
        (out / "Raw" / p.parent.name).mkdir(exist_ok=True)
        link = out / "Raw" / p.parent.name / p.name
        if not link.is_symlink():
            link.symlink_to(p)
    return rows


def tiny_text_bundle(tmp: Path) -> Path:
    """Train and export a small text-only GRCF bundle under `tmp`; skip without the shared MOSI labels."""
    if not (MOSI / "label.csv").is_file():
        pytest.skip(f"{MOSI}/label.csv (shared real data) not present")
    labels = pd.read_csv(MOSI / "label.csv", dtype=str, keep_default_na=False)
    root = tmp / "mosi_small"
    root.mkdir(parents=True)
    pd.concat([labels[labels["mode"] == s].head(n) for s, n in SIZES.items()]).to_csv(root / "label.csv", index=False)
    params = small_params(tmp, "tiny", {"source": "mmsa_raw", "path": str(root), "task": "regression",
                                        "metrics": "mosi", "modalities": ["text"]}, epochs=8, hidden=16)
    return train_and_export(tmp, params, "tiny")


def text_bundle(tmp_path_factory) -> Path:
    """The shipped bundle when present, else a tiny one (built once per call site's fixture scope)."""
    return shipped_bundle() or tiny_text_bundle(tmp_path_factory.mktemp("tiny_bundle"))


def sample_clip(tmp: Path) -> tuple[Path, str | None]:
    """A clip to score: a real shared MOSI clip (its speech recognised), else a synthetic mp4 with a noise
    track, which has no speech and so comes with its transcript (pass it as the transcript)."""
    real = MOSI / "Raw" / "03bSnISJMiM" / "1.mp4"
    if real.is_file():
        return real, None
    path = tmp / "synthetic.mp4"
    write_clip(path, seconds=3.0)
    return path, "what a great movie, I loved every minute of it"


def write_clip(path: Path, *, seconds: float = 3.0, seed: int = 0, audio: str | None = "tone") -> Path:
    """A small mp4 written with PyAV: moving grey frames and an audio track: a quiet tone with noise
    (`audio="tone"`), digital silence (`"silence"`) or none (`None`)."""
    import av
    import numpy as np

    rng = np.random.default_rng(seed)
    sr, fps = 16000, 10
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=sr) if audio else None
        if a is not None:
            a.layout = "mono"  # before the first packet opens the codec
        for i in range(int(seconds * fps)):
            img = np.full((48, 64, 3), 100 + (i * 7) % 100, np.uint8)
            for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        if a is not None:
            t = np.arange(int(seconds * sr)) / sr
            wave = (0.1 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
            if audio == "silence":
                wave[:] = 0.0
            for k in range(wave.size // 1024):
                f = av.AudioFrame.from_ndarray(wave[None, k * 1024:(k + 1) * 1024], format="fltp", layout="mono")
                f.sample_rate, f.pts = sr, k * 1024
                for pkt in a.encode(f):
                    c.mux(pkt)
            for pkt in a.encode(None):
                c.mux(pkt)
        for pkt in v.encode(None):
            c.mux(pkt)
    return path
