"""Summary tables from hand-made runs: paired `better`, headline names, LaTeX, reference rows."""

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from grcf.results.summarize import summarize, summarize_cv

SEEDS = [0, 1, 2]
MOSI_KEYS = ("Non0_acc_2", "Non0_F1_score", "Has0_acc_2", "Has0_F1_score", "Mult_acc_5", "Mult_acc_7",
             "MAE", "Corr", "Spearman")


def mosi_metrics(level: float, seed: int) -> dict:
    """A run whose every score improves with `level` (MAE falls), plus a small per-seed wiggle."""
    w = 0.001 * seed
    m = {k: 0.5 + level + w for k in MOSI_KEYS}
    m["MAE"] = 1.0 - level - w
    return m


def close(labels, variant, seed):
    """A good predictor: near the labels, both signs, no sign bias."""
    return 0.9 * np.asarray(labels, float) + 0.05


def write_runs(root, dataset, metrics_by_variant, labels=(0.0, 1.0, -1.0), valid_labels=(0.0, 1.0), predict=close,
               backbone="fusion"):
    """runs/<dataset>/<variant>/seed<s>/{metrics.json, predictions.csv, run_info.json} as `grcf evaluate` writes
    them; `predict(labels, variant, seed)` makes a split's predictions."""
    for variant, per_seed in metrics_by_variant.items():
        for seed, m in enumerate(per_seed):
            d = root / dataset / variant / f"seed{seed}"
            d.mkdir(parents=True)
            (d / "metrics.json").write_text(json.dumps({"dataset": dataset, "variant": variant, "seed": seed,
                                                        "test": m, "valid": m}))
            bb = backbone(variant) if callable(backbone) else backbone
            (d / "run_info.json").write_text(json.dumps({"params": {"model": {"backbone": bb}}}))
            rows = [("v", "valid", y) for y in valid_labels] + [("t", "test", y) for y in labels]
            pred = np.r_[predict(valid_labels, variant, seed), predict(labels, variant, seed)]
            pd.DataFrame({"id": [f"{s}{i}" for i, (s, _, _) in enumerate(rows)], "split": [r[1] for r in rows],
                          "label": [r[2] for r in rows], "prediction": pred}).to_csv(d / "predictions.csv",
                                                                                     index=False)


@pytest.fixture
def regression(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "results"
    # grcf beats both baselines on every seed; pointwise is the worst
    write_runs(runs, "toy", {"grcf": [mosi_metrics(0.2, s) for s in SEEDS],
                             "pointwise": [mosi_metrics(0.0, s) for s in SEEDS],
                             "static_pairwise": [mosi_metrics(0.1, s) for s in SEEDS]})
    summarize(runs, "toy", ["grcf", "pointwise", "static_pairwise"], SEEDS, out)
    return out


def test_better_follows_each_metrics_direction(regression):
    comp = pd.read_csv(regression / "comparisons.csv").set_index(["variant", "baseline", "metric"])
    # grcf − pointwise: MAE −0.2 (lower is better), Corr +0.2: both better, neither significant with 3 seeds
    for metric, sign in (("MAE", -1), ("Corr", 1), ("Non0_acc_2", 1)):
        r = comp.loc[("grcf", "pointwise", metric)]
        assert r.mean_diff == pytest.approx(sign * 0.2)
        assert r.better and not r.significant
    # static_pairwise − pointwise is better too, and listed once: never pointwise − static_pairwise
    assert comp.loc[("static_pairwise", "pointwise", "MAE")].better
    pairs = comp.reset_index()[["variant", "baseline"]].drop_duplicates()
    assert sorted(map(tuple, pairs.to_numpy())) == [("grcf", "pointwise"), ("grcf", "static_pairwise"),
                                                     ("static_pairwise", "pointwise")]
    assert set(comp.comparison) == {"default"} and (comp.baseline_collapsed == 0).all()
    assert comp.better.all()


def test_headline_table_uses_paper_names_percent_and_bold_best(regression):
    md = (regression / "summary.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| variant | Acc-2"))
    assert header == "| variant | Acc-2 (has0/non0) ↑ | F1 (has0/non0) ↑ | Acc-5 ↑ | Acc-7 ↑ | MAE ↓ | Corr ↑ |"
    grcf = next(line for line in md.splitlines() if line.startswith("| grcf |"))
    cells = [c.strip() for c in grcf.strip("|").split("|")][1:]
    # Has0/Non0 accuracy 0.701 ± 0.001 -> 70.1 ± 0.1 percent, best -> bold; MAE 0.799 -> raw, bold (lowest)
    assert cells[0] == "**70.1** ± 0.1 / **70.1** ± 0.1"
    assert cells[4] == "**0.799** ± 0.001"
    pointwise = next(line for line in md.splitlines() if line.startswith("| pointwise |"))
    assert "**" not in pointwise
    assert "## All metrics" in md and "Spearman" in md  # every metric is still there
    summary = pd.read_csv(regression / "summary.csv", index_col=0)
    assert {"Spearman_mean", "MAE_std"} <= set(summary.columns)
    # the DVC metrics file is a person-sized headline: a few means per variant
    js = json.loads((regression / "summary.json").read_text())
    assert set(js) == {"grcf", "pointwise", "static_pairwise"}
    assert set(js["grcf"]) == {"Has0_acc_2", "Non0_acc_2", "Has0_F1_score", "Non0_F1_score", "Mult_acc_5",
                               "Mult_acc_7", "MAE", "Corr"}
    assert js["grcf"]["MAE"] == pytest.approx(0.799, abs=1e-4)


