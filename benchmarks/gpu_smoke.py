"""GPU smoke check: fine-tune the text transformer (one variant x one seed) on text-only MOSI.

Prints time per epoch, training samples per second and peak GPU memory. Needs the MOSI text
feature store (built by the pipeline or by this script from ../shared/data/mosi). Example:

    python benchmarks/gpu_smoke.py --features features/mosi_text.parquet --variant grcf_finetune
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch

from grcf.cli import build_features, feature_options
from grcf.config import load_params, resolve_run
from grcf.training.evaluate import evaluate_run
from grcf.training.train import pick_device, train_stage1, train_stage2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--dataset", default="mosi_text")
    ap.add_argument("--variant", default="grcf_finetune")
    ap.add_argument("--features", type=Path, default=Path("features/mosi_text.parquet"))
    ap.add_argument("--out", type=Path, default=Path("runs/gpu_smoke"))
    ap.add_argument("--epochs", type=int, default=None, help="override both stages' epochs (default: params)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    params = load_params(args.params)
    if not args.features.exists():
        kind, src, options = feature_options(params, args.dataset)
        build_features(kind, src, args.features, options)
    cfg = resolve_run(params, args.dataset, args.variant)
    cfg["device"] = args.device
    if args.epochs is not None:
        cfg["stage1"]["epochs"] = cfg["stage2"]["epochs"] = args.epochs
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_stage1(cfg, args.features, args.out / "stage1.pt", args.out / "stage1_log.csv", seed=0)
    train_stage2(cfg, args.features, args.out / "stage1.pt", args.out / "stage2.pt", args.out / "stage2_log.csv", seed=0)
    wall = time.perf_counter() - t0
    result = evaluate_run(cfg, args.features, args.out / "stage2.pt", args.out, seed=0)

    n_train = None
    import pyarrow.parquet as pq

    n_train = sum(s == "train" for s in pq.read_table(args.features, columns=["split"]).column("split").to_pylist())
    for stage in ("stage1", "stage2"):
        rows = list(csv.DictReader(open(args.out / f"{stage}_log.csv")))
        if rows:
            sec = sum(float(r["seconds"]) for r in rows) / len(rows)
            print(f"{stage}: {len(rows)} epochs, {sec:.1f} s/epoch, {n_train / sec:.0f} train samples/s (incl. validation)")
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device {name}; total training wall {wall:.0f} s; peak GPU memory {peak:.2f} GiB")
    print("test:", " ".join(f"{k}={v:.4f}" for k, v in result["test"].items()))


if __name__ == "__main__":
    main()
