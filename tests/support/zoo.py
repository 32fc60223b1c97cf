"""MMSA model-zoo backbones in the tests: a short CPU run config and small architecture arguments."""

from __future__ import annotations

from grcf.config import load_params, resolve_run

from .project import REPO

MAX_LEN = {"text": 10, "audio": 24, "vision": 8}


def zoo_cfg(name, **stage):
    """The `embedded` grcf run of params.yaml with the MMSA backbone ``name``, short CPU stages (``stage``: overrides)."""
    cfg = resolve_run(load_params(REPO / "params.yaml"), "embedded", "grcf")
    cfg["model"].update(backbone=f"mmsa.{name}", max_len=dict(MAX_LEN))
    for s in ("stage1", "stage2"):
        cfg[s].update({"epochs": 4, "patience": 10, "batch_size": 8, **stage})
    cfg.update(device="cpu", threads=1)
    return cfg


# small MMSA arguments for the models whose defaults are slow on CPU (the architecture is theirs)
SMALL_ARGS = {
    "mult": {"dst_feature_dim_nheads": [8, 2], "nlevels": 1},
    "tfn": {"hidden_dims": [16, 8, 16], "text_out": 8, "post_fusion_dim": 16},
    "graph_mfn": {"hidden_dims": [16, 8, 16], "memsize": 16, "inner_node_dim": 8},
    "self_mm": {"use_finetune": False},  # frozen BERT in the tests (CPU time); MMSA fine-tunes it by default
    "misa": {"use_finetune": False},
}