def balanced_latex(tex: str):
    body = tex.replace(r"\{", "").replace(r"\}", "")
    depth = 0
    for ch in body:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, tex
    assert depth == 0, tex
    assert body.count("$") % 2 == 0, tex
    stack = []
    for kind, env in re.findall(r"\\(begin|end)\{(\w+)\}", body):
        if kind == "begin":
            stack.append(env)
        else:
            assert stack and stack.pop() == env, tex
    assert not stack, tex
    for table in re.findall(r"\\begin\{tabular\}\{(\w+)\}(.*?)\\end\{tabular\}", body, re.S):
        spec, rows = table
        for row in rows.split(r"\\")[:-1]:
            row = re.sub(r"\\(toprule|midrule|bottomrule)", "", row).strip()
            if row:
                assert row.count("&") == len(spec) - 1, row


def test_latex_table_is_booktabs_and_compiles(regression, tmp_path):
    tex = (regression / "summary.tex").read_text()
    assert tex.count(r"\begin{table}") == 2  # headline table and the paired comparisons beside it
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\textbf{70.1}$\pm$0.1" in tex
    assert r"static\_pairwise" in tex and r"MAE $\downarrow$" in tex
    balanced_latex(tex)
    if shutil.which("pdflatex"):
        doc = tmp_path / "doc.tex"
        doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage[T1]{fontenc}"
                       "\\usepackage[utf8]{inputenc}\\begin{document}\\input{" + str(regression / "summary.tex")
                       + "}\\end{document}\n")
        r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout[-3000:]


def binary(acc: float, seed: int) -> dict:
    return {"acc": acc + 0.01 * seed, "f1_weighted": acc, "auc": acc, "Spearman": 0.1}


