"""The Parquet feature store: one file per dataset, one row per sample, a `split` column.

Columns: id, video_id, clip_id, split, label, raw_text (nullable), and per modality `m`:

- `m_feat` (Parquet BYTE_ARRAY, Arrow large_binary): the sample's [L, D] array as raw
  little-endian float32 bytes, or float16 where the modality's metadata says `dtype: float16`
  (L*D*4 or L*D*2 bytes; null when the sample lacks the modality, b"" for a zero-length
  sequence); stored uncompressed, without dictionary or statistics;
- `m_len` (int32): L (0 when missing); readers check L*D*itemsize against the byte length.

D is not stored per row: the schema metadata key `grcf` holds JSON with dataset, producer,
task, label_range, format_version and, per modality, its dim, dtype (absent = float32) and
producer. MMSA raw text may store token states as float16 (`features.text.dtype`; extractors/text.py
says why float32 is the default); a reader pads float16 into float32 unless asked to keep it (the
tensor cache keeps it: half the memory).

`write_store` writes one row group at a time and takes each modality as a list or an iterator,
so a feature extractor's generator streams into the file with one row group in memory.

Format version 2 (this layout) replaced version 1, where `m_feat` was
list<fixed_size_list<float32, D>>: Parquet decodes repetition/definition levels for every
float of a nested list, which made reading a MOSEI-sized store several times slower than
unpickling the same arrays. A binary column decodes as one data buffer plus offsets, so
`load_split` views it with one `np.frombuffer` and gathers it into the padded arrays with one
vectorised `np.take` per chunk; when a split's rows are all full width and back to back
(MMSA-style aligned data) the padded array is a writable view of the decoded buffer, no copy.
Large_binary (int64 offsets) keeps a split's column in one chunk past 2 GiB; plain binary
columns read too. Version-1 files are still read (chosen by column type, not by the
metadata's format_version), and checked by `check` (`grcf validate`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from grcf import MODALITIES
from grcf.atomic import atomic_path
from grcf.data.checks import (SPLITS, Abort, check_ids, check_label, check_splits, describe, label_bounds, message_of,
                     nonfinite_counts)
from grcf.errors import DataError

FORMAT_VERSION = 2
# float features barely compress, and decompressing costs more than reading the bytes (see
# benchmarks/bench_features.py (c)): the feature columns are stored uncompressed
FEATURE_COMPRESSION = "none"
_F4 = np.dtype("<f4")
ROW_GROUP_SIZE = 4096
META_KEY = b"grcf"


def write_store(
    path,
    *,
    ids: Sequence[str],
    splits: Sequence[str],
    labels: Sequence[float],
    modalities: dict[str, Iterable[np.ndarray | None]],
    meta: dict,
    video_ids: Sequence[str] | None = None,
    clip_ids: Sequence[str] | None = None,
    texts: Sequence[str | None] | None = None,
    extra_columns: dict[str, Sequence] | None = None,
) -> Path:
    """Check and write one dataset atomically. `modalities[m]` yields, in row order, each row's
    [L_i, D] array or None: a list, or an iterator (e.g. a feature extractor's generator).

    The file is written one row group (ROW_GROUP_SIZE rows) at a time through a ParquetWriter, and
    an iterator is consumed one group at a time, so the features of the whole dataset are never in
    memory together: peak memory is one row group's features, whatever the dataset's size.
    `meta["modalities"][m]["dtype"]` ("float32", default, or "float16") is the stored precision.
    """
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
    mod_meta = {m: dict(v) for m, v in meta.get("modalities", {}).items()}
    rows: dict[str, _Rows] = {}
    for m, seqs in modalities.items():
        if hasattr(seqs, "__len__") and len(seqs) != n:
            raise DataError(path, f"modality {m} has {len(seqs)} rows, ids have {n}")
        rows[m] = _Rows(path, m, seqs, n)
        dtype = mod_meta.get(m, {}).get("dtype", "float32")
        if dtype not in FEATURE_DTYPES:
            raise DataError(path, f"{m}: stored dtype {dtype!r} is not one of {sorted(FEATURE_DTYPES)}")
        dim = mod_meta.get(m, {}).get("dim") or rows[m].infer_dim()
        if dim is None:
            raise DataError(path, f"modality {m} is empty for every sample")
        mod_meta[m] = {**mod_meta.get(m, {}), "dim": int(dim), "dtype": dtype}
    extra = {name: pa.array(values) for name, values in (extra_columns or {}).items()}
    for name, col in extra.items():
        if len(col) != n:
            raise DataError(path, f"column {name} has {len(col)} rows, ids have {n}")

    full_meta = {**meta, "modalities": mod_meta, "format_version": FORMAT_VERSION}
    fields = [pa.field(k, v.type) for k, v in columns.items()]
    for m in modalities:
        fields += [pa.field(f"{m}_feat", pa.large_binary()), pa.field(f"{m}_len", pa.int32())]
    fields += [pa.field(k, v.type) for k, v in extra.items()]
    schema = pa.schema(fields, metadata={META_KEY: json.dumps(full_meta).encode()})
    feats = {f"{m}_feat" for m in modalities}
    strings = [f.name for f in schema if pa.types.is_string(f.type)]
    # feature bytes: no dictionary and no statistics (min/max of 150 kB values would bloat
    # the footer); strings keep dictionaries. Compression: see FEATURE_COMPRESSION.
    compression = {f.name: FEATURE_COMPRESSION if f.name in feats else "lz4" for f in schema}
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema, compression=compression, use_dictionary=strings,
                              write_statistics=[f.name for f in schema if f.name not in feats]) as writer:
            for a in range(0, max(n, 1), ROW_GROUP_SIZE):
                b = min(a + ROW_GROUP_SIZE, n)
                group = {k: v.slice(a, b - a) for k, v in columns.items()}
                for m in modalities:
                    dim, dtype = mod_meta[m]["dim"], np.dtype(mod_meta[m]["dtype"]).newbyteorder("<")
                    group[f"{m}_feat"], group[f"{m}_len"] = _sequence_column(path, m, rows[m].take(b - a), dim,
                                                                            ids[a:b], dtype)
                group.update({k: v.slice(a, b - a) for k, v in extra.items()})
                writer.write_table(pa.table(group, schema=schema), row_group_size=ROW_GROUP_SIZE)
        for m in modalities:
            rows[m].finish()
    return path


FEATURE_DTYPES = {"float32": "<f4", "float16": "<f2"}


class _Rows:
    """A modality's rows, taken a row group at a time from a list or an iterator."""

    def __init__(self, path, m, seqs, n):
        self.path, self.m, self.n = path, m, n
        self.seqs = seqs if hasattr(seqs, "__getitem__") else None
        self.it = None if self.seqs is not None else iter(seqs)
        self.buffer: list = []  # rows read ahead (to learn the dim) and not yet written
        self.pos = 0

    def infer_dim(self):
        if self.seqs is not None:
            return _infer_dim(self.seqs)
        for s in self.buffer:
            if s is not None:
                return int(np.asarray(s).shape[-1])
        for s in self.it:
            self.buffer.append(s)
            if s is not None:
                return int(np.asarray(s).shape[-1])
        return None

    def take(self, k: int) -> list:
        if self.seqs is not None:
            out = list(self.seqs[self.pos:self.pos + k])
        else:
            out = self.buffer[:k]
            self.buffer = self.buffer[k:]
            out += [s for _, s in zip(range(k - len(out)), self.it)]
        self.pos += k
        if len(out) != k:
            raise DataError(self.path, f"modality {self.m} has {self.pos - k + len(out)} rows, ids have {self.n}")
        return out

    def finish(self):
        if self.it is not None and (self.buffer or next(self.it, _END) is not _END):
            raise DataError(self.path, f"modality {self.m} has more rows than the {self.n} ids")


_END = object()


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


def _sequence_column(path, m, seqs, dim, ids, dtype=_F4):
    """(large_binary column of raw little-endian `dtype` bytes, int32 lengths)."""
    n = len(seqs)
    lens = np.zeros(n, dtype=np.int32)
    valid = np.zeros(n, dtype=bool)
    arrays: list = [None] * n
    for i, s in enumerate(seqs):
        if s is None:
            continue
        a = np.asarray(s)
        if a.ndim != 2 or a.shape[1] != dim:
            raise DataError(path, f"{m} features have shape {a.shape}, expected (L, {dim})", record=ids[i])
        if not np.isfinite(a).all():
            raise DataError(path, f"{m} features contain NaN or inf", record=ids[i])
        with np.errstate(over="ignore"):  # overflow becomes inf, reported just below
            a = a.astype(dtype, copy=False)
        if not np.isfinite(a).all():  # finite before, not after: out of float16's range (|x| > 65504)
            raise DataError(path, f"{m} features exceed the range of {dtype.name}; store them as float32",
                            record=ids[i])
        lens[i], valid[i], arrays[i] = a.shape[0], True, a
    parts = [a.reshape(-1) for a in arrays if a is not None]
    data = np.concatenate(parts) if parts else np.zeros(0, dtype)
    offsets = np.concatenate([[0], np.cumsum(lens.astype(np.int64) * (dim * dtype.itemsize))])
    nulls = int((~valid).sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    # large_binary (int64 offsets; Parquet BYTE_ARRAY on disk either way): a split's column reads
    # back as one chunk even past 2 GiB, so load_split can often return it without a copy
    column = pa.Array.from_buffers(pa.large_binary(), n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)],
                                   null_count=nulls)
    return column, pa.array(lens, pa.int32())


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


