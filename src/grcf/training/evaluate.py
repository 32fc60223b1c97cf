"""Evaluate a trained run: metrics on test (valid beside it), predictions.csv, run_info.json.

metrics.json also holds each split's prediction bias (`bias`: mean prediction minus mean label,
predicted- against truly-positive rate) and whether the test predictions collapsed (`collapsed`,
details in `collapse`): a run that answers one sign for every clip is not a fair baseline.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from grcf.atomic import write_json, write_text
from grcf.training.metrics import collapse, prediction_bias
from grcf.training.metrics import compute as compute_metrics
from grcf.provenance import run_record
from grcf.training.train import load_checkpoint, load_tensors, pick_device, predict


def evaluate_run(cfg: dict, features, model_path, out_dir, seed: int, params_file=None, test_features=None) -> dict:
    """`test_features` (transfer): the test fold comes from that store (another dataset, built with
    the same text encoder) instead of `features`; valid stays the training dataset's."""
    out_dir = Path(out_dir)
    device = pick_device(cfg["device"])
    model, ckpt = load_checkpoint(model_path, device)
    result = {"dataset": cfg["dataset"], "variant": cfg["variant"], "seed": seed}
    rows = {"id": [], "split": [], "label": [], "prediction": []}
    bias = {}
    if test_features is not None:
        result["test_features"] = str(test_features)
    for split in ("valid", "test"):
        store = test_features if split == "test" and test_features is not None else features
        data = load_tensors(store, split, cfg, device)
        _check_dims(store, data, ckpt)
        pred = predict(model, data)
        labels = data.labels.cpu().numpy()
        result[split] = compute_metrics(cfg["metrics"], pred, labels)
        bias[split] = prediction_bias(cfg["metrics"], pred, labels)
        if split == "test":
            result["collapse"] = collapse(pred, labels)
            result["collapsed"] = result["collapse"]["collapsed"]
        rows["id"] += list(data.ids)
        rows["split"] += [split] * len(pred)
        rows["label"] += labels.tolist()
        rows["prediction"] += pred.tolist()
    result["bias"] = bias
    # CSV so that `dvc plots` can draw the predicted-vs-true scatter from it
    write_text(out_dir / "predictions.csv", predictions_csv(rows))
    write_json(out_dir / "run_info.json", run_record(cfg, seed, str(device), params_file))
    write_json(out_dir / "metrics.json", result)
    return result


def _check_dims(store, data, ckpt) -> None:
    from grcf.errors import GrcfError

    for m, want in (ckpt.get("dims") or {}).items():
        if m in data.features and data.features[m].shape[-1] != want:
            raise GrcfError(f"{store}: {m} features have dim {data.features[m].shape[-1]}, the model was trained on "
                            f"{want} (build both stores with the same encoder)")


def predictions_csv(columns: dict) -> str:
    """The columns as CSV, byte for byte what pandas' DataFrame.to_csv(index=False) writes
    (importing pandas cost ~1 s of every evaluate job)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(zip(*columns.values()))
    return buf.getvalue()
