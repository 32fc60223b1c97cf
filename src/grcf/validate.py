"""`grcf validate`: check a dataset or feature store before any training, without building it.

Every problem is one line naming the file, the split, the record id and the field:

    ERROR label.csv [split=train id=vid$_$3 field=label]: label 4.2 outside -3..3

Errors are what would make a feature build fail or silently corrupt the data (bad labels,
duplicate or leaking ids, NaN features, undecodable clips); warnings are known quirks that the
builders handle (-inf in MMSA audio, NaN in the UR-FUNNY release features, clips without a face).
Rows of an MMSA raw folder without an MP4 are text-only by design: an info count, not a problem.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .datasets.mmsa_pickle import _str
from .errors import DataError, GrcfError

KINDS = ("mmsa_pickle", "mmsa_raw", "urfunny", "mustard", "parquet")
SPLITS = ("train", "valid", "test")
ID_SEP = "$_$"
MAX_PER_CHECK = 20  # per (file, split, field, check): more are folded into one "... and N more" line
FACE_FRAMES = 3  # frames sampled per clip for the face check
DETECT_WIDTH = 320


@dataclass
class Problem:
    severity: str  # "error" | "warning"
    file: str
    record: str | None
    split: str | None
    field: str | None
    message: str

    def line(self) -> str:
        where = [f"{k}={v}" for k, v in (("split", self.split), ("id", self.record), ("field", self.field)) if v is not None]
        loc = f" [{' '.join(where)}]" if where else ""
        return f"{self.severity.upper()} {self.file}{loc}: {self.message}"


class Report(list):
    """A list of Problems plus `info` counts (text-only rows, clips checked, ...) and the kind."""

    def __init__(self, *args, kind=None, **kw):
        super().__init__(*args, **kw)
        self.kind = kind
        self.info: dict = {}

    @property
    def errors(self) -> int:
        return sum(p.severity == "error" for p in self)

    @property
    def warnings(self) -> int:
        return sum(p.severity == "warning" for p in self)


class _Collector:
    def __init__(self, report: Report):
        self.report = report
        self._seen: Counter = Counter()
        self._folded: dict = {}

    def add(self, severity, file, message, *, record=None, split=None, field=None, check=None):
        key = (severity, str(file), split, field, check or message)
        self._seen[key] += 1
        if self._seen[key] > MAX_PER_CHECK:
            self._folded[key] = self._seen[key] - MAX_PER_CHECK
            return
        self.report.append(Problem(severity, str(file), None if record is None else str(record), split, field, message))

    def error(self, file, message, **kw):
        self.add("error", file, message, **kw)

    def warning(self, file, message, **kw):
        self.add("warning", file, message, **kw)

    def finish(self):
        for (severity, file, split, field, check), n in self._folded.items():
            self.report.append(Problem(severity, file, None, split, field, f"... and {n} more like: {check}"))
        self._folded.clear()


def guess_kind(path) -> str:
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        if (path / "label.csv").exists():
            return "mmsa_raw"
        if (path / "humor_label_sdk.pkl").exists():
            return "urfunny"
        if (path / "sarcasm_data.json").exists():
            return "mustard"
        raise DataError(path, "cannot guess the dataset kind: a folder without label.csv (MMSA raw), "
                              "humor_label_sdk.pkl (UR-FUNNY) or sarcasm_data.json (MUStARD); pass --kind")
    if suffix == ".parquet":
        return "parquet"
    if suffix in (".pkl", ".pickle"):
        return "mmsa_pickle"
    if suffix == ".json":
        return "mustard"
    raise DataError(path, f"cannot guess the dataset kind from {path.name!r}; pass --kind ({', '.join(KINDS)})")


def validate_path(path, kind=None, *, label_range=None, check_media=True) -> Report:
    """Check one dataset source or feature store; returns its problems (a list, with `.info`)."""
    path = Path(path)
    report = Report()
    col = _Collector(report)
    if not path.exists():
        col.error(path, "not found")
        col.finish()
        return report
    try:
        kind = kind or guess_kind(path)
    except DataError as e:
        col.error(path, _msg(e))
        col.finish()
        return report
    if kind not in KINDS:
        col.error(path, f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        col.finish()
        return report
    report.kind = kind
    if kind == "mustard" and path.is_dir():
        path = path / "sarcasm_data.json"
    checker = {"mmsa_pickle": _check_mmsa_pickle, "mmsa_raw": _check_mmsa_raw, "urfunny": _check_urfunny,
               "mustard": _check_mustard, "parquet": _check_parquet}[kind]
    try:
        checker(path, col, label_range=label_range, check_media=check_media)
    except _Abort:
        pass
    except DataError as e:
        col.error(e.file, _msg(e), record=e.record)
    except Exception as e:  # a check must never end in a traceback: report it as one line
        col.error(path, f"validation stopped unexpectedly ({type(e).__name__}: {e})")
    col.finish()
    return report


def _msg(e: DataError) -> str:
    """The message of a DataError without its `file [record]: ` prefix."""
    where = f"{e.file}" + (f" [{e.record}]" if e.record is not None else "")
    text = str(e)
    return text[len(where) + 2:] if text.startswith(where + ": ") else text


class _Abort(Exception):
    """A fatal problem was recorded; nothing further can be checked."""


# ---------------------------------------------------------------- shared checks


def _load_pickle(path, col, what="pickle"):
    from .safe_pickle import safe_load

    try:
        return safe_load(path, encoding="latin1")
    except DataError as e:
        col.error(path, _msg(e))
        raise _Abort from None
    except Exception as e:  # pragma: no cover - safe_load wraps everything, but never a traceback
        col.error(path, f"cannot read {what} ({type(e).__name__}: {e})")
        raise _Abort from None


def _check_splits(file, col, present, expected=SPLITS, *, field="split", extra_is_error=False):
    missing = [s for s in expected if s not in present]
    extra = sorted(str(s) for s in present if s not in expected)
    if missing:
        col.error(file, f"missing split(s) {missing}; expected {list(expected)}", field=field)
    if extra:
        (col.error if extra_is_error else col.warning)(
            file, f"unexpected split(s) {extra}; expected {list(expected)}", field=field)


def _check_ids(file, col, ids_by_split: dict):
    """Duplicate ids within a split and ids listed in several splits (leakage)."""
    where = defaultdict(list)
    for split, ids in ids_by_split.items():
        counts = Counter(ids)
        for i, n in counts.items():
            if n > 1:
                col.error(file, f"duplicate id ({n} rows)", record=i, split=split, field="id", check="duplicate id")
            where[i].append(split)
    for i, splits in where.items():
        if len(splits) > 1:
            col.error(file, f"id in several splits: {', '.join(splits)}", record=i, split=splits[-1], field="id",
                      check="id in several splits")


def _check_label(file, col, value, lo, hi, *, record, split, field="label"):
    if value is None or (isinstance(value, str) and not value.strip()):
        col.error(file, "label missing", record=record, split=split, field=field, check="label missing")
        return
    try:
        x = float(value)
    except (TypeError, ValueError):
        col.error(file, f"label {value!r} is not a number", record=record, split=split, field=field, check="label not a number")
        return
    if math.isnan(x):
        col.error(file, "label is NaN", record=record, split=split, field=field, check="label NaN")
    elif math.isinf(x):
        col.error(file, f"label is {x}", record=record, split=split, field=field, check="label inf")
    elif lo is not None and not lo <= x <= hi:
        col.error(file, f"label {x:g} outside {lo:g}..{hi:g}", record=record, split=split, field=field,
                  check="label out of range")


def _range(label_range, default):
    r = label_range if label_range is not None else default
    if r is None:
        return None, None
    return float(r[0]), float(r[1])


def _nonfinite_counts(a: np.ndarray):
    """(NaN, +inf, -inf) counts of a float array."""
    if not np.issubdtype(a.dtype, np.floating):
        return 0, 0, 0
    nan = int(np.isnan(a).sum())
    pinf = int(np.isposinf(a).sum())
    ninf = int(np.isneginf(a).sum())
    return nan, pinf, ninf


def _describe(nan, pinf, ninf):
    parts = [f"{n} {w}" for n, w in ((nan, "NaN"), (pinf, "+inf"), (ninf, "-inf")) if n]
    return ", ".join(parts)


# ---------------------------------------------------------------- MMSA pickle


def _mmsa_pickle_range(data):
    from .datasets.mmsa_pickle import SIMS_DIMS, SIMS_EXTRA

    for part in data.values():
        if not isinstance(part, dict):
            continue
        if any(k in part for k in SIMS_EXTRA):
            return (-1.0, 1.0)
        a, v = part.get("audio"), part.get("vision")
        if isinstance(a, np.ndarray) and isinstance(v, np.ndarray) and a.ndim == 3 and v.ndim == 3:
            if (int(a.shape[2]), int(v.shape[2])) in SIMS_DIMS:
                return (-1.0, 1.0)
    return (-3.0, 3.0)




def _check_mmsa_pickle(path, col, *, label_range=None, check_media=True):
    data = _load_pickle(path, col, "MMSA pickle")
    if not isinstance(data, dict):
        col.error(path, f"expected a dict with train/valid/test, got {type(data).__name__}")
        raise _Abort
    _check_splits(path, col, list(data))
    lo, hi = _range(label_range, _mmsa_pickle_range(data))
    ids_by_split, dims = {}, {}
    for split in SPLITS:
        part = data.get(split)
        if part is None:
            continue
        if not isinstance(part, dict):
            col.error(path, f"is a {type(part).__name__}, expected a dict of arrays", split=split)
            continue
        if "id" not in part:
            col.error(path, "missing key 'id'", split=split, field="id")
            continue
        ids = [_str(i) for i in np.asarray(part["id"]).reshape(-1)]
        n = len(ids)
        ids_by_split[split] = ids

        def rec(i, ids=ids):
            return ids[i] if 0 <= i < len(ids) else None

        for key in ("regression_labels", "regression_labels_T", "regression_labels_A", "regression_labels_V"):
            if key not in part:
                if key == "regression_labels":
                    col.error(path, "missing key 'regression_labels'", split=split, field=key)
                continue
            lab = np.asarray(part[key])
            if lab.ndim == 2 and lab.shape[1] == 1:
                lab = lab[:, 0]
            if lab.ndim != 1 or lab.shape[0] != n:
                col.error(path, f"has shape {lab.shape}, expected ({n},) to match id", split=split, field=key)
                continue
            for i, v in enumerate(lab.tolist()):
                _check_label(path, col, v, lo, hi, record=rec(i), split=split, field=key)
        if "raw_text" in part:
            texts = np.asarray(part["raw_text"], dtype=object).reshape(-1)
            for i, t in enumerate(texts.tolist()):
                if t is None or not _str(t).strip():
                    col.warning(path, "empty text", record=rec(i), split=split, field="raw_text", check="empty text")

        aligned = "audio_lengths" not in part and "vision_lengths" not in part
        for m in ("text", "audio", "vision"):
            if m not in part:
                col.error(path, f"missing key {m!r}", split=split, field=m)
                continue
            a = part[m]
            if not isinstance(a, np.ndarray) or a.ndim != 3:
                col.error(path, f"has shape {getattr(a, 'shape', type(a).__name__)}, expected (N, L, D)", split=split, field=m)
                continue
            if a.shape[0] != n:
                col.error(path, f"has {a.shape[0]} samples, id has {n}", split=split, field=m)
                continue
            L, D = int(a.shape[1]), int(a.shape[2])
            if m in dims and dims[m][1] != D:
                col.error(path, f"feature dim {D} differs from {dims[m][1]} in split {dims[m][0]}", split=split, field=m)
            dims.setdefault(m, (split, D))
            lens = _mmsa_lengths(path, col, part, m, split, n, L, aligned, rec)
            _mmsa_nonfinite(path, col, a, lens, m, split, rec)
    _check_ids(path, col, ids_by_split)


def _mmsa_lengths(path, col, part, m, split, n, L, aligned, rec):
    """Per-sample valid lengths (None: the whole padded length); problems reported here."""
    if m == "text":
        tb = part.get("text_bert")
        if tb is None:
            return None
        tb = np.asarray(tb)
        if tb.ndim != 3 or tb.shape[0] != n or tb.shape[1] < 2:
            col.error(path, f"has shape {tb.shape}, expected ({n}, 3, L)", split=split, field="text_bert")
            return None
        lens, key = tb[:, 1, :].astype(np.int64).sum(axis=1), "text_bert"
    elif aligned:
        return None
    else:
        key = f"{m}_lengths"
        if key not in part:
            col.error(path, f"missing key {key!r} (the file is unaligned: another modality has lengths)", split=split, field=key)
            return None
        raw = np.asarray(part[key]).reshape(-1)
        if raw.shape[0] != n:
            col.error(path, f"has {raw.shape[0]} entries, id has {n}", split=split, field=key)
            return None
        f = raw.astype(np.float64)
        for i in np.flatnonzero(~np.isfinite(f) | (f != np.round(f))):
            col.error(path, f"length {raw[i]} is not a whole number", record=rec(int(i)), split=split, field=key,
                      check="length not integer")
        lens = np.where(np.isfinite(f), f, 0).astype(np.int64)
    for i in np.flatnonzero((lens < 0) | (lens > L)):
        col.error(path, f"length {lens[i]} outside 0..{L} (the padded {m} sequence)", record=rec(int(i)), split=split,
                  field=key, check="length beyond sequence")
    for i in np.flatnonzero(lens == 0):
        col.warning(path, f"length 0: the sample has no {m}", record=rec(int(i)), split=split, field=key, check="length zero")
    return np.clip(lens, 0, L)


def _mmsa_nonfinite(path, col, a, lens, m, split, rec):
    if not np.issubdtype(a.dtype, np.floating):
        return
    bad = ~np.isfinite(a)
    if not bad.any():
        return
    if lens is not None:
        bad &= (np.arange(a.shape[1])[None, :] < lens[:, None])[:, :, None]
        if not bad.any():
            return
    rows = np.flatnonzero(bad.any(axis=(1, 2)))
    vals = a[bad]
    nan, pinf, ninf = _nonfinite_counts(vals)
    if m == "audio":
        neg_rows = np.flatnonzero((np.isneginf(a) & bad).any(axis=(1, 2)))
        if ninf:
            col.warning(path, f"{ninf} -inf values in {neg_rows.size} samples (first: {rec(int(neg_rows[0]))}); "
                              "MMSA and the grcf builder replace them with 0", split=split, field=m)
        if nan or pinf:
            other = np.flatnonzero((bad & ~np.isneginf(a)).any(axis=(1, 2)))
            col.error(path, f"{_describe(nan, pinf, 0)} values in {other.size} samples (first shown)",
                      record=rec(int(other[0])), split=split, field=m)
        return
    col.error(path, f"{_describe(nan, pinf, ninf)} values in {rows.size} samples (first shown)",
              record=rec(int(rows[0])), split=split, field=m)


# ---------------------------------------------------------------- MMSA raw folder

REQUIRED_CSV = ("video_id", "clip_id", "text", "label", "mode")


def _check_mmsa_raw(root, col, *, label_range=None, check_media=True):
    import pandas as pd

    csv = root / "label.csv"
    if not csv.exists():
        col.error(csv, "label.csv not found")
        raise _Abort
    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as e:
        col.error(csv, f"cannot read CSV ({type(e).__name__}: {str(e).strip()})")
        raise _Abort from None
    missing = [c for c in REQUIRED_CSV if c not in df.columns]
    if missing:
        col.error(csv, f"missing column(s) {missing}; expected MMSA layout video_id,clip_id,text,label,annotation,mode")
        raise _Abort
    lo, hi = _range(label_range, (-3.0, 3.0))
    ids_by_split = defaultdict(list)
    modes = Counter()
    clips = []  # (id, split, path)
    listed = set()
    raw = root / "Raw"
    has_annotation = "annotation" in df.columns
    for k, r in enumerate(df.to_dict("records")):
        rid = f"{r['video_id']}{ID_SEP}{r['clip_id']}"
        mode = str(r["mode"]).strip().lower()
        modes[mode] += 1
        split = mode or None
        if mode not in SPLITS:
            col.error(csv, f"line {k + 2}: mode {r['mode']!r} is not one of {', '.join(SPLITS)}", record=rid,
                      split=split, field="mode", check="bad mode")
        else:
            ids_by_split[mode].append(rid)
        if not str(r["text"]).strip():
            col.error(csv, f"line {k + 2}: empty text", record=rid, split=split, field="text", check="empty text")
        _check_label(csv, col, r["label"], lo, hi, record=rid, split=split)
        try:
            x = float(r["label"])
        except ValueError:
            x = math.nan
        if has_annotation and math.isfinite(x):
            ann = str(r["annotation"]).strip().lower()
            want = "positive" if x > 0 else "negative" if x < 0 else "neutral"
            if ann in ("positive", "negative", "neutral") and ann != want:
                col.warning(csv, f"line {k + 2}: annotation {r['annotation']!r} disagrees with label {x:g}", record=rid,
                            split=split, field="annotation", check="annotation")
        p = raw / str(r["video_id"]) / f"{r['clip_id']}.mp4"
        listed.add(p)
        clips.append((rid, split, p))
    _check_splits(csv, col, [m for m in modes if m in SPLITS], field="mode")
    _check_ids(csv, col, ids_by_split)

    present = [(rid, split, p) for rid, split, p in clips if p.is_file()]
    info = col.report.info
    info.update(rows=len(clips), clips_found=len(present), text_only_rows=len(clips) - len(present))
    if raw.is_dir():
        extra = sorted(p for p in raw.glob("*/*.mp4") if p not in listed)
        for p in extra:
            col.warning(p, "MP4 not listed in label.csv (ignored by the builder)", field="media", check="unlisted mp4")
        info["unlisted_clips"] = len(extra)
    if not check_media:
        info["media_checked"] = 0
        return
    no_face = 0
    for rid, split, p in present:
        try:
            no_face += _check_clip(p, col, record=rid, split=split)
        except Exception as e:  # an odd file PyAV chokes on mid-way
            col.error(p, f"undecodable MP4 ({type(e).__name__}: {e})", record=rid, split=split, field="media",
                      check="undecodable")
    info.update(media_checked=len(present), no_face_clips=no_face)


def _check_clip(path, col, *, record=None, split=None) -> int:
    """Open one MP4 cheaply: streams, a few decoded frames, a face. Returns 1 if no face was found."""
    import av

    kw = dict(record=record, split=split)
    if path.stat().st_size == 0:
        col.error(path, "zero-byte MP4", field="media", check="zero-byte", **kw)
        return 0
    try:
        container = av.open(str(path))
    except Exception as e:
        col.error(path, f"undecodable MP4 ({type(e).__name__}: {e})", field="media", check="undecodable", **kw)
        return 0
    try:
        if not container.streams.audio:
            col.error(path, "no audio track", field="audio", check="no audio", **kw)
        else:
            try:
                got = False
                for frame in container.decode(audio=0):
                    got = True
                    break
                if not got:
                    col.error(path, "audio track has no decodable frame", field="audio", check="audio undecodable", **kw)
            except Exception as e:
                col.error(path, f"cannot decode audio ({type(e).__name__}: {e})", field="audio", check="audio undecodable", **kw)
            container.seek(0)
        if not container.streams.video:
            col.error(path, "no video track", field="vision", check="no video", **kw)
            return 0
        try:
            frames = _sample_frames(container)
        except Exception as e:
            col.error(path, f"cannot decode video ({type(e).__name__}: {e})", field="vision", check="video undecodable", **kw)
            return 0
        if not frames:
            col.error(path, "video track has no decodable frame", field="vision", check="video undecodable", **kw)
            return 0
        if not _any_face(frames):
            col.warning(path, f"no face in any of {len(frames)} sampled frames (vision features will be missing)",
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

    from .features.vision import _cascade

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


# ---------------------------------------------------------------- UR-FUNNY

UF_FOLDS = {"train": "train", "dev": "valid", "test": "test"}
UF_FEATURES = {"audio": "covarep_features_sdk.pkl", "vision": "openface_features_sdk.pkl"}


def _plain(k):
    return k.item() if isinstance(k, np.generic) else k


def _check_urfunny(root, col, *, label_range=None, check_media=True):
    files = {n: root / n for n in ("language_sdk.pkl", "humor_label_sdk.pkl", "data_folds.pkl")}
    loaded = {}
    for name, p in files.items():
        if not p.exists():
            col.error(p, "required UR-FUNNY file not found")
            continue
        try:
            loaded[name] = _load_pickle(p, col)
        except _Abort:
            continue
    folds = loaded.get("data_folds.pkl")
    keys_split = []  # (key, split)
    if folds is not None:
        fpath = files["data_folds.pkl"]
        if not isinstance(folds, dict):
            col.error(fpath, f"expected a dict with train/dev/test, got {type(folds).__name__}")
        else:
            _check_splits(fpath, col, list(folds), expected=tuple(UF_FOLDS))
            ids_by_split = {}
            for fold, split in UF_FOLDS.items():
                if fold not in folds:
                    continue
                keys = [_plain(k) for k in list(folds[fold])]
                ids_by_split[split] = [str(k) for k in keys]
                keys_split += [(k, split) for k in keys]
            _check_ids(fpath, col, ids_by_split)
    lo, hi = _range(label_range, (0.0, 1.0))
    humor = loaded.get("humor_label_sdk.pkl")
    if humor is not None and not isinstance(humor, dict):
        col.error(files["humor_label_sdk.pkl"], f"expected a dict keyed by id, got {type(humor).__name__}")
        humor = None
    language = loaded.get("language_sdk.pkl")
    if language is not None and not isinstance(language, dict):
        col.error(files["language_sdk.pkl"], f"expected a dict keyed by id, got {type(language).__name__}")
        language = None
    for k, split in keys_split:
        if humor is not None:
            lp = files["humor_label_sdk.pkl"]
            if k not in humor:
                col.error(lp, "id listed in data_folds.pkl has no label", record=k, split=split, field="label", check="no label")
            else:
                v = humor[k]
                x = float(np.asarray(v).reshape(-1)[0]) if np.size(v) == 1 and _numeric(v) else v
                before = len(col.report)
                _check_label(lp, col, x, lo, hi, record=k, split=split)
                if len(col.report) == before and x not in (0.0, 1.0):
                    col.error(lp, f"humor label must be 0 or 1, got {x!r}", record=k, split=split, field="label",
                              check="label not binary")
        if language is not None:
            _check_urfunny_text(files["language_sdk.pkl"], col, language.get(k), k, split)
    for m, name in UF_FEATURES.items():
        p = root / name
        if not p.exists():
            continue
        try:
            feats = _load_pickle(p, col)
        except _Abort:
            continue
        if not isinstance(feats, dict):
            col.error(p, f"expected a dict keyed by id, got {type(feats).__name__}")
            continue
        _check_urfunny_features(p, col, feats, keys_split, m)


def _numeric(v):
    try:
        float(np.asarray(v).reshape(-1)[0])
        return True
    except (TypeError, ValueError):
        return False


def _check_urfunny_text(path, col, entry, k, split):
    kw = dict(record=k, split=split)
    if not isinstance(entry, dict):
        col.error(path, "id listed in data_folds.pkl has no language entry", field="text", check="no text", **kw)
        return
    punch = entry.get("punchline_sentence")
    if not isinstance(punch, str):
        col.error(path, "missing or non-string punchline_sentence", field="punchline_sentence", check="punch", **kw)
        return
    ctx = entry.get("context_sentences", [])
    if not isinstance(ctx, (list, tuple)) or not all(isinstance(c, str) for c in ctx):
        col.error(path, "context_sentences must be a list of strings", field="context_sentences", check="ctx", **kw)
        ctx = []
    if not punch.strip() and not any(c.strip() for c in ctx):
        col.error(path, "empty text (no punchline or context words)", field="punchline_sentence", check="empty text", **kw)
    elif not punch.strip():
        col.warning(path, "empty punchline_sentence", field="punchline_sentence", check="empty punch", **kw)


def _check_urfunny_features(path, col, feats, keys_split, m):
    dim, dim_from = None, None
    missing = bad_vals = bad_rows = 0
    first_bad = None
    for k, split in keys_split:
        entry = feats.get(k)
        if entry is None:
            missing += 1
            continue
        if not isinstance(entry, dict) or "punchline_features" not in entry:
            col.error(path, "entry lacks punchline_features", record=k, split=split, field=m, check="no punch feats")
            continue
        pieces = [("punchline_features", entry["punchline_features"])]
        pieces += [("context_features", c) for c in (entry.get("context_features") or [])]
        row_bad = 0
        for fname, piece in pieces:
            try:
                a = np.asarray(piece, dtype=np.float32)
            except (TypeError, ValueError) as e:
                col.error(path, f"{fname} is not numeric ({e})", record=k, split=split, field=m, check="not numeric")
                continue
            if a.size == 0:
                continue
            if a.ndim != 2:
                col.error(path, f"{fname} has shape {a.shape}, expected (L, D)", record=k, split=split, field=m, check="shape")
                continue
            if dim is None:
                dim, dim_from = a.shape[1], k
            elif a.shape[1] != dim:
                col.error(path, f"feature dim {a.shape[1]} differs from {dim} (id {dim_from})", record=k, split=split,
                          field=m, check="dim differs")
            row_bad += int((~np.isfinite(a)).sum())
        if row_bad:
            bad_vals += row_bad
            bad_rows += 1
            first_bad = first_bad if first_bad is not None else (k, split)
    if bad_vals:
        col.warning(path, f"{bad_vals} NaN/inf values in {bad_rows} samples (first shown); the builder replaces them with 0",
                    record=first_bad[0], split=first_bad[1], field=m)
    if missing:
        col.warning(path, f"{missing} ids have no {m} features (stored as missing)", field=m)
        col.report.info[f"{m}_missing"] = missing
    if keys_split and missing == len(keys_split):
        col.error(path, f"no {m} features for any id", field=m)


# ---------------------------------------------------------------- MUStARD

MUSTARD_REQUIRED = ("utterance", "speaker", "context", "context_speakers", "show", "sarcasm")


def _check_mustard(path, col, *, label_range=None, check_media=True):
    if path.suffix.lower() in (".p", ".pkl", ".pickle"):
        path = path.with_name("sarcasm_data.json")
    dup_lists = []

    def hook(pairs):
        counts = Counter(k for k, _ in pairs)
        dup_lists.append([k for k, n in counts.items() if n > 1])
        return dict(pairs)

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f, object_pairs_hook=hook)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
        col.error(path, f"not valid JSON ({e})")
        raise _Abort from None
    if not isinstance(data, dict) or not data:
        col.error(path, "expected a non-empty JSON object keyed by clip id")
        raise _Abort
    for cid in dup_lists[-1] if dup_lists else []:
        col.error(path, "duplicate id (the JSON object repeats the key; only the last is kept)", record=cid, field="id",
                  check="duplicate id")
    shows = Counter()
    for cid, rec in data.items():
        kw = dict(record=cid)
        if not isinstance(rec, dict):
            col.error(path, "record is not an object", check="not object", **kw)
            continue
        miss = [k for k in MUSTARD_REQUIRED if k not in rec]
        for key in miss:
            col.error(path, f"missing key {key!r}", field=key, check=f"missing {key}", **kw)
        for key in ("utterance", "speaker", "show"):
            if key in rec and not isinstance(rec[key], str):
                col.error(path, f"{key} must be a string", field=key, check=f"type {key}", **kw)
        if "sarcasm" in rec and not isinstance(rec["sarcasm"], bool):
            col.error(path, f"sarcasm must be true/false, got {rec['sarcasm']!r}", field="sarcasm", check="sarcasm", **kw)
        for key in ("context", "context_speakers"):
            if key in rec and (not isinstance(rec[key], list) or not all(isinstance(c, str) for c in rec[key])):
                col.error(path, f"{key} must be a list of strings", field=key, check=f"type {key}", **kw)
        if (isinstance(rec.get("context"), list) and isinstance(rec.get("context_speakers"), list)
                and len(rec["context"]) != len(rec["context_speakers"])):
            col.error(path, f"{len(rec['context'])} context lines but {len(rec['context_speakers'])} context speakers",
                      field="context_speakers", check="ctx len", **kw)
        if isinstance(rec.get("utterance"), str) and not rec["utterance"].strip():
            col.error(path, "empty text (utterance)", field="utterance", check="empty text", **kw)
        if isinstance(rec.get("show"), str):
            shows[rec["show"]] += 1
    if shows and (shows.get("FRIENDS", 0) == 0 or shows.get("FRIENDS", 0) == sum(shows.values())):
        col.warning(path, "speaker-independent split needs both FRIENDS (test) and other shows", field="show")
    col.report.info.update(records=len(data), shows=dict(shows))
    split_path = path.with_name("split_indices.p")
    if split_path.exists():
        _check_mustard_folds(split_path, col, len(data))


def _check_mustard_folds(path, col, n):
    folds = _load_pickle(path, col)
    if not isinstance(folds, (list, tuple)) or not folds:
        col.error(path, f"expected a list of (train, test) index pairs, got {type(folds).__name__}")
        return
    if len(folds) != 5:
        col.warning(path, f"{len(folds)} folds, MUStARD releases 5")
    col.report.info["folds"] = len(folds)
    for k, pair in enumerate(folds):
        name = f"fold{k}"
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            col.error(path, "fold is not a (train, test) pair", split=name)
            continue
        parts = []
        for role, idx in zip(("train", "test"), pair):
            a = np.asarray(idx).reshape(-1)
            if a.size and not np.issubdtype(a.dtype, np.integer):
                if not (np.issubdtype(a.dtype, np.floating) and np.all(np.isfinite(a)) and np.all(a == np.round(a))):
                    col.error(path, f"{role} indices are not integers", split=name, field=role)
                    parts.append(None)
                    continue
            a = a.astype(np.int64)
            bad = a[(a < 0) | (a >= n)]
            if bad.size:
                col.error(path, f"{bad.size} {role} indices out of range 0..{n - 1} (first {int(bad[0])})", split=name, field=role)
            if np.unique(a).size != a.size:
                col.error(path, f"{role} indices repeat", split=name, field=role)
            parts.append(a)
        if len(parts) == 2 and parts[0] is not None and parts[1] is not None:
            both = np.intersect1d(*parts)
            if both.size:
                col.error(path, f"{both.size} indices in both train and test (first {int(both[0])})", split=name, field="test")
            if not parts[1].size:
                col.error(path, "test indices are empty", split=name, field="test")


# ---------------------------------------------------------------- Parquet feature store


def _check_parquet(path, col, *, label_range=None, check_media=True):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from .store import read_meta

    try:
        meta = read_meta(path)
    except DataError as e:
        col.error(path, _msg(e))
        raise _Abort from None
    except Exception as e:  # bad JSON in the metadata
        col.error(path, f"unreadable grcf metadata ({type(e).__name__}: {e})")
        raise _Abort from None
    try:
        table = pq.read_table(path)
    except Exception as e:
        col.error(path, f"not a readable Parquet file ({type(e).__name__}: {e})")
        raise _Abort from None
    names = set(table.column_names)
    miss = [c for c in ("id", "split", "label") if c not in names]
    if miss:
        col.error(path, f"missing column(s) {miss}")
        raise _Abort
    ids = [str(i) for i in table.column("id").to_pylist()]
    splits = table.column("split").to_pylist()
    _check_splits(path, col, set(splits), extra_is_error=True)
    by = defaultdict(list)
    for i, s in zip(ids, splits):
        by[s].append(i)
    _check_ids(path, col, by)
    lo, hi = _range(label_range, meta.get("label_range"))
    labels = table.column("label").to_numpy(zero_copy_only=False).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(labels) | ((labels < lo) | (labels > hi) if lo is not None else False))
    for i in bad:
        _check_label(path, col, labels[i], lo, hi, record=ids[i], split=splits[i])
    if meta.get("task") == "classification":
        for i in np.flatnonzero(np.isfinite(labels) & (labels != 0) & (labels != 1)):
            col.error(path, f"label {labels[i]:g} is not 0 or 1 (classification)", record=ids[i], split=splits[i],
                      field="label", check="label not binary")
    if "raw_text" in names:
        for i, t in enumerate(table.column("raw_text").to_pylist()):
            if t is not None and not t.strip():
                col.warning(path, "empty text", record=ids[i], split=splits[i], field="raw_text", check="empty text")
    mods = meta.get("modalities", {})
    if not mods:
        col.error(path, "the metadata lists no modality")
    for m, mm in mods.items():
        fc, lc = f"{m}_feat", f"{m}_len"
        if fc not in names:
            col.error(path, f"metadata lists {m} but column {fc} is missing", field=fc)
            continue
        dim = mm.get("dim")
        ftype = table.schema.field(fc).type
        if pa.types.is_binary(ftype) or pa.types.is_large_binary(ftype):  # format version 2: raw float32 bytes
            checked = _check_binary_feat(path, col, table, m, dim, ids, splits)
            if checked is None:
                continue
            valid, real = checked
        else:
            arr = table.column(fc).combine_chunks()
            if not pa.types.is_list(arr.type) and not pa.types.is_large_list(arr.type):
                col.error(path, f"column type {arr.type}, expected binary (float32 bytes) or "
                                f"list<fixed_size_list<float>> (format version 1)", field=fc)
                continue
            inner = arr.type.value_type
            valid = arr.is_valid().to_numpy(zero_copy_only=False)
            real = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            steps = arr.flatten()
            if pa.types.is_fixed_size_list(inner):
                if dim is not None and inner.list_size != dim:
                    col.error(path, f"feature dim {inner.list_size} differs from the metadata dim {dim}", field=fc)
                values = steps.flatten()
            else:  # variable inner lists: each step must have the same width
                widths = pc.list_value_length(steps).to_numpy(zero_copy_only=False)
                want = dim if dim is not None else (int(widths[0]) if widths.size else None)
                if widths.size and np.any(widths != want):
                    row_of_step = np.repeat(np.arange(len(arr)), real)
                    j = int(np.flatnonzero(widths != want)[0])
                    col.error(path, f"feature dim {int(widths[j])} differs from {want}", record=ids[row_of_step[j]],
                              split=splits[row_of_step[j]], field=fc)
                values = steps.flatten()
            v = values.to_numpy(zero_copy_only=False)
            if v.size and np.issubdtype(v.dtype, np.floating):
                nonfin = ~np.isfinite(v)
                if nonfin.any():
                    width = max(1, v.size // max(1, int(real.sum())))
                    step_rows = np.repeat(np.arange(len(arr)), real)
                    rows = np.unique(step_rows[np.flatnonzero(nonfin) // width])
                    col.error(path, f"{_describe(*_nonfinite_counts(v[nonfin]))} values in {rows.size} samples (first shown)",
                              record=ids[rows[0]], split=splits[rows[0]], field=fc)
            if lc in names:
                lens = table.column(lc).to_numpy(zero_copy_only=False)
                for i in np.flatnonzero(valid & (lens != real)):
                    col.error(path, f"{lc} is {lens[i]} but the sequence has {real[i]} steps", record=ids[i],
                              split=splits[i], field=lc, check="length mismatch")
        if lc in names:
            lens = table.column(lc).to_numpy(zero_copy_only=False)
            for i in np.flatnonzero(~valid & (lens != 0)):
                col.error(path, f"{lc} is {lens[i]} but the sequence is missing", record=ids[i], split=splits[i],
                          field=lc, check="length of missing")
        for i in np.flatnonzero(valid & (real == 0)):
            col.warning(path, f"zero-length {m} sequence (store None for a missing modality)", record=ids[i],
                        split=splits[i], field=fc, check="zero length")
        col.report.info[f"{m}_missing"] = int((~valid).sum())
    col.report.info["rows"] = len(ids)


def _check_binary_feat(path, col, table, m, dim, ids, splits):
    """Format-2 `m_feat` (binary, [L, D] float32 bytes per row): byte lengths vs `m_len` and the
    metadata dim, NaN/inf values. Returns (valid rows, steps per row) or None when unusable."""
    from .store import _binary_layout

    fc, lc = f"{m}_feat", f"{m}_len"
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        col.error(path, f"the metadata gives no valid dim for {m} ({dim!r}); it is needed to read {fc}", field=fc)
        return None
    step = 4 * dim
    chunks = table.column(fc).chunks
    layouts = [_binary_layout(a, step) for a in chunks]
    valid = (np.concatenate([a.is_valid().to_numpy(zero_copy_only=False) for a in chunks]) if chunks
             else np.zeros(0, bool))
    nbytes = np.concatenate([lay[2] for lay in layouts]) if layouts else np.zeros(0, np.int64)
    if lc in table.column_names:
        lens = table.column(lc).to_numpy(zero_copy_only=False).astype(np.int64)
        want = lens * step
        for i in np.flatnonzero(valid & (nbytes != want)):
            if nbytes[i] % step:  # the bytes are not whole steps: the feature bytes are corrupt
                col.error(path, f"{fc} holds {nbytes[i]} bytes, not {lc} x {dim} x 4 = {lens[i]} x {dim} x 4 = "
                                f"{want[i]}", record=ids[i], split=splits[i], field=fc, check="byte length")
            else:
                col.error(path, f"{lc} is {lens[i]} but the sequence has {nbytes[i] // step} steps", record=ids[i],
                          split=splits[i], field=lc, check="length mismatch")
    else:
        col.error(path, f"column {lc} is missing", field=lc)
        for i in np.flatnonzero(valid & (nbytes % step != 0)):
            col.error(path, f"{fc} holds {nbytes[i]} bytes, not a multiple of {dim} x 4", record=ids[i],
                      split=splits[i], field=fc, check="byte length")
    # NaN/inf: view each chunk's data as float32 once, map bad values back to their rows
    bad_rows, bad_vals, row0 = [], [], 0
    for (data, start, nb), a in zip(layouts, chunks):
        if data.size >= 4 and nb.any():
            used = nb > 0
            end = int((start[used] + nb[used]).max())
            # rows normally start 4-byte aligned; after a corrupt row they may not: one view per alignment
            for res in np.unique(start[used] % 4):
                base = int(start[used & (start % 4 == res)].min())
                v = np.frombuffer(data, np.dtype("<f4"), count=(end - base) // 4, offset=base)
                pos = np.flatnonzero(~np.isfinite(v))
                if pos.size:
                    byte = base + pos * 4
                    r = np.maximum(np.searchsorted(start, byte, side="right") - 1, 0)
                    inside = (byte >= start[r]) & (byte + 4 <= start[r] + nb[r]) & (start[r] % 4 == res)
                    bad_rows.append(r[inside] + row0)
                    bad_vals.append(v[pos[inside]])
        row0 += len(a)
    if bad_rows and sum(r.size for r in bad_rows):
        rows = np.unique(np.concatenate(bad_rows))
        vals = np.concatenate(bad_vals)
        col.error(path, f"{_describe(*_nonfinite_counts(vals))} values in {rows.size} samples (first shown)",
                  record=ids[rows[0]], split=splits[rows[0]], field=fc)
    real = np.where(valid, nbytes // step, 0)
    return valid, real


# ---------------------------------------------------------------- CLI


def _summary(report: Report, path) -> str:
    info = report.info
    extra = []
    if "text_only_rows" in info:
        extra.append(f"{info['rows']} rows, {info['clips_found']} with an MP4, {info['text_only_rows']} text-only (no MP4)")
        if info.get("media_checked"):
            extra.append(f"{info['media_checked']} clips decoded")
        elif info["clips_found"]:
            extra.append("media not checked (text-only dataset)")
        if info.get("no_face_clips"):
            extra.append(f"{info['no_face_clips']} without a face")
    elif "rows" in info:
        extra.append(f"{info['rows']} rows")
    elif "records" in info:
        extra.append(f"{info['records']} records")
    for k, v in info.items():
        if k.endswith("_missing") and v:
            extra.append(f"{v} rows without {k[:-8]}")
    tail = f" ({'; '.join(extra)})" if extra else ""
    return f"validate {path} [{report.kind}]: {report.errors} error(s), {report.warnings} warning(s){tail}"


def _resolve(args):
    """(path, kind, label_range, check_media, dataset name, source) from the CLI arguments."""
    path = getattr(args, "path", None)
    path = Path(path) if path not in (None, "") else None
    kind = getattr(args, "kind", None)
    dataset = getattr(args, "dataset", None)
    params_path = getattr(args, "params", None)
    label_range, check_media, source = None, True, None
    if dataset:
        from .config import dataset_config, load_params

        params = load_params(params_path or "params.yaml")
        ds = dataset_config(params, dataset)
        source = ds.get("source")
        if source == "embedded":
            return path, "embedded", None, False, dataset, source
        if path is None:
            if not ds.get("path"):
                raise GrcfError(f"dataset {dataset!r} has no `path` in {params_path or 'params.yaml'}")
            path = Path(ds["path"])
        kind = kind or (source if source in KINDS else None)
        if ds.get("label_range") is not None:
            label_range = ds["label_range"]
        elif ds.get("task") == "classification":
            label_range = (0.0, 1.0)
        mods = ds.get("modalities")
        if mods is not None and not any(m in ("audio", "vision") for m in mods):
            check_media = False  # a text-only dataset never reads its clips
    if path is None:
        raise GrcfError("validate needs a path, or --dataset with a `path` in params.yaml")
    return path, kind, label_range, check_media, dataset, source


def main(args) -> int:
    path, kind, label_range, check_media, dataset, source = _resolve(args)
    if kind == "embedded":
        report = Report(kind="embedded")
        report.info["note"] = "embedded generator: nothing to check"
        shown = path or f"<{dataset}: embedded>"
    else:
        report = validate_path(path, kind, label_range=label_range, check_media=check_media)
        shown = path
    for p in report:
        print(p.line(), file=sys.stdout)
    print(_summary(report, shown))
    out = getattr(args, "out", None)
    if out:
        from .atomic import write_json

        write_json(out, {
            "path": None if path is None else str(path), "kind": report.kind, "dataset": dataset, "source": source,
            "ok": report.errors == 0, "errors": report.errors, "warnings": report.warnings,
            "check_media": check_media, "info": report.info, "problems": [asdict(p) for p in report],
        })
    return 1 if report.errors else 0
