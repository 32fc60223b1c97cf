"""Build a feature store from an MMSA raw folder: `label.csv` plus `Raw/<video_id>/<clip_id>.mp4`.

Text features come from label.csv for every row; audio and vision only for rows whose clip
exists (boolean column `has_media`); other rows are text-only. A per-run log of failed clips
and dropped rows is written beside the output as `<out>.log.json`. `read_labels` parses label.csv
for both the builder and `grcf validate` (`check`, which also opens each clip).
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

from grcf.atomic import write_json
from grcf.data.checks import ID_SEP, SPLITS, Abort, Strict, check_ids, check_label, check_splits, label_bounds
from grcf.errors import DataError
from grcf.data.store import write_store
from grcf.data.datasets import requested_modalities
from grcf.data.extractors import producer

log = logging.getLogger(__name__)

REQUIRED = ("video_id", "clip_id", "text", "label", "mode")
MEDIA_EXT = ".mp4"
FACE_FRAMES = 3  # frames `check` samples per clip for the face check
DETECT_WIDTH = 320


def source_files(root, options: dict | None = None) -> list[Path]:
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
                p = clip_path(root, {"video_id": row.get("video_id") or "", "clip_id": row.get("clip_id") or ""})
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
    label_range = list(label_bounds(options.get("label_range"), (-3.0, 3.0)))
    # scoring (grcf predict): a row's label may be empty and its mode empty; it is scored all the same
    scoring = bool(options.get("scoring"))
    report = {"root": str(root), "out": str(out), "on_error": on_error, "failed_clips": [], "dropped_rows": [], "no_face_clips": []}

    rows = read_labels(root / "label.csv", Strict(), *label_range, complete=False, scoring=scoring)
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
    clips = [(i, clip_path(root, r)) for i, r in enumerate(rows)]
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
        from grcf.data.extractors.text import STORE_DTYPE, iter_text_features, resolve_model_name

        # a generator: the store writer pulls one row group of texts at a time (bounded memory)
        feats["text"] = iter_text_features(
            [r["text"] for r in rows], model=text_opts["model"], max_length=int(text_opts["max_length"]),
            batch_size=int(text_opts["batch_size"]), device=options.get("device", "cpu"),
            progress=options.get("progress", True), source=root / "label.csv",
        )
        mod_meta["text"] = {"producer": producer("text", text_opts), "model_path": resolve_model_name(text_opts["model"]),
                            "max_length": int(text_opts["max_length"]), "level": "token",
                            "dtype": text_opts.get("dtype", STORE_DTYPE)}
    if "audio" in modalities:
        from grcf.data.extractors.audio import AUDIO_DIM

        feats["audio"] = audio
        dim = AUDIO_DIM if audio_opts["backend"] == "librosa" else _infer(audio, 25)
        mod_meta["audio"] = {"producer": producer("audio", audio_opts), "dim": dim,
                             "sample_rate": int(audio_opts["sample_rate"]), "hop_seconds": float(audio_opts["hop_seconds"])}
    if "vision" in modalities:
        from grcf.data.extractors.vision import VISION_DIM

        feats["vision"] = vision
        mod_meta["vision"] = {"producer": producer("vision", vision_opts), "dim": VISION_DIM, "fps": float(vision_opts["fps"])}

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
    extra = {"has_media": has_media.tolist(), "annotation": [r["annotation"] for r in rows]}
    if scoring:  # unlabelled rows are stored with label 0 and has_label false
        extra["has_label"] = [r["label"] is not None for r in rows]
    return write_store(
        out, ids=[r["id"] for r in rows], splits=[r["mode"] for r in rows],
        labels=[0.0 if r["label"] is None else r["label"] for r in rows],
        modalities=feats, meta=meta, video_ids=[r["video_id"] for r in rows], clip_ids=[r["clip_id"] for r in rows],
        texts=[r["text"] for r in rows],
        extra_columns=extra,
    )


def _infer(seqs, default):
    for s in seqs:
        if s is not None:
            return int(s.shape[1])
    return default


def clip_path(root, row) -> Path:
    return Path(root) / "Raw" / str(row["video_id"]) / f"{row['clip_id']}{MEDIA_EXT}"


def read_labels(path, sink, lo, hi, *, complete=True, scoring=False) -> list[dict]:
    """The rows of label.csv (id, line, video_id, clip_id, text, label, mode, split, annotation), each
    label, mode and id checked. `complete` (validate) also wants every split and every row's text;
    the builder passes False: it handles empty texts itself (on_error) and builds any splits given.
    `scoring` (grcf predict) takes rows without a label (label None) and without a mode (as test):
    the `label` and `mode` columns may be empty or absent."""
    import pandas as pd

    if not path.exists():
        sink.error(path, "label.csv not found")
        raise Abort
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        sink.error(path, f"cannot read CSV ({type(e).__name__}: {str(e).strip()})")
        raise Abort from None
    if scoring:
        for c in ("label", "mode"):
            if c not in df.columns:
                df[c] = ""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        sink.error(path, f"missing column(s) {missing}; expected MMSA layout video_id,clip_id,text,label,annotation,mode")
        raise Abort
    ids_by_split: dict[str, list] = {}
    rows = []
    has_annotation = "annotation" in df.columns
    for k, r in enumerate(df.to_dict("records")):
        rid = f"{r['video_id']}{ID_SEP}{r['clip_id']}"
        mode = str(r["mode"]).strip().lower() or ("test" if scoring else "")
        split = mode or None
        if mode not in SPLITS:
            sink.error(path, f"line {k + 2}: mode {r['mode']!r} is not one of {', '.join(SPLITS)}", record=rid,
                       split=split, field="mode", check="bad mode")
        else:
            ids_by_split.setdefault(mode, []).append(rid)
        if complete and not str(r["text"]).strip():
            sink.error(path, f"line {k + 2}: empty text", record=rid, split=split, field="text", check="empty text")
        label = (None if scoring and not str(r["label"]).strip() else
                 check_label(path, sink, r["label"], lo, hi, record=rid, split=split))
        try:
            x = float(r["label"])
        except ValueError:
            x = math.nan
        if has_annotation and math.isfinite(x):
            ann = str(r["annotation"]).strip().lower()
            want = "positive" if x > 0 else "negative" if x < 0 else "neutral"
            if ann in ("positive", "negative", "neutral") and ann != want:
                sink.warning(path, f"line {k + 2}: annotation {r['annotation']!r} disagrees with label {x:g}",
                             record=rid, split=split, field="annotation", check="annotation")
        rows.append({"id": rid, "line": k + 2, "video_id": r["video_id"], "clip_id": r["clip_id"], "text": r["text"] or "",
                     "label": label, "mode": mode, "split": split, "annotation": r.get("annotation") or None})
    if complete:
        check_splits(path, sink, list(ids_by_split), field="mode")
    check_ids(path, sink, ids_by_split)
    return rows


# Fault injection for the tests: a worker process (never the main one) that starts on the clip
# file named here kills itself with SIGSEGV, as a corrupt shared numba cache once made librosa do.
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
            from grcf.data.extractors.audio import extract_audio

            a = extract_audio(path, sample_rate=int(audio_opts["sample_rate"]), hop_seconds=float(audio_opts["hop_seconds"]),
                              backend=audio_opts["backend"])
        if "vision" in mods:
            from grcf.data.extractors.vision import extract_vision

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
            from grcf.data.extractors.audio import warm_librosa

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


def check(root, sink, *, label_range=None, check_media=True):
    """`grcf validate` of an MMSA raw folder: label.csv's rows, then (check_media) each clip."""
    rows = read_labels(root / "label.csv", sink, *label_bounds(label_range, (-3.0, 3.0)))
    clips = [(r["id"], r["split"], clip_path(root, r)) for r in rows]
    listed = {p for _, _, p in clips}
    raw = root / "Raw"
    present = [(rid, split, p) for rid, split, p in clips if p.is_file()]
    info = sink.info
    info.update(rows=len(clips), clips_found=len(present), text_only_rows=len(clips) - len(present))
    if raw.is_dir():
        extra = sorted(p for p in raw.glob("*/*.mp4") if p not in listed)
        for p in extra:
            sink.warning(p, "MP4 not listed in label.csv (ignored by the builder)", field="media", check="unlisted mp4")
        info["unlisted_clips"] = len(extra)
    if not check_media:
        info["media_checked"] = 0
        return
    no_face = 0
    for rid, split, p in present:
        try:
            no_face += _check_clip(p, sink, record=rid, split=split)
        except Exception as e:  # an odd file PyAV chokes on mid-way
            sink.error(p, f"undecodable MP4 ({type(e).__name__}: {e})", record=rid, split=split, field="media",
                       check="undecodable")
    info.update(media_checked=len(present), no_face_clips=no_face)


