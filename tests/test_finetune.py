"""Fine-tuning the text transformer inside both stages (the GPU path), exercised on CPU."""

import numpy as np
import pytest
import torch

from grcf.training.evaluate import evaluate_run
from grcf.training.train import load_checkpoint, train_stage1, train_stage2
from support.stores import finetune_run


@pytest.mark.slow  # > 30 s on 2 cores (a MiniLM trained through both stages)
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
