"""MMSA model-zoo backbones through one adapter: shapes, no NaN, both stages, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from grcf.training.backbones import TOKENS, ZOO, ZooRegressor, resample
from grcf.config import load_params, resolve_run
from grcf.data.store import write_store
from grcf.training.model import encoder_parameters
from grcf.training.train import load_checkpoint, load_tensors, train_stage1, train_stage2

from support.commands import tool_env
from support.project import REPO
from support.zoo import MAX_LEN, SMALL_ARGS, zoo_cfg

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DIMS = {"text": 6, "audio": 5, "vision": 4}
WORDS = ["good", "bad", "great", "awful", "fine", "movie", "plot", "actor", "boring", "fun"]


def tiny_store(path, n=(40, 16, 16), dims=DIMS, seed=0):
    """A tiny trimodal store whose label is carried by every modality; with raw text, missing
    modalities (None), and zero-length sequences (all-padding rows)."""
    rng = np.random.default_rng(seed)
    splits = sum(([s] * k for s, k in zip(("train", "valid", "test"), n)), [])
    N = len(splits)
    z = rng.uniform(-3, 3, N)
    mods = {m: [] for m in dims}
    for i in range(N):
        for j, (m, d) in enumerate(dims.items()):
            if (i + j) % 9 == 4:
                mods[m].append(None)
            elif (i + j) % 13 == 6:
                mods[m].append(np.zeros((0, d), np.float32))
            else:
                L = int(rng.integers(2, MAX_LEN[m] + 1))
                mods[m].append((rng.normal(0, 1, (L, d)) + z[i] / 2).astype(np.float32))
    texts = [" ".join(WORDS[k] for k in rng.integers(0, len(WORDS), int(rng.integers(1, 8)))) + (" good" if z[i] > 0 else " bad")
             for i in range(N)]
    meta = {"dataset": "tiny", "task": "regression", "label_range": [-3, 3]}
    return write_store(path, ids=[f"r{i}" for i in range(N)], splits=splits, labels=z, modalities=mods,
                       meta=meta, texts=texts)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tiny_store(tmp_path_factory.mktemp("zoo") / "tiny.parquet")


def _losses(path):
    import csv

    return [float(r["train_loss"]) for r in csv.DictReader(open(path))]


def test_importing_grcf_does_not_import_mmsa():
    # (torch itself imports pynvml; MMSA, with transformers, pandas and its trainers, stays out)
    code = "import sys, grcf.cli, grcf.training.train, grcf.training.model, grcf.training.backbones; print(sorted(m for m in sys.modules if m.startswith('MMSA')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=tool_env(), check=True).stdout
    assert out.strip() == "[]"


def test_resample_is_a_masked_mean_over_equal_bins():
    x = torch.arange(1.0, 9.0).reshape(1, 8, 1).repeat(3, 1, 1)  # steps 1..8
    lengths = torch.tensor([6, 2, 0])  # row 0: 1..6 valid; row 1: 1..2; row 2: all padding
    out = resample(x, lengths, torch.tensor([3, 4, 2]), width=5)
    assert out[0, :, 0].tolist() == [1.5, 3.5, 5.5, 0.0, 0.0]  # pairs of valid steps; padding untouched
    assert out[1, :, 0].tolist() == [1.0, 1.0, 2.0, 2.0, 0.0]  # upsampled: each step repeated
    assert out[2].abs().sum() == 0


@pytest.mark.parametrize("name", sorted(ZOO))
def test_adapter_shapes_lengths_and_no_nan(store, name):
    cfg = zoo_cfg(name)
    cfg["model"]["backbone_args"] = SMALL_ARGS.get(name, {})
    data = load_tensors(store, "train", cfg, torch.device("cpu"))
    dims = {m: x.shape[-1] for m, x in data.features.items() if m != TOKENS}
    model = ZooRegressor(dims, cfg["model"]).eval()
    idx = torch.arange(len(data))
    feats, masks = data.take(idx)
    assert any((~k.any(1)).any() for m, k in masks.items() if m != TOKENS)  # the store has all-padding rows
    t, a, v = model.inputs(feats, masks)
    B = len(data)
    lens = {m: masks[m].sum(1) for m in DIMS}
    if ZOO[name] == "bert":
        assert encoder_parameters(model)  # the BERT gets its own learning rate (stage encoder_lr)
        assert t.shape == (B, 3, masks[TOKENS].shape[1])
        assert torch.equal(t[:, 1].long(), masks[TOKENS].long())  # the attention mask rides in row 1
        if name == "self_mm":
            assert torch.equal(a[1], lens["audio"].clamp_min(1)) and torch.equal(v[1], lens["vision"].clamp_min(1))
            a, v = a[0], v[0]
        else:  # MISA packs audio/vision at the token lengths: resampled onto the tokens
            tok = masks[TOKENS].sum(1)
            assert a.shape[1] == v.shape[1] == t.shape[2]
            assert torch.equal((a.abs().sum(-1) > 0).sum(1), torch.where(lens["audio"] > 0, tok, 0) * 1)
    elif ZOO[name] == "aligned":
        W = MAX_LEN["text"]
        assert t.shape[:2] == a.shape[:2] == v.shape[:2] == (B, W)
        # audio is read on the text's grid: as many non-zero steps as text steps (when both exist)
        both = (lens["text"] > 0) & (lens["audio"] > 0)
        assert torch.equal((a.abs().sum(-1) > 0).sum(1)[both], lens["text"][both])
    elif ZOO[name] == "utterance":
        assert a.shape == (B, 1, DIMS["audio"]) and v.shape == (B, 1, DIMS["vision"])
        x = (feats["audio"] - model.mean_audio) / model.std_audio
        i = int(torch.nonzero(lens["audio"] > 1)[0])
        assert torch.allclose(a[i, 0], x[i, : lens["audio"][i]].mean(0), atol=1e-5)
    else:
        assert t.shape == feats["text"].shape and a.shape == feats["audio"].shape
    for arg in (t, a, v):
        assert torch.isfinite(arg).all()
    with torch.no_grad():
        score = model.score(feats, masks)
    assert score.shape == (B,) and torch.isfinite(score).all()


def test_a_dataset_without_a_modality_still_feeds_every_backbone(tmp_path):
    path = tiny_store(tmp_path / "tv.parquet", dims={"text": 6, "audio": 5})
    for name in ("mult", "ef_lstm", "lmf", "self_mm"):
        cfg = zoo_cfg(name)
        cfg["model"]["backbone_args"] = SMALL_ARGS.get(name, {})
        data = load_tensors(path, "valid", cfg, torch.device("cpu"))
        model = ZooRegressor({"text": 6, "audio": 5}, cfg["model"]).eval()
        with torch.no_grad():
            score = model.score(*data.take(torch.arange(len(data))))
        assert torch.isfinite(score).all(), name


# MISA trains a BERT: > 20 s on 2 cores
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "misa" else n for n in sorted(ZOO)])
def test_each_backbone_trains_both_stages_and_its_loss_goes_down(store, tmp_path, name):
    cfg = zoo_cfg(name, lr=0.002)
    cfg["model"]["backbone_args"] = SMALL_ARGS.get(name, {})
    train_stage1(cfg, store, tmp_path / "s1.pt", tmp_path / "s1.csv", seed=0)
    train_stage2(cfg, store, tmp_path / "s1.pt", tmp_path / "s2.pt", tmp_path / "s2.csv", seed=0)
    for stage in ("s1", "s2"):
        losses = _losses(tmp_path / f"{stage}.csv")
        assert len(losses) == 4 and all(np.isfinite(losses))
        assert losses[-1] < losses[0], (stage, losses)
    # the checkpoint rebuilds the same backbone from dims + model_cfg alone
    model, ckpt = load_checkpoint(tmp_path / "s2.pt", torch.device("cpu"))
    assert isinstance(model, ZooRegressor) and model.name == name and ckpt["model_cfg"]["backbone"] == f"mmsa.{name}"
    from importlib.metadata import version

    assert ckpt["mmsa_version"] == version("mmsa") and ckpt["mmsa_args"]["model_name"] == name


RUN_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from support.zoo import SMALL_ARGS, zoo_cfg
from grcf.training.evaluate import evaluate_run
from grcf.training.train import train_stage1, train_stage2
cfg = zoo_cfg("mfn", epochs=10, patience=50)
cfg["model"]["backbone_args"] = {{"hidden_dims": [16, 8, 16], "memsize": 16}}
d = {out!r}
train_stage1(cfg, {store!r}, d + "/stage1.pt", d + "/stage1.csv", seed=0)
train_stage2(cfg, {store!r}, d + "/stage1.pt", d + "/stage2.pt", d + "/stage2.csv", seed=0)
evaluate_run(cfg, {store!r}, d + "/stage2.pt", d, seed=0)
"""


