"""GRCF losses: group-wise ranking (stage 1) and calibration (stage 2).

A mini-batch is a group G, as in GRPO. Pairs (i, j) with y_i - y_j > tie are comparable and
ranked with a hinge relu(m_ij - (p_i - p_j)); the margin grows with the label advantage gap
(dynamic) or is constant (static), and pairs are weighted by the group advantage of how badly
their two samples are placed (advantage) or equally (uniform). All pairs at once, no loops;
groups larger than DENSE_MAX are ranked in row blocks so memory stays O(block x B).

Host synchronisation: with `check=False` (what the training step passes) nothing here reads a
value back to the host, so a CUDA step is never stalled: no finiteness check (train.py checks
inputs once at load and the loss once per epoch) and no Python branch on the number of pairs
(a group without comparable pairs gives 0 through a clamped denominator).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-6
# groups up to DENSE_MAX samples rank all B x B pairs at once (fastest); larger ones in row blocks
# of about BLOCK_PAIRS pairs (2^19: 2 MiB per float32 block matrix), so memory stays bounded
DENSE_MAX = 1024
BLOCK_PAIRS = 1 << 19


def check_finite(name, t):
    """Raise ValueError naming `name` if `t` holds NaN or inf (reads back to the host)."""
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
        w = torch.exp(logits - _finite_or_zero(logits.max()))
        # the largest weight is exp(0) = 1, so the clamp only acts without comparable pairs (w = 0)
        return w * (comparable.sum() / w.sum().clamp_min(1.0))


def _finite_or_zero(x):
    # the max over no comparable pairs is -inf; exp(-inf - 0) = 0 keeps their weights 0 without a branch
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


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
    check: bool = True,
) -> torch.Tensor:
    """Mean over comparable pairs of w_ij * relu(m_ij - (p_i - p_j)); see the module docstring.

    `check=True` raises ValueError on NaN/inf input (a host sync); the training step passes False.
    """
    if margin not in ("dynamic", "static"):
        raise ValueError(f"margin must be 'dynamic' or 'static', got {margin!r}")
    if weighting not in ("advantage", "uniform"):
        raise ValueError(f"weighting must be 'advantage' or 'uniform', got {weighting!r}")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    pred, target = pred.reshape(-1), target.reshape(-1).to(pred.dtype)
    if pred.shape != target.shape:
        raise ValueError(f"pred has {pred.numel()} values, target {target.numel()}")
    if check:
        check_finite("pred", pred)
        check_finite("target", target)
    if pred.numel() == 0:  # a shape, known on the host: no sync
        return pred.sum() * 0.0
    a = group_advantages(target, eps)
    p = _standardise(pred, eps) if standardize else pred
    kw = dict(margin=margin, gamma=gamma, static_margin=static_margin, weighting=weighting, tau=tau, tie=tie, eps=eps)
    if pred.numel() <= DENSE_MAX:
        return _dense_ranking(p, a, target, **kw)
    return _blocked_ranking(p, a, target, max(1, BLOCK_PAIRS // pred.numel()), **kw)


def _dense_ranking(p, a, target, *, margin, gamma, static_margin, weighting, tau, tie, eps):
    """All B x B pairs at once (groups up to DENSE_MAX)."""
    comparable = (target[:, None] - target[None, :]) > tie
    n_pairs = comparable.sum()
    if margin == "dynamic":
        m = gamma * (a[:, None] - a[None, :])
    else:
        m = torch.full_like(comparable, static_margin, dtype=p.dtype)
    hinge = F.relu(m - (p[:, None] - p[None, :]))
    if weighting == "advantage":
        w = pair_weights(p.detach(), a, comparable, tau, eps)
    else:
        w = comparable.to(p.dtype)
    # B < 2 or all ties: no comparable pair, the sum is 0 and so is its gradient
    return (w * hinge * comparable).sum() / n_pairs.clamp_min(1)


def _blocked_ranking(p, a, target, rows, *, margin, gamma, static_margin, weighting, tau, tie, eps):
    """The same loss in blocks of `rows` rows: O(rows x B) memory instead of B x B.

    The advantage weights' softmax needs the global max and sum over comparable pairs: two
    gradient-free passes find them. Each block's loss is checkpointed, so backward recomputes
    one block at a time instead of keeping every block's B-wide intermediates.
    """
    from torch.utils.checkpoint import checkpoint

    B = p.numel()
    blocks = [(i, min(i + rows, B)) for i in range(0, B, rows)]
    pd = p.detach()
    with torch.no_grad():
        adv = _standardise(-(pd - a).abs(), eps) if weighting == "advantage" else None
        n_pairs = torch.zeros((), dtype=torch.long, device=p.device)
        top = torch.full((), float("-inf"), dtype=p.dtype, device=p.device)
        for i, j in blocks:
            comparable = (target[i:j, None] - target[None, :]) > tie
            n_pairs = n_pairs + comparable.sum()
            if adv is not None:
                top = torch.maximum(top, _adv_logits(adv, i, j, tau).masked_fill(~comparable, float("-inf")).max())
        top = _finite_or_zero(top)
        total_w = torch.zeros((), dtype=p.dtype, device=p.device)
        if adv is not None:
            for i, j in blocks:
                comparable = (target[i:j, None] - target[None, :]) > tie
                total_w = total_w + torch.exp(_adv_logits(adv, i, j, tau) - top).masked_fill(~comparable, 0).sum()
            scale = n_pairs / total_w.clamp_min(1.0)

    def block_loss(p, i, j):
        comparable = (target[i:j, None] - target[None, :]) > tie
        if margin == "dynamic":
            m = gamma * (a[i:j, None] - a[None, :])
        else:
            m = torch.full_like(comparable, static_margin, dtype=p.dtype)
        hinge = F.relu(m - (p[i:j, None] - p[None, :]))
        if adv is not None:
            w = torch.exp(_adv_logits(adv, i, j, tau) - top).masked_fill(~comparable, 0) * scale
        else:
            w = comparable.to(p.dtype)
        return (w * hinge * comparable).sum()

    # no RNG inside a block, so nothing to stash (stashing CUDA RNG states would cost a sync)
    total = sum(checkpoint(block_loss, p, i, j, use_reentrant=False, preserve_rng_state=False) for i, j in blocks)
    return total / n_pairs.clamp_min(1)


def _adv_logits(adv, i, j, tau):
    return -(adv[i:j, None] + adv[None, :]) / (2.0 * tau)


def calibration_loss(pred: torch.Tensor, target: torch.Tensor, objective: str = "mae", *, check: bool = True) -> torch.Tensor:
    """Stage 2: MAE on the score, BCE on logits, or MAE on sigmoid outputs (classification ablation)."""
    pred, target = pred.reshape(-1), target.reshape(-1).to(pred.dtype)
    if check:
        check_finite("pred", pred)
        check_finite("target", target)
    if pred.numel() == 0:  # a shape, known on the host: no sync
        return pred.sum() * 0.0
    if objective == "mae":
        return F.l1_loss(pred, target)
    if objective == "bce":
        return F.binary_cross_entropy_with_logits(pred, target)
    if objective == "mae_sigmoid":
        return F.l1_loss(torch.sigmoid(pred), target)
    raise ValueError(f"objective must be 'mae', 'bce' or 'mae_sigmoid', got {objective!r}")


RANK_KEYS = ("margin", "gamma", "static_margin", "weighting", "tau", "tie", "standardize")


def stage1_loss(pred, target, loss_cfg: dict, objective: str = "mae", *, check: bool = True) -> torch.Tensor:
    """Ranking loss, plus pointwise_weight times the calibration objective."""
    loss = group_ranking_loss(pred, target, **{k: loss_cfg[k] for k in RANK_KEYS}, check=check)
    if loss_cfg.get("pointwise_weight", 0.0) > 0:
        loss = loss + loss_cfg["pointwise_weight"] * calibration_loss(pred, target, objective, check=check)
    return loss


def stage2_loss(pred, target, loss_cfg: dict, objective: str = "mae", *, check: bool = True) -> torch.Tensor:
    """Calibration objective, plus rank_weight times the ranking loss (joint / TMSON-style runs)."""
    loss = calibration_loss(pred, target, objective, check=check)
    if loss_cfg.get("rank_weight", 0.0) > 0:
        loss = loss + loss_cfg["rank_weight"] * group_ranking_loss(
            pred, target, **{k: loss_cfg[k] for k in RANK_KEYS}, check=check)
    return loss
