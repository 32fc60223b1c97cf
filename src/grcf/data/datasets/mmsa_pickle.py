"""Build a feature store from an MMSA feature pickle ({"train","valid","test"} dicts of arrays).

Aligned files have no *_lengths: every modality shares the padded length L; text keeps only
its real tokens (text_bert's mask row), audio and vision keep all L steps, as MMSA uses them.
Unaligned files give audio_lengths / vision_lengths; sequences are taken from the front.
`read_split` parses one split for both the builder and `grcf validate` (`check`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from grcf import MODALITIES
from grcf.data.checks import (ID_SEP, SPLITS, Abort, Strict, check_ids, check_label, check_splits, describe, label_bounds,
                     load_pickle, nonfinite_counts)
from grcf.data.store import write_store
from grcf.data.datasets import requested_modalities

log = logging.getLogger(__name__)

SIMS_EXTRA = {"regression_labels_T": "label_T", "regression_labels_A": "label_A", "regression_labels_V": "label_V"}
# CH-SIMS (33-d audio / 709-d vision) and CH-SIMS v2 (25 / 177) feature dims
SIMS_DIMS = {(33, 709), (25, 177)}


LABEL_KEYS = ("regression_labels", "regression_labels_T", "regression_labels_A", "regression_labels_V")


def build(src, out, options: dict | None = None) -> Path:
    options = dict(options or {})
    src, out = Path(src), Path(out)
    modalities = requested_modalities(src, options)
    sink = Strict()
    data = _read(src, sink)

    cols = {k: [] for k in ("ids", "splits", "labels", "video_ids", "clip_ids", "texts")}
    feats = {m: [] for m in modalities}
    extra: dict[str, list] = {}
    dims: dict[str, tuple] = {}
    neg_inf = 0
    aligned = None
    for split in SPLITS:
        s = _split(src, sink, split, data[split], modalities, dims)
        if aligned is None:
            aligned = s["aligned"]
        n = len(s["ids"])
        cols["ids"] += s["ids"]
        cols["splits"] += [split] * n
        cols["labels"].append(s["labels"])
        cols["video_ids"] += s["video_ids"]
        cols["clip_ids"] += s["clip_ids"]
        cols["texts"] += s["texts"]
        for m in modalities:
            feats[m] += s["feats"][m]
        neg_inf += s["neg_inf"]
        for name, values in s["extra"].items():
            extra.setdefault(name, [None] * (len(cols["ids"]) - n))
            extra[name] += list(values)
        for name in extra:  # a column only some splits have is null elsewhere
            if len(extra[name]) < len(cols["ids"]):
                extra[name] += [None] * (len(cols["ids"]) - len(extra[name]))
    if neg_inf:
        log.warning("%s: replaced %d -inf audio values with 0 (as MMSA does)", src, neg_inf)

    labels = np.concatenate(cols["labels"])
    label_range = options.get("label_range") or _default_range(data, labels)
    lo, hi = float(label_range[0]), float(label_range[1])
    bad = np.flatnonzero((labels < lo) | (labels > hi))
    if bad.size:  # the default range depends on all labels, so the range is checked last
        i = int(bad[0])
        check_label(src, sink, labels[i], lo, hi, record=cols["ids"][i], split=cols["splits"][i], field="regression_labels")
    meta = {
        "dataset": options.get("dataset") or src.stem,
        "producer": "mmsa_pickle",
        "task": "regression",
        "label_range": [float(label_range[0]), float(label_range[1])],
        "source": str(src),
        "aligned": bool(aligned),
        "audio_neg_inf_replaced": int(neg_inf),
        "modalities": {m: {"producer": "mmsa_pickle", "dim": dims[m][1]} for m in modalities},
    }
    return write_store(
        out, ids=cols["ids"], splits=cols["splits"], labels=labels, modalities=feats, meta=meta,
        video_ids=cols["video_ids"], clip_ids=cols["clip_ids"], texts=cols["texts"], extra_columns=extra,
    )


def check(path, sink, *, label_range=None, check_media=True):
    """`grcf validate` of an MMSA pickle: every problem reported to `sink`."""
    data = _read(path, sink)
    lo, hi = label_bounds(label_range, (-1.0, 1.0) if _sims_like(data) else (-3.0, 3.0))
    ids_by_split, dims = {}, {}
    for split in SPLITS:
        part = data.get(split)
        if part is None:
            continue
        s = read_split(path, sink, split, part, MODALITIES, dims, lo, hi)
        if s is not None:
            ids_by_split[split] = s["ids"]
    check_ids(path, sink, ids_by_split)


def _read(path, sink) -> dict:
    data = load_pickle(path, sink, "MMSA pickle")
    if not isinstance(data, dict):
        sink.error(path, f"expected a dict with train/valid/test, got {type(data).__name__}")
        raise Abort
    check_splits(path, sink, list(data))
    return data


def _sims_like(data) -> bool:
    """CH-SIMS files (labels in -1..1) carry per-modality labels or SIMS feature dims."""
    for part in data.values():
        if not isinstance(part, dict):
            continue
        if any(k in part for k in SIMS_EXTRA):
            return True
        a, v = part.get("audio"), part.get("vision")
        if isinstance(a, np.ndarray) and isinstance(v, np.ndarray) and a.ndim == 3 and v.ndim == 3:
            if (int(a.shape[2]), int(v.shape[2])) in SIMS_DIMS:
                return True
    return False


def _default_range(data, labels):
    if _sims_like(data) and labels.size and np.all(np.abs(labels) <= 1):
        return (-1.0, 1.0)
    return (-3.0, 3.0)


def vector(path, sink, part, key, n, split):
    """`part[key]` as a 1-d array of n values ((n, 1) is flattened), or None after reporting it."""
    a = np.asarray(part[key])
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1 or a.shape[0] != n:
        sink.error(path, f"has shape {a.shape}, expected ({n},) to match id", split=split, field=key)
        return None
    return a


def read_split(path, sink, split, part, modalities, dims, lo=None, hi=None):
    """Parse one split: ids, label vectors (each label checked against lo..hi), texts and, per
    modality, the (N, L, D) array with its valid lengths (None: the whole padded length).
    `dims` ({modality: (split, D)}) carries the feature dims across splits. None if unusable."""
    if not isinstance(part, dict):
        sink.error(path, f"is a {type(part).__name__}, expected a dict of arrays", split=split)
        return None
    if "id" not in part:
        sink.error(path, "missing key 'id'", split=split, field="id")
        return None
    ids = [_str(i) for i in np.asarray(part["id"]).reshape(-1)]
    n = len(ids)

    def rec(i, ids=ids):
        return ids[i] if 0 <= i < len(ids) else None

    labels = {}
    for key in LABEL_KEYS:
        if key not in part:
            if key == "regression_labels":
                sink.error(path, "missing key 'regression_labels'", split=split, field=key)
            continue
        lab = vector(path, sink, part, key, n, split)
        if lab is None:
            continue
        for i, v in enumerate(lab.tolist()):
            check_label(path, sink, v, lo, hi, record=rec(i), split=split, field=key)
        labels[key] = lab
    if "raw_text" in part:
        texts = np.asarray(part["raw_text"], dtype=object).reshape(-1)
        for i, t in enumerate(texts.tolist()):
            if t is None or not _str(t).strip():
                sink.warning(path, "empty text", record=rec(i), split=split, field="raw_text", check="empty text")

    aligned = "audio_lengths" not in part and "vision_lengths" not in part
    feats = {}
    for m in modalities:
        if m not in part:
            sink.error(path, f"missing key {m!r}", split=split, field=m)
            continue
        a = part[m]
        if not isinstance(a, np.ndarray) or a.ndim != 3:
            sink.error(path, f"has shape {getattr(a, 'shape', type(a).__name__)}, expected (N, L, D)", split=split, field=m)
            continue
        if a.shape[0] != n:
            sink.error(path, f"has {a.shape[0]} samples, id has {n}", split=split, field=m)
            continue
        L, D = int(a.shape[1]), int(a.shape[2])
        if m in dims and dims[m][1] != D:
            sink.error(path, f"feature dim {D} differs from {dims[m][1]} in split {dims[m][0]}", split=split, field=m)
        dims.setdefault(m, (split, D))
        lens = _lengths(path, sink, part, m, split, n, L, aligned, rec)
        _nonfinite(path, sink, a, lens, m, split, rec)
        feats[m] = (a, lens)
    return {"ids": ids, "labels": labels, "feats": feats, "aligned": aligned}


def _split(src, sink, split, part, modalities, dims):
    s = read_split(src, sink, split, part, modalities, dims)
    ids = s["ids"]
    n = len(ids)
    labels = s["labels"]["regression_labels"].astype(np.float64)
    texts = [None] * n
    if "raw_text" in part:
        texts = [None if t is None else _str(t) for t in vector(src, sink, part, "raw_text", n, split)]
    video_ids, clip_ids = [], []
    for i in ids:
        v, sep, c = i.partition(ID_SEP)
        video_ids.append(v)
        clip_ids.append(c if sep else "")

    out_feats, neg_inf = {}, 0
    for m in modalities:
        a, lens = s["feats"][m]
        if lens is None:
            lens = np.full(n, a.shape[1], dtype=np.int64)
        a = a.astype(np.float32, copy=False)
        if m == "audio":
            ninf = np.isneginf(a)
            count = int(ninf.sum())
            if count:
                a = np.where(ninf, np.float32(0), a)
                neg_inf += count
        # zero length = modality absent; NaN/inf inside the lengths were refused by read_split
        out_feats[m] = [np.ascontiguousarray(a[i, : lens[i]]) if lens[i] > 0 else None for i in range(n)]

    extra = {col: s["labels"][key].astype(np.float64).tolist() for key, col in SIMS_EXTRA.items() if key in part}
    if "classification_labels" in part:
        extra["classification_label"] = vector(src, sink, part, "classification_labels", n, split).astype(np.float64).tolist()
    if "annotations" in part:
        extra["annotation"] = [None if x is None else _str(x) for x in vector(src, sink, part, "annotations", n, split)]
    return {"ids": ids, "labels": labels, "texts": texts, "video_ids": video_ids, "clip_ids": clip_ids,
            "feats": out_feats, "neg_inf": neg_inf, "extra": extra, "aligned": s["aligned"]}


def _lengths(path, sink, part, m, split, n, L, aligned, rec):
    """Per-sample valid lengths (None: the whole padded length); problems reported here."""
    if m == "text":
        tb = part.get("text_bert")
        if tb is None:
            return None
        tb = np.asarray(tb)
        if tb.ndim != 3 or tb.shape[0] != n or tb.shape[1] < 2:
            sink.error(path, f"has shape {tb.shape}, expected ({n}, 3, L)", split=split, field="text_bert")
            return None
        lens, key = tb[:, 1, :].astype(np.int64).sum(axis=1), "text_bert"  # row 1 is the attention mask
    elif aligned:
        return None
    else:
        key = f"{m}_lengths"
        if key not in part:
            sink.error(path, f"missing key {key!r} (the file is unaligned: another modality has lengths)", split=split,
                       field=key)
            return None
        raw = np.asarray(part[key]).reshape(-1)
        if raw.shape[0] != n:
            sink.error(path, f"has {raw.shape[0]} entries, id has {n}", split=split, field=key)
            return None
        f = raw.astype(np.float64)
        for i in np.flatnonzero(~np.isfinite(f) | (f != np.round(f))):
            sink.error(path, f"length {raw[i]} is not a whole number", record=rec(int(i)), split=split, field=key,
                       check="length not integer")
        lens = np.where(np.isfinite(f), f, 0).astype(np.int64)
    for i in np.flatnonzero((lens < 0) | (lens > L)):
        sink.error(path, f"length {lens[i]} outside 0..{L} (the padded {m} sequence)", record=rec(int(i)), split=split,
                   field=key, check="length beyond sequence")
    for i in np.flatnonzero(lens == 0):
        sink.warning(path, f"length 0: the sample has no {m}", record=rec(int(i)), split=split, field=key,
                     check="length zero")
    return np.clip(lens, 0, L)


def _nonfinite(path, sink, a, lens, m, split, rec):
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
    nan, pinf, ninf = nonfinite_counts(vals)
    if m == "audio":
        neg_rows = np.flatnonzero((np.isneginf(a) & bad).any(axis=(1, 2)))
        if ninf:
            sink.warning(path, f"{ninf} -inf values in {neg_rows.size} samples (first: {rec(int(neg_rows[0]))}); "
                               "MMSA and the grcf builder replace them with 0", split=split, field=m)
        if nan or pinf:
            other = np.flatnonzero((bad & ~np.isneginf(a)).any(axis=(1, 2)))
            sink.error(path, f"{describe(nan, pinf, 0)} values in {other.size} samples (first shown)",
                       record=rec(int(other[0])), split=split, field=m)
        return
    sink.error(path, f"{describe(nan, pinf, ninf)} values in {rows.size} samples (first shown)",
               record=rec(int(rows[0])), split=split, field=m)


def _str(x) -> str:
    if isinstance(x, bytes):
        return x.decode("utf-8", errors="replace")
    if isinstance(x, np.ndarray) and x.ndim == 0:
        return _str(x.item())
    return str(x)