def _check_clip(path, sink, *, record=None, split=None) -> int:
    """Open one MP4 cheaply: streams, a few decoded frames, a face. Returns 1 if no face was found."""
    import av

    kw = dict(record=record, split=split)
    if path.stat().st_size == 0:
        sink.error(path, "zero-byte MP4", field="media", check="zero-byte", **kw)
        return 0
    try:
        container = av.open(str(path))
    except Exception as e:
        sink.error(path, f"undecodable MP4 ({type(e).__name__}: {e})", field="media", check="undecodable", **kw)
        return 0
    try:
        if not container.streams.audio:
            sink.error(path, "no audio track", field="audio", check="no audio", **kw)
        else:
            try:
                got = False
                for frame in container.decode(audio=0):
                    got = True
                    break
                if not got:
                    sink.error(path, "audio track has no decodable frame", field="audio", check="audio undecodable", **kw)
            except Exception as e:
                sink.error(path, f"cannot decode audio ({type(e).__name__}: {e})", field="audio", check="audio undecodable", **kw)
            container.seek(0)
        if not container.streams.video:
            sink.error(path, "no video track", field="vision", check="no video", **kw)
            return 0
        try:
            frames = _sample_frames(container)
        except Exception as e:
            sink.error(path, f"cannot decode video ({type(e).__name__}: {e})", field="vision", check="video undecodable", **kw)
            return 0
        if not frames:
            sink.error(path, "video track has no decodable frame", field="vision", check="video undecodable", **kw)
            return 0
        if not _any_face(frames):
            sink.warning(path, f"no face in any of {len(frames)} sampled frames (vision features will be missing)",
                         field="vision", check="no face", **kw)
            return 1
        return 0
    finally:
        container.close()