def build(src, out, options: dict | None = None) -> Path:
    """A `parquet` source: an existing store, checked to read, then copied into place atomically."""
    import shutil

    from grcf.atomic import atomic_path

    read_meta(src)
    with atomic_path(out) as tmp:
        shutil.copyfile(src, tmp)
    return Path(out)


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


def load_split(path, split: str, modalities=None, max_len: dict | None = None, dtype=np.float32) -> Split:
    """Read one split into padded arrays; `max_len[m]` truncates long sequences.

    Features come back as `dtype` (default float32, whatever the stored precision); `dtype=None`
    keeps the stored one (float16 stores then pad to half the memory: the tensor cache does that).
    """
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
        stored = stored_dtype(path, meta, m)
        cap = (max_len or {}).get(m)
        col = table.column(f"{m}_feat")
        if _is_binary(col.type):
            lens = _take(table.column(f"{m}_len"), rows).to_numpy(zero_copy_only=False)
            ids = out.ids
            out.features[m], out.masks[m] = _pad_binary(col, dim, cap, rows, lens=lens, path=path,
                                                        record=lambda i: ids[i], name=m, stored=stored)
        else:  # format version 1: list<fixed_size_list<float32, D>>
            out.features[m], out.masks[m] = _pad(col, dim, cap, rows)
        if dtype is not None and out.features[m].dtype != dtype:
            out.features[m] = out.features[m].astype(dtype)
    return out


