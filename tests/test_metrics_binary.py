import math

import pytest

from grcf.training.metrics import binary_metrics


def test_hand_computed_example():
    # pred = [1,1,0,1,1,0]: 4/6 right; class 1 F1 = 3/4 (support 4), class 0 F1 = 1/2 (support 2)
    # AUC: 5 of the 8 (pos, neg) pairs are ordered correctly
    m = binary_metrics([2.0, 0.5, -0.5, 0.3, 0.8, -2.0], [1, 1, 1, 1, 0, 0])
    assert m["acc"] == pytest.approx(4 / 6)
    assert m["f1_weighted"] == pytest.approx((4 * 0.75 + 2 * 0.5) / 6)
    assert m["auc"] == pytest.approx(5 / 8)


def test_weighted_f1_differs_from_acc_and_ties_give_half_auc():
    # all predicted 1: class 1 F1 = 6/7 (support 3), class 0 F1 = 0
    m = binary_metrics([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0])
    assert m["acc"] == pytest.approx(0.75)
    assert m["f1_weighted"] == pytest.approx(0.75 * 6 / 7)
    assert m["auc"] == pytest.approx(0.5)


def test_threshold_zero_is_negative_and_single_class_auc_is_nan():
    m = binary_metrics([0.0, -0.1], [0, 0])
    assert m["acc"] == 1.0
    assert math.isnan(m["auc"])


def test_bad_inputs():
    with pytest.raises(ValueError):
        binary_metrics([0.1, 0.2], [1])
    with pytest.raises(ValueError):
        binary_metrics([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError):
        binary_metrics([float("nan"), 0.2], [1, 0])
    with pytest.raises(ValueError, match="no samples"):
        binary_metrics([], [])
