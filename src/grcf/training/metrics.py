"""Evaluation metrics with MMSA's definitions (MOSI/MOSEI, CH-SIMS) and binary tasks.

Values are returned unrounded; MMSA rounds to 4 decimals only for display.

Accuracy, weighted F1 and Spearman are computed with numpy, with the same arithmetic as
sklearn's `accuracy_score`/`f1_score(average="weighted")` and scipy's `spearmanr` (so the values
are bit-identical; tests/test_metrics.py compares them): every training job computes them once
per epoch, and importing scipy.stats and sklearn.metrics cost ~2 s of a job's start-up. sklearn
is imported only for ROC-AUC (classification datasets).
"""

from __future__ import annotations

import numpy as np


def accuracy_score(true, pred) -> float:
    """sklearn.metrics.accuracy_score for 1-D label arrays."""
    return float(np.average(np.asarray(true) == np.asarray(pred)))


def f1_score(true, pred, average: str = "weighted") -> float:
    """sklearn.metrics.f1_score(average="weighted") for 1-D label arrays: per-class F1 over the
    labels present in either array, averaged with the true counts as weights."""
    if average != "weighted":
        raise ValueError("only average='weighted' is implemented")
    true, pred = np.asarray(true), np.asarray(pred)
    labels = np.unique(np.concatenate([true, pred]))
    t = true[:, None] == labels[None, :]
    p = pred[:, None] == labels[None, :]
    tp_sum, pred_sum, true_sum = (t & p).sum(0), p.sum(0), t.sum(0)
    # sklearn: (1 + beta^2) tp / (beta^2 true + pred) in float64; a label present in either array
    # has a non-zero denominator
    f = (2 * tp_sum.astype(np.float64)) / (true_sum.astype(np.float64) + pred_sum.astype(np.float64))
    return float(np.average(f, weights=true_sum))


def rankdata(x) -> np.ndarray:
    """scipy.stats.rankdata(method="average"): ties get the mean of their ranks (exact halves)."""
    x = np.asarray(x)
    sorter = np.argsort(x, kind="mergesort")
    inv = np.empty(sorter.size, dtype=np.intp)
    inv[sorter] = np.arange(sorter.size, dtype=np.intp)
    xs = x[sorter]
    obs = np.r_[True, xs[1:] != xs[:-1]]
    dense = obs.cumsum()[inv]
    count = np.r_[np.nonzero(obs)[0], len(obs)]
    return 0.5 * (count[dense] + count[dense - 1] + 1)


def spearman(a, b) -> float:
    """scipy.stats.spearmanr(a, b).statistic for 1-D arrays without NaN or constant input."""
    ranked = np.column_stack([rankdata(a), rankdata(b)])  # the layout spearmanr passes to corrcoef
    return float(np.corrcoef(ranked, rowvar=False)[1, 0])


def _as_arrays(pred, true):
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    true = np.asarray(true, dtype=np.float64).reshape(-1)
    if pred.shape != true.shape:
        raise ValueError(f"pred has {pred.size} values, true {true.size}")
    if pred.size == 0:
        raise ValueError("no samples to evaluate")
    if not (np.isfinite(pred).all() and np.isfinite(true).all()):
        raise ValueError("pred or true contains NaN or inf")
    return pred, true


def _corr(a, b) -> float:
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return 0.0  # undefined for a constant predictor; 0 is what "no linear relation" means here
    return float(np.corrcoef(a, b)[0, 1])


def _spearman(a, b) -> float:
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return spearman(a, b)


def _multiclass_acc(pred, true) -> float:
    return float(np.sum(np.round(pred) == np.round(true)) / float(len(true)))


def regression_metrics(pred, true) -> dict:
    """MMSA's __eval_mosei_regression (MOSI/MOSEI), plus Spearman."""
    pred, true = _as_arrays(pred, true)
    out = {}
    non0 = true != 0
    if non0.any():
        out["Non0_acc_2"] = float(accuracy_score(true[non0] > 0, pred[non0] > 0))
        out["Non0_F1_score"] = float(f1_score(true[non0] > 0, pred[non0] > 0, average="weighted"))
    else:
        out["Non0_acc_2"] = out["Non0_F1_score"] = float("nan")
    out["Has0_acc_2"] = float(accuracy_score(true >= 0, pred >= 0))
    out["Has0_F1_score"] = float(f1_score(true >= 0, pred >= 0, average="weighted"))
    out["Mult_acc_5"] = _multiclass_acc(np.clip(pred, -2, 2), np.clip(true, -2, 2))
    out["Mult_acc_7"] = _multiclass_acc(np.clip(pred, -3, 3), np.clip(true, -3, 3))
    out["MAE"] = float(np.mean(np.abs(pred - true)))
    out["Corr"] = _corr(pred, true)
    out["Spearman"] = _spearman(pred, true)
    return out


def _bins(x, edges):
    out = np.zeros_like(x)
    for i in range(len(edges) - 1):
        out[(x > edges[i]) & (x <= edges[i + 1])] = i
    return out


def sims_metrics(pred, true) -> dict:
    """MMSA's __eval_sims_regression: both arrays clipped to [-1, 1] first."""
    pred, true = _as_arrays(pred, true)
    pred, true = np.clip(pred, -1, 1), np.clip(true, -1, 1)
    e2, e3, e5 = [-1.01, 0.0, 1.01], [-1.01, -0.1, 0.1, 1.01], [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01]
    p2, t2 = _bins(pred, e2), _bins(true, e2)
    return {
        "Mult_acc_2": _multiclass_acc(p2, t2),
        "Mult_acc_3": _multiclass_acc(_bins(pred, e3), _bins(true, e3)),
        "Mult_acc_5": _multiclass_acc(_bins(pred, e5), _bins(true, e5)),
        "F1_score": float(f1_score(t2, p2, average="weighted")),
        "MAE": float(np.mean(np.abs(pred - true))),
        "Corr": _corr(pred, true),
        "Spearman": _spearman(pred, true),
    }


