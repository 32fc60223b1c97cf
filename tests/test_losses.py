"""GRCF losses against hand computations, the ablation switches, gradients and edge groups."""

import math

import pytest
import torch

from grcf.training.losses import calibration_loss, group_ranking_loss, pair_weights, stage1_loss, stage2_loss

# y = [1, 0, -1]: mean 0, population std sqrt(2/3), so label advantages a = [1.2247, 0, -1.2247].
# Comparable pairs (y_i > y_j): (0,1), (0,2), (1,2). Raw scores s = [2, 0, 1] (standardize=False).
S = torch.tensor([2.0, 0.0, 1.0])
Y = torch.tensor([1.0, 0.0, -1.0])
RAW = dict(standardize=False, tau=1.0, gamma=0.5, static_margin=0.5, tie=0.0)


def test_static_uniform_by_hand():
    # hinges relu(0.5 - diff): diffs 2, 1, -1 -> 0, 0, 1.5; mean over 3 pairs
    loss = group_ranking_loss(S, Y, margin="static", weighting="uniform", **RAW)
    assert loss.item() == pytest.approx(0.5, abs=1e-5)


def test_dynamic_uniform_by_hand():
    # margins 0.5*(a_i - a_j) = 0.61237, 1.22474, 0.61237; hinges 0, 0.22474, 1.61237
    loss = group_ranking_loss(S, Y, margin="dynamic", weighting="uniform", **RAW)
    assert loss.item() == pytest.approx((0.22474 + 1.61237) / 3, abs=1e-4)


def test_dynamic_advantage_by_hand():
    # rewards -|s - a| = [-0.7753, 0, -2.2247] -> advantages [0.2437, 1.0845, -1.3283];
    # w = exp(-(A_i + A_j) / 2) = [0.5148, 1.7200, 1.1296], scaled to mean 1 = [0.4590, 1.5337, 1.0072]
    loss = group_ranking_loss(S, Y, margin="dynamic", weighting="advantage", **RAW)
    assert loss.item() == pytest.approx((1.5337 * 0.22474 + 1.0072 * 1.61237) / 3, abs=1e-3)


def test_standardize_makes_loss_scale_free():
    kw = dict(margin="dynamic", weighting="advantage", standardize=True)
    a = group_ranking_loss(S, Y, **kw)
    b = group_ranking_loss(S * 10 + 3, Y, **kw)
    assert a.item() == pytest.approx(b.item(), rel=1e-4)
    raw = dict(margin="dynamic", weighting="advantage", standardize=False)
    assert group_ranking_loss(S, Y, **raw).item() != pytest.approx(group_ranking_loss(S * 10, Y, **raw).item())


def test_correct_order_with_spacing_gives_zero():
    y = torch.tensor([3.0, 1.0, -2.0])
    # standardised predictions equal to the label advantages satisfy every margin gamma*(a_i-a_j), gamma<1
    assert group_ranking_loss(y.clone(), y, gamma=0.5).item() == pytest.approx(0.0, abs=1e-6)
    assert group_ranking_loss(-y, y, gamma=0.5).item() > 1.0


def test_tie_threshold_excludes_close_pairs():
    y = torch.tensor([1.0, 0.9, -1.0])
    s = torch.tensor([0.0, 1.0, 0.5])
    with_pair = group_ranking_loss(s, y, margin="static", weighting="uniform", standardize=False, tie=0.0)
    without = group_ranking_loss(s, y, margin="static", weighting="uniform", standardize=False, tie=0.5)
    # tie=0.5 keeps only (0,2) and (1,2): hinges relu(0.5+0.5)=1.0 and relu(0.5-0.5)=0
    assert without.item() == pytest.approx(0.5, abs=1e-6)
    assert with_pair.item() != pytest.approx(without.item())


def test_gradients_push_misordered_pair_apart():
    s = torch.tensor([0.0, 1.0], requires_grad=True)  # y says sample 0 should rank first
    y = torch.tensor([1.0, -1.0])
    group_ranking_loss(s, y, margin="static", weighting="uniform", standardize=False).backward()
    assert s.grad[0] < 0 and s.grad[1] > 0


