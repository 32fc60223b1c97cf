"""A linear probe on a classification feature store: how much the frozen text features alone carry.

Mean-pools each item's token features, fits a standardised logistic regression on train + valid
(C by 5-fold CV on those items only), and prints test accuracy, weighted F1 and AUC. A sanity
anchor beside the pipeline's tables (e.g. MUStARD stores built with different `text_order`).

    python benchmarks/mustard_linear_probe.py features/mustard.parquet [more stores...]
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from grcf.data.store import load_split


def pooled(path, split):
    s = load_split(path, split, modalities=["text"])
    mask = s.masks["text"][..., None].astype(np.float32)
    return (s.features["text"] * mask).sum(1) / np.maximum(mask.sum(1), 1), s.labels > 0.5


def probe(path) -> dict:
    (xtr, ytr), (xva, yva), (xte, yte) = (pooled(path, s) for s in ("train", "valid", "test"))
    x, y = np.r_[xtr, xva], np.r_[ytr, yva]
    grid = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                        {"logisticregression__C": [0.001, 0.01, 0.1, 1.0]}, cv=5).fit(x, y)
    pred, score = grid.predict(xte), grid.decision_function(xte)
    return {"n_train": len(y), "n_test": len(yte), "C": grid.best_params_["logisticregression__C"],
            "acc": accuracy_score(yte, pred), "f1_weighted": f1_score(yte, pred, average="weighted"),
            "auc": roc_auc_score(yte, score)}


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=FutureWarning)
    for path in sys.argv[1:]:
        r = probe(path)
        print(f"{path}: train+valid {r['n_train']}, test {r['n_test']}, C={r['C']}: acc {r['acc']:.3f}, "
              f"weighted F1 {r['f1_weighted']:.3f}, AUC {r['auc']:.3f}")
