"""MMSA metric definitions against values worked out by hand (see comments)."""

import numpy as np
import pytest

from grcf.training.metrics import binary_metrics, regression_metrics, selection_score, sims_metrics

PRED = [1.4, -0.6, 0.2, 2.4, -2.5]
TRUE = [1.0, 0.0, -0.4, 3.0, -1.8]


def test_mosi_metrics_by_hand():
    m = regression_metrics(PRED, TRUE)
    # has-0: truth>=0 TTFTF vs pred>=0 TFTTF -> 3/5; weighted F1 (3*2/3 + 2*1/2)/5
    assert m["Has0_acc_2"] == pytest.approx(0.6)
    assert m["Has0_F1_score"] == pytest.approx(0.6)
    # non-0 drops the truth-0 sample: TFTF vs TTTF -> 3/4; F1 (2*0.8 + 2*2/3)/4
    assert m["Non0_acc_2"] == pytest.approx(0.75)
    assert m["Non0_F1_score"] == pytest.approx((2 * 0.8 + 2 * 2 / 3) / 4)
    # 7 classes: round(clip(.,-3,3)), half to even: pred 1,-1,0,2,-2 vs true 1,0,0,3,-2 -> 3/5
    assert m["Mult_acc_7"] == pytest.approx(0.6)
    # 5 classes: clip to [-2,2] first: pred 1,-1,0,2,-2 vs true 1,0,0,2,-2 -> 4/5
    assert m["Mult_acc_5"] == pytest.approx(0.8)
    assert m["MAE"] == pytest.approx((0.4 + 0.6 + 0.6 + 0.6 + 0.7) / 5)
    p, t = np.array(PRED), np.array(TRUE)
    corr = ((p - p.mean()) * (t - t.mean())).sum() / np.sqrt(((p - p.mean()) ** 2).sum() * ((t - t.mean()) ** 2).sum())
    assert m["Corr"] == pytest.approx(corr)
    # ranks of pred 4,2,3,5,1 and truth 4,3,2,5,1: 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*2/120
    assert m["Spearman"] == pytest.approx(0.9)


def test_round_half_to_even_is_numpy_round():
    m = regression_metrics([0.5, 1.5, -2.5], [0.0, 2.0, -2.0])
    assert m["Mult_acc_7"] == pytest.approx(1.0)


def test_sims_metrics_by_hand():
    m = sims_metrics([-0.8, 0.05, 0.5, 1.5, -0.05], [-1.0, 0.0, 0.8, 0.6, 0.2])
    # clipped pred -0.8,0.05,0.5,1.0,-0.05; 2 bins 01110 vs 00111 -> 3/5
    assert m["Mult_acc_2"] == pytest.approx(0.6)
    assert m["Mult_acc_3"] == pytest.approx(0.8)  # 01221 vs 01222
    assert m["Mult_acc_5"] == pytest.approx(0.4)  # 02342 vs 02433
    assert m["F1_score"] == pytest.approx((2 * 0.5 + 3 * 2 / 3) / 5)
    assert m["MAE"] == pytest.approx(1.2 / 5)


def test_binary_metrics_by_hand():
    m = binary_metrics([2.0, -1.0, 0.5, -0.2], [1, 0, 0, 1])
    assert m["acc"] == pytest.approx(0.5)
    assert m["f1_weighted"] == pytest.approx(0.5)
    assert m["auc"] == pytest.approx(0.75)  # 3 of the 4 positive-negative pairs ordered right


