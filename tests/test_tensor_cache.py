"""The padded-tensor cache beside a feature store: same arrays as the store, rebuilt when the store
changes or the cache is damaged, safe when several jobs build it at once."""

import logging
import os
import threading

import numpy as np
import pytest

from grcf.data.store import load_split, write_store
from grcf.data.tensor_cache import cache_path, load_split_cached


def _store(path, seed=0, n=30):
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, 9, n)
    text = [rng.normal(size=(k, 6)).astype(np.float32) for k in lens]
    audio = [None if i % 4 == 0 else rng.normal(size=(int(rng.integers(1, 12)), 3)).astype(np.float32) for i in range(n)]
    write_store(path, ids=[f"s{i}" for i in range(n)], splits=(["train", "valid", "test"] * n)[:n],
                labels=rng.uniform(-3, 3, n), texts=[f"text {i}" if i % 5 else None for i in range(n)],
                modalities={"text": text, "audio": audio},
                meta={"dataset": "toy", "task": "regression", "label_range": [-3, 3]})
    return path


def _same(a, b):
    assert list(a.ids) == list(b.ids) and a.texts == b.texts
    assert np.array_equal(a.labels, b.labels) and a.labels.dtype == b.labels.dtype
    assert list(a.features) == list(b.features)
    for m in a.features:
        assert a.features[m].dtype == b.features[m].dtype and np.array_equal(a.features[m], b.features[m])
        assert np.array_equal(a.masks[m], b.masks[m])


CAP = {"text": 5, "audio": 400}


def test_cache_holds_the_same_arrays_and_is_used(tmp_path):
    store = _store(tmp_path / "toy.parquet")
    direct = load_split(store, "train", max_len=CAP)
    first = load_split_cached(store, "train", max_len=CAP)  # builds the cache
    path = cache_path(store, "train", None, CAP)
    assert path.exists() and path.parent == store.parent
    written = path.stat().st_mtime_ns
    again = load_split_cached(store, "train", max_len=CAP)  # maps it
    assert path.stat().st_mtime_ns == written  # read, not rebuilt
    _same(direct, first)
    _same(direct, again)
    assert again.features["text"].flags.writeable  # copy-on-write: torch.from_numpy takes it without a warning
    # other settings, another cache
    text_only = load_split_cached(store, "train", modalities=["text"], max_len=CAP)
    assert list(text_only.features) == ["text"] and cache_path(store, "train", ["text"], CAP).exists()


def test_cache_is_rebuilt_when_the_store_changes(tmp_path, caplog):
    store = _store(tmp_path / "toy.parquet", seed=0)
    load_split_cached(store, "train", max_len=CAP)
    _store(store, seed=1)  # rewritten in place (atomic rename, as the pipeline does)
    with caplog.at_level(logging.WARNING, logger="grcf.data.tensor_cache"):
        got = load_split_cached(store, "train", max_len=CAP)
    assert "stale" in caplog.text
    _same(got, load_split(store, "train", max_len=CAP))


@pytest.mark.parametrize("damage", ["flip_data_byte", "truncate", "garbage", "empty"])
def test_corrupted_cache_is_rebuilt_not_trusted(tmp_path, caplog, damage):
    store = _store(tmp_path / "toy.parquet")
    want = load_split(store, "train", max_len=CAP)
    load_split_cached(store, "train", max_len=CAP)
    path = cache_path(store, "train", None, CAP)
    raw = bytearray(path.read_bytes())
    if damage == "flip_data_byte":
        raw[-100] ^= 0xFF  # inside the last array's data: only its CRC-32 can tell
        path.write_bytes(bytes(raw))
    elif damage == "truncate":
        path.write_bytes(bytes(raw[: len(raw) // 2]))
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(raw)))
    else:
        path.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="grcf.data.tensor_cache"):
        got = load_split_cached(store, "train", max_len=CAP)
    assert "corrupt" in caplog.text
    _same(got, want)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="grcf.data.tensor_cache"):
        _same(load_split_cached(store, "train", max_len=CAP), want)
    assert caplog.text == ""  # the rebuilt cache is whole again


def test_concurrent_builders_leave_one_whole_cache(tmp_path):
    store = _store(tmp_path / "toy.parquet", n=60)
    want = load_split(store, "valid", max_len=CAP)
    results, errors = [], []

    def job():
        try:
            results.append(load_split_cached(store, "valid", max_len=CAP))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=job) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results:
        _same(r, want)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    _same(load_split_cached(store, "valid", max_len=CAP), want)


def test_unwritable_cache_is_logged_and_the_split_still_loads(tmp_path, caplog, monkeypatch):
    store = _store(tmp_path / "toy.parquet")

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("grcf.data.tensor_cache.tempfile.mkstemp", full_disk)
    with caplog.at_level(logging.WARNING, logger="grcf.data.tensor_cache"):
        got = load_split_cached(store, "test", max_len=CAP)
    assert "could not write the tensor cache" in caplog.text and "No space left" in caplog.text
    _same(got, load_split(store, "test", max_len=CAP))
    assert not cache_path(store, "test", None, CAP).exists()
