"""The hyperparameter sweep: every objective tuned with the same budget, ranked on valid only, the
best of each run on the seeds as `<base>_tuned` and compared tuned against tuned."""

import json

import pandas as pd
import pytest
import yaml

from support.commands import run_cmd
from support.project import REPO, copy_project, edit_params


@pytest.mark.slow
def test_sweep_tunes_each_objective_with_the_same_budget_on_valid_and_runs_both_tuned(tmp_path):
    from grcf.config import experiment_name
    from grcf.pipeline.sweep import results_dir

    project = copy_project(tmp_path / "project")
    params = edit_params(project, {"run.seeds": [0, 1]})
    params["sweep"] = {"bases": ["grcf", "pointwise"], "dataset": "embedded", "seed": 0, "method": "random",
                       "trials": 2, "sample_seed": 0, "rank_by": "auto",
                       "spaces": {"grcf": {"stage2.lr": [0.0001, 0.003]},
                                  "pointwise": {"stage2.lr": [0.0002, 0.005], "stage2.weight_decay": [0.0]}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_cmd(["grcf", "sweep", "--params", project / "params.yaml", "--workdir", tmp_path / "ws"], project)

    ws, results = tmp_path / "ws", results_dir(tmp_path / "ws", params)
    runs = ws / "runs" / experiment_name(params) / "embedded"
    ranking = pd.read_csv(results / "sweep.csv")
    # the same budget: 2 candidates each, and each objective's own params.yaml settings scored beside them
    assert ranking.groupby("objective").size().to_dict() == {"grcf": 3, "pointwise": 3}
    assert set(ranking[ranking.variant == ranking.objective].objective) == {"grcf", "pointwise"}
    assert not [c for c in ranking.columns if "test" in c]  # selection never sees test
    best = yaml.safe_load((results / "best_variant.yaml").read_text())["variants"]
    assert set(best) == {"grcf_tuned", "pointwise_tuned"}
    for objective, g in ranking.groupby("objective"):
        for _, row in g.iterrows():  # the ranking score is the candidate's validation MAE, on the sweep seed
            valid = json.loads((runs / row.variant / "seed0" / "metrics.json").read_text())["valid"]
            assert row.valid_MAE == pytest.approx(valid["MAE"])
        assert list(g["rank"]) == [1, 2, 3] and g.valid_MAE.is_monotonic_increasing
        default_lr = params["variants"][objective].get("stage2", {}).get("lr", params["stage2"]["lr"])
        won = default_lr if g.iloc[0].variant == objective else g.iloc[0]["stage2.lr"]
        assert best[f"{objective}_tuned"].get("stage2", {}).get("lr", params["stage2"]["lr"]) == won
        # never worse on valid than the untuned settings
        assert g.iloc[0].valid_MAE <= g[g.variant == objective].valid_MAE.iloc[0]
    assert best["pointwise_tuned"]["stage1"] == {"enabled": False}  # a tuned point-wise is still point-wise

    for v in ("grcf", "pointwise", "grcf_tuned", "pointwise_tuned"):
        for seed in (0, 1):  # each tuned configuration runs on every seed
            m = json.loads((runs / v / f"seed{seed}" / "metrics.json").read_text())
            assert {"collapsed", "bias"} <= set(m) and set(m["bias"]) == {"valid", "test"}
    comp = pd.read_csv(results / "comparisons.csv")
    pairs = set(zip(comp.variant, comp.baseline, comp.comparison))
    assert pairs == {("grcf", "pointwise", "default"), ("grcf_tuned", "pointwise_tuned", "tuned")}
    summary = (results / "summary.md").read_text()
    assert "### Default vs default" in summary and "### Tuned vs tuned" in summary
    for v in ("grcf", "pointwise", "grcf_tuned", "pointwise_tuned"):
        assert f"| {v} |" in summary


def test_sweep_refuses_an_unequal_budget_and_unknown_names_before_running_anything(tmp_path):
    from grcf.config import load_params
    from grcf.errors import GrcfError
    from grcf.pipeline.sweep import run_sweep

    params = load_params(REPO / "params.yaml")
    params["sweep"].update(method="grid", spaces={"grcf": {"loss.gamma": [0.5, 1.0]},
                                                  "pointwise": {"stage2.lr": [0.001, 0.002, 0.005]}},
                           bases=["grcf", "pointwise"])
    with pytest.raises(GrcfError, match=r"unequal tuning budget, trials per objective: \{'grcf': 2, 'pointwise': 3\}"):
        run_sweep(REPO, params, tmp_path / "ws")
    params["sweep"].update(method="random", trials=3)  # 3 trials: grcf's grid has only 2 points
    with pytest.raises(GrcfError, match="at least sweep.trials = 3 grid points"):
        run_sweep(REPO, params, tmp_path / "ws")
    params["sweep"]["bases"] = ["grcf", "pointwise", "static_pairwise"]
    with pytest.raises(GrcfError, match=r"sweep.spaces has no search space for \['static_pairwise'\]"):
        run_sweep(REPO, params, tmp_path / "ws")
    params["sweep"].update(bases=["grcf", "pointwise_nosuch"], spaces={"grcf": {}, "pointwise_nosuch": {}})
    with pytest.raises(GrcfError, match=r"sweep.bases names unknown variants \['pointwise_nosuch'\]"):
        run_sweep(REPO, params, tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


def test_sweep_refuses_unknown_baselines_before_running_anything(tmp_path):
    from grcf.config import load_params
    from grcf.errors import GrcfError
    from grcf.pipeline.sweep import run_sweep

    params = load_params(REPO / "params.yaml")
    space = params["sweep"]["spaces"]["grcf"]
    for key in ("bases", "spaces"):
        del params["sweep"][key]
    params["sweep"].update(base="grcf_tfn", space=space, baselines=["pointwise_tfn", "pointwise_nosuch"])
    with pytest.raises(GrcfError, match=r"sweep.baselines names unknown variants \['pointwise_nosuch'\]"):
        run_sweep(REPO, params, tmp_path / "ws")
    assert not (tmp_path / "ws").exists()
