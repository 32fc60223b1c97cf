"""Multimodal fusion regressor: per-modality masked encoders, late fusion, a scalar head.

Each modality is standardised with train-split statistics (kept as buffers, so a checkpoint
carries them), projected per time step, and pooled with masked attention. A sample that lacks
a modality gets a zero embedding and a presence flag of 0, so text-only data works as is.
The final affine `calibration` (scale, bias) is what stage 2's linear map sets.
"""

from __future__ import annotations

import torch
from torch import nn

from grcf.training.spec import backbone_spec


class ModalityEncoder(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.step = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.GELU()
        )
        self.score = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.step((x - self.mean) / self.std)
        logits = self.score(h).squeeze(-1).masked_fill(~mask, float("-inf"))
        present = mask.any(dim=1)
        # rows without any step would give softmax(all -inf) = NaN; give them uniform zeros instead
        logits = torch.where(present[:, None], logits, torch.zeros_like(logits))
        w = torch.softmax(logits, dim=1) * mask
        pooled = (w.unsqueeze(-1) * h).sum(dim=1)
        return pooled * present[:, None], present.to(h.dtype)


class TextTransformerEncoder(nn.Module):
    """A Hugging Face encoder fine-tuned end to end on token ids; masked mean pooling."""

    def __init__(self, name: str, hidden: int, dropout: float):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        from grcf.data.extractors.text import resolve_model_name

        path = resolve_model_name(name)
        # weights come from the checkpoint when one is loaded; from_pretrained gives the start point
        self.transformer = AutoModel.from_pretrained(path)
        width = AutoConfig.from_pretrained(path).hidden_size
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, hidden), nn.GELU())

    def forward(self, ids: torch.Tensor, mask: torch.Tensor):
        out = self.transformer(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        m = mask.unsqueeze(-1).to(out.dtype)
        pooled = (out * m).sum(1) / m.sum(1).clamp_min(1.0)
        present = mask.any(dim=1)
        return self.proj(pooled) * present[:, None], present.to(pooled.dtype)


class FusionRegressor(nn.Module):
    def __init__(self, dims: dict[str, int], hidden: int = 64, dropout: float = 0.1, text_encoder: str | None = None):
        super().__init__()
        self.modalities = list(dims)
        self.dims = dict(dims)
        self.spec = backbone_spec({"text_encoder": {"finetune": True, "name": text_encoder}} if text_encoder else {})
        self.standardized = [m for m in dims if not (m == "text" and text_encoder)]  # set_input_stats takes these
        self.encoders = nn.ModuleDict({m: ModalityEncoder(d, hidden, dropout) for m, d in dims.items()
                                       if not (m == "text" and text_encoder)})
        if text_encoder:
            self.encoders["text"] = TextTransformerEncoder(text_encoder, hidden, dropout)
        n = len(dims)
        self.head = nn.Sequential(
            nn.Linear(n * hidden + n, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("bias", torch.zeros(()))

    def set_input_stats(self, modality: str, mean: torch.Tensor, std: torch.Tensor) -> None:
        enc = self.encoders[modality]
        enc.mean.copy_(mean)
        enc.std.copy_(std.clamp_min(1e-6))

    def score(self, features: dict, masks: dict) -> torch.Tensor:
        """The uncalibrated fused score, [B]."""
        parts, flags = [], []
        for m in self.modalities:
            pooled, present = self.encoders[m](features[m], masks[m])
            parts.append(pooled)
            flags.append(present[:, None])
        return self.head(torch.cat(parts + flags, dim=-1)).squeeze(-1)

    def forward(self, features: dict, masks: dict) -> torch.Tensor:
        return self.score(features, masks) * self.scale + self.bias


def build_model(dims: dict[str, int], model_cfg: dict) -> nn.Module:
    """grcf's fusion model, or an MMSA zoo backbone (`model.backbone: mmsa.<name>`); each carries its
    spec as `.spec`, for what the training loop asks (the encoder's parameters)."""
    spec = backbone_spec(model_cfg)
    if spec.is_zoo:
        from grcf.training.backbones import ZooRegressor  # imports MMSA (and pynvml) only here

        return ZooRegressor(dims, model_cfg)
    return FusionRegressor(dims, hidden=model_cfg["hidden"], dropout=model_cfg["dropout"],
                           text_encoder=spec.finetuned_text["name"] if spec.finetuned_text else None)


def encoder_parameters(model: nn.Module) -> list:
    """Parameters of a fine-tuned transformer (their own learning rate); empty otherwise."""
    return model.spec.encoder_parameters(model)


def masked_stats(x, mask):
    """Per-feature mean and std over the valid steps of a padded [N, L, D] array."""
    if x.dtype != torch.float32:
        return _masked_stats_chunked(x, mask)
    valid = x[mask]
    if valid.shape[0] < 2:
        return torch.zeros(x.shape[-1]), torch.ones(x.shape[-1])
    return valid.mean(0), valid.std(0)


def _masked_stats_chunked(x, mask, rows: int = 1024):
    """masked_stats of a reduced-precision (float16) array: two passes over row chunks, summed in
    float64, so neither a float32 copy of the whole array nor of its valid steps is made."""
    n = int(mask.sum())
    if n < 2:
        return torch.zeros(x.shape[-1]), torch.ones(x.shape[-1])
    total = torch.zeros(x.shape[-1], dtype=torch.float64)
    for a in range(0, len(x), rows):
        total += x[a:a + rows][mask[a:a + rows]].double().sum(0)
    mean = total / n
    sq = torch.zeros_like(mean)
    for a in range(0, len(x), rows):
        sq += ((x[a:a + rows][mask[a:a + rows]].double() - mean) ** 2).sum(0)
    return mean.float(), (sq / (n - 1)).sqrt().float()
