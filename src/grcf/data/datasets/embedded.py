"""The embedded default dataset: a seeded synthetic multimodal sentiment set.

A latent sentiment z in [-3, 3] drives three modalities with different strength and noise.
Each sequence has a few "cue" steps that carry z (linearly on some dims, non-linearly on
others) among noise steps, so a model must pool over time; labels are z plus annotator-like
noise, rounded to thirds as averaged integer ratings are.
"""

from __future__ import annotations

import numpy as np

from grcf.errors import GrcfError
from grcf.data.store import write_store

KEYS = ("seed", "n_train", "n_valid", "n_test", "dims", "max_len", "strength", "noise", "label_noise")


def generate(cfg: dict | None = None) -> dict:
    """Return ids, splits, labels and per-modality sequences; deterministic in cfg['seed'].

    `cfg` is `datasets.embedded.generator` of params.yaml (the one place for these values).
    """
    missing = [k for k in KEYS if k not in (cfg or {})]
    if missing:
        raise GrcfError(f"embedded generator settings lack {missing} (see datasets.embedded.generator in params.yaml)")
    rng = np.random.default_rng(cfg["seed"])
    sizes = {"train": cfg["n_train"], "valid": cfg["n_valid"], "test": cfg["n_test"]}
    n = sum(sizes.values())
    splits = np.concatenate([[s] * k for s, k in sizes.items()])
    z = np.clip(rng.normal(0.0, 1.3, n), -3, 3)
    labels = np.clip(np.round((z + rng.normal(0.0, cfg["label_noise"], n)) * 3) / 3, -3, 3)
    modalities = {}
    for m, dim in cfg["dims"].items():
        # each modality has its own fixed directions for the linear and non-linear cue
        w_lin = rng.normal(size=dim) / np.sqrt(dim)
        w_sq = rng.normal(size=dim) / np.sqrt(dim)
        max_len, strength, noise = cfg["max_len"][m], cfg["strength"][m], cfg["noise"][m]
        seqs = []
        for i in range(n):
            length = int(rng.integers(max(2, max_len // 3), max_len + 1))
            x = rng.normal(0.0, noise, (length, dim))
            cues = rng.random(length) < 0.3
            cues[rng.integers(length)] = True
            x[cues] += strength * (z[i] * w_lin + (z[i] ** 2 / 3 - 1) * w_sq) * 2.0
            seqs.append(x.astype(np.float32))
        modalities[m] = seqs
    ids = [f"emb{i:05d}" for i in range(n)]
    return {
        "ids": ids,
        "video_ids": [f"vid{i // 10:04d}" for i in range(n)],
        "clip_ids": [str(i % 10) for i in range(n)],
        "splits": list(splits),
        "labels": labels,
        "modalities": modalities,
        "latent": z,
    }


def build(out, options: dict | None = None):
    data = generate(options)
    meta = {
        "dataset": (options or {}).get("dataset", "embedded"),
        "producer": "grcf.datasets.embedded",
        "task": "regression",
        "label_range": [-3.0, 3.0],
        "modalities": {m: {"producer": "synthetic"} for m in data["modalities"]},
    }
    return write_store(
        out,
        ids=data["ids"],
        splits=data["splits"],
        labels=data["labels"],
        modalities=data["modalities"],
        meta=meta,
        video_ids=data["video_ids"],
        clip_ids=data["clip_ids"],
    )
