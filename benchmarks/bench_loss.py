"""Cost of the stage-1 ranking loss against plain L1: forward + backward time and peak memory.

For group sizes 32, 256, 1024 and 4096 (B x B pairs) it times `grcf.training.losses.stage1_loss` with the
`grcf` variant's settings (dynamic margin, advantage weights, standardised scores) exactly as the
training step calls it, and `torch.nn.functional.l1_loss`, on the CPU and, when present, on CUDA.

- time: median over `--repeats` calls after warm-up, of forward + backward (CUDA: synchronised),
  wall time and the process's CPU time (all threads; the steadier figure on a loaded machine);
- peak memory: CUDA, `torch.cuda.max_memory_allocated` above what the inputs hold; CPU (Linux),
  the process's peak resident set during the call (VmHWM, reset just before it through
  /proc/self/clear_refs) above its resident set before it, each case in a fresh process after
  one unmeasured call of the same size, with glibc's MALLOC_MMAP_THRESHOLD_=65536 so freed
  blocks leave the resident set (the figure counts live memory, within a few MiB).

The code timed is whatever `grcf` imports, so an older checkout is measured with
`PYTHONPATH=<old>/src python benchmarks/bench_loss.py`.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import time

SIZES = (32, 256, 1024, 4096)
LOSS_CFG = {"margin": "dynamic", "gamma": 0.5, "static_margin": 0.5, "weighting": "advantage", "tau": 1.0,
            "tie": 0.0, "standardize": True, "pointwise_weight": 0.0, "rank_weight": 0.0}


def loss_fn(kind: str):
    import torch.nn.functional as F

    from grcf.training import losses

    if kind == "l1":
        return F.l1_loss
    kw = {"check": False} if "check" in inspect.signature(losses.stage1_loss).parameters else {}
    return lambda p, y: losses.stage1_loss(p, y, LOSS_CFG, **kw)  # as train.py's step calls it


def inputs(b: int, device):
    import torch

    g = torch.Generator().manual_seed(b)
    pred = torch.randn(b, generator=g).to(device).requires_grad_(True)
    target = (torch.randn(b, generator=g) * 1.5).clamp(-3, 3).to(device)
    return pred, target


def time_case(kind: str, b: int, device: str, repeats: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of this process) of one forward + backward."""
    import torch

    dev = torch.device(device)
    fn = loss_fn(kind)
    pred, target = inputs(b, dev)

    def once():
        pred.grad = None
        fn(pred, target).backward()

    for _ in range(3):
        once()
    times, cpu = [], []
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        once()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), statistics.median(cpu)


def peak_case(kind: str, b: int, device: str) -> float:
    """MiB of peak memory of one forward + backward above the inputs (see the module docstring)."""
    import torch

    dev = torch.device(device)
    fn = loss_fn(kind)
    pred, target = inputs(b, dev)
    fn(pred, target).backward()  # one call first: kernels, thread pools and one-off buffers load outside the peak
    pred.grad = None
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn(pred, target).backward()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    # Linux: writing 5 to clear_refs resets the peak resident set (VmHWM) to the current one
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    rss = _status_kib("VmRSS")
    fn(pred, target).backward()
    return max(_status_kib("VmHWM") - rss, 0) / 1024


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads on the CPU (1: steadier on a shared machine)")
    ap.add_argument("--out", help="write the figures here as JSON")
    ap.add_argument("--_peak", nargs=3, help=argparse.SUPPRESS)  # child: kind size device
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args._peak:
        kind, b, device = args._peak
        print(peak_case(kind, int(b), device))
        return
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    rows = []
    for device in devices:
        name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {args.threads} threads"
        print(f"\n{device} ({name}): forward + backward, median of {args.repeats}")
        print(f"{'B':>6} {'loss':<9}{'wall ms':>10}{'CPU ms':>10}{'peak MiB':>10}")
        for b in args.sizes:
            for kind in ("l1", "ranking"):
                t, c = time_case(kind, b, device, args.repeats)
                # glibc: allocations above 64 KiB get their own mapping, so a freed block leaves the
                # resident set at once and the peak counts live memory, not heap high-water marks
                env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
                child = subprocess.run([sys.executable, __file__, "--threads", str(args.threads),
                                        "--_peak", kind, str(b), device], capture_output=True, text=True, env=env)
                if child.returncode:
                    sys.exit(child.stderr[-2000:])
                peak = float(child.stdout.strip().splitlines()[-1])
                rows.append({"device": device, "device_name": name, "B": b, "loss": kind, "ms": t * 1e3,
                             "cpu_ms": c * 1e3, "peak_mib": peak})
                print(f"{b:>6} {kind:<9}{t * 1e3:>10.3f}{c * 1e3:>10.3f}{peak:>10.1f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
