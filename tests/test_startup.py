"""Start-up cost of a job: what a training or evaluation process imports.

Timings belong in benchmarks/bench_pipeline.py; this checks the causes: heavy modules a job
does not need stay unimported (scipy, sklearn, pandas, the torch compiler stack), and a mapped
tensor cache needs no Parquet reader.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from support.stores import small_store

HEAVY = ("scipy", "sklearn", "pandas", "torch._dynamo", "torch._inductor")

JOB = r"""
import json, sys
from grcf.config import load_params, resolve_run
from grcf.training.evaluate import evaluate_run
from grcf.training.train import train_stage1, train_stage2

store, out = sys.argv[1], sys.argv[2]
params = load_params("params.yaml")
params["datasets"]["toy"] = {"source": "parquet", "path": store, "task": "regression", "metrics": "mosi"}
cfg = resolve_run(params, "toy", "grcf")
cfg.update(device="cpu", threads=1)
for s in ("stage1", "stage2"):
    cfg[s].update(epochs=1, batch_size=8)
cfg["model"]["hidden"] = 8
train_stage1(cfg, store, out + "/s1.pt", out + "/s1.csv", seed=0)
train_stage2(cfg, store, out + "/s1.pt", out + "/s2.pt", out + "/s2.csv", seed=0)
result = evaluate_run(cfg, store, out + "/s2.pt", out, seed=0)
print(json.dumps({"modules": sorted(m for m in sys.modules if m.split(".")[0] in ("scipy", "sklearn", "pandas", "pyarrow")
                                    or m.startswith(("torch._dynamo", "torch._inductor"))),
                  "mae": result["test"]["MAE"]}))
"""


def _job(store, out):
    p = subprocess.run([sys.executable, "-c", JOB, str(store), str(out)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # two training processes, ~20 s
def test_a_job_imports_no_compiler_scipy_sklearn_or_pandas_and_a_cached_one_no_pyarrow(tmp_path):
    store = small_store(tmp_path / "toy.parquet", n=60)
    first = _job(store, tmp_path)  # builds the caches from the store (pyarrow, which may load pandas)
    heavy = [m for m in first["modules"] if m.split(".")[0] in ("scipy", "sklearn") or m.startswith(HEAVY[3:])]
    assert heavy == [], heavy
    assert "pyarrow" in first["modules"]
    second = _job(store, tmp_path)  # maps them
    assert second["modules"] == [], second["modules"]
    assert second["mae"] == first["mae"] and np.isfinite(first["mae"])


def test_predictions_csv_is_what_pandas_wrote():
    import pandas as pd

    from grcf.training.evaluate import predictions_csv

    rng = np.random.default_rng(0)
    n = 300
    cols = {"id": [f'a,b{i}' if i % 7 == 0 else f'x"{i}' if i % 11 == 0 else f"s{i}" for i in range(n)],
            "split": ["valid"] * n,
            "label": rng.normal(size=n).astype(np.float32).tolist(),
            "prediction": (rng.normal(size=n) * 10.0 ** rng.integers(-8, 8, n)).astype(np.float32).tolist()}
    cols["label"][:3] = [0.0, -2.0, 3.0]
    assert predictions_csv(cols) == pd.DataFrame(cols).to_csv(index=False)


EAGER = r"""
import sys, torch
from grcf.training.eager import eager_optimizer

cases = [(torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 1e-4}), (torch.optim.Adam, {"lr": 1e-2}),
         (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9, "weight_decay": 1e-4})]


def train(opt_cls, kw):
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    opt = opt_cls(model.parameters(), **kw)
    for _ in range(5):
        opt.zero_grad()
        model(torch.randn(8, 5)).pow(2).mean().backward()
        opt.step()
    return model, opt


fast = [eager_optimizer(cls) for cls, _ in cases]
assert all(f is not cls and issubclass(f, cls) for f, (cls, _) in zip(fast, cases))
ours = [train(f, kw) for f, (_, kw) in zip(fast, cases)]
assert "torch._dynamo" not in sys.modules
for (model, opt), (cls, kw) in zip(ours, cases):
    ref_model, ref_opt = train(cls, kw)  # torch's own class (imports torch._dynamo)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), ref_model.parameters())), cls
    opt.load_state_dict(ref_opt.state_dict())  # the state round-trips between the two (resume)
print("ok")
"""


def test_eager_optimizers_step_exactly_like_torch():
    p = subprocess.run([sys.executable, "-c", EAGER], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-3000:]
