"""Cross-dataset transfer: models trained on one dataset, tested on another's test fold.

For each trained dataset S and each other dataset T given, and each variant and seed, it runs

    grcf evaluate --dataset S --variant V --seed K --features STORE[S] --model RUNS[S]/V/seedK/stage2.pt \\
        --out-dir OUT/S_to_T/V/seedK --test-features STORE[T]

(the evaluate argument, no other code), then prints per (S -> T, variant) the test metrics as
mean ± std over seeds beside the in-domain figures of the same models (on S's test fold) and of
models trained on T, and the paired difference of the first variant against the second (mean
and 95 % bootstrap CI over seeds, as `grcf summarize` computes them).

    python benchmarks/transfer_table.py --params params.yaml \\
        --runs mosei_text=runs/mosei_text_sweep/mosei_text mosi_text=runs/mosi_text_sweep/mosi_text \\
        --stores mosei_text=features/mosei_text.parquet mosi_text=features/mosi_text.parquet \\
        --variants grcf pointwise --seeds 0 1 2 3 4 --out /tmp/transfer

Both stores must hold the same encoder's features (evaluate refuses another dim).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

GRCF = Path(sys.executable).with_name("grcf")
METRICS = [("Non0_acc_2", "Acc-2", 100), ("Non0_F1_score", "F1", 100), ("Mult_acc_7", "Acc-7", 100),
           ("MAE", "MAE", 1), ("Corr", "Corr", 1)]


def _pairs(items) -> dict:
    return {k: Path(v) for k, v in (x.split("=", 1) for x in items)}


def evaluate_all(args) -> pd.DataFrame:
    rows = []
    for src, runs in args.runs.items():
        for dst in args.stores:
            for v in args.variants:
                for k in args.seeds:
                    run = runs / v / f"seed{k}"
                    if dst == src:
                        m = json.loads((run / "metrics.json").read_text())
                    else:
                        out = args.out / f"{src}_to_{dst}" / v / f"seed{k}"
                        if not (out / "metrics.json").exists() or args.force:
                            subprocess.run([str(GRCF), "evaluate", "--params", str(args.params), "--dataset", src,
                                            "--variant", v, "--seed", str(k), "--features", str(args.stores[src]),
                                            "--model", str(run / "stage2.pt"), "--out-dir", str(out),
                                            "--test-features", str(args.stores[dst])], check=True,
                                           stdout=subprocess.DEVNULL)
                        m = json.loads((out / "metrics.json").read_text())
                    rows.append({"train": src, "test": dst, "variant": v, "seed": k, **m["test"]})
    return pd.DataFrame(rows)


def table(df: pd.DataFrame, variants) -> str:
    from grcf.results.seeds import paired

    head = "| trained on | tested on | variant | " + " | ".join(n for _, n, _ in METRICS) + " |"
    lines = [head, "|---" * (3 + len(METRICS)) + "|"]
    for (src, dst), g in df.groupby(["train", "test"], sort=False):
        for v in variants:
            r = g[g.variant == v]
            cells = [f"{(r[c] * s).mean():.{1 if s == 100 else 3}f} ± {(r[c] * s).std(ddof=1):.{1 if s == 100 else 3}f}"
                     for c, _, s in METRICS]
            lines.append(f"| {src} | {dst} | {v} | " + " | ".join(cells) + " |")
        if len(variants) >= 2:
            a, b = variants[:2]
            cells = []
            for c, _, s in METRICS:
                p = paired(g, a, b, c)
                dp = 1 if s == 100 else 3
                cells.append(f"{p['mean_diff'] * s:+.{dp}f} [{p['ci_low'] * s:+.{dp}f}, {p['ci_high'] * s:+.{dp}f}]")
            lines.append(f"| {src} | {dst} | {a} − {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--runs", nargs="+", required=True, metavar="DATASET=DIR", help="runs/<experiment>/<dataset>")
    ap.add_argument("--stores", nargs="+", required=True, metavar="DATASET=PARQUET")
    ap.add_argument("--variants", nargs="+", default=["grcf", "pointwise"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--force", action="store_true", help="evaluate again even where metrics.json exists")
    args = ap.parse_args(argv)
    args.runs, args.stores = _pairs(args.runs), _pairs(args.stores)
    df = evaluate_all(args)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "transfer.csv", index=False)
    print(table(df, args.variants))
    return 0


if __name__ == "__main__":
    sys.exit(main())