def test_classification_tables_show_majority_and_chance_rows(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "results"
    labels = [0.0] * 7 + [1.0] * 3  # majority class: 70 % accuracy
    variants = ["grcf", "pointwise"]
    for ds in ("cls", "cls_fold0", "cls_fold1"):
        write_runs(runs, ds, {"grcf": [binary(0.6, s) for s in SEEDS], "pointwise": [binary(0.55, s) for s in SEEDS]},
                   labels=labels, valid_labels=[0.0, 1.0, 1.0])
    summarize(runs, "cls", variants, SEEDS, out / "cls")
    md = (out / "cls" / "summary.md").read_text()
    assert "| variant | Acc ↑ | F1 (weighted) ↑ | AUC ↑ |" in md
    majority = next(line for line in md.splitlines() if line.startswith("| *majority class* |"))
    # always "0": acc 0.7, weighted F1 0.7 * 2*0.7/1.7, AUC 0.5
    assert majority == f"| *majority class* | 70.0 | {100 * 0.7 * 1.4 / 1.7:.1f} | 0.500 |"
    assert re.search(r"^\| \*chance\* \| 50\.0 \| \d\d\.\d \| 0\.500 \|$", md, re.M)
    assert "Validation has 3 items: one item moves validation accuracy by 33.3 points" in md
    js = json.loads((out / "cls" / "summary.json").read_text())
    assert js["majority_class"]["acc"] == pytest.approx(0.7) and js["chance"]["auc"] == 0.5
    assert "majority class" in (out / "cls" / "summary.tex").read_text()
    balanced_latex((out / "cls" / "summary.tex").read_text())

    summarize_cv(runs, ["cls_fold0", "cls_fold1"], variants, SEEDS, out / "cv", "cv")
    cv = (out / "cv" / "cv_summary.md").read_text()
    assert "over 2 folds" in cv and "| *majority class* | 70.0 |" in cv
    balanced_latex((out / "cv" / "cv_summary.tex").read_text())


def test_chance_f1_is_the_expected_coin_flip_score():
    from sklearn.metrics import f1_score

    from grcf.results.reference import binary_reference

    y = np.array([0] * 30 + [1] * 10, dtype=float)
    ref = binary_reference(y, n_draws=4000)
    rng = np.random.default_rng(1)
    draws = [f1_score(y, rng.random(40) < 0.5, average="weighted") for _ in range(300)]
    assert ref.loc["chance", "f1_weighted"] == pytest.approx(np.mean(draws), abs=0.015)  # 300 draws: SE < 0.005
    assert ref.loc["majority class", "f1_weighted"] == pytest.approx(
        f1_score(y, np.zeros(40), average="weighted", zero_division=0))


TEST_LABELS = (-2.0, -1.0, -0.5, 0.0, 1.0, 2.0)  # nonzero: 2 of 5 positive (40 %)


def shifted_or_constant(labels, variant, seed):
    y = np.asarray(labels, float)
    if variant.startswith("pointwise"):
        return np.full(y.shape, 0.3)  # a constant predictor: collapsed
    if variant == "biased":
        return y + 1.2  # bias +1.2; on test 4 of the 5 nonzero-label clips predicted positive (80 %)
    return close(y, variant, seed)


def test_prediction_bias_is_reported_per_split_and_a_large_gap_is_flagged(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "results"
    write_runs(runs, "toy", {"grcf": [mosi_metrics(0.2, s) for s in SEEDS],
                             "biased": [mosi_metrics(0.1, s) for s in SEEDS]},
               labels=TEST_LABELS, valid_labels=(-2.0, 1.0), predict=shifted_or_constant)
    summarize(runs, "toy", ["grcf", "biased"], SEEDS, out)
    table = pd.read_csv(out / "summary.csv", index_col=0)
    b = table.loc["biased"]
    assert b.test_bias == pytest.approx(1.2) and b.valid_bias == pytest.approx(1.2)
    assert b.test_pred_positive_rate == pytest.approx(0.8) and b.test_label_positive_rate == pytest.approx(0.4)
    assert b.test_sign_bias and not b.valid_sign_bias  # valid: -0.8 and 2.2, one of two positive as the labels
    g = table.loc["grcf"]  # 0.9 y + 0.05: bias 0.05 − 0.1 × mean label; same signs as the labels
    assert g.test_bias == pytest.approx(0.05 - 0.1 * np.mean(TEST_LABELS))
    assert g.test_pred_positive_rate == pytest.approx(0.4) and not g.test_sign_bias
    md = (out / "summary.md").read_text()
    assert "| biased (sign bias) |" in md and "| grcf |" in md  # the headline row carries the flag
    assert "| biased | 0 | +1.200 | 50.0 % / 50.0 % | +1.200 | 80.0 % / 40.0 % ⚠ |" in md
    assert "15 points or more from the true rate" in md
    page = tmp_path / "report.html"
    from grcf.results.report import write_report

    html = write_report(runs, "toy", ["grcf", "biased"], SEEDS, out, page).read_text()
    assert "<td>biased (sign bias)</td>" in html and "<td>80.0 % / 40.0 % ⚠</td>" in html


def test_collapsed_baseline_is_marked_in_tables_comparisons_and_report(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "results"
    write_runs(runs, "toy", {"grcf": [mosi_metrics(0.2, s) for s in SEEDS],
                             "pointwise": [mosi_metrics(0.0, s) for s in SEEDS]},
               labels=TEST_LABELS, predict=shifted_or_constant)
    summarize(runs, "toy", ["grcf", "pointwise"], SEEDS, out)
    table = pd.read_csv(out / "summary.csv", index_col=0)
    assert table.loc["pointwise", "collapsed_seeds"] == 3 and table.loc["grcf", "collapsed_seeds"] == 0
    md = (out / "summary.md").read_text()
    assert "| pointwise (collapsed 3/3, sign bias) |" in md  # 0.3 for every clip: all positive
    assert "- pointwise seed 0: nearly constant (prediction std 0 < 0.1 × label std" in md
    row = next(line for line in md.splitlines() if line.startswith("| grcf | pointwise |"))
    assert row.endswith("| ⚠ baseline collapsed on 3/3 seeds |")
    comp = pd.read_csv(out / "comparisons.csv")
    assert (comp.baseline_collapsed == 3).all() and (comp.variant_collapsed == 0).all()
    tex = (out / "summary.tex").read_text()
    assert "pointwise (collapsed 3/3, sign bias) &" in tex and "& pointwise (collapsed 3/3) &" in tex
    balanced_latex((out / "summary.tex").read_text())
    from grcf.results.report import write_report

    html = write_report(runs, "toy", ["grcf", "pointwise"], SEEDS, out, tmp_path / "report.html").read_text()
    assert "pointwise (collapsed 3/3, sign bias)</td>" in html and "baseline collapsed on 3/3 seeds" in html
    assert "<h2>Prediction bias and collapsed runs</h2>" in html


def test_default_and_tuned_are_compared_apart_per_dataset_and_per_backbone(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "results"
    objectives = {"grcf": 0.2, "pointwise": 0.0, "static_pairwise": 0.1,
                  "grcf_tuned": 0.3, "pointwise_tuned": 0.25, "static_pairwise_tuned": 0.22}
    variants = [o for o in objectives] + [o.replace("_tuned", "") + "_tfn" + ("_tuned" if o.endswith("_tuned") else "")
                                          for o in objectives]
    levels = {v: objectives[v.replace("_tfn", "")] for v in variants}
    write_runs(runs, "toy", {v: [mosi_metrics(levels[v], s) for s in SEEDS] for v in variants},
               labels=TEST_LABELS, backbone=lambda v: "mmsa.tfn" if "_tfn" in v else "fusion")
    summarize(runs, "toy", variants, SEEDS, out)

    comp = pd.read_csv(out / "comparisons.csv")
    pairs = {(r.variant, r.baseline, r.comparison) for r in comp.itertuples()}
    for bb in ("", "_tfn"):
        for fam, suffix in (("default", ""), ("tuned", "_tuned")):
            name = lambda o: f"{o}{bb}{suffix}"  # noqa: E731
            assert {p for p in pairs if p[0].endswith(f"{bb}{suffix}") and p[1].endswith(f"{bb}{suffix}")
                    and ("_tfn" in p[0]) == bool(bb) and p[2] == fam} >= {
                (name("grcf"), name("pointwise"), fam), (name("grcf"), name("static_pairwise"), fam),
                (name("static_pairwise"), name("pointwise"), fam)}
    assert len(pairs) == 12  # 3 pairs x 2 families x 2 backbones, nothing else
    assert all(p[0].endswith("_tuned") == p[1].endswith("_tuned") for p in pairs)  # never tuned vs default
    assert all(("_tfn" in p[0]) == ("_tfn" in p[1]) for p in pairs)  # never across backbones
    r = comp[(comp.variant == "grcf_tuned") & (comp.baseline == "pointwise_tuned") & (comp.metric == "Corr")].iloc[0]
    assert r.mean_diff == pytest.approx(0.05) and r.ci_low <= r.mean_diff <= r.ci_high
    md = (out / "summary.md").read_text()
    assert md.index("### Default vs default") < md.index("| grcf | pointwise |") < md.index("### Tuned vs tuned") \
        < md.index("| grcf_tuned | pointwise_tuned |")

    bb = (out / "backbones.md").read_text()
    assert "| tfn | grcf_tuned | 3 |" in bb and "| fusion | pointwise_tuned | 3 |" in bb
    tuned = bb[bb.index("### Tuned vs tuned"):]
    assert "| tfn | grcf_tuned | pointwise_tuned | Corr | +0.0500 |" in tuned
    assert "| tfn | grcf_tuned | pointwise | " not in bb and "| tfn | grcf_tuned | grcf | " not in bb
    bcomp = pd.read_csv(out / "backbones.csv")
    assert set(bcomp.comparison) == {"default", "tuned"}
    assert (bcomp.objective.str.endswith("_tuned") == bcomp.baseline.str.endswith("_tuned")).all()
