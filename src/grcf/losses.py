"""GRCF losses: group-wise ranking (stage 1) and calibration (stage 2).

A mini-batch is a group G, as in GRPO. Pairs (i, j) with y_i - y_j > tie are comparable and
ranked with a hinge relu(m_ij - (p_i - p_j)); the margin grows with the label advantage gap
(dynamic) or is constant (static), and pairs are weighted by the group advantage of how badly
their two samples are placed (advantage) or equally (uniform). All pairs at once, no loops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-6


def _check_finite(name, t):
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf ({(~torch.isfinite(t)).sum().item()} of {t.numel()} values)")


def _standardise(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    # population std; the clamp keeps the gradient finite when a group is constant (sqrt'(0) = inf)
    centred = x - x.mean()
    std = centred.pow(2).mean().clamp_min(1e-24).sqrt()
    return centred / (std + eps)


def group_advantages(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(x - mean) / (std + eps) over the group, population std."""
    return _standardise(x, eps)


def pair_weights(p: torch.Tensor, a: torch.Tensor, comparable: torch.Tensor, tau: float, eps: float = EPS) -> torch.Tensor:
    """GRPO-style advantage weights: pairs whose samples are placed worst count most; mean 1."""
    with torch.no_grad():
        reward = -(p - a).abs()
        adv = _standardise(reward, eps)
        logits = -(adv[:, None] + adv[None, :]) / (2.0 * tau)
        # a softmax over the comparable pairs, rescaled to mean 1: same weights, no exp overflow at small tau
        logits = logits.masked_fill(~comparable, float("-inf"))
        w = torch.exp(logits - logits.max())
        return w * (comparable.sum() / w.sum())


def group_ranking_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    margin: str = "dynamic",
    gamma: float = 0.5,
    static_margin: float = 0.5,
    weighting: str = "advantage",
    tau: float = 1.0,
    tie: float = 0.0,
    standardize: bool = True,
    eps: float = EPS,
) -> torch.Tensor:
    """Mean over comparable pairs of w_ij * relu(m_ij - (p_i - p_j)); see the module docstring."""
    if margin not in ("dynamic", "static"):
        raise ValueError(f"margin must be 'dynamic' or 'static', got {margin!r}")
    if weighting not in ("advantage", "uniform"):
        raise ValueError(f"weighting must be 'advantage' or 'uniform', got {weighting!r}")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    pred, target = pred.reshape(-1), target.reshape(-1).to(pred.dtype)
    if pred.shape != target.shape:
        raise ValueError(f"pred has {pred.numel()} values, target {target.numel()}")
    _check_finite("pred", pred)
    _check_finite("target", target)
    comparable = (target[:, None] - target[None, :]) > tie
    n_pairs = comparable.sum()
    if n_pairs == 0:  # B < 2 or all ties: nothing to rank, but keep the graph alive
        return pred.sum() * 0.0
    a = group_advantages(target, eps)
    p = _standardise(pred, eps) if standardize else pred
    if margin == "dynamic":
        m = gamma * (a[:, None] - a[None, :])
    else:
        m = torch.full_like(comparable, static_margin, dtype=pred.dtype)
    hinge = F.relu(m - (p[:, None] - p[None, :]))
    if weighting == "advantage":
        w = pair_weights(p.detach(), a, comparable, tau, eps)
    else:
        w = comparable.to(pred.dtype)
    return (w * hinge * comparable).sum() / n_pairs


def calibration_loss(pred: torch.Tensor, target: torch.Tensor, objective: str = "mae") -> torch.Tensor:
    """Stage 2: MAE on the score, BCE on logits, or MAE on sigmoid outputs (classification ablation)."""
    pred, target = pred.reshape(-1), target.reshape(-1).to(pred.dtype)
    _check_finite("pred", pred)
    _check_finite("target", target)
    if pred.numel() == 0:
        return pred.sum() * 0.0
    if objective == "mae":
        return F.l1_loss(pred, target)
    if objective == "bce":
        return F.binary_cross_entropy_with_logits(pred, target)
    if objective == "mae_sigmoid":
        return F.l1_loss(torch.sigmoid(pred), target)
    raise ValueError(f"objective must be 'mae', 'bce' or 'mae_sigmoid', got {objective!r}")


RANK_KEYS = ("margin", "gamma", "static_margin", "weighting", "tau", "tie", "standardize")


def stage1_loss(pred, target, loss_cfg: dict, objective: str = "mae") -> torch.Tensor:
    """Ranking loss, plus pointwise_weight times the calibration objective."""
    loss = group_ranking_loss(pred, target, **{k: loss_cfg[k] for k in RANK_KEYS})
    if loss_cfg.get("pointwise_weight", 0.0) > 0:
        loss = loss + loss_cfg["pointwise_weight"] * calibration_loss(pred, target, objective)
    return loss


def stage2_loss(pred, target, loss_cfg: dict, objective: str = "mae") -> torch.Tensor:
    """Calibration objective, plus rank_weight times the ranking loss (joint / TMSON-style runs)."""
    loss = calibration_loss(pred, target, objective)
    if loss_cfg.get("rank_weight", 0.0) > 0:
        loss = loss + loss_cfg["rank_weight"] * group_ranking_loss(pred, target, **{k: loss_cfg[k] for k in RANK_KEYS})
    return loss
