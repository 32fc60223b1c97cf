"""The Snakemake pipeline end to end on the shrunk embedded dataset, and its rerun triggers.

One full run (module fixture), then dry runs (code edits, undone after each),
one partial run (stage2.lr changed), one run of a --configfile experiment and a
last dry run (a feature parameter changed).  The tests build on each other in
file order.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from support.commands import dry_run, snakemake
from support.project import SMALL, copy_project, edit_params, read_params

from grcf.pipeline.preflight import tables

pytestmark = pytest.mark.slow

VARIANTS = tuple(SMALL[("run", "variants")])
SEEDS = tuple(SMALL[("run", "seeds")])
RUNS = [(v, s) for v in VARIANTS for s in SEEDS]


def run_dir(project: Path, variant: str, seed: int) -> Path:
    return project / "runs" / "default" / "embedded" / variant / f"seed{seed}"


def snapshot(paths):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in paths}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The shrunk pipeline, run once to the end."""
    project = copy_project(tmp_path_factory.mktemp("smk") / "project")
    t0 = time.monotonic()
    snakemake(project, "--cores", "2")
    print(f"\n[timing] full Snakemake run (shrunk embedded, {len(VARIANTS)} variants x {len(SEEDS)} seeds, --cores 2): "
          f"{time.monotonic() - t0:.1f} s")
    return project