def _sample_frames(container, k=FACE_FRAMES):
    """Up to k gray frames spread over the clip, decoding sequentially up to the last one."""
    stream = container.streams.video[0]
    total = stream.frames or 0
    if not total:
        dur = (float(stream.duration * stream.time_base) if stream.duration else
               (container.duration / 1e6 if container.duration else 0.0))
        total = int(dur * float(stream.average_rate or 25))
    targets = sorted({int(total * (j + 1) / (k + 1)) for j in range(k)}) if total >= k else list(range(k))
    out, last = [], None
    for i, frame in enumerate(container.decode(stream)):
        last = frame
        if i in targets:
            out.append(frame.to_ndarray(format="gray"))
            if len(out) == len(targets):
                break
    if not out and last is not None:
        out.append(last.to_ndarray(format="gray"))
    return out


def _any_face(frames) -> bool:
    import cv2

    from grcf.data.extractors.vision import _cascade

    cascade = _cascade("haarcascade_frontalface_default.xml")
    for g in frames:
        h, w = g.shape[:2]
        if w > DETECT_WIDTH:
            g = cv2.resize(g, (DETECT_WIDTH, max(1, int(round(h * DETECT_WIDTH / w)))), interpolation=cv2.INTER_AREA)
        g = cv2.equalizeHist(g)
        faces = cascade.detectMultiScale(g, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
        if len(faces):
            return True
    return False


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