def binary_metrics(logits, labels) -> dict:
    """Accuracy and weighted F1 at logit 0, ROC-AUC (NaN with one class), for humor/sarcasm."""
    from sklearn.metrics import roc_auc_score

    logits, labels = _as_arrays(logits, labels)
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("binary labels must be 0 or 1")
    pred, true = logits > 0, labels > 0.5
    auc = float(roc_auc_score(true, logits)) if len(np.unique(true)) == 2 else float("nan")
    return {
        "acc": float(accuracy_score(true, pred)),
        "f1_weighted": float(f1_score(true, pred, average="weighted")),
        "auc": auc,
        "Spearman": _spearman(logits, labels),
    }


METRIC_SETS = {"mosi": regression_metrics, "sims": sims_metrics, "binary": binary_metrics}
# which direction is better, for selection and for the paired comparisons
LOWER_IS_BETTER = {"MAE"}


def compute(kind: str, pred, true) -> dict:
    try:
        fn = METRIC_SETS[kind]
    except KeyError:
        raise ValueError(f"unknown metric set {kind!r}; expected one of {sorted(METRIC_SETS)}") from None
    return fn(pred, true)


def selection_score(name: str, pred, true) -> float:
    """A validation score where higher is better (MAE is negated)."""
    pred, true = _as_arrays(pred, true)
    if name == "corr":
        return _corr(pred, true)
    if name == "spearman":
        return _spearman(pred, true)
    if name == "mae":
        return -float(np.mean(np.abs(pred - true)))
    if name == "acc":
        return float(np.mean((pred > 0) == (true > 0.5)))
    if name == "auc":
        from sklearn.metrics import roc_auc_score

        t = true > 0.5
        return float(roc_auc_score(t, pred)) if len(np.unique(t)) == 2 else 0.5
    raise ValueError(f"unknown selection score {name!r}")


# A sign bias is flagged when the predicted-positive rate is this far from the true one. The gap is
# a lower bound on the share of sign errors (Acc-2 <= 1 - gap), so at 0.15 the bias alone costs 15
# points of Acc-2, far beyond what the sampling noise of a test split of a few hundred clips moves.
BIAS_GAP = 0.15
# Collapsed: predictions nearly constant (std below this share of the labels' std) ...
COLLAPSE_STD_RATIO = 0.1
# ... or on one side of zero for at least this share of the items.
COLLAPSE_ONE_SIDE = 0.95


def prediction_bias(kind: str, pred, true) -> dict:
    """How far predictions sit from the labels as a whole, beside the per-item metrics.

    bias: mean prediction minus mean label (binary: mean sigmoid(logit) minus the positive share).
    pred_positive_rate / label_positive_rate: the share predicted positive and truly positive,
    over items with a nonzero label for regression (binary: every item, logit > 0); their gap is
    a lower bound on the sign errors, and `biased` flags |gap| >= BIAS_GAP.
    """
    pred, true = _as_arrays(pred, true)
    if kind == "binary":
        score = 1.0 / (1.0 + np.exp(-pred))
        sel, pos_pred, pos_true = np.ones(pred.size, bool), pred > 0, true > 0.5
    else:
        score, sel, pos_pred, pos_true = pred, true != 0, pred > 0, true > 0
    out = {"mean_prediction": float(score.mean()), "mean_label": float(true.mean()),
           "bias": float(score.mean() - true.mean())}
    if sel.any():
        pp, lp = float(pos_pred[sel].mean()), float(pos_true[sel].mean())
        out.update(pred_positive_rate=pp, label_positive_rate=lp, positive_rate_gap=pp - lp,
                   biased=bool(abs(pp - lp) >= BIAS_GAP))
    else:
        out.update(pred_positive_rate=float("nan"), label_positive_rate=float("nan"),
                   positive_rate_gap=float("nan"), biased=False)
    return out


def collapse(pred, true) -> dict:
    """Whether a run's predictions have collapsed: nearly constant, or nearly all on one side of 0.

    A collapsed run's correlation or accuracy says little about its objective (a constant sign
    scores the majority share on Acc-2), so comparisons against it are marked.
    """
    pred, true = _as_arrays(pred, true)
    pred_std, label_std = float(np.std(pred)), float(np.std(true))
    positive = float(np.mean(pred > 0))
    one_side = max(positive, 1.0 - positive)
    constant = pred_std < COLLAPSE_STD_RATIO * label_std
    return {"collapsed": bool(constant or one_side >= COLLAPSE_ONE_SIDE), "constant": bool(constant),
            "pred_std": pred_std, "label_std": label_std, "one_side_share": one_side,
            "pred_positive_share": positive}


def collapse_reason(c: dict) -> str:
    """A collapse() record in words ('' when the run has not collapsed)."""
    if not c.get("collapsed"):
        return ""
    why = []
    if c.get("constant"):
        why.append(f"nearly constant (prediction std {c['pred_std']:.3g} < {COLLAPSE_STD_RATIO:g} × label std "
                   f"{c['label_std']:.3g})")
    if c["one_side_share"] >= COLLAPSE_ONE_SIDE:
        side = "positive" if c["pred_positive_share"] >= 0.5 else "zero or negative"
        why.append(f"{100 * c['one_side_share']:.0f} % of items predicted {side}")
    return "; ".join(why)
