"""A text model bundle for the API and demo tests: the shipped one, or a tiny one trained here.

The tiny bundle is the real pipeline in small: a text-only MMSA raw root from 360 rows of the
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


def tiny_text_bundle(tmp: Path) -> Path:
    """Train and export a small text-only GRCF bundle under `tmp`; skip without the shared MOSI labels."""
    from grcf.cli import main
    from grcf.config import load_params, resolve_run
    from grcf.data.datasets import build, feature_options
    from grcf.training.evaluate import evaluate_run
    from grcf.training.train import train_stage1, train_stage2

    if not (MOSI / "label.csv").is_file():
        pytest.skip(f"{MOSI}/label.csv (shared real data) not present")
    labels = pd.read_csv(MOSI / "label.csv", dtype=str, keep_default_na=False)
    root = tmp / "mosi_small"
    root.mkdir(parents=True)
    pd.concat([labels[labels["mode"] == s].head(n) for s, n in SIZES.items()]).to_csv(root / "label.csv", index=False)

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"] = {"tiny": {"source": "mmsa_raw", "path": str(root), "task": "regression", "metrics": "mosi",
                                   "modalities": ["text"]}}
    params["run"] = {"datasets": ["tiny"], "variants": ["grcf"], "seeds": [0]}
    params["export"] = {"variants": ["grcf"]}
    params.pop("cv", None)
    params["sweep"]["dataset"] = "tiny"
    params["device"] = "cpu"
    for stage in ("stage1", "stage2"):
        params[stage].update(epochs=8, patience=8)
    params["model"]["hidden"] = 16
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    params = load_params(tmp / "params.yaml")

    store = tmp / "features" / "tiny.parquet"
    kind, src, options = feature_options(params, "tiny")
    build(kind, src, store, {**options, "progress": False})
    cfg = resolve_run(params, "tiny", "grcf")
    run = tmp / "runs" / "tiny" / "grcf" / "seed0"
    train_stage1(cfg, store, run / "stage1.pt", run / "stage1_log.csv", 0)
    train_stage2(cfg, store, run / "stage1.pt", run / "stage2.pt", run / "stage2_log.csv", 0)
    evaluate_run(cfg, store, run / "stage2.pt", run, 0)
    bundle = tmp / "models" / "tiny" / "grcf"
    assert main(["export", str(run.parent), str(bundle), "--features", str(store),
                 "--params", str(tmp / "params.yaml")]) == 0
    return bundle


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


def write_clip(path: Path, *, seconds: float = 3.0, seed: int = 0) -> Path:
    """A small mp4 written with PyAV: moving grey frames and a quiet noise-plus-tone audio track."""
    import av
    import numpy as np

    rng = np.random.default_rng(seed)
    sr, fps = 16000, 10
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=sr)
        a.layout = "mono"
        for i in range(int(seconds * fps)):
            img = np.full((48, 64, 3), 100 + (i * 7) % 100, np.uint8)
            for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        t = np.arange(int(seconds * sr)) / sr
        wave = (0.1 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
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
