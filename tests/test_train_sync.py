"""The training step without host syncs: same losses and gradients as before,
no value read back to the host inside the step, NaN caught once per epoch and at load."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from torch.overrides import TorchFunctionMode

from grcf.training import losses
from grcf.errors import DataError, GrcfError
from grcf.training.losses import group_ranking_loss, stage1_loss, stage2_loss
from grcf.data.store import Split
from grcf.data.tensor_cache import check_split_finite
from grcf.training.train import Tensors, fit, make_optimizer, train_step
from grcf.training.model import build_model
from support.hypothesis_strategies import SETTINGS, groups, switches

# ---------------------------------------------------------------- the implementation with host syncs,
# kept verbatim as the reference (finiteness checks and the n_pairs == 0 branch included)


def _old_standardise(x, eps=1e-6):
    centred = x - x.mean()
    std = centred.pow(2).mean().clamp_min(1e-24).sqrt()
    return centred / (std + eps)


def _old_pair_weights(p, a, comparable, tau, eps=1e-6):
    with torch.no_grad():
        reward = -(p - a).abs()
        adv = _old_standardise(reward, eps)
        logits = -(adv[:, None] + adv[None, :]) / (2.0 * tau)
        logits = logits.masked_fill(~comparable, float("-inf"))
        w = torch.exp(logits - logits.max())
        return w * (comparable.sum() / w.sum())


def old_group_ranking_loss(pred, target, *, margin="dynamic", gamma=0.5, static_margin=0.5, weighting="advantage",
                           tau=1.0, tie=0.0, standardize=True, eps=1e-6):
    pred, target = pred.reshape(-1), target.reshape(-1).to(pred.dtype)
    comparable = (target[:, None] - target[None, :]) > tie
    n_pairs = comparable.sum()
    if n_pairs == 0:
        return pred.sum() * 0.0
    a = _old_standardise(target, eps)
    p = _old_standardise(pred, eps) if standardize else pred
    if margin == "dynamic":
        m = gamma * (a[:, None] - a[None, :])
    else:
        m = torch.full_like(comparable, static_margin, dtype=pred.dtype)
    hinge = F.relu(m - (p[:, None] - p[None, :]))
    w = _old_pair_weights(p.detach(), a, comparable, tau, eps) if weighting == "advantage" else comparable.to(pred.dtype)
    return (w * hinge * comparable).sum() / n_pairs


def _loss_grad(fn, pred, target, **kw):
    pred = pred.clone().requires_grad_(True)
    loss = fn(pred, target, **kw)
    loss.backward()
    return loss.detach(), pred.grad


@SETTINGS
@given(groups(), switches)
def test_same_loss_and_gradient_as_before_bit_for_bit(group, sw):
    pred, target = group
    old_loss, old_grad = _loss_grad(old_group_ranking_loss, pred, target, **sw)
    for check in (True, False):
        loss, grad = _loss_grad(group_ranking_loss, pred, target, check=check, **sw)
        assert torch.equal(loss, old_loss), (loss, old_loss, sw)
        assert torch.equal(grad, old_grad), sw


@settings(SETTINGS, max_examples=25)
@given(groups(), switches)
def test_row_blocks_match_the_dense_loss(group, sw):
    pred, target = group
    pred, target = pred.double(), target.double()
    old_loss, old_grad = _loss_grad(old_group_ranking_loss, pred, target, **sw)
    saved = losses.DENSE_MAX, losses.BLOCK_PAIRS
    losses.DENSE_MAX, losses.BLOCK_PAIRS = 2, 256  # from B = 3: blocks of 256 // B rows (1 to 64 blocks)
    try:
        loss, grad = _loss_grad(group_ranking_loss, pred, target, check=False, **sw)
    finally:
        losses.DENSE_MAX, losses.BLOCK_PAIRS = saved
    scale = max(1.0, old_loss.abs().item())
    assert abs(loss.item() - old_loss.item()) <= 1e-9 * scale, (loss, old_loss)
    assert torch.allclose(grad, old_grad, rtol=1e-7, atol=1e-9 * max(1.0, old_grad.abs().max().item() if grad.numel() else 1))


# ---------------------------------------------------------------- no host sync in the step

# (any()/all() reduce on the device; only bool() of their result syncs, caught as __bool__)
SYNCING = {"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "nonzero", "masked_select",
           "unique", "cpu"}


class HostReads(TorchFunctionMode):
    """Records tensor calls that read a value back to the host (a sync on CUDA)."""

    def __init__(self, exempt=()):
        super().__init__()
        self.exempt, self.calls = {id(t) for t in exempt}, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if name in SYNCING and not (tensors and id(tensors[0]) in self.exempt):
            self.calls.append(name)
        elif name == "__getitem__" and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                                           for i in (args[1] if isinstance(args[1], tuple) else (args[1],))):
            self.calls.append("boolean-mask indexing")
        return func(*args, **kwargs)


LOSS = {"margin": "dynamic", "gamma": 0.5, "static_margin": 0.5, "weighting": "advantage", "tau": 1.0, "tie": 0.0,
        "standardize": True, "pointwise_weight": 0.0, "rank_weight": 0.0}
STEP_LOSSES = {
    "grcf": lambda p, y: stage1_loss(p, y, LOSS, check=False),
    "grcf_uniform_static": lambda p, y: stage1_loss(p, y, {**LOSS, "weighting": "uniform", "margin": "static"}, check=False),
    "pointwise": lambda p, y: stage2_loss(p, y, LOSS, check=False),
    "static_pairwise": lambda p, y: stage2_loss(p, y, {**LOSS, "margin": "static", "weighting": "uniform",
                                                          "standardize": False, "rank_weight": 1.0}, check=False),
    "joint_with_pointwise": lambda p, y: stage1_loss(p, y, {**LOSS, "pointwise_weight": 1.0}, check=False),
}


def _tiny(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = {"text": torch.randn(n, 5, 6, generator=g), "audio": torch.randn(n, 7, 3, generator=g)}
    masks = {"text": torch.ones(n, 5, dtype=torch.bool), "audio": torch.arange(7)[None, :] < torch.randint(0, 8, (n, 1), generator=g)}
    labels = torch.randn(n, generator=g)
    return Tensors(ids=np.array([f"s{i}" for i in range(n)], dtype=object), labels=labels, features=feats, masks=masks)


STAGE = {"lr": 1e-3, "weight_decay": 1e-4, "optimizer": "adamw", "grad_clip": 1.0, "batch_size": 8, "epochs": 2,
         "patience": 5}


@pytest.mark.parametrize("name", sorted(STEP_LOSSES))
def test_training_step_reads_nothing_back_to_the_host(name):
    torch.manual_seed(0)
    data = _tiny()
    model = build_model({"text": 6, "audio": 3}, {"hidden": 8, "dropout": 0.1})
    opt = make_optimizer(model, STAGE)
    train_step(model, opt, data, torch.arange(8), STEP_LOSSES[name], 1.0)  # creates the optimiser state
    # Adam's step counters are CPU tensors on every device (not capturable): reading them is no sync
    steps = [s["step"] for s in opt.state.values() if isinstance(s.get("step"), torch.Tensor)]
    tie = data.labels.clone()
    tie[8:16] = 0.5  # a group of ties: no comparable pair, branch-free
    data.labels = tie
    with HostReads(exempt=steps) as reads:
        for idx in (torch.arange(8, 16), torch.arange(0, 24, 3), torch.tensor([3, 4])):
            loss = train_step(model, opt, data, idx, STEP_LOSSES[name], 1.0)
    assert reads.calls == [], reads.calls
    assert loss.shape == () and math.isfinite(loss.item())


def test_the_host_read_counter_sees_the_old_checks():
    # the same counter flags the checked loss (check=True), so an empty list above means something
    p, y = torch.randn(8, requires_grad=True), torch.randn(8)
    with HostReads() as reads:
        stage1_loss(p, y, LOSS, check=True)
    assert "__bool__" in reads.calls
    with HostReads() as reads:
        old_group_ranking_loss(p, torch.zeros(8))
    assert "__bool__" in reads.calls


def test_blocked_loss_reads_nothing_back(monkeypatch):
    monkeypatch.setattr(losses, "DENSE_MAX", 8)
    monkeypatch.setattr(losses, "BLOCK_PAIRS", 64)
    p, y = torch.randn(40, requires_grad=True), torch.randn(40)
    with HostReads() as reads:
        loss = group_ranking_loss(p, y, check=False)
        loss.backward()
    assert reads.calls == [] and torch.isfinite(p.grad).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_step_has_no_sync():
    torch.manual_seed(0)
    dev = torch.device("cuda")
    cpu = _tiny(64)
    data = Tensors(ids=cpu.ids, labels=cpu.labels.to(dev), features={k: v.to(dev) for k, v in cpu.features.items()},
                   masks={k: v.to(dev) for k, v in cpu.masks.items()})
    model = build_model({"text": 6, "audio": 3}, {"hidden": 8, "dropout": 0.1}).to(dev)
    opt = make_optimizer(model, STAGE)
    train_step(model, opt, data, torch.arange(32, device=dev), STEP_LOSSES["grcf"], 1.0)
    torch.cuda.synchronize()
    for name, fn in STEP_LOSSES.items():
        torch.cuda.set_sync_debug_mode("error")
        try:
            train_step(model, opt, data, torch.arange(32, 64, device=dev), fn, 1.0)
        finally:
            torch.cuda.set_sync_debug_mode("default")


# ---------------------------------------------------------------- the checks that moved out of the step


def test_nan_loss_raises_once_per_epoch_naming_epoch_and_stage(tmp_path):
    torch.manual_seed(0)
    data = _tiny()
    model = build_model({"text": 6, "audio": 3}, {"hidden": 8, "dropout": 0.1})
    calls = []

    def nan_in_second_epoch(p, y):
        calls.append(1)
        loss = stage1_loss(p, y, LOSS, check=False)
        return loss * float("nan") if len(calls) > 3 else loss  # 3 groups of 8 per epoch

    with pytest.raises(GrcfError, match=r"stage1 toy/grcf/seed0: the training loss is nan in epoch 1"):
        fit(model, data, data, stage_cfg=STAGE, loss_fn=nan_in_second_epoch, select="corr", metrics_kind="mosi",
            seed=0, resume_path=tmp_path / "r.resume", desc="stage1 toy/grcf/seed0")
    assert len(calls) == 6  # the whole epoch ran; the check is at its end


def test_nan_input_is_refused_at_load_naming_the_record():
    ok = np.zeros((3, 2, 4), np.float32)
    bad = ok.copy()
    bad[1, 1, 2] = np.nan
    ids = np.array(["a", "b", "c"], dtype=object)
    check_split_finite("f.parquet", "train", Split(ids=ids, labels=np.zeros(3, np.float32), features={"text": ok}))
    with pytest.raises(DataError, match=r"f.parquet \[b\]: split train: text features contain NaN or inf"):
        check_split_finite("f.parquet", "train", Split(ids=ids, labels=np.zeros(3, np.float32), features={"text": bad}))
    with pytest.raises(DataError, match=r"\[c\]: split valid: label is NaN or inf"):
        check_split_finite("f.parquet", "valid", Split(ids=ids, labels=np.array([0, 1, np.inf], np.float32)))
