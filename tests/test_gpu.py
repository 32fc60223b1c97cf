"""On a CUDA machine: fine-tuning trains on the GPU through both stages (skips without CUDA)."""

import numpy as np
import pytest
import torch

from grcf.training.evaluate import evaluate_run
from grcf.training.train import train_stage1, train_stage2
from support.stores import finetune_run

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_finetune_one_epoch_per_stage_on_the_gpu(tmp_path):
    store, cfg = finetune_run(tmp_path)
    assert cfg["device"] == "auto"  # the default picks the GPU
    for s in ("stage1", "stage2"):
        cfg[s].update(epochs=1, batch_size=8)
    torch.cuda.reset_peak_memory_stats()
    info1 = train_stage1(cfg, store, tmp_path / "s1.pt", tmp_path / "s1.csv", seed=0)
    info2 = train_stage2(cfg, store, tmp_path / "s1.pt", tmp_path / "s2.pt", tmp_path / "s2.csv", seed=0)
    assert info1["epochs_run"] == 1 and info2["epochs_run"] == 1
    for ckpt in ("s1.pt", "s2.pt"):
        assert torch.load(tmp_path / ckpt, weights_only=True)["device"].startswith("cuda")
    assert torch.cuda.max_memory_allocated() > 10 * 2**20  # the transformer's weights went to the GPU
    result = evaluate_run(cfg, store, tmp_path / "s2.pt", tmp_path / "eval", seed=0)
    assert np.isfinite(result["test"]["MAE"])
    assert (tmp_path / "eval" / "run_info.json").read_text().count('"device": "cuda') == 1