def _run(store, out, **popen):
    out.mkdir()
    code = RUN_SCRIPT.format(tests=str(REPO / "tests"), out=str(out), store=str(store))
    return subprocess.Popen([sys.executable, "-c", code], env={**tool_env(), "HF_HUB_OFFLINE": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)


@pytest.mark.slow
def test_zoo_run_killed_mid_stage1_resumes_to_identical_metrics(store, tmp_path):
    assert _run(store, tmp_path / "reference").wait() == 0
    killed = tmp_path / "killed"
    proc = _run(store, killed, start_new_session=True)
    resume, epoch, deadline = killed / "stage1.pt.resume", 0, time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and epoch < 3:
        if resume.exists():
            try:
                epoch = torch.load(resume, weights_only=True)["state"]["epoch"]
            except Exception:  # caught between write and rename: try again
                pass
        time.sleep(0.05)
    assert proc.poll() is None, "stage 1 finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert epoch >= 3 and not (killed / "stage1.pt").exists()
    code = RUN_SCRIPT.format(tests=str(REPO / "tests"), out=str(killed), store=str(store))
    code = code.replace("d = ", "import logging; logging.basicConfig()\nd = ")
    log = subprocess.run([sys.executable, "-c", code], env={**tool_env(), "HF_HUB_OFFLINE": "1"}, check=True,
                         capture_output=True, text=True).stderr
    assert "resuming from" in log
    ref = json.loads((tmp_path / "reference" / "metrics.json").read_text())
    assert json.loads((killed / "metrics.json").read_text()) == ref


def test_summary_names_the_backbone_and_pairs_objectives_within_each_backbone(tmp_path):
    import pandas as pd

    from grcf.results.summarize import summarize

    runs, variants = tmp_path / "runs", []
    for bb, short in (("fusion", None), ("mmsa.mult", "mult")):
        objectives = [("pointwise", 0.5), ("grcf", 0.6 if short else 0.4)]
        if short:  # an ablation and a sweep's tuned variant (`<base>_tuned`) of grcf on this backbone
            objectives += [("grcf_uniform", 0.55), ("grcf_tuned", 0.65)]
        for obj, corr in objectives:
            v = obj if short is None else (f"grcf_{short}_tuned" if obj == "grcf_tuned" else f"{obj}_{short}")
            variants.append(v)
            for seed in range(3):
                d = runs / "ds" / v / f"seed{seed}"
                d.mkdir(parents=True)
                m = {"Corr": corr + 0.01 * seed, "MAE": 1.0 - corr + 0.001 * seed}
                (d / "metrics.json").write_text(json.dumps({"test": m, "valid": m}))
                (d / "run_info.json").write_text(json.dumps({"params": {"model": {"backbone": bb}}}))
                pd.DataFrame({"id": ["a", "b"], "split": ["valid", "test"], "label": [0.5, -0.5],
                              "prediction": 0.0}).to_csv(d / "predictions.csv", index=False)
    summarize(runs, "ds", variants, [0, 1, 2], tmp_path / "out")
    import pandas as pd

    comp = pd.read_csv(tmp_path / "out" / "backbones.csv")
    g = comp[(comp.objective == "grcf") & (comp.baseline == "pointwise") & (comp.metric == "Corr")].set_index("backbone")
    assert g.loc["mult", "mean_diff"] == pytest.approx(0.1) and g.loc["fusion", "mean_diff"] == pytest.approx(-0.1)
    vs_grcf = comp[(comp.baseline == "grcf") & (comp.metric == "Corr")].set_index("objective")
    # a tuned grcf is never compared with a default one (tuned against tuned only)
    assert set(vs_grcf.backbone) == {"mult"} and set(vs_grcf.index) == {"grcf_uniform"}
    assert vs_grcf.loc["grcf_uniform", "mean_diff"] == pytest.approx(-0.05)
    md = (tmp_path / "out" / "backbones.md").read_text()
    assert "| mult | grcf | 3 |" in md and "| fusion | pointwise | 3 |" in md
    assert "| mult | grcf_tuned | 3 |" in md and "| mult | grcf_uniform | grcf | Corr | -0.0500" in md
    assert (tmp_path / "out" / "backbone_diff.png").read_bytes()[:4] == b"\x89PNG"


def test_backbone_is_a_parameter_of_variants_and_datasets_checked_by_the_schema():
    from grcf.config import validate_params
    from grcf.errors import GrcfError

    params = load_params(REPO / "params.yaml")
    assert resolve_run(params, "embedded", "grcf")["model"]["backbone"] == "fusion"
    cfg = resolve_run(params, "embedded", "static_pairwise_mult")
    assert cfg["model"]["backbone"] == "mmsa.mult" and cfg["stage1"]["enabled"] is False
    assert cfg["loss"]["margin"] == "static"  # the objective's own settings survive the backbone
    params["datasets"]["embedded"]["overrides"] = {"model": {"backbone": "mmsa.lmf", "backbone_args": {"rank": 2}}}
    validate_params(params)
    cfg = resolve_run(params, "embedded", "grcf")
    assert cfg["model"]["backbone"] == "mmsa.lmf" and cfg["model"]["backbone_args"] == {"rank": 2}
    params["variants"]["grcf"] = {"model": {"backbone": "mmsa.nope"}}
    with pytest.raises(GrcfError, match="backbone"):
        validate_params(params)


def test_a_typo_in_backbone_args_is_an_error_naming_the_closest_argument():
    """backbone_args is open in the schema (MMSA's own keys): the adapter closes it per model."""
    from grcf.training.backbones import mmsa_args
    from grcf.errors import GrcfError

    dims = {"text": 8, "audio": 4, "vision": 5}
    assert mmsa_args("lmf", dims, {"backbone_args": {"rank": 2}})["rank"] == 2
    with pytest.raises(GrcfError, match=r"backbone_args\.rnak is not an argument of MMSA's lmf; did you mean model\.backbone_args\.rank\?"):
        mmsa_args("lmf", dims, {"backbone_args": {"rnak": 2}})


def test_zoo_tables_prints_the_readme_tables_from_a_workspace_and_saves_per_run_results(tmp_path):
    """benchmarks/zoo_tables.py: full cells only, paired diffs, ablations vs grcf, times, runs.csv."""
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd

    work, times = tmp_path / "ws", {}
    for short, corr_grcf in (("tfn", 0.6), ("lmf", 0.45)):
        for obj, corr in (("pointwise", 0.4), ("static_pairwise", 0.5), ("grcf", corr_grcf), ("grcf_uniform", 0.55)):
            v = f"{obj}_{short}"
            for seed in range(3):
                if short == "lmf" and obj == "grcf_uniform" and seed == 2:
                    continue  # a half-run cell: not a row
                d = work / "runs" / "ds" / v / f"seed{seed}"
                d.mkdir(parents=True)
                m = {"Corr": corr + 0.01 * seed, "MAE": 1.0 - corr, "Non0_acc_2": 0.6, "Mult_acc_7": 0.2}
                (d / "metrics.json").write_text(json.dumps({"test": m, "valid": m}))
                (d / "run_info.json").write_text(json.dumps({"params": {"model": {"backbone": f"mmsa.{short}"}}}))
                # every evaluated run has its predictions (the tables judge collapse from them)
                labels = np.linspace(-3, 3, 20)
                pd.DataFrame({"id": [f"v$_${i}" for i in range(20)], "split": "test", "label": labels,
                              "prediction": labels * corr + np.cos(np.arange(20) + seed)}).to_csv(d / "predictions.csv", index=False)
                times[f"{v}/seed{seed}"] = {"seconds": 10.0 + seed, "cpu_seconds": 20.0 + seed, "threads": 1, "jobs": 2}
                if short == "tfn":  # the stage logs' epoch seconds: a pipeline workspace's only timing
                    pd.DataFrame({"epoch": [0, 1], "seconds": [1.0, 2.0]}).to_csv(d / "stage1_log.csv", index=False)
    (work / "results" / "ds").mkdir(parents=True)
    (work / "results" / "ds" / "wall_times.json").write_text(json.dumps(times))
    # a sweep's ranking (valid only): its rank-1 settings are shown beside the default's valid score
    (work / "params.yaml").write_text("sweep: {seed: 0}\n")
    pd.DataFrame({"objective": ["pointwise_tfn", "pointwise_tfn", "grcf_tfn", "static_pairwise_tfn"], "rank": [1, 2, 1, 1],
                  "variant": ["sweep_pointwise_tfn_003", "sweep_pointwise_tfn_000", "sweep_grcf_tfn_001", "static_pairwise_tfn"],
                  "valid_MAE": [0.55, 0.7, 0.35, 0.5], "stage2.lr": [0.002, 0.0005, None, None],
                  "loss.tau": [None, None, 2.0, None]}).to_csv(work / "results" / "ds" / "sweep.csv", index=False)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "zoo_tables.py"
    out = subprocess.run([sys.executable, str(script), str(work), "--dataset", "ds", "--save", str(tmp_path / "saved")],
                         check=True, capture_output=True, text=True).stdout
    assert "| tfn | grcf | 3 | 0.6100 ± 0.0100 |" in out and "| lmf | pointwise | 3 | 0.4100 ± 0.0100 |" in out
    # grcf − pointwise, then grcf − static pairwise (Corr, MAE)
    assert "| tfn | +0.200 [+0.200, +0.200] | −0.200 [−0.200, −0.200] | +0.100 [+0.100, +0.100] | −0.100" in out
    assert "| lmf | +0.050 [+0.050, +0.050] | −0.050" in out
    assert "| tfn | grcf_uniform | 0.5600 ± 0.0100 | 0.4500 ± 0.0000 | −0.050" in out and "| lmf | grcf_uniform" not in out
    assert "| tfn | 12 | 1 × 2 | 11 | 21 | 12 | 3 |" in out and "| lmf | 11 | 1 × 2 | 11 | 21 | 12 | – |" in out
    assert "| tfn | pointwise | 0.6000 | 0.5500 | stage2.lr 0.002 |" in out and "| tfn | grcf | 0.4000 | 0.3500 | loss.tau 2 |" in out
    assert "| tfn | static_pairwise | 0.5000 | 0.5000 | params.yaml's (the default won) |" in out
    assert (tmp_path / "saved" / "sweep.csv").exists()
    runs = pd.read_csv(tmp_path / "saved" / "runs.csv")
    assert len(runs) == 23 and set(runs.backbone) == {"tfn", "lmf"} and runs.cpu_s.max() == 22.0
