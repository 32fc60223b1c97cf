"""Build a feature store from an MMSA feature pickle ({"train","valid","test"} dicts of arrays).

Aligned files have no *_lengths: every modality shares the padded length L; text keeps only
its real tokens (text_bert's mask row), audio and vision keep all L steps, as MMSA uses them.
Unaligned files give audio_lengths / vision_lengths; sequences are taken from the front.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import requested_modalities
from ..safe_pickle import safe_load
from ..store import SPLITS, write_store

log = logging.getLogger(__name__)

ID_SEP = "$_$"
SIMS_EXTRA = {"regression_labels_T": "label_T", "regression_labels_A": "label_A", "regression_labels_V": "label_V"}
# CH-SIMS (33-d audio / 709-d vision) and CH-SIMS v2 (25 / 177) feature dims
SIMS_DIMS = {(33, 709), (25, 177)}


def build(src, out, options: dict | None = None) -> Path:
    options = dict(options or {})
    src, out = Path(src), Path(out)
    modalities = requested_modalities(src, options)
    data = safe_load(src, encoding="latin1")  # latin1: MMSA files made under Python 2 hold numpy bytes
    if not isinstance(data, dict):
        raise DataError(src, f"expected a dict with train/valid/test, got {type(data).__name__}")
    missing = [s for s in SPLITS if s not in data]
    if missing:
        raise DataError(src, f"missing split(s) {missing}")

    cols = {k: [] for k in ("ids", "splits", "labels", "video_ids", "clip_ids", "texts")}
    feats = {m: [] for m in modalities}
    extra: dict[str, list] = {}
    dims: dict[str, int] = {}
    neg_inf = 0
    aligned = None
    for split in SPLITS:
        part = data[split]
        if not isinstance(part, dict):
            raise DataError(src, f"split {split} is a {type(part).__name__}, expected a dict")
        s = _split(src, split, part, modalities)
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
            if m in dims and dims[m] != s["dims"][m]:
                raise DataError(src, f"split {split}: {m} dim {s['dims'][m]} differs from {dims[m]} in an earlier split")
            dims[m] = s["dims"][m]
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
    label_range = options.get("label_range") or _default_range(labels, dims, extra)
    lo, hi = float(label_range[0]), float(label_range[1])
    bad = np.flatnonzero((labels < lo) | (labels > hi))
    if bad.size:  # checked here too so the error names the source pickle, not the output
        i = int(bad[0])
        raise DataError(src, f"split {cols['splits'][i]}: label {labels[i]:g} outside {lo:g}..{hi:g}", record=cols["ids"][i])
    meta = {
        "dataset": options.get("dataset") or src.stem,
        "producer": "mmsa_pickle",
        "task": "regression",
        "label_range": [float(label_range[0]), float(label_range[1])],
        "source": str(src),
        "aligned": bool(aligned),
        "audio_neg_inf_replaced": int(neg_inf),
        "modalities": {m: {"producer": "mmsa_pickle", "dim": dims[m]} for m in modalities},
    }
    return write_store(
        out, ids=cols["ids"], splits=cols["splits"], labels=labels, modalities=feats, meta=meta,
        video_ids=cols["video_ids"], clip_ids=cols["clip_ids"], texts=cols["texts"], extra_columns=extra,
    )


def _default_range(labels, dims, extra):
    sims_like = any(k in extra for k in SIMS_EXTRA.values()) or (dims.get("audio"), dims.get("vision")) in SIMS_DIMS
    if sims_like and labels.size and np.all(np.abs(labels) <= 1):
        return (-1.0, 1.0)
    return (-3.0, 3.0)


def _need(src, split, part, key):
    if key not in part:
        raise DataError(src, f"split {split}: missing key {key!r}")
    return part[key]


def _split(src, split, part, modalities):
    raw_ids = np.asarray(_need(src, split, part, "id")).reshape(-1)
    ids = [_str(i) for i in raw_ids]
    n = len(ids)

    def rec(i):
        return ids[i] if 0 <= i < n else None

    def vector(key):
        a = np.asarray(part[key])
        if a.ndim == 2 and a.shape[1] == 1:
            a = a[:, 0]
        if a.ndim != 1 or a.shape[0] != n:
            raise DataError(src, f"split {split}: {key} has shape {a.shape}, expected ({n},) to match id")
        return a

    _need(src, split, part, "regression_labels")
    labels = vector("regression_labels").astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(labels))
    if bad.size:
        raise DataError(src, f"split {split}: regression_labels is NaN or inf", record=rec(bad[0]))
    texts = [None] * n
    if "raw_text" in part:
        texts = [None if t is None else _str(t) for t in vector("raw_text")]
    video_ids, clip_ids = [], []
    for i in ids:
        v, sep, c = i.partition(ID_SEP)
        video_ids.append(v)
        clip_ids.append(c if sep else "")

    aligned = "audio_lengths" not in part and "vision_lengths" not in part
    out_feats, dims, neg_inf = {}, {}, 0
    for m in modalities:
        a = _need(src, split, part, m)
        if not isinstance(a, np.ndarray) or a.ndim != 3:
            raise DataError(src, f"split {split}: {m} has shape {getattr(a, 'shape', type(a).__name__)}, expected (N, L, D)")
        if a.shape[0] != n:
            raise DataError(src, f"split {split}: {m} has {a.shape[0]} samples, id has {n}")
        L, dims[m] = a.shape[1], int(a.shape[2])
        lens = _lengths(src, split, part, m, n, L, aligned, rec)
        a = a.astype(np.float32, copy=False)
        if m == "audio":
            ninf = np.isneginf(a)
            count = int(ninf.sum())
            if count:
                a = np.where(ninf, np.float32(0), a)
                neg_inf += count
        per = []
        for i in range(n):
            x = a[i, : lens[i]]
            if not np.isfinite(x).all():
                what = "NaN" if np.isnan(x).any() else "inf"
                raise DataError(src, f"split {split}: {m} features contain {what}", record=rec(i))
            per.append(np.ascontiguousarray(x) if lens[i] > 0 else None)  # zero length = modality absent
        out_feats[m] = per

    extra = {}
    for key, col in SIMS_EXTRA.items():
        if key in part:
            extra[col] = vector(key).astype(np.float64).tolist()
    if "classification_labels" in part:
        extra["classification_label"] = vector("classification_labels").astype(np.float64).tolist()
    if "annotations" in part:
        extra["annotation"] = [None if x is None else _str(x) for x in vector("annotations")]
    return {"ids": ids, "labels": labels, "texts": texts, "video_ids": video_ids, "clip_ids": clip_ids,
            "feats": out_feats, "dims": dims, "neg_inf": neg_inf, "extra": extra, "aligned": aligned}


def _lengths(src, split, part, m, n, L, aligned, rec):
    if m == "text":
        tb = part.get("text_bert")
        if tb is None:
            return np.full(n, L, dtype=np.int64)
        tb = np.asarray(tb)
        if tb.ndim != 3 or tb.shape[0] != n or tb.shape[1] < 2:
            raise DataError(src, f"split {split}: text_bert has shape {tb.shape}, expected ({n}, 3, L)")
        lens = tb[:, 1, :].astype(np.int64).sum(axis=1)  # row 1 is the attention mask
        key = "text_bert mask"
    elif aligned:
        return np.full(n, L, dtype=np.int64)
    else:
        key = f"{m}_lengths"
        lens = np.asarray(_need(src, split, part, key)).reshape(-1)
        if lens.shape[0] != n:
            raise DataError(src, f"split {split}: {key} has {lens.shape[0]} entries, id has {n}")
        if not np.all(np.isfinite(lens.astype(np.float64))):
            raise DataError(src, f"split {split}: {key} has a non-finite length", record=rec(int(np.flatnonzero(~np.isfinite(lens.astype(np.float64)))[0])))
        lens = lens.astype(np.int64)
    bad = np.flatnonzero((lens < 0) | (lens > L))
    if bad.size:
        i = int(bad[0])
        raise DataError(src, f"split {split}: {key} {lens[i]} outside 0..{L} (the {m} sequence length)", record=rec(i))
    return lens


def _str(x) -> str:
    if isinstance(x, bytes):
        return x.decode("utf-8", errors="replace")
    if isinstance(x, np.ndarray) and x.ndim == 0:
        return _str(x.item())
    return str(x)
