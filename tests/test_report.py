"""The HTML report from hand-made runs: every figure drawn, non-blank, no text boxes overlapping."""

import base64
import io
import itertools
import json
import re

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from grcf.results.report import figures, write_report  # noqa: E402
from grcf.results.summarize import summarize  # noqa: E402

VARIANTS = ["grcf", "pointwise", "static_pairwise"]
SEEDS = [0, 1, 2]


def write_runs(root, dataset, classification: bool):
    rng = np.random.default_rng(0)
    n = 60
    labels = (rng.random(n) < 0.4).astype(float) if classification else np.round(rng.uniform(-3, 3, n), 1)
    for k, v in enumerate(VARIANTS):
        for s in SEEDS:
            d = root / dataset / v / f"seed{s}"
            d.mkdir(parents=True)
            pred = labels * (0.5 + 0.1 * k) + rng.normal(0, 1, n)
            if classification:
                pred = pred - 0.5
                t, p = labels > 0.5, pred > 0
                m = {"acc": float((t == p).mean()), "f1_weighted": 0.6 + 0.01 * k + 0.003 * s,
                     "auc": 0.7 + 0.002 * k, "Spearman": 0.3}
            else:
                m = {key: 0.6 + 0.01 * k + 0.004 * s for key in ("Non0_acc_2", "Non0_F1_score", "Has0_acc_2",
                                                                 "Has0_F1_score", "Mult_acc_5", "Mult_acc_7")}
                m.update(MAE=float(np.abs(pred - labels).mean()), Corr=0.5 + 0.003 * k, Spearman=0.5)
            (d / "metrics.json").write_text(json.dumps({"test": m, "valid": m}))
            (d / "run_info.json").write_text(json.dumps({"params": {"model": {"backbone": "fusion"}}}))
            pd.DataFrame({"id": range(2 * n), "split": ["valid"] * n + ["test"] * n,
                          "label": np.r_[labels, labels], "prediction": np.r_[pred, pred]}).to_csv(
                d / "predictions.csv", index=False)
            score1, score2 = ("valid_auc", "valid_acc") if classification else ("valid_Corr", "valid_MAE")
            epochs = np.arange(8 + s)
            log1 = pd.DataFrame({"epoch": epochs, "train_loss": 1 / (1 + epochs),
                                 score1: 0.5 + 0.03 * epochs + 0.01 * s}) if v == "grcf" else \
                pd.DataFrame(columns=["epoch", "train_loss"])  # the baselines skip stage 1
            log1.to_csv(d / "stage1_log.csv", index=False)
            pd.DataFrame({"epoch": epochs, "train_loss": 1 / (1 + epochs),
                          score2: 0.6 + 0.02 * epochs - 0.01 * s}).to_csv(d / "stage2_log.csv", index=False)


def visible_texts(fig):
    """Every text the renderer draws: suptitle, titles, axis labels, tick labels in view, legends, notes."""
    fig.canvas.draw()
    texts = [t for t in fig.texts]
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks():
                if tick.label1.get_visible() and lo - 1e-9 <= tick.get_loc() <= hi + 1e-9:
                    texts.append(tick.label1)
        if ax.get_legend():
            texts += [ax.get_legend().get_title(), *ax.get_legend().get_texts()]
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def overlaps(fig):
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in visible_texts(fig)]
    bad = []
    for (a, ba), (b, bb) in itertools.combinations(boxes, 2):
        # strict overlap, ignoring a shared edge pixel
        if min(ba.x1, bb.x1) - max(ba.x0, bb.x0) > 1 and min(ba.y1, bb.y1) - max(ba.y0, bb.y0) > 1:
            bad.append((a, b))
    return bad, len(boxes)


@pytest.mark.parametrize("classification", [False, True], ids=["regression", "classification"])
def test_report_figures_are_drawn_without_overlapping_text(tmp_path, classification):
    runs, out = tmp_path / "runs", tmp_path / "results"
    write_runs(runs, "toy", classification)
    summarize(runs, "toy", VARIANTS, SEEDS, out)
    for title, fig in figures(runs, "toy", VARIANTS, SEEDS):
        bad, n = overlaps(fig)
        assert n > 10, title  # the check saw the figure's texts
        assert not bad, (title, bad)
        if title == "Validation curves":  # one colour per seed, named in a legend
            legend = next(ax.get_legend() for ax in fig.axes if ax.get_legend())
            assert [t.get_text() for t in legend.get_texts()] == [f"seed {s}" for s in SEEDS]
            grcf1 = fig.axes[0]
            assert len({tuple(line.get_color()) if not isinstance(line.get_color(), str) else line.get_color()
                        for line in grcf1.get_lines()}) == len(SEEDS)
        if title == "Metrics across variants":  # dots with error bars on an axis near the data, not bars from 0
            ax = fig.axes[0]
            assert not ax.patches and ax.get_xlim()[0] > 0
            if classification:
                assert [t.get_text() for t in ax.get_legend().get_texts()] == ["majority class", "chance"]
        plt.close(fig)

    page = write_report(runs, "toy", VARIANTS, SEEDS, out, tmp_path / "report.html").read_text()
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(pngs) == 4
    for png in pngs:
        img = plt.imread(io.BytesIO(base64.b64decode(png)))
        assert img.shape[0] > 100 and img.shape[1] > 100
        rgb = img[..., :3]
        assert (rgb < 0.9).mean() > 0.01 and rgb.std() > 0.05  # ink on the page, not a blank canvas
    if classification:
        assert "<i>majority class</i>" in page and "<i>chance</i>" in page


def test_overlap_check_catches_a_suptitle_on_a_panel_title():
    fig, axes = plt.subplots(1, 2, figsize=(4, 3))  # no layout manager
    axes[0].set_title("a long panel title")
    fig.suptitle("figure title", y=axes[0].get_position().y1 + 0.02)
    bad, _ = overlaps(fig)
    plt.close(fig)
    assert ("figure title", "a long panel title") in bad or ("a long panel title", "figure title") in bad
