"""Build a feature store from an MMSA raw folder: `label.csv` plus `Raw/<video_id>/<clip_id>.mp4`.

Text features come from label.csv for every row; audio and vision only for rows whose clip
exists (boolean column `has_media`); other rows are text-only. A per-run log of failed clips
and dropped rows is written beside the output as `<out>.log.json`.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from ..atomic import write_json
from ..errors import DataError
from . import requested_modalities
from ..store import SPLITS, write_store

log = logging.getLogger(__name__)

ID_SEP = "$_$"  # MMSA's id convention, so raw and pickle stores share ids
REQUIRED = ("video_id", "clip_id", "text", "label", "mode")
MEDIA_EXT = ".mp4"


def clip_path(root, video_id: str, clip_id: str) -> Path:
    return Path(root) / "Raw" / video_id / f"{clip_id}{MEDIA_EXT}"


def source_files(root) -> list[Path]:
    """What a build reads: label.csv and the existing clips its rows name (the pipeline's inputs).

    Snakemake compares inputs by content (checksums up to --max-checksum-file-size, 1 MB by
    default; by time above), so an edited label.csv reruns the features, a README beside it does
    not.  A missing or unreadable label.csv is left to `validate` to report.
    """
    import csv

    root = Path(root)
    labels = root / "label.csv"
    files = [labels]
    try:
        with open(labels, newline="") as f:
            for row in csv.DictReader(f):
                p = clip_path(root, row.get("video_id") or "", row.get("clip_id") or "")
                if p.exists():
                    files.append(p)
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return list(dict.fromkeys(files))


def log_path(out) -> Path:
    return Path(str(out) + ".log.json")


def build(root, out, options: dict | None = None) -> Path:
    options = dict(options or {})
    root, out = Path(root), Path(out)
    modalities = requested_modalities(root, options)
    on_error = options.get("on_error", "fail")
    if on_error not in ("fail", "skip"):
        raise DataError(root, f"on_error must be 'fail' or 'skip', got {on_error!r}")
    text_opts = {"model": "default", "max_length": 64, "batch_size": 64, **(options.get("text") or {})}
    audio_opts = {"sample_rate": 16000, "hop_seconds": 0.04, "backend": "librosa", **(options.get("audio") or {})}
    vision_opts = {"fps": 5, **(options.get("vision") or {})}
    label_range = [float(x) for x in options.get("label_range", (-3.0, 3.0))]
    report = {"root": str(root), "out": str(out), "on_error": on_error, "failed_clips": [], "dropped_rows": [], "no_face_clips": []}

    rows = _read_labels(root / "label.csv", label_range)
    # group rows by split (stable): the store's row groups then hold one split each, so
    # load_split decodes only its own groups
    rows.sort(key=lambda r: SPLITS.index(r["mode"]))
    # rows with no transcript cannot have text features
    keep = []
    for r in rows:
        if "text" in modalities and not r["text"].strip():
            if on_error == "fail":
                raise DataError(root / "label.csv", "empty text (use on_error=skip to drop the row)", record=r["id"])
            report["dropped_rows"].append({"id": r["id"], "line": r["line"], "reason": "empty text"})
            log.warning("%s: dropping row %s: empty text", root / "label.csv", r["id"])
            continue
        keep.append(r)
    rows = keep
    if not rows:
        raise DataError(root / "label.csv", "no usable rows")

    n = len(rows)
    audio: list = [None] * n
    vision: list = [None] * n
    has_media = np.zeros(n, dtype=bool)
    media_mods = [m for m in ("audio", "vision") if m in modalities]
    clips = [(i, clip_path(root, r["video_id"], r["clip_id"])) for i, r in enumerate(rows)]
    clips = [(i, p) for i, p in clips if p.exists()]
    if media_mods and clips:
        for i, path, a, v, info, err in _extract_all(clips, media_mods, audio_opts, vision_opts, int(options.get("workers", 1)),
                                                   progress=options.get("progress", True)):
            rid = rows[i]["id"]
            if err is not None:
                report["failed_clips"].append({"id": rid, "clip": str(path), "error": err})
                if on_error == "fail":
                    write_json(log_path(out), report)
                    raise DataError(path, f"clip failed: {err}", record=rid)
                log.warning("%s [%s]: skipped clip, row kept text-only: %s", path, rid, err)
                continue
            has_media[i] = True
            audio[i] = a
            if v is not None and v.shape[0] == 0:  # no face in any frame: vision missing, not zeros
                report["no_face_clips"].append({"id": rid, "clip": str(path), **info})
                v = None
            vision[i] = v

    feats, mod_meta = {}, {}
    if "text" in modalities:
        from ..features.text import encode_texts, resolve_model_name

        feats["text"] = encode_texts(
            [r["text"] for r in rows], model=text_opts["model"], max_length=int(text_opts["max_length"]),
            batch_size=int(text_opts["batch_size"]), device=options.get("device", "cpu"),
            progress=options.get("progress", True), source=root / "label.csv",
        )
        mod_meta["text"] = {"producer": f"transformers:{text_opts['model']}", "model_path": resolve_model_name(text_opts["model"]),
                            "max_length": int(text_opts["max_length"]), "level": "token"}
    if "audio" in modalities:
        from ..features.audio import AUDIO_DIM

        feats["audio"] = audio
        dim = AUDIO_DIM if audio_opts["backend"] == "librosa" else _infer(audio, 25)
        mod_meta["audio"] = {"producer": f"{audio_opts['backend']}@{audio_opts['hop_seconds']}s", "dim": dim,
                             "sample_rate": int(audio_opts["sample_rate"]), "hop_seconds": float(audio_opts["hop_seconds"])}
    if "vision" in modalities:
        from ..features.vision import VISION_DIM

        feats["vision"] = vision
        mod_meta["vision"] = {"producer": f"opencv-haar@{vision_opts['fps']}fps", "dim": VISION_DIM, "fps": float(vision_opts["fps"])}

    report.update(n_rows=n, n_clips_found=len(clips), n_with_media=int(has_media.sum()))
    write_json(log_path(out), report)
    meta = {
        "dataset": options.get("dataset") or root.name,
        "producer": "mmsa_raw",
        "task": "regression",
        "label_range": label_range,
        "source": str(root),
        "modalities": mod_meta,
    }
    return write_store(
        out, ids=[r["id"] for r in rows], splits=[r["mode"] for r in rows], labels=[r["label"] for r in rows],
        modalities=feats, meta=meta, video_ids=[r["video_id"] for r in rows], clip_ids=[r["clip_id"] for r in rows],
        texts=[r["text"] for r in rows],
        extra_columns={"has_media": has_media.tolist(), "annotation": [r["annotation"] for r in rows]},
    )


def _infer(seqs, default):
    for s in seqs:
        if s is not None:
            return int(s.shape[1])
    return default


def _read_labels(path, label_range):
    import pandas as pd

    if not path.exists():
        raise DataError(path, "label.csv not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        raise DataError(path, f"cannot read CSV ({type(e).__name__}: {e})") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; expected MMSA layout {','.join(REQUIRED)}")
    lo, hi = label_range
    rows = []
    for k, r in enumerate(df.to_dict("records")):
        rid = f"{r['video_id']}{ID_SEP}{r['clip_id']}"
        try:
            label = float(r["label"])
        except ValueError:
            raise DataError(path, f"line {k + 2}: label {r['label']!r} is not a number", record=rid) from None
        if not math.isfinite(label) or not lo <= label <= hi:
            raise DataError(path, f"line {k + 2}: label {label} outside {lo}..{hi}", record=rid)
        mode = r["mode"].strip().lower()
        if mode not in SPLITS:
            raise DataError(path, f"line {k + 2}: mode {r['mode']!r} is not one of {SPLITS}", record=rid)
        rows.append({"id": rid, "line": k + 2, "video_id": r["video_id"], "clip_id": r["clip_id"], "text": r["text"] or "",
                     "label": label, "mode": mode, "annotation": r.get("annotation") or None})
    return rows


# Fault injection for the tests: a worker process (never the main one) that starts on the clip
# file named here kills itself with SIGSEGV, like the numba cache crash of issue 10.
CRASH_CLIP_ENV = "GRCF_TEST_CRASH_CLIP"


def _extract_one(job):
    """Worker: (i, path, audio [T,Da] | None, vision [T,Dv] | None, info, error | None)."""
    i, path, mods, audio_opts, vision_opts = job
    if os.environ.get(CRASH_CLIP_ENV) == Path(path).name and mp.parent_process() is not None:
        os.kill(os.getpid(), signal.SIGSEGV)
    try:
        a = v = None
        info = {}
        if "audio" in mods:
            from ..features.audio import extract_audio

            a = extract_audio(path, sample_rate=int(audio_opts["sample_rate"]), hop_seconds=float(audio_opts["hop_seconds"]),
                              backend=audio_opts["backend"])
        if "vision" in mods:
            from ..features.vision import extract_vision

            v, info = extract_vision(path, fps=float(vision_opts["fps"]))
        return i, path, a, v, info, None
    except DataError as e:
        return i, path, None, None, {}, str(e).split(": ", 1)[-1]
    except Exception as e:  # a bug or odd file must not kill the whole pool
        return i, path, None, None, {}, f"{type(e).__name__}: {e}"


def _init_worker():
    import cv2

    cv2.setNumThreads(1)  # one clip per process; nested threads only oversubscribe


def _extract_all(clips, mods, audio_opts, vision_opts, workers, progress=True):
    from tqdm.auto import tqdm

    jobs = [(i, p, mods, audio_opts, vision_opts) for i, p in clips]
    bar = tqdm(total=len(jobs), desc="clips", unit="clip", disable=not progress)
    try:
        if workers <= 1:
            for job in jobs:
                yield _extract_one(job)
                bar.update(1)
            return
        if "audio" in mods and audio_opts["backend"] == "librosa":
            from ..features.audio import warm_librosa

            warm_librosa()  # compile once here, not in every worker at once
        # spawn, not fork: forking a parent that already runs torch/opensmile/tqdm threads
        # deadlocked workers in testing; spawn costs ~2 s of imports per worker instead
        ctx = mp.get_context("spawn")
        remaining = jobs
        while remaining:
            finished = set()
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)
            try:
                futures = {pool.submit(_extract_one, job): job for job in remaining}
                for fut in as_completed(futures):
                    if fut.exception() is not None:
                        raise fut.exception()
                    finished.add(futures[fut][0])
                    yield fut.result()
                    bar.update(1)
                remaining = []
            except BrokenProcessPool as e:  # a worker died (signal, OOM kill) or spawn failed
                for fut, job in futures.items():  # results that arrived before the break
                    if job[0] not in finished and fut.done() and not fut.cancelled() and fut.exception() is None:
                        finished.add(job[0])
                        yield fut.result()
                        bar.update(1)
                # the pool cannot say which clip killed it.  Jobs reach workers in submission
                # order, at most 2 * workers + 1 at a time (running + the executor's call queue):
                # redo each of those in a process of its own, so a crash loses only its clip, is
                # named, and never reaches this process; then a fresh pool takes the rest
                left = [job for job in remaining if job[0] not in finished]
                suspects, remaining = left[: 2 * workers + 1], left[2 * workers + 1:]
                log.warning("a clip worker died (%s); extracting %d clips again, each in its own process",
                            e, len(suspects))
                for res in _extract_isolated(suspects, workers, ctx):
                    yield res
                    bar.update(1)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()


def _run_isolated(job, conn):
    _init_worker()
    conn.send(_extract_one(job))
    conn.close()


def _death(exitcode) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "signal"
        return f"worker process killed by {name} ({-exitcode}) while extracting this clip"
    return f"worker process exited with code {exitcode} before it sent a result"


def _extract_isolated(jobs, workers, ctx):
    """Each job in a fresh process, `workers` at a time; a process that dies yields its clip's error."""
    from multiprocessing.connection import wait

    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < max(1, workers):
            job = pending.pop(0)
            reader, writer = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_run_isolated, args=(job, writer), daemon=True)
            proc.start()
            writer.close()  # the child's copy stays open: EOF on the reader = the child is gone
            running.append((proc, reader, job))
        # wait on the pipes too: a child blocks in send() until its (large) result is read
        ready = wait([x for proc, reader, _ in running for x in (reader, proc.sentinel)])
        for item in [r for r in running if r[1] in ready or r[0].sentinel in ready]:
            proc, reader, job = item
            try:
                res = reader.recv()
            except EOFError:
                proc.join()
                if proc.exitcode is not None and proc.exitcode >= 0:
                    # no signal: the process could not start (e.g. spawn cannot re-import a
                    # `python - <script` main), so this is no crash of the clip: do it here
                    log.warning("%s: %s; extracting it in this process", job[1], _death(proc.exitcode))
                    res = _extract_one(job)
                else:
                    res = (job[0], job[1], None, None, {}, _death(proc.exitcode))
                    log.error("%s: %s", job[1], res[-1])
            proc.join()
            reader.close()
            running.remove(item)
            yield res
