"""The Parquet feature store: one file per dataset, one row per sample, a `split` column.

Columns: id, video_id, clip_id, split, label, raw_text (nullable), and per modality `m`
`m_feat` (list of fixed-size float32 vectors, null when the sample lacks it) and `m_len`.
The schema metadata key `grcf` holds JSON: dataset, producer, task, label_range and,
per modality, its dim and producer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import MODALITIES
from .atomic import atomic_path
from .errors import DataError

FORMAT_VERSION = 1
META_KEY = b"grcf"
SPLITS = ("train", "valid", "test")


def write_store(
    path,
    *,
    ids: Sequence[str],
    splits: Sequence[str],
    labels: Sequence[float],
    modalities: dict[str, Sequence[np.ndarray | None]],
    meta: dict,
    video_ids: Sequence[str] | None = None,
    clip_ids: Sequence[str] | None = None,
    texts: Sequence[str | None] | None = None,
    extra_columns: dict[str, Sequence] | None = None,
) -> Path:
    """Check and write one dataset atomically. `modalities[m][i]` is [L_i, D] or None."""
    path = Path(path)
    n = len(ids)
    ids = [str(i) for i in ids]
    _check_unique(path, ids)
    labels = np.asarray(labels, dtype=np.float64)
    for name, col in [("split", splits), ("label", labels)]:
        if len(col) != n:
            raise DataError(path, f"column {name} has {len(col)} rows, ids have {n}")
    bad = [s for s in set(splits) if s not in SPLITS]
    if bad:
        raise DataError(path, f"unknown split(s) {sorted(bad)}; expected {SPLITS}")
    nonfinite = np.flatnonzero(~np.isfinite(labels))
    if nonfinite.size:
        raise DataError(path, "label is NaN or inf", record=ids[nonfinite[0]])
    lo, hi = meta.get("label_range", (-np.inf, np.inf))
    out = np.flatnonzero((labels < lo) | (labels > hi))
    if out.size:
        raise DataError(path, f"label {labels[out[0]]} outside {lo}..{hi}", record=ids[out[0]])

    columns = {
        "id": pa.array(ids, pa.string()),
        "video_id": pa.array([str(v) for v in (video_ids or ids)], pa.string()),
        "clip_id": pa.array([str(c) for c in (clip_ids or [""] * n)], pa.string()),
        "split": pa.array(list(splits), pa.string()),
        "label": pa.array(labels, pa.float64()),
        "raw_text": pa.array(list(texts) if texts is not None else [None] * n, pa.string()),
    }
    mod_meta = dict(meta.get("modalities", {}))
    for m, seqs in modalities.items():
        if len(seqs) != n:
            raise DataError(path, f"modality {m} has {len(seqs)} rows, ids have {n}")
        dim = mod_meta.get(m, {}).get("dim") or _infer_dim(seqs)
        if dim is None:
            raise DataError(path, f"modality {m} is empty for every sample")
        columns[f"{m}_feat"], columns[f"{m}_len"] = _sequence_column(path, m, seqs, dim, ids)
        mod_meta[m] = {**mod_meta.get(m, {}), "dim": int(dim)}
    for name, values in (extra_columns or {}).items():
        columns[name] = pa.array(values)

    full_meta = {**meta, "modalities": mod_meta, "format_version": FORMAT_VERSION}
    table = pa.table(columns)
    table = table.replace_schema_metadata({META_KEY: json.dumps(full_meta).encode()})
    with atomic_path(path) as tmp:
        # lz4 and no dictionary pages for the float columns: decoding the nested feature lists
        # dominates load_split, and this reads ~1.5x faster than zstd+dictionary (random floats
        # barely compress either way); strings keep dictionaries
        strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
        pq.write_table(table, tmp, compression="lz4", use_dictionary=strings, row_group_size=4096)
    return path


def _check_unique(path, ids):
    seen = set()
    for i in ids:
        if i in seen:
            raise DataError(path, "duplicate id", record=i)
        seen.add(i)


def _infer_dim(seqs):
    for s in seqs:
        if s is not None:
            return int(np.asarray(s).shape[-1])
    return None


def _sequence_column(path, m, seqs, dim, ids):
    lens = np.zeros(len(seqs), dtype=np.int32)
    chunks, valid = [], np.zeros(len(seqs), dtype=bool)
    for i, s in enumerate(seqs):
        if s is None:
            continue
        a = np.asarray(s, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != dim:
            raise DataError(path, f"{m} features have shape {a.shape}, expected (L, {dim})", record=ids[i])
        if not np.isfinite(a).all():
            raise DataError(path, f"{m} features contain NaN or inf", record=ids[i])
        lens[i], valid[i] = a.shape[0], True
        chunks.append(a.reshape(-1))
    flat = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
    inner = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)
    mask = pa.array(~valid)
    outer = pa.ListArray.from_arrays(pa.array(offsets), inner, mask=mask)
    return outer, pa.array(lens, pa.int32())


# ---------------------------------------------------------------- reading


@dataclass
class Split:
    """One split as padded arrays: features[m] is [N, L, D] float32, masks[m] is [N, L] bool."""

    ids: np.ndarray
    labels: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    texts: list | None = None

    def __len__(self) -> int:
        return len(self.ids)


def read_meta(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise DataError(path, "feature store not found")
    try:
        schema = pq.read_schema(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise DataError(path, f"not a readable Parquet file ({e})") from None
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise DataError(path, "no grcf metadata: not written by the grcf feature store")
    return json.loads(raw)


def available_modalities(meta: dict) -> list[str]:
    return [m for m in MODALITIES if m in meta.get("modalities", {})]


def load_split(path, split: str, modalities=None, max_len: dict | None = None) -> Split:
    """Read one split into padded arrays; `max_len[m]` truncates long sequences."""
    meta = read_meta(path)
    present = available_modalities(meta)
    modalities = present if modalities is None else [m for m in modalities if m in present]
    cols = ["id", "label", "raw_text", *[f"{m}_feat" for m in modalities], *[f"{m}_len" for m in modalities]]
    table, rows = _read_split(path, split, cols)
    out = Split(
        ids=np.asarray(_take(table.column("id"), rows).to_pylist(), dtype=object),
        labels=_take(table.column("label"), rows).to_numpy().astype(np.float32),
        texts=_take(table.column("raw_text"), rows).to_pylist(),
    )
    for m in modalities:
        dim = meta["modalities"][m]["dim"]
        cap = (max_len or {}).get(m)
        out.features[m], out.masks[m] = _pad(table.column(f"{m}_feat"), dim, cap, rows)
    return out


def _read_split(path, split, cols):
    """(table of the row groups holding `split`, positions of its rows in that table or None for all).

    Decoding nested feature columns dominates read time, so only row groups that contain the
    split are decoded (`read_table(filters=...)` decodes every group whose statistics overlap),
    and rows are selected while padding instead of by a filter that copies the features.
    """
    pf = pq.ParquetFile(path)
    splits = pf.read(columns=["split"]).column("split").to_numpy(zero_copy_only=False)
    sel = splits == split
    bounds = np.concatenate([[0], np.cumsum([pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])])
    groups = [g for g in range(pf.num_row_groups) if sel[bounds[g]:bounds[g + 1]].any()]
    if not groups:
        return pf.schema_arrow.empty_table().select(cols), None
    table = pf.read_row_groups(groups, columns=cols)
    keep = np.concatenate([sel[bounds[g]:bounds[g + 1]] for g in groups])
    return table, None if keep.all() else np.flatnonzero(keep)


def _take(column, rows):
    return column if rows is None else column.take(pa.array(rows))


def pad_sequences(column: pa.ChunkedArray, dim: int, cap: int | None = None):
    """list<fixed_size_list<float32>> -> ([N, L, D] float32, [N, L] bool)."""
    return _pad(column, dim, cap)


def _pad(column, dim: int, cap: int | None = None, rows: np.ndarray | None = None):
    """Pad the rows `rows` (default all) of a feature column; one copy of the data, no combine_chunks."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    starts, lens, values = [], [], []
    for k, arr in enumerate(chunks):
        # raw offsets index the (unsliced) child; null rows may be backed by data, so zero them
        off = arr.offsets.to_numpy().astype(np.int64)
        full = np.diff(off)
        if arr.null_count:
            full = np.where(arr.is_valid().to_numpy(zero_copy_only=False), full, 0)
        inner = arr.values  # fixed_size_list<float32>, its own offset counts in steps
        flat = inner.values.to_numpy(zero_copy_only=False)
        values.append(flat[inner.offset * dim:].reshape(-1, dim) if flat.size else np.zeros((0, dim), np.float32))
        starts.append(off[:-1])
        lens.append(full)
    chunk_of = np.concatenate([np.full(len(a), k) for k, a in enumerate(chunks)]) if chunks else np.zeros(0, int)
    start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    full = np.concatenate(lens) if lens else np.zeros(0, np.int64)
    if rows is not None:
        chunk_of, start, full = chunk_of[rows], start[rows], full[rows]
    n = len(full)
    take = full if cap is None else np.minimum(full, cap)
    width = max(int(take.max()) if n else 0, 1)
    mask = np.arange(width)[None, :] < take[:, None]
    if n and len(values) == 1 and (take == width).all() and (np.diff(start) == width).all():
        # every row full-width and back to back (e.g. MMSA aligned data): one contiguous copy
        feats = values[0][start[0]:start[0] + n * width].reshape(n, width, dim).astype(np.float32, copy=True)
        return feats, mask
    feats = np.zeros((n, width, dim), dtype=np.float32)
    for i in np.flatnonzero(take):  # per-row slice copies: rows are long, so the loop is cheap
        feats[i, : take[i]] = values[chunk_of[i]][start[i]:start[i] + take[i]]
    return feats, mask
