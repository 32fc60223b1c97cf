"""A padded-tensor cache per feature store and split, so a job maps a split instead of rebuilding it.

Every training and evaluation job reads its splits into padded arrays (`store.load_split`: Parquet
decode, then padding). The cache keeps that result as plain `.npy` files in a folder beside the
store,

    features/.<store stem>.<split>-<settings>.tensors/
        key.json          the store's identity, the settings, ids, texts, and per array its file,
                          dtype, shape and CRC-32
        labels.npy  feat.<m>.npy  mask.<m>.npy

(`<settings>` hashes the modalities and `max_len` asked for). A later job opens each array with
`np.load(mmap_mode="c")`: pages come from the page cache (shared with other jobs), and the arrays
are copy-on-write, so torch.from_numpy takes them and nothing is ever written back.

It is never trusted blindly: a cache is used only when key.json names the same store (size, mtime
and a SHA-256 of the Parquet footer, which holds the schema, the grcf metadata and every column
chunk's offset, size and statistics) and the same settings, and every array file loads with the
recorded dtype and shape and matches its CRC-32. Anything else (a rewritten store, a truncated,
corrupted or missing file, a foreign folder) is logged and rebuilt from the store.

Concurrency: a miss builds the arrays from the store into a unique temp folder, which is renamed
into place (a rename is atomic). A stale folder is first renamed aside, then deleted; when another
job has put a valid cache in place meanwhile, ours is simply dropped. Each reader sees one whole
folder. A cache that cannot be written (read-only folder, full disk) is logged and the job goes on
with the arrays it read. Empty splits are cached like any other (zero-length arrays).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grcf.errors import DataError

log = logging.getLogger(__name__)

KEY_FILE = "key.json"
FORMAT = "grcf-tensor-cache/npy-1"
FOOTER_BYTES = 1 << 16  # at most this much of the store's tail is hashed (its footer is there)
STALE_TMP_SECONDS = 3600


def cache_path(store, split: str, modalities, max_len) -> Path:
    """The cache folder of one store, split and settings."""
    store = Path(store)
    settings = json.dumps({"modalities": modalities, "max_len": max_len}, sort_keys=True)
    tag = hashlib.sha256(settings.encode()).hexdigest()[:12]
    return store.with_name(f".{store.stem}.{split}-{tag}.tensors")


def store_identity(store) -> dict:
    """What identifies one version of the store file, cheaply: size, mtime and the footer's hash."""
    store = Path(store)
    try:
        st = store.stat()
        with open(store, "rb") as f:
            f.seek(max(st.st_size - FOOTER_BYTES, 0))
            tail = f.read()
    except FileNotFoundError:
        raise DataError(store, "feature store not found") from None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "footer_sha256": hashlib.sha256(tail).hexdigest()}


@dataclass
class CachedSplit:
    """store.Split's fields, read from the cache (store.py, and so pyarrow, is imported only on a miss)."""

    ids: np.ndarray
    labels: np.ndarray
    features: dict = field(default_factory=dict)
    masks: dict = field(default_factory=dict)
    texts: list | None = None

    def __len__(self) -> int:
        return len(self.ids)


def load_split_cached(store, split: str, modalities=None, max_len: dict | None = None, *, use_cache: bool = True):
    """`store.load_split` through the cache; features and labels checked finite when first read.

    An empty split loads (and is cached) as zero-length arrays; callers that need rows refuse it."""
    store = Path(store)
    max_len = {m: v for m, v in (max_len or {}).items() if v is not None} or None
    mods = list(modalities) if modalities else None
    ident = store_identity(store)
    path = cache_path(store, split, mods, max_len)
    key = {"format": FORMAT, "store": ident, "split": split, "modalities": mods, "max_len": max_len}
    seen = _inode(path)  # the folder found bad here is replaced; one another job puts in place is kept
    if use_cache:
        hit = _read(path, key)
        if hit is not None:
            return hit
    from grcf.data.store import load_split

    # the stored precision is kept: a float16 store's padded arrays take half the memory; the
    # training code casts each batch to float32 (train.Tensors.take)
    s = load_split(store, split, modalities=mods, max_len=max_len, dtype=None)
    check_split_finite(store, split, s)
    if use_cache:
        arrays = {"labels": s.labels, **{f"feat.{m}": x for m, x in s.features.items()},
                  **{f"mask.{m}": x for m, x in s.masks.items()}}
        _write(path, {**key, "ids": [str(i) for i in s.ids], "texts": s.texts}, arrays, seen)
    return s


