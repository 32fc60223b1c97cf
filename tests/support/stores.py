"""Small feature stores written with grcf's own ``write_store``, and the run config that trains on one."""

from __future__ import annotations

import numpy as np

from grcf.config import load_params, resolve_run
from grcf.data.store import write_store

from .project import REPO


def small_store(path, seed=0, n=30):
    """A toy regression store of n rows: ragged text (some empty), audio missing on every 4th row, some texts None."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, 9, n)
    text = [rng.normal(size=(k, 6)).astype(np.float32) for k in lens]
    audio = [None if i % 4 == 0 else rng.normal(size=(int(rng.integers(1, 12)), 3)).astype(np.float32) for i in range(n)]
    write_store(path, ids=[f"s{i}" for i in range(n)], splits=(["train", "valid", "test"] * n)[:n],
                labels=rng.uniform(-3, 3, n), texts=[f"text {i}" if i % 5 else None for i in range(n)],
                modalities={"text": text, "audio": audio},
                meta={"dataset": "toy", "task": "regression", "label_range": [-3, 3]})
    return path


WORDS = {"great": 2.0, "good": 1.0, "fine": 0.0, "bad": -1.0, "awful": -2.0}


def text_store(path, n=48, seed=0):
    """A toy store whose label is carried by one word of its raw text (and 4x8 noise text features)."""
    rng = np.random.default_rng(seed)
    words = rng.choice(list(WORDS), size=n)
    texts = [f"the movie was {w}" for w in words]
    labels = np.array([WORDS[w] for w in words]) + rng.normal(0, 0.1, n).clip(-0.5, 0.5)
    splits = ["train"] * (n // 2) + ["valid"] * (n // 4) + ["test"] * (n - n // 2 - n // 4)
    feats = [rng.normal(size=(4, 8)).astype(np.float32) for _ in range(n)]
    write_store(path, ids=[f"s{i}" for i in range(n)], splits=splits, labels=labels, texts=texts,
                modalities={"text": feats}, meta={"dataset": "toy", "task": "regression", "label_range": [-3, 3]})


def finetune_run(tmp_path):
    """(store, cfg): the toy store in tmp_path and the `grcf_finetune` run config of params.yaml on it."""
    store = tmp_path / "toy.parquet"
    text_store(store)
    params = load_params(REPO / "params.yaml")
    params["datasets"]["toy"] = {"source": "parquet", "path": str(store), "task": "regression", "metrics": "mosi"}
    return store, resolve_run(params, "toy", "grcf_finetune")