def test_full_run_outputs(project):
    results = project / "results" / "default" / "embedded"
    summary = (results / "summary.md").read_text()
    for variant in VARIANTS:
        assert re.search(rf"^\|\s*{variant}\s*\|", summary, re.M), summary
    for name in ("summary.csv", "summary.json", "comparisons.csv"):
        assert (results / name).stat().st_size > 0

    for variant, seed in RUNS:
        d = run_dir(project, variant, seed)
        for name in ("stage1.pt", "stage1_log.csv", "stage2.pt", "stage2_log.csv",
                     "metrics.json", "predictions.csv", "run_info.json"):
            assert (d / name).is_file(), d / name
        metrics = json.loads((d / "metrics.json").read_text())
        for split in ("test", "valid"):
            assert {"Corr", "MAE"} <= set(metrics[split]), metrics
            assert all(isinstance(v, (int, float)) for v in metrics[split].values()), metrics
        info = json.loads((d / "run_info.json").read_text())
        assert {"git", "packages", "seed", "params"} <= set(info), info
        assert info["seed"] == seed
        assert info["packages"]["torch"] and info["packages"]["grcf"], info["packages"]
        assert info["params"]["variant"] == variant and info["params"]["dataset"] == "embedded"
        assert info["params"]["model"]["hidden"] == 16  # the shrunk params.yaml was used
        assert info["params_file"] == "params.yaml"

        if variant == "grcf":
            pred = pd.read_csv(d / "predictions.csv")
            test = pred[pred["split"] == "test"]
            assert len(test) == 80, len(test)  # n_test of the shrunk params
            label_std = float(test["label"].std(ddof=0))
            assert metrics["test"]["Corr"] > 0.5, metrics["test"]
            assert metrics["test"]["MAE"] < label_std, (metrics["test"], label_std)
            # the metrics are those of the predictions written beside them
            mae = float((test["label"] - test["prediction"]).abs().mean())
            assert abs(mae - metrics["test"]["MAE"]) < 1e-4, (mae, metrics["test"])

    html = (results / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]{100,})"', html)
    # scatter, validation curves, metric bars, confusion matrix: each a real, non-blank picture
    assert len(images) == 4, html[:2000]
    import base64
    import io

    import matplotlib.image as mpimg
    for b64 in images:
        png = base64.b64decode(b64)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = mpimg.imread(io.BytesIO(png), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0.01
    for variant in VARIANTS:
        assert f"<td>{variant}</td>" in html


def test_nothing_to_do_after_run(project):
    assert dry_run(project) == Counter()


def test_touch_without_change_reruns_nothing(project):
    later = time.time() + 5
    for path in (project / "params.yaml", project / "src" / "grcf" / "training" / "train.py"):
        os.utime(path, (later, later))
    assert dry_run(project) == Counter()


N = len(RUNS)


@pytest.mark.parametrize("module, expected", [
    ("results/report.py", Counter(report=1, all=1)),
    ("results/summarize.py", Counter(summarize=1, report=1, all=1)),
    ("training/losses.py", Counter(train_stage1=N, train_stage2=N, evaluate=N, summarize=1, report=1, export=1, all=1)),
    # the embedded generator extracts no audio (test_codedeps: the raw-clip datasets depend on it)
    ("data/extractors/audio.py", Counter()),
])
def test_code_edit_reruns_what_runs_that_code(project, module, expected):
    path = project / "src" / "grcf" / module
    text = path.read_text()
    path.write_text(text + "\n_EDITED = True\n")
    try:
        assert dry_run(project) == expected
    finally:
        path.write_text(text)
    assert dry_run(project) == Counter()


def test_comment_and_docstring_edit_reruns_nothing(project):
    path = project / "src" / "grcf" / "training" / "losses.py"
    text = path.read_text()
    path.write_text('"""Reworded module docstring."""\n# a new comment\n' + text.split('"""', 2)[2].lstrip("\n"))
    try:
        assert dry_run(project) == Counter()
    finally:
        path.write_text(text)


def test_stage2_lr_reruns_stage2_and_downstream_only(project):
    lr = read_params(project)["stage2"]["lr"]
    edit_params(project, {"stage2.lr": lr * 4})
    n = len(RUNS)
    expected = Counter(train_stage2=n, evaluate=n, summarize=1, report=1, export=1, all=1)
    assert dry_run(project) == expected

    stage1 = snapshot(run_dir(project, v, s) / "stage1.pt" for v, s in RUNS)
    stage2 = snapshot(run_dir(project, v, s) / "stage2.pt" for v, s in RUNS)
    features = snapshot([project / "features" / "embedded.parquet"])
    t0 = time.monotonic()
    snakemake(project, "--cores", "2")
    print(f"\n[timing] partial Snakemake run (stage2.lr changed: {n} x train_stage2 + evaluate, "
          f"summarize, report): {time.monotonic() - t0:.1f} s")
    assert snapshot(stage1) == stage1, "stage-1 checkpoints were rewritten"
    assert snapshot(features) == features, "the feature store was rewritten"
    for path, (mtime, data) in stage2.items():
        assert path.stat().st_mtime_ns != mtime, path
        assert path.read_bytes() != data, f"{path}: same bytes after a learning-rate change"
    assert dry_run(project) == Counter()


def test_configfile_experiment_runs_and_records_its_config(project):
    """`--configfile` layers an experiment over params.yaml; the jobs read the resolved config."""
    experiments = project / "experiments"
    experiments.mkdir(exist_ok=True)
    lr = read_params(project)["stage2"]["lr"] / 8
    (experiments / "lr.yaml").write_text(yaml.safe_dump({"experiment": "lr", "stage2": {"lr": lr}}))
    exp = ("--configfile", "experiments/lr.yaml")  # after the target: it takes several files
    target = "runs/lr/embedded/grcf/seed0/metrics.json"
    # its own runs (the feature store is the dataset's, shared)
    assert dry_run(project, target, *exp) == Counter(train_stage1=1, train_stage2=1, evaluate=1)
    snakemake(project, "--cores", "2", target, *exp)
    info = json.loads((project / "runs/lr/embedded/grcf/seed0/run_info.json").read_text())
    assert info["params"]["stage2"]["lr"] == lr
    assert info["params_file"].startswith(".grcf/config/"), info["params_file"]
    resolved = yaml.safe_load((project / info["params_file"]).read_text())
    assert resolved == {**read_params(project), "experiment": "lr",
                        "stage2": {**read_params(project)["stage2"], "lr": lr}}
    # each experiment is up to date with its own parameters: neither makes the other rerun
    assert dry_run(project, target, *exp) == Counter()
    assert dry_run(project) == Counter()
    # --config works too (it used to be refused)
    assert dry_run(project, "runs/default/embedded/grcf/seed0/metrics.json", "--config", "device=cpu") == Counter(
        validate=1, features=1, train_stage1=1, train_stage2=1, evaluate=1)
    # a typo in an experiment file stops Snakemake before any job, naming the file and the key
    (experiments / "typo.yaml").write_text("stage1:\n  grad_clp: 0.5\n")
    rc, out = snakemake(project, "-n", "--configfile", "experiments/typo.yaml", check=False)
    assert rc != 0
    assert "experiments/typo.yaml: stage1.grad_clp is not a setting; did you mean stage1.grad_clip?" in out, out[-2000:]
    # so is a file without its experiment's name (its outputs would land on params.yaml's)
    (experiments / "noname.yaml").write_text(yaml.safe_dump({"stage2": {"lr": lr}}))
    rc, out = snakemake(project, "-n", "--configfile", "experiments/noname.yaml", check=False)
    assert rc != 0 and "experiments/noname.yaml: an experiment file names its experiment (add `experiment: noname`)" in out, out[-2000:]
    # and a dataset name that does not exist, with the closest one
    (experiments / "txt.yaml").write_text(yaml.safe_dump({"experiment": "txt", "run": {"datasets": ["mosi_txt"]}}))
    rc, out = snakemake(project, "-n", "--configfile", "experiments/txt.yaml", check=False)
    assert rc != 0 and "experiments/txt.yaml: run.datasets names unknown dataset 'mosi_txt'; did you mean 'mosi_text'?" in out


def test_two_experiments_on_one_dataset_keep_their_outputs_apart(project, monkeypatch):
    """Two experiment files on the same dataset, one after the other: each has its own runs, table,
    report and bundle, and running one leaves the other's outputs (and up-to-date state) alone."""
    experiments = project / "experiments"
    experiments.mkdir(exist_ok=True)
    base_lr = read_params(project)["stage2"]["lr"]
    for name, lr in (("slow", base_lr / 8), ("fast", base_lr * 4)):
        (experiments / f"{name}.yaml").write_text(yaml.safe_dump(
            {"experiment": name, "run": {"datasets": ["embedded"], "variants": ["grcf"], "seeds": [0]},
             "stage2": {"lr": lr}}))
    default = snapshot(p for p in (project / "results" / "default").rglob("*") if p.is_file())
    snakemake(project, "--cores", "2", "--configfile", "experiments/slow.yaml")
    slow = snapshot(p for d in ("results/slow", "models/slow", "runs/slow") for p in (project / d).rglob("*") if p.is_file())
    snakemake(project, "--cores", "2", "--configfile", "experiments/fast.yaml")
    assert snapshot(slow) == slow, "the second experiment rewrote the first one's outputs"
    assert snapshot(default) == default, "an experiment rewrote params.yaml's outputs"
    for name in ("slow", "fast"):
        assert dry_run(project, "--configfile", f"experiments/{name}.yaml") == Counter(), name
        assert re.search(r"^\|\s*grcf\s*\|", (project / f"results/{name}/embedded/summary.md").read_text(), re.M)
        assert (project / f"results/{name}/embedded/report.html").is_file()
    assert dry_run(project) == Counter()
    bundles = [project / f"models/{name}/embedded/grcf" for name in ("slow", "fast")]
    weights = [sorted(b.glob("*.safetensors")) for b in bundles]
    assert weights[0] and weights[1]
    assert weights[0][0].read_bytes() != weights[1][0].read_bytes(), "both bundles hold the same model"
    metrics = [json.loads((project / f"runs/{n}/embedded/grcf/seed0/metrics.json").read_text()) for n in ("slow", "fast")]
    assert metrics[0] != metrics[1]
    # `make run` prints the table of its own experiment only
    out = io.StringIO()
    monkeypatch.chdir(project)
    assert tables("experiments/slow.yaml", out=out) == 0
    assert out.getvalue() == (project / "results/slow/embedded/summary.md").read_text() + "\n"


def test_feature_param_reruns_everything_downstream(project):
    noise = read_params(project)["datasets"]["embedded"]["generator"]["label_noise"]
    edit_params(project, {"datasets.embedded.generator.label_noise": noise + 0.05})
    n = len(RUNS)
    assert dry_run(project) == Counter(validate=1, features=1, train_stage1=n, train_stage2=n,
                                       evaluate=n, summarize=1, report=1, export=1, all=1)
