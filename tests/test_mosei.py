"""CMU-MOSEI end to end on a few hundred real rows of ../shared/data/mosei/label.csv, and transfer.

The full MOSEI store (22,788 texts) is never built here: benchmarks/bench_scale.py does that. A
sample of real rows keeps what matters for the path: MMSA's layout, original casing, and string
clip ids such as `82_7645` (which a number parser would read as 827645).
"""

from __future__ import annotations

import csv
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from support.commands import run_cmd, snakemake
from support.project import REPO, copy_project, edit_params

SHARED = REPO.parent / "shared" / "data"
MOSEI = SHARED / "mosei" / "label.csv"
MOSI = SHARED / "mosi" / "label.csv"
PER_SPLIT = {"train": 160, "valid": 60, "test": 80}

pytestmark = [pytest.mark.slow, pytest.mark.shared_data,
              pytest.mark.skipif(not MOSEI.exists(), reason="../shared/data/mosei is absent (a fresh clone)")]


def _sample(src, dest, per_split, seed=0):
    """A fixed random sample of real rows per fold, written in MMSA's layout; returns the frame."""
    df = pd.read_csv(src, dtype=str, keep_default_na=False)
    part = pd.concat([df[df["mode"] == m].sample(k, random_state=seed) for m, k in per_split.items()])
    dest.mkdir(parents=True)
    part.to_csv(dest / "label.csv", index=False)
    return part


@pytest.fixture(scope="module")
def mosei_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mosei")
    rows = _sample(MOSEI, tmp / "mosei_sample", PER_SPLIT)
    project = copy_project(tmp / "project")
    params = edit_params(project, {"run.datasets": ["embedded"], "run.variants": ["grcf"], "run.seeds": [0]})
    params["datasets"]["mosei_sample"] = {"source": "mmsa_raw", "path": str(tmp / "mosei_sample"),
                                          "task": "regression", "metrics": "mosi", "modalities": ["text"]}
    params["run"]["datasets"] = ["mosei_sample"]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = "runs/default/mosei_sample/grcf/seed0"  # params.yaml alone is the `default` experiment
    snakemake(project, "--cores", "2", f"{run}/predictions.csv", timeout=900)
    return project, rows, project / run


def test_mosei_sample_end_to_end_keeps_string_ids(mosei_run):
    project, rows, run = mosei_run
    report = json.loads((project / "features/mosei_sample.validation.json").read_text())
    assert report["ok"] and report["info"]["rows"] == sum(PER_SPLIT.values())
    store = project / "features/mosei_sample.parquet"
    meta = json.loads(pq.read_schema(store).metadata[b"grcf"])
    assert meta["modalities"]["text"]["dtype"] == "float32"  # params.yaml's features.text.dtype
    assert meta["modalities"]["text"]["dim"] == 384
    t = pq.read_table(store, columns=["id", "clip_id", "raw_text"]).to_pandas()
    want = {f"{v}$_${c}" for v, c in zip(rows.video_id, rows.clip_id)}
    assert set(t["id"]) == want and set(t["clip_id"]) == set(rows.clip_id)
    assert any("_" in c for c in t["clip_id"])  # MOSEI's start-time ids, e.g. 82_7645
    assert set(t["raw_text"]) == set(rows.text)  # original casing kept

    # ids in predictions.csv are the strings of label.csv, read back without a number parser
    with open(run / "predictions.csv", newline="") as f:
        pred = list(csv.DictReader(f))
    test_ids = {r["id"] for r in pred if r["split"] == "test"}
    assert test_ids == {f"{v}$_${c}" for v, c, m in zip(rows.video_id, rows.clip_id, rows["mode"]) if m == "test"}
    assert len([r for r in pred if r["split"] == "valid"]) == PER_SPLIT["valid"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dataset"] == "mosei_sample" and "test_features" not in metrics
    assert all(v == v for v in metrics["test"].values() if isinstance(v, float))  # no NaN


@pytest.mark.skipif(not MOSI.exists(), reason="../shared/data/mosi is absent (a fresh clone)")
def test_transfer_evaluates_on_another_datasets_test_fold(mosei_run, tmp_path):
    project, rows, run = mosei_run
    mosi = _sample(MOSI, tmp_path / "mosi_sample", {"train": 20, "valid": 20, "test": 50}, seed=1)
    other = tmp_path / "mosi_sample.parquet"
    run_cmd(["grcf", "features", "raw", tmp_path / "mosi_sample", other, "--modalities", "text"], project)
    out = tmp_path / "transfer"
    _, log = run_cmd(["grcf", "evaluate", "--dataset", "mosei_sample", "--variant", "grcf", "--seed", "0",
                      "--features", "features/mosei_sample.parquet", "--model", run / "stage2.pt",
                      "--out-dir", out, "--test-features", other], project)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_features"] == str(other)
    pred = pd.read_csv(out / "predictions.csv", dtype={"id": str})
    test = pred[pred.split == "test"]
    # the test fold is MOSI's, valid stays the training dataset's (MOSEI's)
    assert set(test.id) == {f"{v}$_${c}" for v, c, m in zip(mosi.video_id, mosi.clip_id, mosi["mode"]) if m == "test"}
    assert set(pred[pred.split == "valid"].id) <= {f"{v}$_${c}" for v, c in zip(rows.video_id, rows.clip_id)}
    own = json.loads((run / "metrics.json").read_text())
    assert metrics["valid"] == own["valid"]  # same model, same valid fold
    assert metrics["test"] != own["test"]
    truth = {f"{v}$_${c}": float(x) for v, c, x in zip(mosi.video_id, mosi.clip_id, mosi.label)}
    assert all(abs(truth[i] - y) < 1e-6 for i, y in zip(test.id, test.label))


def test_transfer_refuses_a_store_of_another_encoder(mosei_run, tmp_path):
    import numpy as np

    from grcf.data.store import write_store

    project, _, run = mosei_run
    other = write_store(tmp_path / "other.parquet", ids=["a", "b", "c"], splits=["train", "valid", "test"],
                        labels=[0.0, 1.0, -1.0], meta={"dataset": "other", "task": "regression", "label_range": [-3, 3]},
                        modalities={"text": [np.ones((2, 8), np.float32)] * 3})
    rc, log = run_cmd(["grcf", "evaluate", "--dataset", "mosei_sample", "--variant", "grcf", "--seed", "0",
                       "--features", "features/mosei_sample.parquet", "--model", run / "stage2.pt",
                       "--out-dir", tmp_path / "t", "--test-features", other], project, check=False)
    assert rc != 0 and "dim 8" in log and "384" in log


def test_length_sorted_chunked_encoding_keeps_input_order():
    """Texts are sorted by token count within each chunk for batching; results come back in input order."""
    import numpy as np

    from grcf.data.extractors.text import iter_text_features, load_text_model

    texts = list(pd.read_csv(MOSEI, dtype=str, keep_default_na=False, nrows=7)["text"])
    model = load_text_model("default")
    got = list(iter_text_features(texts, model=model, batch_size=2, chunk=3, progress=False))
    alone = [next(iter_text_features([t], model=model, progress=False)) for t in texts]
    assert len(got) == len(texts)
    for a, b in zip(got, alone):
        assert a.shape == b.shape and a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-4)