def stored_dtype(path, meta: dict, m: str) -> np.dtype:
    """The little-endian float dtype a modality's feature bytes hold (float32 when not recorded)."""
    name = meta["modalities"][m].get("dtype", "float32")
    if name not in FEATURE_DTYPES:
        raise DataError(path, f"{m}: stored dtype {name!r} is not one of {sorted(FEATURE_DTYPES)}")
    return np.dtype(FEATURE_DTYPES[name])


def _read_split(path, split, cols):
    """(table of the row groups holding `split`, positions of its rows in that table or None for all).

    Decoding the feature columns dominates read time, so only row groups that contain the
    split are decoded (`read_table(filters=...)` decodes every group whose statistics overlap),
    and rows are selected while padding instead of by a filter that copies the features.
    """
    # memory-mapped + pre-buffered: uncompressed feature pages are decoded straight from the page
    # cache (~2x faster than buffered reads here)
    pf = pq.ParquetFile(path, memory_map=True, pre_buffer=True)
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


def pad_sequences(column: pa.ChunkedArray, dim: int, cap: int | None = None, stored=_F4):
    """A feature column -> ([N, L, D] float32, [N, L] bool).

    Binary (format 2: raw float32 bytes, L = byte length / (4 * dim)) or
    list<fixed_size_list<float32>> (format 1).
    """
    if _is_binary(column.type):
        return _pad_binary(column, dim, cap, stored=np.dtype(stored))
    return _pad(column, dim, cap)


