"""Feature-extraction and feature-store benchmarks.

(a) text encoding throughput (sentences/s) with the default model on MOSI sentences;
(b) audio + vision extraction real-time factor (media seconds per wall second) over the
    shared MOSI clips with a process pool;
(c) reading a MOSEI-sized synthetic set into padded arrays: Parquet (`load_split`) vs an
    MMSA-style pickle (`pickle.load`; our own file, so plain pickle is fine here); write times,
    file sizes, and optionally feature-column compressions (--codecs none,lz4).

    python benchmarks/bench_features.py [--quick] [--workers 2] [--skip text,media,store] [--codecs none,lz4]
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MOSI = REPO.parent / "shared" / "data" / "mosi"
MOSEI = {"train": 16326, "valid": 1871, "test": 4659}  # MMSA's MOSEI split sizes (22,856 ~ 23k)
DIMS = {"text": 768, "audio": 74, "vision": 35}
SEQ = 50


def bench_text(n: int, max_length: int):
    from grcf.data.extractors.text import encode_texts, load_text_model

    with open(MOSI / "label.csv", newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f) if r["text"].strip()][:n]
    t0 = time.perf_counter()
    pair = load_text_model("default")
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = encode_texts(texts, model=pair, max_length=max_length, batch_size=64, progress=False)
    dt = time.perf_counter() - t0
    tokens = sum(a.shape[0] for a in out)
    print(f"(a) text: {len(texts)} MOSI sentences, max_length={max_length}, D={out[0].shape[1]}: "
          f"{len(texts) / dt:.1f} sentences/s ({tokens / dt:.0f} tokens/s), model load {load_s:.2f}s")


def media_seconds(path) -> float:
    import av

    with av.open(str(path)) as c:
        return float(c.duration) / 1e6 if c.duration else 0.0


def bench_media(workers: int, limit: int | None):
    from grcf.data.datasets.mmsa_raw import _extract_all

    clips = sorted((MOSI / "Raw").glob("*/*.mp4"))[:limit]
    secs = sum(media_seconds(p) for p in clips)
    jobs = list(enumerate(clips))
    aopts = {"sample_rate": 16000, "hop_seconds": 0.04, "backend": "librosa"}
    vopts = {"fps": 5}
    t0 = time.perf_counter()
    res = list(_extract_all(jobs, ["audio", "vision"], aopts, vopts, workers))
    dt = time.perf_counter() - t0
    failed = [r for r in res if r[-1] is not None]
    frames = sum(r[2].shape[0] for r in res if r[2] is not None)
    faces = sum(r[3].shape[0] for r in res if r[3] is not None)
    print(f"(b) audio+vision: {len(clips)} clips, {secs:.1f}s of media, workers={workers}: wall {dt:.1f}s "
          f"(incl. worker start-up) -> {secs / dt:.1f}x real time; {frames} audio frames, {faces} face frames, "
          f"{len(failed)} failed")
    # per-modality cost in this process (imports already warm)
    from grcf.data.extractors.audio import extract_audio
    from grcf.data.extractors.vision import extract_vision

    for name, fn in [("audio", lambda p: extract_audio(p)), ("vision", lambda p: extract_vision(p, fps=5))]:
        t0 = time.perf_counter()
        for p in clips:
            fn(p)
        d = time.perf_counter() - t0
        print(f"    {name} alone, 1 process: {d:.1f}s -> {secs / d:.1f}x real time")


def synth_split(n: int, rng) -> dict:
    return {m: rng.standard_normal((n, SEQ, d), dtype=np.float32) for m, d in DIMS.items()}


def bench_store(scale: float, tmp: Path, codecs=("none",)):
    """Write + read at MOSEI size; `codecs`: compression of the feature columns (store.FEATURE_COMPRESSION)."""
    from grcf.data import store
    from grcf.data.store import load_split, write_store

    rng = np.random.default_rng(0)
    sizes = {s: max(2, int(n * scale)) for s, n in MOSEI.items()}
    total = sum(sizes.values())
    data = {}
    for s, n in sizes.items():
        d = synth_split(n, rng)
        d["id"] = np.array([f"v{s}{i // 10}$_${i}" for i in range(n)], dtype=object)
        d["regression_labels"] = rng.uniform(-3, 3, n).astype(np.float32)
        data[s] = d
    gib = sum(a.nbytes for d in data.values() for m, a in d.items() if m in DIMS) / 2**30
    print(f"(c) store: {total} samples ({sizes}), {SEQ} steps x {DIMS}, {gib:.2f} GiB float32, "
          f"format_version {store.FORMAT_VERSION}")

    pkl_path = tmp / "mosei.pkl"
    paths, default = {}, store.FEATURE_COMPRESSION
    for codec in codecs:
        pq_path = paths[codec] = tmp / f"mosei.{codec}.parquet"
        store.FEATURE_COMPRESSION = codec
        t0 = time.perf_counter()
        ids, splits, labels, mods = [], [], [], {m: [] for m in DIMS}
        for s, d in data.items():
            ids += list(d["id"]); splits += [s] * len(d["id"]); labels += list(d["regression_labels"])
            for m in DIMS:
                mods[m] += list(d[m])  # per-sample views, no copy
        try:
            write_store(pq_path, ids=ids, splits=splits, labels=labels, modalities=mods,
                        meta={"dataset": "synthetic-mosei", "producer": "bench", "task": "regression",
                              "label_range": [-3, 3]})
        finally:
            store.FEATURE_COMPRESSION = default
        del ids, splits, labels, mods
        w = time.perf_counter() - t0
        gc.collect()
        print(f"    write parquet (features {codec}): {w:.1f}s -> {total / w:,.0f} samples/s, "
              f"{pq_path.stat().st_size / 2**30:.2f} GiB")
    t0 = time.perf_counter()
    with open(pkl_path, "wb") as f:
        pickle.dump(data, f, protocol=4)
    w_pkl = time.perf_counter() - t0
    del data
    gc.collect()
    print(f"    write pickle: {w_pkl:.1f}s -> {total / w_pkl:,.0f} samples/s, {pkl_path.stat().st_size / 2**30:.2f} GiB")

    def read_parquet(path):
        n = 0
        for s in MOSEI:
            sp = load_split(path, s)
            n += len(sp)
            del sp
        return n

    def read_pickle():
        with open(pkl_path, "rb") as f:
            d = pickle.load(f)
        return sum(len(v["id"]) for v in d.values())

    runs = [(f"parquet load_split, features {c} (3 splits)", lambda p=p: read_parquet(p)) for c, p in paths.items()]
    for name, fn in [*runs, ("pickle.load", read_pickle)]:
        best = float("inf")
        for _ in range(2):  # second run is page-cache warm for both
            gc.collect()
            t0 = time.perf_counter()
            n = fn()
            best = min(best, time.perf_counter() - t0)
        print(f"    read {name}: {best:.2f}s -> {n / best:,.0f} samples/s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run, ~1 min)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma list of text,media,store")
    ap.add_argument("--codecs", default="none",
                    help="(c): comma list of feature-column compressions to compare, e.g. none,lz4 (default none)")
    ap.add_argument("--tmp", type=Path, default=None, help="scratch folder for (c) (default: a temp dir)")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other jobs share the CPUs), quick={args.quick}")
    if not MOSI.is_dir() and not {"text", "media"} <= skip:
        print(f"shared MOSI data not found at {MOSI}; skipping (a) and (b)")
        skip |= {"text", "media"}
    if "text" not in skip:
        bench_text(64 if args.quick else 256, 64)
    if "media" not in skip:
        bench_media(args.workers, 6 if args.quick else None)
    if "store" not in skip:
        with tempfile.TemporaryDirectory(dir=args.tmp) as d:
            bench_store(0.02 if args.quick else 1.0, Path(d), tuple(filter(None, args.codecs.split(","))))


if __name__ == "__main__":
    main()