def test_constant_predictor_has_zero_corr_and_bad_input_raises():
    assert regression_metrics([0.0] * 4, [1.0, -1.0, 2.0, 0.5])["Corr"] == 0.0
    with pytest.raises(ValueError, match="NaN"):
        regression_metrics([np.nan, 1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="values"):
        regression_metrics([1.0], [0.0, 1.0])


def test_selection_scores_higher_is_better():
    assert selection_score("mae", [1.0, 2.0], [1.0, 1.0]) == pytest.approx(-0.5)
    assert selection_score("corr", PRED, TRUE) == pytest.approx(regression_metrics(PRED, TRUE)["Corr"])
    assert selection_score("acc", [1.0, -1.0], [1.0, 1.0]) == pytest.approx(0.5)


def test_numpy_metrics_equal_sklearn_and_scipy_bit_for_bit():
    # grcf.training.metrics avoids importing sklearn/scipy (start-up time); the values must not change
    from scipy.stats import rankdata as sp_rankdata, spearmanr
    from sklearn.metrics import accuracy_score as sk_acc, f1_score as sk_f1

    from grcf.training.metrics import accuracy_score, f1_score, rankdata, spearman

    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 64, 1000):
        for ties in (False, True):
            a = rng.normal(size=n)
            b = a + rng.normal(size=n)
            if ties:
                a, b = np.round(a), np.round(b * 2) / 2
            assert np.array_equal(rankdata(a), sp_rankdata(a))
            if n > 1 and np.std(a) > 0 and np.std(b) > 0:
                assert spearman(a, b) == spearmanr(a, b).statistic
            for t, p in [(a > 0, b > 0), (a >= 0, np.ones(n, bool)), (np.round(a), np.round(b))]:
                assert accuracy_score(t, p) == sk_acc(t, p)
                assert f1_score(t, p) == sk_f1(t, p, average="weighted")


def test_prediction_bias_by_hand():
    from grcf.training.metrics import prediction_bias

    # mosi_av's case in small: labels 2 of 5 nonzero positive (40 %), predictions shifted up by 1.2
    true = np.array([-2.0, -1.0, -0.5, 0.0, 1.0, 2.0])
    b = prediction_bias("mosi", true + 1.2, true)
    assert b["bias"] == pytest.approx(1.2) and b["mean_label"] == pytest.approx(-0.5 / 6)
    # nonzero labels only: -0.8 -0.2... -> predictions -0.8, 0.2, 0.7, 2.2, 3.2: 4 of 5 positive
    assert b["pred_positive_rate"] == pytest.approx(0.8) and b["label_positive_rate"] == pytest.approx(0.4)
    assert b["positive_rate_gap"] == pytest.approx(0.4) and b["biased"]
    fair = prediction_bias("mosi", 0.9 * true, true)
    assert fair["positive_rate_gap"] == 0 and not fair["biased"]
    assert fair["bias"] == pytest.approx(-0.1 * true.mean())
    # binary: logits 2, -1, 3, 1 -> 3 of 4 predicted positive against 2 of 4; bias on probabilities
    logits, labels = np.array([2.0, -1.0, 3.0, 1.0]), np.array([1.0, 0.0, 1.0, 0.0])
    bb = prediction_bias("binary", logits, labels)
    assert bb["pred_positive_rate"] == 0.75 and bb["label_positive_rate"] == 0.5 and bb["biased"]
    assert bb["bias"] == pytest.approx(np.mean(1 / (1 + np.exp(-logits))) - 0.5)


def test_a_constant_predictor_is_collapsed_and_a_good_one_is_not():
    from grcf.training.metrics import collapse, collapse_reason

    rng = np.random.default_rng(0)
    true = rng.uniform(-3, 3, 200)
    constant = collapse(np.full(200, 0.4), true)
    assert constant["collapsed"] and constant["constant"] and constant["pred_std"] == 0
    assert collapse_reason(constant).startswith("nearly constant (prediction std 0 < 0.1 × label std 1.")
    # nearly constant: std 0.05 against the labels' ~1.7, though on both sides of zero
    assert collapse(rng.normal(0, 0.05, 200), true)["collapsed"]
    # one-sided: a spread that is fine but puts 97 % of clips positive (pointwise_tfn's Non0 Acc-2 case)
    one_sided = np.r_[np.abs(true[:194]) + 0.1, -np.abs(true[194:]) - 0.1]
    c = collapse(one_sided, true)
    assert c["collapsed"] and not c["constant"] and c["one_side_share"] == pytest.approx(0.97)
    assert collapse_reason(c) == "97 % of items predicted positive"
    good = collapse(true + rng.normal(0, 1, 200), true)
    assert not good["collapsed"] and collapse_reason(good) == ""
    # the edge: exactly 95 % on one side is collapsed, 94.5 % is not
    assert collapse(np.r_[np.ones(190), -np.ones(10)] * 2, true)["collapsed"]
    assert not collapse(np.r_[np.ones(189), -np.ones(11)] * 2, true)["collapsed"]
