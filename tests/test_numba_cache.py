"""Parallel audio extraction in one environment: numba's cache can neither be raced nor poison us,
and a worker killed by a signal is named with its clip.

Every run here points the snapshot root (GRCF_NUMBA_CACHE) at a test folder and NUMBA_CACHE_DIR
at a test folder standing in for librosa's shared ``__pycache__`` (numba prefers NUMBA_CACHE_DIR
over site-packages), so nothing the other users of this environment rely on is touched.
"""

from __future__ import annotations

import csv
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.commands import tool_env, venv_exe

MOSI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mosi"
pytestmark = pytest.mark.skipif(not (MOSI / "Raw").is_dir(), reason=f"shared MOSI data not found at {MOSI}")


@pytest.fixture(scope="module")
def numba_env(tmp_path_factory):
    """Env for `grcf` subprocesses: a module-wide snapshot root and a stand-in shared cache."""
    root = tmp_path_factory.mktemp("numba")
    env = tool_env()
    env.update(GRCF_NUMBA_CACHE=str(root / "snapshots"), NUMBA_CACHE_DIR=str(root / "shared"))
    env.pop("GRCF_TEST_CRASH_CLIP", None)
    return env


def _extract(src, out, env, *extra):
    args = [venv_exe("grcf"), "features", "raw", str(src), str(out), "--params", str(Path(out).parent / "none.yaml"),
            "--modalities", "audio", *extra]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(p, timeout=1500):
    out, _ = p.communicate(timeout=timeout)
    return p.returncode, out


def _mini(tmp_path, n):
    """A raw folder with the first n MOSI rows that have a clip (clips symlinked)."""
    rows = list(csv.DictReader(open(MOSI / "label.csv")))
    keep = [r for r in rows if (MOSI / "Raw" / r["video_id"] / f"{r['clip_id']}.mp4").exists()][:n]
    root = tmp_path / "mini"
    (root / "Raw").mkdir(parents=True)
    with open(root / "label.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=rows[0].keys())
        w.writeheader()
        w.writerows(keep)
    for r in keep:
        d = root / "Raw" / r["video_id"]
        d.mkdir(exist_ok=True)
        (d / f"{r['clip_id']}.mp4").symlink_to(MOSI / "Raw" / r["video_id"] / f"{r['clip_id']}.mp4")
    return root, keep


@pytest.mark.slow
def test_three_parallel_extractions_then_a_fourth(tmp_path, numba_env):
    """Cold caches, three pooled extractions of shared clips at once, then a fourth: all succeed.

    Ten clips (not all 27: CI time): the race is in the first compilation, which every run does."""
    snap, shared = Path(numba_env["GRCF_NUMBA_CACHE"]), Path(numba_env["NUMBA_CACHE_DIR"])
    assert not snap.exists() and not shared.exists()  # cleared: everyone compiles at the same time
    src, rows = _mini(tmp_path, 10)
    t0 = time.monotonic()
    procs = [_extract(src, tmp_path / f"run{k}.parquet", numba_env, "--workers", "2") for k in range(3)]
    try:
        results = [_finish(p) for p in procs]
        t1 = time.monotonic()
        for rc, out in results:
            assert rc == 0, out[-3000:]
        procs.append(_extract(src, tmp_path / "run3.parquet", numba_env, "--workers", "2"))
        rc, out = _finish(procs[-1])
        assert rc == 0, out[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"\n[timing] 3 parallel cold extractions: {t1 - t0:.1f} s; a 4th: {time.monotonic() - t1:.1f} s; "
          f"CPU of all: {cpu.ru_utime + cpu.ru_stime:.0f} s")

    # one complete snapshot was published; nothing was written to the shared cache
    assert len(list(snap.iterdir())) == 1 and list(snap.rglob("*.nbc"))
    assert not shared.exists() or not list(shared.rglob("*.nb*"))
    logs = [json.loads((tmp_path / f"run{k}.parquet.log.json").read_text()) for k in range(4)]
    assert all(log["n_with_media"] == len(rows) and not log["failed_clips"] for log in logs), logs
    import pyarrow.parquet as pq

    cols = ["id", "audio_feat", "audio_len"]
    first = pq.read_table(tmp_path / "run0.parquet", columns=cols)
    assert first.num_rows and first.column("audio_len").to_pylist().count(None) < first.num_rows
    for k in range(1, 4):  # same arrays from every run, compiled fresh or from the snapshot
        assert pq.read_table(tmp_path / f"run{k}.parquet", columns=cols).equals(first), k


@pytest.mark.slow  # > 10 s on 2 cores
def test_broken_shared_cache_is_never_read(tmp_path, numba_env):
    """A corrupted numba cache where librosa's would be (NUMBA_CACHE_DIR) does not break extraction."""
    planted = tmp_path / "planted"
    # compile librosa's yin helpers (where the corrupt-cache crash happened) into the planted cache ...
    env = dict(numba_env, NUMBA_CACHE_DIR=str(planted))
    code = ("import numpy as np, librosa; w = np.sin(np.arange(16000) / 16000 * 2 * np.pi * 150).astype(np.float32);"
            "librosa.yin(w, fmin=65, fmax=500, sr=16000, frame_length=1024, hop_length=640)")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=600)
    entries = list(planted.rglob("*.nbc"))
    assert entries, "numba wrote no cache entries"
    # ... then break every entry, keeping the index files that point at them
    for f in entries:
        f.write_bytes(b"\x80\x04not a numba cache entry" + os.urandom(64))
    root, rows = _mini(tmp_path, 2)
    rc, out = _finish(_extract(root, tmp_path / "out.parquet", env, "--workers", "1"))
    assert rc == 0, out[-3000:]
    log = json.loads((tmp_path / "out.parquet.log.json").read_text())
    assert log["n_with_media"] == 2 and not log["failed_clips"], log
    assert all(f.read_bytes().startswith(b"\x80\x04not a numba") for f in entries)  # left alone


@pytest.mark.slow  # > 10 s on 2 cores
def test_worker_killed_by_signal_is_named(tmp_path, numba_env):
    """A worker dying by SIGSEGV on one clip: that clip and the signal are reported; the rest is extracted."""
    root, rows = _mini(tmp_path, 7)  # more than the 2 * workers + 1 clips retried one per process
    victim = rows[1]
    env = dict(numba_env, GRCF_TEST_CRASH_CLIP=f"{victim['clip_id']}.mp4")
    victim_id = f"{victim['video_id']}$_${victim['clip_id']}"

    rc, out = _finish(_extract(root, tmp_path / "skip.parquet", env, "--workers", "2", "--on-error", "skip"))
    assert rc == 0, out[-3000:]
    log = json.loads((tmp_path / "skip.parquet.log.json").read_text())
    assert [c["id"] for c in log["failed_clips"]] == [victim_id], log
    assert "killed by SIGSEGV (11)" in log["failed_clips"][0]["error"]
    assert log["n_with_media"] == len(rows) - 1
    # only the clips that may have reached a worker are retried one per process, a new pool does the rest
    assert re.search(r"extracting [1-5] clips again, each in its own process", out), out[-3000:]

    rc, out = _finish(_extract(root, tmp_path / "fail.parquet", env, "--workers", "2"))
    assert rc == 1, out[-3000:]  # the main process reports; it is not killed with the worker
    msg = out.strip().splitlines()[-1]
    assert msg.startswith("grcf: error:") and victim["clip_id"] + ".mp4" in msg and "SIGSEGV" in msg, out[-3000:]
    assert not (tmp_path / "fail.parquet").exists()