def _is_binary(t) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _binary_layout(arr, step: int):
    """One binary chunk -> (data as uint8, start byte of each row, byte length of each row (0 if null))."""
    _, offbuf, databuf = arr.buffers()
    n = len(arr)
    otype = np.int64 if pa.types.is_large_binary(arr.type) else np.int32
    if n == 0 or offbuf is None:
        return np.zeros(0, np.uint8), np.zeros(n, np.int64), np.zeros(n, np.int64)
    off = np.frombuffer(offbuf, otype, count=n + 1, offset=arr.offset * np.dtype(otype).itemsize).astype(np.int64)
    nbytes = np.diff(off)
    if arr.null_count:  # a null row may be backed by bytes: it has none
        nbytes = np.where(arr.is_valid().to_numpy(zero_copy_only=False), nbytes, 0)
    data = np.frombuffer(databuf, np.uint8) if databuf is not None else np.zeros(0, np.uint8)
    return data, off[:-1], nbytes


def _pad_binary(column, dim: int, cap: int | None = None, rows: np.ndarray | None = None, *, lens=None,
                path=None, record=None, name="feature", stored=_F4):
    """Pad the rows `rows` (default all, sorted) of a binary feature column.

    Each chunk's data buffer is viewed once as [steps, dim] float32 and gathered into the padded
    array with one `np.take` per chunk (no per-row Python loop, no intermediate copy). `lens`
    (the stored lengths of the selected rows) are checked against the byte lengths. The padded
    array has the stored dtype (`stored`: float32 or float16 bytes).
    """
    size = stored.itemsize
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    step = size * dim
    layouts = [_binary_layout(arr, step) for arr in chunks]
    chunk_of = np.concatenate([np.full(len(a), k) for k, a in enumerate(chunks)]) if chunks else np.zeros(0, int)
    start = np.concatenate([lay[1] for lay in layouts]) if layouts else np.zeros(0, np.int64)
    nbytes = np.concatenate([lay[2] for lay in layouts]) if layouts else np.zeros(0, np.int64)
    if rows is not None:
        chunk_of, start, nbytes = chunk_of[rows], start[rows], nbytes[rows]
    n = len(nbytes)
    where = path if path is not None else "<feature column>"
    rec = record if record is not None else (lambda i: f"row {i}")
    if lens is not None:
        bad = np.flatnonzero(nbytes != np.asarray(lens, np.int64) * step)  # a missing row must have length 0
        if bad.size:
            i = int(bad[0])
            raise DataError(where, f"{name}_feat holds {nbytes[i]} bytes but {name}_len is {lens[i]} "
                                   f"(expected {lens[i]} x {dim} x {size} = {int(lens[i]) * step}); rebuild the store",
                            record=rec(i))
    bad = np.flatnonzero(nbytes % step)
    if bad.size:
        i = int(bad[0])
        raise DataError(where, f"{name}_feat holds {nbytes[i]} bytes, not a multiple of {dim} x {size}", record=rec(i))
    full = nbytes // step
    take = full if cap is None else np.minimum(full, cap)
    width = max(int(take.max()) if n else 0, 1)
    mask = np.arange(width)[None, :] < take[:, None]
    if n and chunk_of[0] == chunk_of[-1] and (take == width).all():
        view = _contiguous_view(layouts[int(chunk_of[0])][0], start, width, step, dim, stored)
        if view is not None:
            return view, mask
    feats = np.empty((n, width, dim), dtype=stored.newbyteorder("="))
    # rows are sorted, so the rows of each chunk are one contiguous block of the output
    cuts = np.searchsorted(chunk_of, np.arange(len(chunks) + 1)) if n else np.zeros(len(chunks) + 1, int)
    for k, (data, _, _) in enumerate(layouts):
        a, b = int(cuts[k]), int(cuts[k + 1])
        if a == b:
            continue
        out = feats[a:b].reshape(-1, dim)
        used = take[a:b] > 0
        if not used.any():
            out[:] = 0
            continue
        base = int(start[a:b][used].min())
        rel = start[a:b] - base
        if (rel[used] % step).any() or base % size:
            # rows not on a common [steps, dim] grid (only from a foreign writer): copy row by row
            out[:] = 0
            for j in np.flatnonzero(used):
                s0 = int(start[a + j])
                feats[a + j, :take[a + j]] = np.frombuffer(data[s0:s0 + int(take[a + j]) * step], stored).reshape(-1, dim)
            continue
        end = int((rel[used] + take[a:b][used] * step).max())
        values = np.frombuffer(data, stored, count=end // size, offset=base).reshape(-1, dim)
        first = np.where(used, rel // step, 0)
        if (take[a:b] == width).all() and (np.diff(first) == width).all():
            out[:] = values[first[0]:first[0] + (b - a) * width]  # back to back, full width: one slice copy
            continue
        idx = first[:, None] + np.arange(width)[None, :]
        idx = np.where(mask[a:b], idx, 0)  # padding copies step 0, zeroed below
        np.take(values, idx.reshape(-1), axis=0, out=out, mode="clip")
    if n and not mask.all():
        feats[~mask] = 0
    return feats, mask


def _contiguous_view(data, start, width, step, dim, stored=_F4):
    """[n, width, dim] `stored` view of `data` when the rows are back to back, or None.

    The common case (MMSA-style aligned data: every row full width) then costs no copy: the
    array is a writable view of the Arrow buffer it was decoded into (kept alive by the view).
    Only when the rows fill at least half the buffer, so a small split does not pin a large one.
    """
    n = len(start)
    base = int(start[0])
    if base % stored.itemsize or not data.flags.writeable or (np.diff(start) != width * step).any():
        return None
    nbytes = n * width * step
    if 2 * nbytes < data.nbytes or base + nbytes > data.nbytes:
        return None
    return np.frombuffer(data, stored, count=nbytes // stored.itemsize, offset=base).reshape(n, width, dim)


def _pad(column, dim: int, cap: int | None = None, rows: np.ndarray | None = None):
    """Format version 1 (list<fixed_size_list<float32>>): pad the rows `rows` (default all) of a feature column; one copy of the data, no combine_chunks."""
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


def check(path, sink, *, label_range=None, check_media=True):
    """`grcf validate` of a feature store: columns, ids, labels, each modality's values vs its length and dim."""
    import pyarrow.compute as pc


    try:
        meta = read_meta(path)
    except DataError as e:
        sink.error(path, message_of(e))
        raise Abort from None
    except Exception as e:  # bad JSON in the metadata
        sink.error(path, f"unreadable grcf metadata ({type(e).__name__}: {e})")
        raise Abort from None
    try:
        table = pq.read_table(path)
    except Exception as e:
        sink.error(path, f"not a readable Parquet file ({type(e).__name__}: {e})")
        raise Abort from None
    names = set(table.column_names)
    miss = [c for c in ("id", "split", "label") if c not in names]
    if miss:
        sink.error(path, f"missing column(s) {miss}")
        raise Abort
    ids = [str(i) for i in table.column("id").to_pylist()]
    splits = table.column("split").to_pylist()
    check_splits(path, sink, set(splits), extra_is_error=True)
    by = defaultdict(list)
    for i, s in zip(ids, splits):
        by[s].append(i)
    check_ids(path, sink, by)
    lo, hi = label_bounds(label_range, meta.get("label_range"))
    labels = table.column("label").to_numpy(zero_copy_only=False).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(labels) | ((labels < lo) | (labels > hi) if lo is not None else False))
    for i in bad:
        check_label(path, sink, labels[i], lo, hi, record=ids[i], split=splits[i])
    if meta.get("task") == "classification":
        for i in np.flatnonzero(np.isfinite(labels) & (labels != 0) & (labels != 1)):
            sink.error(path, f"label {labels[i]:g} is not 0 or 1 (classification)", record=ids[i], split=splits[i],
                       field="label", check="label not binary")
    if "raw_text" in names:
        for i, t in enumerate(table.column("raw_text").to_pylist()):
            if t is not None and not t.strip():
                sink.warning(path, "empty text", record=ids[i], split=splits[i], field="raw_text", check="empty text")
    mods = meta.get("modalities", {})
    if not mods:
        sink.error(path, "the metadata lists no modality")
    for m, mm in mods.items():
        fc, lc = f"{m}_feat", f"{m}_len"
        if fc not in names:
            sink.error(path, f"metadata lists {m} but column {fc} is missing", field=fc)
            continue
        dim = mm.get("dim")
        ftype = table.schema.field(fc).type
        if pa.types.is_binary(ftype) or pa.types.is_large_binary(ftype):  # format version 2: raw float32 bytes
            stored = FEATURE_DTYPES.get(mm.get("dtype", "float32"))
            if stored is None:
                sink.error(path, f"stored dtype {mm.get('dtype')!r} of {m} is not one of {sorted(FEATURE_DTYPES)}",
                           field=fc)
                continue
            checked = _check_binary_feat(path, sink, table, m, dim, ids, splits, np.dtype(stored))
            if checked is None:
                continue
            valid, real = checked
        else:
            arr = table.column(fc).combine_chunks()
            if not pa.types.is_list(arr.type) and not pa.types.is_large_list(arr.type):
                sink.error(path, f"column type {arr.type}, expected binary (float32 bytes) or "
                                f"list<fixed_size_list<float>> (format version 1)", field=fc)
                continue
            inner = arr.type.value_type
            valid = arr.is_valid().to_numpy(zero_copy_only=False)
            real = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            steps = arr.flatten()
            if pa.types.is_fixed_size_list(inner):
                if dim is not None and inner.list_size != dim:
                    sink.error(path, f"feature dim {inner.list_size} differs from the metadata dim {dim}", field=fc)
                values = steps.flatten()
            else:  # variable inner lists: each step must have the same width
                widths = pc.list_value_length(steps).to_numpy(zero_copy_only=False)
                want = dim if dim is not None else (int(widths[0]) if widths.size else None)
                if widths.size and np.any(widths != want):
                    row_of_step = np.repeat(np.arange(len(arr)), real)
                    j = int(np.flatnonzero(widths != want)[0])
                    sink.error(path, f"feature dim {int(widths[j])} differs from {want}", record=ids[row_of_step[j]],
                               split=splits[row_of_step[j]], field=fc)
                values = steps.flatten()
            v = values.to_numpy(zero_copy_only=False)
            if v.size and np.issubdtype(v.dtype, np.floating):
                nonfin = ~np.isfinite(v)
                if nonfin.any():
                    width = max(1, v.size // max(1, int(real.sum())))
                    step_rows = np.repeat(np.arange(len(arr)), real)
                    rows = np.unique(step_rows[np.flatnonzero(nonfin) // width])
                    sink.error(path, f"{describe(*nonfinite_counts(v[nonfin]))} values in {rows.size} samples (first shown)",
                               record=ids[rows[0]], split=splits[rows[0]], field=fc)
            if lc in names:
                lens = table.column(lc).to_numpy(zero_copy_only=False)
                for i in np.flatnonzero(valid & (lens != real)):
                    sink.error(path, f"{lc} is {lens[i]} but the sequence has {real[i]} steps", record=ids[i],
                               split=splits[i], field=lc, check="length mismatch")
        if lc in names:
            lens = table.column(lc).to_numpy(zero_copy_only=False)
            for i in np.flatnonzero(~valid & (lens != 0)):
                sink.error(path, f"{lc} is {lens[i]} but the sequence is missing", record=ids[i], split=splits[i],
                           field=lc, check="length of missing")
        for i in np.flatnonzero(valid & (real == 0)):
            sink.warning(path, f"zero-length {m} sequence (store None for a missing modality)", record=ids[i],
                         split=splits[i], field=fc, check="zero length")
        sink.info[f"{m}_missing"] = int((~valid).sum())
    sink.info["rows"] = len(ids)


def _check_binary_feat(path, sink, table, m, dim, ids, splits, stored=_F4):
    """Format-2 `m_feat` (binary, [L, D] float32 or float16 bytes per row): byte lengths vs `m_len`
    and the metadata dim, NaN/inf values. Returns (valid rows, steps per row) or None when unusable."""
    size = stored.itemsize
    fc, lc = f"{m}_feat", f"{m}_len"
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        sink.error(path, f"the metadata gives no valid dim for {m} ({dim!r}); it is needed to read {fc}", field=fc)
        return None
    step = size * dim
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
                sink.error(path, f"{fc} holds {nbytes[i]} bytes, not {lc} x {dim} x {size} = {lens[i]} x {dim} x {size} = "
                                f"{want[i]}", record=ids[i], split=splits[i], field=fc, check="byte length")
            else:
                sink.error(path, f"{lc} is {lens[i]} but the sequence has {nbytes[i] // step} steps", record=ids[i],
                           split=splits[i], field=lc, check="length mismatch")
    else:
        sink.error(path, f"column {lc} is missing", field=lc)
        for i in np.flatnonzero(valid & (nbytes % step != 0)):
            sink.error(path, f"{fc} holds {nbytes[i]} bytes, not a multiple of {dim} x {size}", record=ids[i],
                       split=splits[i], field=fc, check="byte length")
    # NaN/inf: view each chunk's data as the stored dtype once, map bad values back to their rows
    bad_rows, bad_vals, row0 = [], [], 0
    for (data, start, nb), a in zip(layouts, chunks):
        if data.size >= size and nb.any():
            used = nb > 0
            end = int((start[used] + nb[used]).max())
            # rows normally start aligned; after a corrupt row they may not: one view per alignment
            for res in np.unique(start[used] % size):
                base = int(start[used & (start % size == res)].min())
                v = np.frombuffer(data, stored, count=(end - base) // size, offset=base)
                pos = np.flatnonzero(~np.isfinite(v))
                if pos.size:
                    byte = base + pos * size
                    r = np.maximum(np.searchsorted(start, byte, side="right") - 1, 0)
                    inside = (byte >= start[r]) & (byte + size <= start[r] + nb[r]) & (start[r] % size == res)
                    bad_rows.append(r[inside] + row0)
                    bad_vals.append(v[pos[inside]])
        row0 += len(a)
    if bad_rows and sum(r.size for r in bad_rows):
        rows = np.unique(np.concatenate(bad_rows))
        vals = np.concatenate(bad_vals)
        sink.error(path, f"{describe(*nonfinite_counts(vals))} values in {rows.size} samples (first shown)",
                   record=ids[rows[0]], split=splits[rows[0]], field=fc)
    real = np.where(valid, nbytes // step, 0)
    return valid, real
