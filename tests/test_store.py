"""The Parquet feature store, format version 2 (binary float32 feature columns) and reading version 1."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from grcf.data import store
from grcf.errors import DataError
from grcf.data.store import FORMAT_VERSION, SPLITS, load_split, pad_sequences, read_meta, write_store
from grcf.data.validate import validate_path

META = {"dataset": "t", "task": "regression", "label_range": [-3, 3]}


def ragged(n, seed=0, dims=None):
    """ids, splits (interleaved), labels, texts, modalities with nulls and zero-length sequences."""
    dims = dims or {"text": 5, "audio": 3, "vision": 2}
    rng = np.random.default_rng(seed)
    ids = [f"s{i}" for i in range(n)]
    splits = [SPLITS[int(k)] for k in rng.integers(0, 3, n)]
    labels = rng.uniform(-3, 3, n)
    texts = [None if i % 7 == 0 else f"t{i}" for i in range(n)]
    mods = {}
    for j, (m, d) in enumerate(dims.items()):
        seqs = []
        for i in range(n):
            if (i + j) % 5 == 0:
                seqs.append(None)
            elif (i + j) % 11 == 0:
                seqs.append(np.zeros((0, d), np.float32))
            else:
                seqs.append(rng.standard_normal((int(rng.integers(1, 9)), d)).astype(np.float32))
        mods[m] = seqs
    return ids, splits, labels, texts, mods


def check_split(path, split, ids, splits, labels, texts, mods, max_len=None):
    sp = load_split(path, split, max_len=max_len)
    want = [i for i, s in enumerate(splits) if s == split]
    assert list(sp.ids) == [ids[i] for i in want]
    assert np.array_equal(sp.labels, np.asarray([labels[i] for i in want], np.float32))
    assert sp.texts == [texts[i] for i in want]
    for m, seqs in mods.items():
        feats, mask = sp.features[m], sp.masks[m]
        assert feats.dtype == np.float32 and mask.dtype == bool
        cap = (max_len or {}).get(m)
        lens = [0 if seqs[i] is None else len(seqs[i]) for i in want]
        takes = [min(n, cap) if cap is not None else n for n in lens]
        assert feats.shape == (len(want), max(max(takes, default=0), 1), seqs[0].shape[1] if seqs[0] is not None
                               else next(s for s in seqs if s is not None).shape[1])
        for row, i in enumerate(want):
            t = takes[row]
            assert mask[row].sum() == t and mask[row, :t].all()
            if t:
                assert np.array_equal(feats[row, :t], seqs[i][:t])
            assert not feats[row, t:].any()
    return sp


@pytest.mark.parametrize("max_len", [None, {"text": 3, "audio": 1}])
def test_round_trip_ragged_nulls_zero_length(tmp_path, max_len):
    data = ragged(60)
    ids, splits, labels, texts, mods = data
    p = write_store(tmp_path / "f.parquet", ids=ids, splits=splits, labels=labels, modalities=mods, meta=META,
                    texts=texts)
    for split in SPLITS:
        check_split(p, split, *data, max_len=max_len)
    # the on-disk layout: binary feature columns holding little-endian float32 bytes, int32 lengths
    t = pq.read_table(p)
    meta = read_meta(p)
    assert meta["format_version"] == FORMAT_VERSION == 2
    for m, seqs in mods.items():
        assert t.schema.field(f"{m}_feat").type == pa.large_binary()  # BYTE_ARRAY in Parquet
        assert t.schema.field(f"{m}_len").type == pa.int32()
        assert meta["modalities"][m]["dim"] == next(s for s in seqs if s is not None).shape[1]
        for s, b, n in zip(seqs, t.column(f"{m}_feat").to_pylist(), t.column(f"{m}_len").to_pylist()):
            if s is None:
                assert b is None and n == 0
            else:
                assert b == s.astype("<f4").tobytes() and n == len(s)  # zero length: b"" (not null)
    assert validate_path(p) and all(x.severity == "warning" for x in validate_path(p))  # only zero-length warnings


def test_many_row_groups_and_chunks_interleaved_splits(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "ROW_GROUP_SIZE", 16)
    data = ragged(150, seed=1)
    ids, splits, labels, texts, mods = data
    p = write_store(tmp_path / "f.parquet", ids=ids, splits=splits, labels=labels, modalities=mods, meta=META,
                    texts=texts)
    assert pq.ParquetFile(p).num_row_groups == 10
    for split in SPLITS:
        check_split(p, split, *data, max_len={"vision": 4})
    assert not [x for x in validate_path(p) if x.severity == "error"]


def test_full_width_rows_contiguous_fast_path(tmp_path):
    rng = np.random.default_rng(2)
    n = 20
    seqs = [rng.standard_normal((6, 4)).astype(np.float32) for _ in range(n)]
    splits = ["train"] * 8 + ["valid"] * 6 + ["test"] * 6
    p = write_store(tmp_path / "f.parquet", ids=[f"a{i}" for i in range(n)], splits=splits, labels=np.zeros(n),
                    modalities={"text": seqs}, meta=META)
    sp = load_split(p, "valid")
    assert sp.features["text"].shape == (6, 6, 4) and sp.masks["text"].all()
    assert np.array_equal(sp.features["text"], np.stack(seqs[8:14]))
    sp = load_split(p, "test", max_len={"text": 2})
    assert np.array_equal(sp.features["text"], np.stack(seqs[14:])[:, :2])
    # the whole file as one split: returned without a copy (a view of the decoded buffer), writable
    p2 = write_store(tmp_path / "g.parquet", ids=[f"a{i}" for i in range(n)], splits=["train"] * n, labels=np.zeros(n),
                     modalities={"text": seqs}, meta=META)
    a, b = load_split(p2, "train"), load_split(p2, "train")
    assert np.array_equal(a.features["text"], np.stack(seqs)) and a.features["text"].flags.writeable
    a.features["text"][:] = 0
    assert np.array_equal(b.features["text"], np.stack(seqs))


def test_split_without_modality_and_empty_split(tmp_path):
    n = 6
    p = write_store(tmp_path / "f.parquet", ids=[f"a{i}" for i in range(n)], splits=["train"] * 4 + ["valid"] * 2,
                    labels=np.zeros(n), meta=META,
                    modalities={"text": [np.ones((2, 3), np.float32)] * 4 + [None, None]})
    sp = load_split(p, "valid")
    assert sp.features["text"].shape == (2, 1, 3) and not sp.features["text"].any() and not sp.masks["text"].any()
    sp = load_split(p, "test")
    assert len(sp) == 0 and sp.features["text"].shape == (0, 1, 3)


def test_pad_sequences_binary_and_nested():
    seqs = [np.arange(6, dtype=np.float32).reshape(3, 2), None, np.zeros((0, 2), np.float32),
            np.ones((1, 2), np.float32)]
    col, _ = store._sequence_column("x", "text", seqs, 2, ["a", "b", "c", "d"])
    feats, mask = pad_sequences(col, 2)
    assert feats.shape == (4, 3, 2) and mask.sum(1).tolist() == [3, 0, 0, 1]
    assert np.array_equal(feats[0], seqs[0]) and np.array_equal(feats[3, 0], [1, 1]) and not feats[1:3].any()
    nested = _nested(seqs, 2)
    f1, m1 = pad_sequences(pa.chunked_array([nested]), 2, cap=2)
    f2, m2 = pad_sequences(col, 2, cap=2)
    assert np.array_equal(f1, f2) and np.array_equal(m1, m2)


def test_null_rows_backed_by_bytes_and_unaligned_rows():
    # a foreign writer may leave bytes under a null row (here 3, so later rows are not on the
    # [steps, dim] grid): the null row is missing, the others decode on the row-by-row path
    a, b = np.arange(4, dtype="<f4").reshape(2, 2), np.full((1, 2), 7, "<f4")
    data = a.tobytes() + b"xyz" + b.tobytes()
    offsets = np.array([0, 16, 19, 27], np.int32)
    bitmap = np.packbits([True, False, True], bitorder="little")
    arr = pa.Array.from_buffers(pa.binary(), 3, [pa.py_buffer(bitmap), pa.py_buffer(offsets), pa.py_buffer(data)],
                                null_count=1)
    feats, mask = pad_sequences(arr, 2)
    assert mask.sum(1).tolist() == [2, 0, 1]
    assert np.array_equal(feats[0], a) and not feats[1].any() and np.array_equal(feats[2, 0], b[0])
    assert not feats[2, 1].any()


# ---------------------------------------------------------------- version 1 (nested lists)


def _nested(seqs, dim):
    lens = np.array([0 if s is None else len(s) for s in seqs], np.int32)
    flat = np.concatenate([s.reshape(-1) for s in seqs if s is not None] or [np.zeros(0, np.float32)])
    inner = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lens)]).astype(np.int32))
    return pa.ListArray.from_arrays(offsets, inner, mask=pa.array([s is None for s in seqs]))


def write_v1(path, ids, splits, labels, texts, mods, row_group_size=4096):
    """The version-1 layout, written with pyarrow directly (as grcf < format 2 did)."""
    cols = {"id": pa.array(ids), "video_id": pa.array(ids), "clip_id": pa.array([""] * len(ids)),
            "split": pa.array(splits), "label": pa.array(labels, pa.float64()), "raw_text": pa.array(texts, pa.string())}
    mod_meta = {}
    for m, seqs in mods.items():
        dim = next(s for s in seqs if s is not None).shape[1]
        cols[f"{m}_feat"] = _nested(seqs, dim)
        cols[f"{m}_len"] = pa.array([0 if s is None else len(s) for s in seqs], pa.int32())
        mod_meta[m] = {"dim": dim}
    meta = {**META, "modalities": mod_meta, "format_version": 1}
    t = pa.table(cols).replace_schema_metadata({b"grcf": json.dumps(meta).encode()})
    pq.write_table(t, path, compression="lz4", row_group_size=row_group_size)
    return path


def test_version_1_file_still_loads(tmp_path):
    data = ragged(80, seed=3)
    p = write_v1(tmp_path / "v1.parquet", *data, row_group_size=25)
    assert read_meta(p)["format_version"] == 1
    for split in SPLITS:
        check_split(p, split, *data, max_len={"text": 4})
    # validate keeps its version-1 checks
    assert not [x for x in validate_path(p) if x.severity == "error"]
    # same arrays as a version-2 store of the same data
    p2 = write_store(tmp_path / "v2.parquet", ids=data[0], splits=data[1], labels=data[2], texts=data[3],
                     modalities=data[4], meta=META)
    for split in SPLITS:
        a, b = load_split(p, split), load_split(p2, split)
        for m in data[4]:
            assert np.array_equal(a.features[m], b.features[m]) and np.array_equal(a.masks[m], b.masks[m])


# ---------------------------------------------------------------- corrupt files


def _rewrite_feat(src, dst, m, row, fn):
    t = pq.read_table(src)
    vals = t.column(f"{m}_feat").to_pylist()
    vals[row] = fn(vals[row])
    t = t.set_column(t.column_names.index(f"{m}_feat"), f"{m}_feat", pa.array(vals, pa.binary()))
    pq.write_table(t.replace_schema_metadata(t.schema.metadata), dst)
    return dst


def _good(tmp_path):
    data = ragged(30, seed=4)
    ids, splits, labels, texts, mods = data
    p = write_store(tmp_path / "good.parquet", ids=ids, splits=splits, labels=labels, texts=texts, modalities=mods,
                    meta=META)
    row = next(i for i, s in enumerate(mods["text"]) if s is not None and len(s) >= 2)
    return p, data, row


def test_corrupt_byte_length_names_id(tmp_path):
    good, (ids, splits, *_), row = _good(tmp_path)
    p = _rewrite_feat(good, tmp_path / "bad.parquet", "text", row, lambda b: b[:-3])
    with pytest.raises(DataError) as e:
        load_split(p, splits[row])
    assert e.value.record == ids[row] and "text_feat" in str(e.value) and str(p) in str(e.value)
    other = next(s for s in SPLITS if s != splits[row] and s in splits)
    load_split(p, other)  # other splits still read
    errors = [x.line() for x in validate_path(p) if x.severity == "error"]
    assert len(errors) == 1 and f"[split={splits[row]} id={ids[row]} field=text_feat]" in errors[0]
    assert "bytes, not text_len x 5 x 4" in errors[0]


def test_whole_steps_but_wrong_length_names_id(tmp_path):
    good, (ids, splits, *_), row = _good(tmp_path)
    p = _rewrite_feat(good, tmp_path / "bad.parquet", "text", row, lambda b: b[:-20])  # one step (dim 5) short
    with pytest.raises(DataError, match="text_feat holds .* bytes but text_len is") as e:
        load_split(p, splits[row])
    assert e.value.record == ids[row]
    errors = [x.line() for x in validate_path(p) if x.severity == "error"]
    assert len(errors) == 1 and f"[split={splits[row]} id={ids[row]} field=text_len]" in errors[0]


def test_nan_in_bytes_reported_by_validate(tmp_path):
    good, (ids, splits, *_), row = _good(tmp_path)

    def poison(b):
        a = np.frombuffer(b, "<f4").copy()
        a[1], a[3] = np.nan, np.inf
        return a.tobytes()

    p = _rewrite_feat(good, tmp_path / "bad.parquet", "text", row, poison)
    errors = [x.line() for x in validate_path(p) if x.severity == "error"]
    assert len(errors) == 1 and f"[split={splits[row]} id={ids[row]} field=text_feat]" in errors[0]
    assert "values in 1 samples" in errors[0] and "NaN" in errors[0] and "inf" in errors[0]


def test_missing_dim_in_metadata(tmp_path):
    good, *_ = _good(tmp_path)
    t = pq.read_table(good)
    meta = json.loads(t.schema.metadata[b"grcf"])
    del meta["modalities"]["audio"]["dim"]
    p = tmp_path / "nodim.parquet"
    pq.write_table(t.replace_schema_metadata({b"grcf": json.dumps(meta).encode()}), p)
    errors = [x.line() for x in validate_path(p) if x.severity == "error"]
    assert len(errors) == 1 and "no valid dim for audio" in errors[0]


# ---------------------------------------------------------------- write checks (unchanged)


@pytest.mark.parametrize("case, msg", [
    ("nan", "text features contain NaN or inf"),
    ("dim", "text features have shape (2, 4), expected (L, 3)"),
    ("dup", "duplicate id"),
    ("label", "outside -3..3"),
])
def test_write_checks(tmp_path, case, msg):
    ids = ["a", "b", "c"]
    seqs = [np.ones((2, 3), np.float32) for _ in ids]
    labels = [0.0, 1.0, 2.0]
    if case == "nan":
        seqs[1] = seqs[1].copy()
        seqs[1][0, 0] = np.nan
    elif case == "dim":
        seqs[1] = np.ones((2, 4), np.float32)
    elif case == "dup":
        ids = ["a", "b", "a"]
    elif case == "label":
        labels[1] = 9.0
    p = tmp_path / "f.parquet"
    with pytest.raises(DataError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        write_store(p, ids=ids, splits=["train"] * 3, labels=labels, modalities={"text": seqs}, meta=META)
    assert not p.exists() and not list(tmp_path.iterdir())  # atomic: nothing left behind


# ---------------------------------------------------------------- streaming writes, float16


def test_generator_modalities_stream_one_row_group_at_a_time(tmp_path, monkeypatch):
    """A generator is consumed one row group at a time (bounded memory) and writes the same rows."""
    monkeypatch.setattr(store, "ROW_GROUP_SIZE", 16)
    data = ragged(100, seed=2)
    ids, splits, labels, texts, mods = data
    pulled = []

    def lazy(seqs, m):
        for i, s in enumerate(seqs):
            pulled.append((m, i))
            yield s

    class Spy(pq.ParquetWriter):  # how far the generators ran when each group was written
        def write_table(self, table, *a, **k):
            groups.append(len([p for p in pulled if p[0] == "text"]))
            return super().write_table(table, *a, **k)

    groups = []
    monkeypatch.setattr(store.pq, "ParquetWriter", Spy)
    p = write_store(tmp_path / "f.parquet", ids=ids, splits=splits, labels=labels, meta=META, texts=texts,
                    modalities={m: lazy(s, m) for m, s in mods.items()})
    assert groups == [16, 32, 48, 64, 80, 96, 100]  # never more than one group ahead
    for split in SPLITS:
        check_split(p, split, *data)


@pytest.mark.parametrize("n_rows, msg", [(5, "has 5 rows, ids have 6"), (7, "more rows than the 6 ids")])
def test_generator_with_wrong_row_count_fails_atomically(tmp_path, n_rows, msg):
    p = tmp_path / "f.parquet"
    with pytest.raises(DataError, match=msg):
        write_store(p, ids=[f"s{i}" for i in range(6)], splits=["train"] * 6, labels=[0.0] * 6, meta=META,
                    modalities={"text": (np.ones((2, 3), np.float32) for _ in range(n_rows))})
    assert not list(tmp_path.iterdir())


def test_float16_store_halves_bytes_and_reads_back(tmp_path):
    data = ragged(80, seed=3)
    ids, splits, labels, texts, mods = data
    kw = dict(ids=ids, splits=splits, labels=labels, modalities=mods, texts=texts)
    p32 = write_store(tmp_path / "f32.parquet", meta=META, **kw)
    p16 = write_store(tmp_path / "f16.parquet", meta={**META, "modalities": {m: {"dtype": "float16"} for m in mods}},
                      **kw)
    t32, t16 = pq.read_table(p32), pq.read_table(p16)
    for m in mods:
        size = {k: sum(len(b) for b in t.column(f"{m}_feat").to_pylist() if b) for k, t in (("16", t16), ("32", t32))}
        assert 2 * size["16"] == size["32"] > 0
        assert read_meta(p16)["modalities"][m]["dtype"] == "float16"
    rounded = {m: [None if s is None else s.astype(np.float16).astype(np.float32) for s in seqs]
               for m, seqs in mods.items()}
    for split in SPLITS:
        check_split(p16, split, ids, splits, labels, texts, rounded, max_len={"text": 3})  # float32 by default
        kept = load_split(p16, split, dtype=None)  # the stored precision (the tensor cache's choice)
        ref = load_split(p16, split)
        for m in mods:
            assert kept.features[m].dtype == np.float16
            assert np.array_equal(kept.features[m].astype(np.float32), ref.features[m])
    assert not [x for x in validate_path(p16) if x.severity == "error"]


def test_float16_out_of_range_and_bad_bytes(tmp_path):
    meta16 = {**META, "modalities": {"text": {"dtype": "float16"}}}
    big = [np.full((2, 3), 1e5, np.float32)]
    with pytest.raises(DataError, match="exceed the range of float16"):
        write_store(tmp_path / "f.parquet", ids=["a"], splits=["train"], labels=[0.0], meta=meta16,
                    modalities={"text": big})
    with pytest.raises(DataError, match="stored dtype 'int8'"):
        write_store(tmp_path / "f.parquet", ids=["a"], splits=["train"], labels=[0.0],
                    meta={**META, "modalities": {"text": {"dtype": "int8"}}}, modalities={"text": [np.ones((2, 3))]})
    # validate reads float16 bytes: a NaN is found and named, lengths are counted in 2-byte steps
    p = write_store(tmp_path / "g.parquet", ids=["a", "b", "c"], splits=["train", "test", "valid"],
                    labels=[0.0, 1.0, 2.0], meta=meta16, modalities={"text": [np.ones((k, 3), np.float32) for k in (2, 4, 1)]})
    t = pq.read_table(p)
    raw = bytearray(t.column("text_feat")[1].as_py())
    raw[0:2] = np.array([np.nan], np.float16).tobytes()
    col = pa.array([t.column("text_feat")[0].as_py(), bytes(raw), t.column("text_feat")[2].as_py()], pa.large_binary())
    pq.write_table(t.set_column(t.schema.get_field_index("text_feat"), "text_feat", col), p)
    errors = [x for x in validate_path(p) if x.severity == "error"]
    assert len(errors) == 1 and "NaN" in errors[0].message and errors[0].record == "b", errors
