"""Multimodal fusion regressor: per-modality masked encoders, late fusion, a scalar head.

Each modality is standardised with train-split statistics (kept as buffers, so a checkpoint
carries them), projected per time step, and pooled with masked attention. A sample that lacks
a modality gets a zero embedding and a presence flag of 0, so text-only data works as is.
The final affine `calibration` (scale, bias) is what stage 2's linear map sets.
"""

from __future__ import annotations

import torch
from torch import nn


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


class FusionRegressor(nn.Module):
    def __init__(self, dims: dict[str, int], hidden: int = 64, dropout: float = 0.1):
        super().__init__()
        self.modalities = list(dims)
        self.dims = dict(dims)
        self.encoders = nn.ModuleDict({m: ModalityEncoder(d, hidden, dropout) for m, d in dims.items()})
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


def build_model(dims: dict[str, int], model_cfg: dict) -> FusionRegressor:
    return FusionRegressor(dims, hidden=model_cfg["hidden"], dropout=model_cfg["dropout"])


def masked_stats(x, mask):
    """Per-feature mean and std over the valid steps of a padded [N, L, D] array."""
    valid = x[mask]
    if valid.shape[0] < 2:
        return torch.zeros(x.shape[-1]), torch.ones(x.shape[-1])
    return valid.mean(0), valid.std(0)