def check_split_finite(store, split: str, s) -> None:
    """The training step does not check its inputs (no host sync), so they are checked here, once."""
    bad = np.flatnonzero(~np.isfinite(s.labels))
    if bad.size:
        raise DataError(store, f"split {split}: label is NaN or inf", record=s.ids[bad[0]])
    for m, x in s.features.items():
        rows = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1)) if x.size else []
        if len(rows):
            raise DataError(store, f"split {split}: {m} features contain NaN or inf", record=s.ids[rows[0]])


# ---------------------------------------------------------------- the folder


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B")) if a.nbytes else 0


def _inode(path: Path):
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _write(path: Path, key: dict, arrays: dict, seen=None) -> None:
    tmp = None
    try:
        _remove_stale_temps(path)
        tmp = Path(tempfile.mkdtemp(prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
        entries = {}
        for name, a in arrays.items():
            a = np.ascontiguousarray(a)
            np.save(tmp / f"{name}.npy", a, allow_pickle=False)
            entries[name] = {"file": f"{name}.npy", "dtype": a.dtype.str, "shape": list(a.shape), "crc32": _crc(a)}
        (tmp / KEY_FILE).write_text(json.dumps({**key, "arrays": entries}))
        os.chmod(tmp, 0o755)
        _move_into_place(tmp, path, seen)
        tmp = None
    except OSError as e:
        log.warning("%s: could not write the tensor cache (%s); continuing without it", path, e)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(tmp: Path, path: Path, seen) -> None:
    """Rename the built folder onto `path`. The folder found there before (`seen`: its inode, stale or
    damaged) is renamed aside first; one another job has put in place since, for the same store and
    settings, is kept and ours dropped."""
    last = None
    for _ in range(3):
        try:
            os.rename(tmp, path)
            return
        except OSError as e:
            if not path.exists():
                raise
            if _inode(path) != seen and _same_key(path, tmp):
                shutil.rmtree(tmp, ignore_errors=True)  # an equal cache was put in place meanwhile
                return
            aside = Path(f"{tmp}.old")
            try:
                os.rename(path, aside)
            except FileNotFoundError:
                continue  # another job moved it aside; try again
            shutil.rmtree(aside, ignore_errors=True)
            last = e
    raise last  # the folder kept being replaced under us


def _same_key(path: Path, ours: Path) -> bool:
    try:
        a = json.loads((path / KEY_FILE).read_text())
        b = json.loads((ours / KEY_FILE).read_text())
    except (OSError, ValueError):
        return False
    return {k: a.get(k) for k in b} == b


def _remove_stale_temps(path: Path) -> None:
    # folders of a killed writer; a recent one may belong to a job writing right now
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for p in path.parent.glob(f"{path.name}.*.tmp*"):
        try:
            if now - p.stat().st_mtime > STALE_TMP_SECONDS:
                shutil.rmtree(p, ignore_errors=True)
        except FileNotFoundError:
            pass


def _read(path: Path, key: dict) -> CachedSplit | None:
    """The split from a valid cache folder, or None (missing, stale or corrupt: logged)."""
    if not path.exists():
        return None
    why = None
    try:
        if not path.is_dir():
            raise ValueError("not a cache folder")
        header = json.loads((path / KEY_FILE).read_text())
        if {k: header.get(k) for k in key} != key:
            why = "stale (the store or the settings changed)"
        else:
            arrays = {}
            for name, e in header["arrays"].items():
                # copy-on-write: writable arrays (torch.from_numpy needs that) whose writes stay private
                a = np.load(path / e["file"], mmap_mode="c", allow_pickle=False)
                if a.dtype.str != e["dtype"] or list(a.shape) != e["shape"]:
                    raise ValueError(f"{e['file']} holds {a.dtype.str}{list(a.shape)}, expected {e['dtype']}{e['shape']}")
                a = np.asarray(a)
                if _crc(a) != e["crc32"]:
                    raise ValueError(f"{e['file']} fails its CRC-32")
                arrays[name] = a
            n = len(header["ids"])
            if len(arrays["labels"]) != n:
                raise ValueError(f"{n} ids but {len(arrays['labels'])} labels")
            return CachedSplit(ids=np.asarray(header["ids"], dtype=object), labels=arrays.pop("labels"),
                               texts=header["texts"],
                               features={k[5:]: v for k, v in arrays.items() if k.startswith("feat.")},
                               masks={k[5:]: v for k, v in arrays.items() if k.startswith("mask.")})
    except FileNotFoundError as e:  # a file missing, or the folder replaced while we read it
        why = f"corrupt (missing {Path(e.filename or '?').name})"
    except (ValueError, KeyError, TypeError, OSError, EOFError) as e:  # np.load raises EOFError on an empty file
        why = f"corrupt ({type(e).__name__}: {e})" if isinstance(e, EOFError) else f"corrupt ({e})"
    log.warning("%s: tensor cache %s; rebuilding it from the store", path, why)
    return None
