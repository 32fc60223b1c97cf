"""A padded-tensor cache per feature store and split, so a job maps a split instead of rebuilding it.

Every training and evaluation job reads its splits into padded arrays (`store.load_split`: Parquet
decode, then padding). The cache keeps that result in one uncompressed file beside the store,

    features/.<store stem>.<split>-<settings>.tensors

(`<settings>` hashes the modalities and `max_len` asked for), which a later job memory-maps
(copy-on-write: pages are shared with other jobs through the page cache, and nothing is written
back). Layout: 8 magic bytes, an 8-byte little-endian header length, a JSON header (the store's
identity, the split's ids and texts, each array's dtype, shape, offset and CRC-32), then the
arrays, each 64-byte aligned.

It is never trusted blindly: a cache is used only when its header names the same store (size,
mtime and a SHA-256 of the Parquet footer, which holds the schema, the grcf metadata and every
column chunk's offset, size and statistics) and the same settings, the file has the expected
length and every array matches its CRC-32. Anything else (a rewritten store, a truncated or
corrupted file, a foreign file) is logged and rebuilt from the store.

Concurrency: a miss builds the arrays from the store and writes them to a unique temp file that
is renamed over the cache (os.replace is atomic), so several jobs may build the same cache at
once; each reader sees a whole file, old or new. A cache that cannot be written (read-only
folder, full disk) is logged and the job goes on with the arrays it read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import struct
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grcf.errors import DataError

log = logging.getLogger(__name__)

MAGIC = b"GRCFTC1\n"
ALIGN = 64
FOOTER_BYTES = 1 << 16  # at most this much of the store's tail is hashed (its footer is there)
STALE_TMP_SECONDS = 3600


def cache_path(store, split: str, modalities, max_len) -> Path:
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
    """`store.load_split` through the cache; features and labels checked finite when first read."""
    store = Path(store)
    max_len = {m: v for m, v in (max_len or {}).items() if v is not None} or None
    mods = list(modalities) if modalities else None
    ident = store_identity(store)
    path = cache_path(store, split, mods, max_len)
    if use_cache:
        hit = _read(path, ident, split, mods, max_len)
        if hit is not None:
            ids, texts, arrays = hit
            return CachedSplit(ids=ids, labels=arrays.pop("labels"), texts=texts,
                         features={k[5:]: v for k, v in arrays.items() if k.startswith("feat:")},
                         masks={k[5:]: v for k, v in arrays.items() if k.startswith("mask:")})
    from grcf.data.store import load_split

    s = load_split(store, split, modalities=mods, max_len=max_len)
    check_split_finite(store, split, s)
    if use_cache:
        arrays = {"labels": s.labels, **{f"feat:{m}": x for m, x in s.features.items()},
                  **{f"mask:{m}": x for m, x in s.masks.items()}}
        header = {"store": ident, "split": split, "modalities": mods, "max_len": max_len,
                  "ids": [str(i) for i in s.ids], "texts": s.texts}
        _write(path, header, arrays)
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


# ---------------------------------------------------------------- the file


def _write(path: Path, header: dict, arrays: dict) -> None:
    entries, offset = {}, 0
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        entries[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset, "nbytes": a.nbytes,
                         "crc32": zlib.crc32(memoryview(a).cast("B")) if a.nbytes else 0}
        offset += -(-a.nbytes // ALIGN) * ALIGN
    header = json.dumps({**header, "arrays": entries, "data_bytes": offset}).encode()
    start = -(-(len(MAGIC) + 8 + len(header)) // ALIGN) * ALIGN
    tmp = None
    try:
        _remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + struct.pack("<Q", len(header)) + header)
            f.write(b"\0" * (start - f.tell()))
            for name, a in arrays.items():
                f.seek(start + entries[name]["offset"])
                f.write(memoryview(np.ascontiguousarray(a)).cast("B"))
            f.truncate(start + offset)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        log.warning("%s: could not write the tensor cache (%s); continuing without it", path, e)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _remove_stale_temps(path: Path) -> None:
    # temp files of a killed writer; a recent one may belong to a job writing right now
    now = time.time()
    for p in path.parent.glob(f"{path.name}.*.tmp"):
        try:
            if now - p.stat().st_mtime > STALE_TMP_SECONDS:
                p.unlink()
        except FileNotFoundError:
            pass


def _read(path: Path, ident: dict, split, mods, max_len):
    """(ids, texts, arrays) from a valid cache, or None (missing, stale or corrupt: logged)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None
    with f:
        why = None
        try:
            size = os.fstat(f.fileno()).st_size
            # ACCESS_COPY: writable arrays (torch.from_numpy needs that) whose writes stay private
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if size else b""
            if buf[:len(MAGIC)] != MAGIC:
                raise ValueError("not a grcf tensor cache")
            (n,) = struct.unpack("<Q", buf[len(MAGIC):len(MAGIC) + 8])
            header = json.loads(bytes(buf[len(MAGIC) + 8:len(MAGIC) + 8 + n]))
            start = -(-(len(MAGIC) + 8 + n) // ALIGN) * ALIGN
            if (header["store"], header["split"], header["modalities"], header["max_len"]) != (ident, split, mods, max_len):
                why = "stale (the store or the settings changed)"
            elif size != start + header["data_bytes"]:
                raise ValueError(f"{size} bytes, expected {start + header['data_bytes']}")
            else:
                arrays = {}
                for name, e in header["arrays"].items():
                    view = memoryview(buf)[start + e["offset"]:start + e["offset"] + e["nbytes"]]
                    if (zlib.crc32(view) if e["nbytes"] else 0) != e["crc32"]:
                        raise ValueError(f"array {name} fails its CRC-32")
                    arrays[name] = np.frombuffer(buf, dtype=np.dtype(e["dtype"]), count=int(np.prod(e["shape"])),
                                                 offset=start + e["offset"]).reshape(e["shape"])
                ids = np.asarray(header["ids"], dtype=object)
                return ids, header["texts"], arrays
        except (ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError) as e:
            why = f"corrupt ({e})"
        log.warning("%s: tensor cache %s; rebuilding it from the store", path, why)
        return None
