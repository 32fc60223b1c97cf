"""The hyperparameter sweep: candidates ranked on valid only, the best run on the seeds."""

import json

import pandas as pd
import pytest
import yaml

from conftest import copy_project, edit_params, run_cmd


@pytest.mark.slow
def test_sweep_ranks_on_valid_and_runs_the_best(tmp_path):
    project = copy_project(tmp_path / "project")
    params = edit_params(project, {"run.seeds": [0]})
    params["sweep"].update(method="grid", space={"stage2.lr": [0.0001, 0.003]})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_cmd(["grcf", "sweep", "--params", project / "params.yaml", "--workdir", tmp_path / "ws"], project)

    ws = tmp_path / "ws"
    ranking = pd.read_csv(ws / "results/embedded/sweep.csv")
    assert list(ranking.variant) and len(ranking) == 2
    for _, row in ranking.iterrows():  # the ranking score is the candidate's validation MAE
        valid = json.loads((ws / f"runs/embedded/{row.variant}/seed0/metrics.json").read_text())["valid"]
        assert row.valid_MAE == pytest.approx(valid["MAE"])
    assert ranking.valid_MAE.is_monotonic_increasing
    best = yaml.safe_load((ws / "results/embedded/best_variant.yaml").read_text())["variants"]["grcf_tuned"]
    assert best["stage2"]["lr"] == ranking.iloc[0]["stage2.lr"]
    summary = (ws / "results/embedded/summary.md").read_text()
    for v in ("grcf_tuned", *params["run"]["variants"]):
        assert f"| {v} |" in summary


def test_sweep_refuses_unknown_baselines_before_running_anything(tmp_path):
    from grcf.config import load_params
    from grcf.errors import GrcfError
    from grcf.pipeline.sweep import run_sweep
    from conftest import REPO

    params = load_params(REPO / "params.yaml")
    params["sweep"].update(base="grcf_tfn", baselines=["pointwise_tfn", "pointwise_nosuch"])
    with pytest.raises(GrcfError, match=r"sweep.baselines names unknown variants \['pointwise_nosuch'\]"):
        run_sweep(REPO, params, tmp_path / "ws")
    assert not (tmp_path / "ws").exists()
