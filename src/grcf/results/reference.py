"""Reference predictors for a binary test split: the rows a classifier must beat.

- majority class: always answer the test split's most frequent class (the best any constant
  answer can do on that split; AUC 0.5, a constant has no ranking);
- chance: a fair coin per item, the expectation over draws (accuracy 0.5, AUC 0.5; weighted F1
  depends on the class balance).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAJORITY = "majority class"
CHANCE = "chance"


def _weighted_f1(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Weighted F1 of each row of `pred` (bool [B, n]) against `true` (bool [n]); 0 for an empty class."""
    out = np.zeros(pred.shape[0])
    for c in (False, True):
        t, p = true == c, pred == c
        tp = (p & t).sum(axis=1)
        denom = p.sum(axis=1) + t.sum()
        f1 = np.divide(2 * tp, denom, out=np.zeros(len(tp)), where=denom > 0)
        out += t.mean() * f1
    return out


def binary_reference(labels, n_draws: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Rows `majority class` and `chance` with acc, f1_weighted, auc on these 0/1 labels."""
    true = np.asarray(labels, dtype=float).reshape(-1) > 0.5
    if true.size == 0:
        raise ValueError("no test labels")
    majority = bool(true.mean() > 0.5)
    const = np.full((1, true.size), majority)
    coin = np.random.default_rng(seed).random((n_draws, true.size)) < 0.5
    rows = {
        MAJORITY: {"acc": float((const == true).mean()), "f1_weighted": float(_weighted_f1(const, true)[0]),
                   "auc": 0.5},
        CHANCE: {"acc": 0.5, "f1_weighted": float(_weighted_f1(coin, true).mean()), "auc": 0.5},
    }
    return pd.DataFrame.from_dict(rows, orient="index")
