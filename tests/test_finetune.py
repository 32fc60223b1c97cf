"""Fine-tuning the text transformer inside both stages (the GPU path), exercised on CPU."""

import numpy as np
import torch

from grcf.config import load_params, resolve_run
from grcf.training.evaluate import evaluate_run
from grcf.data.store import write_store
from grcf.training.train import load_checkpoint, train_stage1, train_stage2

WORDS = {"great": 2.0, "good": 1.0, "fine": 0.0, "bad": -1.0, "awful": -2.0}


def _text_store(path, n=48, seed=0):
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
    _text_store(store)
    params = load_params("params.yaml")
    params["datasets"]["toy"] = {"source": "parquet", "path": str(store), "task": "regression", "metrics": "mosi"}
    return store, resolve_run(params, "toy", "grcf_finetune")


def test_finetune_two_stages_on_cpu(tmp_path):
    store, cfg = finetune_run(tmp_path)
    cfg["device"] = "cpu"
    for s in ("stage1", "stage2"):
        cfg[s].update(epochs=2, batch_size=8)
    info1 = train_stage1(cfg, store, tmp_path / "s1.pt", tmp_path / "s1.csv", seed=0)
    assert info1["epochs_run"] == 2
    info2 = train_stage2(cfg, store, tmp_path / "s1.pt", tmp_path / "s2.pt", tmp_path / "s2.csv", seed=0)
    assert info2["epochs_run"] == 2

    model, ckpt = load_checkpoint(tmp_path / "s2.pt", torch.device("cpu"))  # weights_only=True inside
    pretrained, _ = load_checkpoint(tmp_path / "s1.pt", torch.device("cpu"))
    enc2 = model.encoders["text"].transformer.embeddings.word_embeddings.weight
    enc1 = pretrained.encoders["text"].transformer.embeddings.word_embeddings.weight
    assert not torch.equal(enc1, enc2), "stage 2 did not update the transformer"
    result = evaluate_run(cfg, store, tmp_path / "s2.pt", tmp_path / "eval", seed=0)
    assert np.isfinite(result["test"]["MAE"])
