"""The padded-tensor cache beside a feature store (a folder of .npy files): same arrays as the store,
rebuilt when the store changes or the cache is damaged, safe when several jobs build it at once,
and empty splits load as zero-length arrays."""

import logging
import os
import threading

import numpy as np
import pytest

from grcf.data.store import load_split, write_store
from grcf.data.tensor_cache import cache_path, load_split_cached
from support.stores import small_store


def _same(a, b):
    assert list(a.ids) == list(b.ids) and a.texts == b.texts
    assert np.array_equal(a.labels, b.labels) and a.labels.dtype == b.labels.dtype
    assert list(a.features) == list(b.features)
    for m in a.features:
        assert a.features[m].dtype == b.features[m].dtype and np.array_equal(a.features[m], b.features[m])
        assert np.array_equal(a.masks[m], b.masks[m])


CAP = {"text": 5, "audio": 400}


def test_cache_holds_the_same_arrays_and_is_used(tmp_path):
    store = small_store(tmp_path / "toy.parquet")
    direct = load_split(store, "train", max_len=CAP)
    first = load_split_cached(store, "train", max_len=CAP)  # builds the cache
    path = cache_path(store, "train", None, CAP)
    assert path.is_dir() and path.parent == store.parent
    assert sorted(p.name for p in path.iterdir()) == ["feat.audio.npy", "feat.text.npy", "key.json", "labels.npy",
                                                      "mask.audio.npy", "mask.text.npy"]
    assert np.array_equal(np.load(path / "feat.text.npy"), direct.features["text"])  # a standard format
    written = (path / "key.json").stat().st_mtime_ns
    again = load_split_cached(store, "train", max_len=CAP)  # maps it
    assert (path / "key.json").stat().st_mtime_ns == written  # read, not rebuilt
    _same(direct, first)
    _same(direct, again)
    assert again.features["text"].flags.writeable  # copy-on-write: torch.from_numpy takes it without a warning
    # other settings, another cache
    text_only = load_split_cached(store, "train", modalities=["text"], max_len=CAP)
    assert list(text_only.features) == ["text"] and cache_path(store, "train", ["text"], CAP).exists()


def test_cache_is_rebuilt_when_the_store_changes(tmp_path, caplog):
    store = small_store(tmp_path / "toy.parquet", seed=0)
    load_split_cached(store, "train", max_len=CAP)
    small_store(store, seed=1)  # rewritten in place (atomic rename, as the pipeline does)
    with caplog.at_level(logging.WARNING, logger="grcf.data.tensor_cache"):
        got = load_split_cached(store, "train", max_len=CAP)
    assert "stale" in caplog.text
    _same(got, load_split(store, "train", max_len=CAP))


@pytest.mark.parametrize("damage", ["flip_data_byte", "truncate", "garbage", "empty", "missing", "bad_key"])
def test_corrupted_cache_is_rebuilt_not_trusted(tmp_path, caplog, damage):
    store = small_store(tmp_path / "toy.parquet")
    want = load_split(store, "train", max_len=CAP)
    load_split_cached(store, "train", max_len=CAP)
    path = cache_path(store, "train", None, CAP)
    npy = path / "feat.audio.npy"
    raw = bytearray(npy.read_bytes())
    if damage == "flip_data_byte":
        raw[-100] ^= 0xFF  # inside the array's data: only its CRC-32 can tell
        npy.write_bytes(bytes(raw))
    elif damage == "truncate":
        npy.write_bytes(bytes(raw[: len(raw) // 2]))
    elif damage == "garbage":
        npy.write_bytes(os.urandom(len(raw)))
    elif damage == "empty":
        npy.write_bytes(b"")
    elif damage == "missing":
        npy.unlink()
    else:
        (path / "key.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="grcf.data.tensor_cache"):
        got = load_split_cached(store, "train", max_len=CAP)
    assert "corrupt" in caplog.text
    _same(got, want)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="grcf.data.tensor_cache"):
        _same(load_split_cached(store, "train", max_len=CAP), want)
    assert caplog.text == ""  # the rebuilt cache is whole again
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_a_file_in_place_of_the_folder_is_replaced(tmp_path, caplog):
    store = small_store(tmp_path / "toy.parquet")
    path = cache_path(store, "test", None, CAP)
    path.write_bytes(b"GRCFTC1\n an old single-file cache")
    with caplog.at_level(logging.WARNING, logger="grcf.data.tensor_cache"):
        got = load_split_cached(store, "test", max_len=CAP)
    assert "corrupt" in caplog.text and path.is_dir()
    _same(got, load_split(store, "test", max_len=CAP))


@pytest.mark.parametrize("only", ["train", "valid"])
def test_an_empty_split_is_cached_as_zero_length_arrays(tmp_path, only):
    rng = np.random.default_rng(0)
    store = tmp_path / "one_split.parquet"
    write_store(store, ids=[f"s{i}" for i in range(4)], splits=[only] * 4, labels=rng.uniform(-3, 3, 4),
                texts=[f"t{i}" for i in range(4)], modalities={"text": [rng.normal(size=(3, 6)).astype(np.float32)] * 4},
                meta={"dataset": "toy", "task": "regression", "label_range": [-3, 3]})
    for split in ("train", "valid", "test"):
        first = load_split_cached(store, split, max_len=CAP)
        again = load_split_cached(store, split, max_len=CAP)  # from the cache
        assert type(again).__name__ == "CachedSplit"
        n = 4 if split == only else 0
        assert len(first) == len(again) == n
        assert again.features["text"].shape[0] == again.masks["text"].shape[0] == again.labels.shape[0] == n
        _same(first, again)


def test_concurrent_builders_leave_one_whole_cache(tmp_path):
    store = small_store(tmp_path / "toy.parquet", n=60)
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
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []
    _same(load_split_cached(store, "valid", max_len=CAP), want)


def test_concurrent_processes_replacing_a_stale_cache_leave_one_whole_cache(tmp_path):
    import multiprocessing as mp

    store = small_store(tmp_path / "toy.parquet", n=60)
    load_split_cached(store, "valid", max_len=CAP)
    small_store(store, seed=3, n=60)  # every process finds the cache stale and replaces it
    with mp.get_context("fork").Pool(4) as pool:
        pool.starmap(load_split_cached, [(store, "valid", None, CAP)] * 8)
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []
    want = load_split(store, "valid", max_len=CAP)
    _same(load_split_cached(store, "valid", max_len=CAP), want)


def test_unwritable_cache_is_logged_and_the_split_still_loads(tmp_path, caplog, monkeypatch):
    store = small_store(tmp_path / "toy.parquet")

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("grcf.data.tensor_cache.tempfile.mkdtemp", full_disk)
    with caplog.at_level(logging.WARNING, logger="grcf.data.tensor_cache"):
        got = load_split_cached(store, "test", max_len=CAP)
    assert "could not write the tensor cache" in caplog.text and "No space left" in caplog.text
    _same(got, load_split(store, "test", max_len=CAP))
    assert not cache_path(store, "test", None, CAP).exists()