def test_gradcheck_uniform_weights():
    torch.manual_seed(0)
    y = torch.randn(7, dtype=torch.float64)
    for margin in ("dynamic", "static"):
        for standardize in (True, False):
            s = torch.randn(7, dtype=torch.float64, requires_grad=True)
            fn = lambda x: group_ranking_loss(x, y, margin=margin, weighting="uniform", standardize=standardize)
            assert torch.autograd.gradcheck(fn, (s,), eps=1e-6, atol=1e-4)


def test_advantage_weights_carry_no_gradient():
    # the gradient is that of sum(w * hinge) with w held constant (GRPO's stop-gradient)
    torch.manual_seed(1)
    y = torch.randn(6)
    s = torch.randn(6, requires_grad=True)
    group_ranking_loss(s, y, weighting="advantage").backward()
    s2 = s.detach().clone().requires_grad_(True)
    a = (y - y.mean()) / (y.std(unbiased=False) + 1e-6)
    p = (s2 - s2.mean()) / (s2.std(unbiased=False) + 1e-6)
    comp = (y[:, None] - y[None, :]) > 0
    w = pair_weights(p.detach(), a, comp, tau=1.0)
    hinge = torch.relu(0.5 * (a[:, None] - a[None, :]) - (p[:, None] - p[None, :]))
    ((w * hinge * comp).sum() / comp.sum()).backward()
    assert torch.allclose(s.grad, s2.grad, atol=1e-5)
    assert w[comp].mean().item() == pytest.approx(1.0)


@pytest.mark.parametrize("pred,target", [([0.3], [1.0]), ([0.1, 0.5, -2.0], [0.5, 0.5, 0.5]), ([], [])])
def test_groups_without_pairs_give_zero_that_backpropagates(pred, target):
    s = torch.tensor(pred, requires_grad=True)
    loss = group_ranking_loss(s, torch.tensor(target))
    assert loss.item() == 0.0
    loss.backward()
    assert s.grad is not None and torch.all(s.grad == 0)


def test_constant_predictions_have_finite_gradient():
    s = torch.zeros(4, requires_grad=True)
    loss = group_ranking_loss(s, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(s.grad).all()


def test_nan_prediction_raises_clear_error():
    with pytest.raises(ValueError, match="pred contains NaN"):
        group_ranking_loss(torch.tensor([1.0, float("nan")]), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="target contains NaN"):
        calibration_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, float("nan")]))


def test_bad_switches_are_refused():
    with pytest.raises(ValueError, match="margin"):
        group_ranking_loss(S, Y, margin="fixed")
    with pytest.raises(ValueError, match="weighting"):
        group_ranking_loss(S, Y, weighting="grpo")
    with pytest.raises(ValueError, match="objective"):
        calibration_loss(S, Y, objective="mse")


def test_calibration_objectives():
    p, y = torch.tensor([0.5, -1.0]), torch.tensor([1.0, 0.0])
    assert calibration_loss(p, y, "mae").item() == pytest.approx((0.5 + 1.0) / 2)
    bce = -(math.log(1 / (1 + math.exp(-0.5))) + math.log(1 - 1 / (1 + math.exp(1.0)))) / 2
    assert calibration_loss(p, y, "bce").item() == pytest.approx(bce, rel=1e-5)
    sig = (abs(1 / (1 + math.exp(-0.5)) - 1) + abs(1 / (1 + math.exp(1.0)))) / 2
    assert calibration_loss(p, y, "mae_sigmoid").item() == pytest.approx(sig, rel=1e-5)


def test_stage_losses_combine_terms():
    cfg = dict(margin="static", gamma=0.5, static_margin=0.5, weighting="uniform", tau=1.0, tie=0.0,
               standardize=False, pointwise_weight=0.0, rank_weight=0.0)
    rank = group_ranking_loss(S, Y, margin="static", weighting="uniform", standardize=False).item()
    mae = calibration_loss(S, Y).item()
    assert stage1_loss(S, Y, cfg).item() == pytest.approx(rank)
    assert stage1_loss(S, Y, {**cfg, "pointwise_weight": 2.0}).item() == pytest.approx(rank + 2 * mae)
    assert stage2_loss(S, Y, cfg).item() == pytest.approx(mae)
    assert stage2_loss(S, Y, {**cfg, "rank_weight": 1.0}).item() == pytest.approx(mae + rank)
