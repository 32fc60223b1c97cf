"""Humor (UR-FUNNY) and sarcasm (MUStARD) end to end through Snakemake on small files of the
real formats written here, with the metrics checked against hand computations."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from support.commands import snakemake
from support.project import SMALL, copy_project, edit_params

FUNNY = ["haha what a hilarious joke", "that punchline was so funny", "the crowd laughed out loud"]
PLAIN = ["the budget report is due monday", "we reviewed the quarterly numbers", "the meeting starts at nine"]


def write_urfunny(d, n=72, seed=0):
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    labels = {i: int(i % 2) for i in range(n)}
    language = {i: {"punchline_sentence": rng.choice(FUNNY if labels[i] else PLAIN),
                    "context_sentences": ["so then he said", "and everyone waited"]} for i in range(n)}
    ids = list(range(n))
    folds = {"train": ids[: n // 2], "dev": ids[n // 2: 3 * n // 4], "test": ids[3 * n // 4:]}
    covarep = {i: {"punchline_features": rng.normal(labels[i], 1.0, (5, 6)),
                   "context_features": [rng.normal(0, 1, (3, 6))]} for i in ids}
    for name, obj in [("language_sdk.pkl", language), ("humor_label_sdk.pkl", labels),
                      ("data_folds.pkl", folds), ("covarep_features_sdk.pkl", covarep)]:
        with open(d / name, "wb") as f:
            pickle.dump(obj, f)


def write_mustard(d, n=80, seed=1):
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    data = {}
    for i in range(n):
        sarcastic = bool(i % 2)
        data[f"{i}_{i * 7}"] = {
            "utterance": ("oh great, another brilliant idea, just wonderful" if sarcastic
                          else rng.choice(PLAIN)),
            "speaker": "CHANDLER" if i % 3 else "SHELDON",
            "context": ["what do you think of the plan"],
            "context_speakers": ["ROSS"],
            "show": "FRIENDS" if i % 5 == 0 else "BBT",  # both classes among FRIENDS
            "sarcasm": sarcastic,
        }
    (d / "sarcasm_data.json").write_text(json.dumps(data))


def hand_metrics(pred: pd.DataFrame) -> dict:
    y, s = pred.label.to_numpy() > 0.5, pred.prediction.to_numpy()
    p = s > 0
    acc = float(np.mean(p == y))
    f1s, weights = [], []
    for cls in (True, False):
        tp, fp, fn = np.sum(p & (y == cls) & (p == cls)), np.sum((p == cls) & (y != cls)), np.sum((p != cls) & (y == cls))
        tp = np.sum((p == cls) & (y == cls))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        weights.append(np.sum(y == cls))
    pos, neg = s[y], s[~y]
    auc = float(np.mean([(a > b) + 0.5 * (a == b) for a in pos for b in neg]))
    return {"acc": acc, "f1_weighted": float(np.average(f1s, weights=weights)), "auc": auc}


@pytest.mark.slow
def test_urfunny_and_mustard_targets_run_both_stages(tmp_path):
    project = copy_project(tmp_path / "project")
    write_urfunny(tmp_path / "urfunny")
    write_mustard(tmp_path / "mustard")
    edit_params(project, {"datasets.urfunny.path": str(tmp_path / "urfunny"),
                          "datasets.mustard.path": str(tmp_path / "mustard" / "sarcasm_data.json"),
                          "run.seeds": [0], "features.text.max_length": 16})
    snakemake(project, "--cores", "2", "urfunny", "mustard")
    for dataset in ("urfunny", "mustard"):
        run = project / "runs" / "default" / dataset / "grcf" / "seed0"
        stage1 = pd.read_csv(run / "stage1_log.csv")
        stage2 = pd.read_csv(run / "stage2_log.csv")
        assert len(stage1) > 0 and "valid_auc" in stage1.columns  # stage 1 selects by validation AUC
        assert len(stage2) > 0 and "valid_acc" in stage2.columns  # stage 2 by validation accuracy
        metrics = json.loads((run / "metrics.json").read_text())
        pred = pd.read_csv(run / "predictions.csv")
        for split in ("test", "valid"):
            expected = hand_metrics(pred[pred.split == split])
            for k, v in expected.items():
                assert metrics[split][k] == pytest.approx(v), (dataset, split, k)
        assert metrics["test"]["auc"] > 0.8, (dataset, metrics["test"])  # the text says which class it is
        table = (project / "results" / "default" / dataset / "summary.md").read_text()
        assert all(v in table for v in SMALL[("run", "variants")])
    # speaker-independent MUStARD: test is exactly the FRIENDS clips
    test_ids = set(pd.read_csv(project / "runs/default/mustard/grcf/seed0/predictions.csv").query("split == 'test'").id)
    data = json.loads((tmp_path / "mustard" / "sarcasm_data.json").read_text())
    assert test_ids == {k for k, v in data.items() if v["show"] == "FRIENDS"}


@pytest.mark.slow
def test_mustard_five_fold_reports_mean_and_std_over_folds(tmp_path):
    project = copy_project(tmp_path / "project")
    write_mustard(tmp_path / "mustard", n=60)
    idx = np.arange(60)
    with open(tmp_path / "mustard" / "split_indices.p", "wb") as f:  # MUStARD's file: 5 (train, test) pairs
        pickle.dump([(np.setdiff1d(idx, idx[k::5]), idx[k::5]) for k in range(5)], f, protocol=2)
    path = str(tmp_path / "mustard" / "sarcasm_data.json")
    edit_params(project, {**{f"datasets.mustard_fold{k}.path": path for k in range(5)},
                          "run.seeds": [0], "run.variants": ["grcf"], "features.text.max_length": 16})
    snakemake(project, "--cores", "2", "mustard_5fold")
    table = pd.read_csv(project / "results/default/mustard_5fold/cv_summary.csv", index_col=0)
    assert set(table.index) == {"grcf"} and (table.n_folds == 5).all()
    for variant in ("grcf",):
        accs = [json.loads((project / f"runs/default/mustard_fold{k}/{variant}/seed0/metrics.json").read_text())["test"]["acc"]
                for k in range(5)]
        assert table.loc[variant, "acc_mean"] == pytest.approx(np.mean(accs))
        assert table.loc[variant, "acc_std"] == pytest.approx(np.std(accs, ddof=1))
    # each fold's test split is exactly its indices from split_indices.p
    ids = list(json.loads((tmp_path / "mustard" / "sarcasm_data.json").read_text()))
    for k in range(5):
        pred = pd.read_csv(project / f"runs/default/mustard_fold{k}/grcf/seed0/predictions.csv")
        assert set(pred[pred.split == "test"].id) == {ids[i] for i in idx[k::5]}
    assert "over 5 folds" in (project / "results/default/mustard_5fold/cv_summary.md").read_text()
