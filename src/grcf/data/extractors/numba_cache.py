"""Numba's compiled-code cache, safe when many processes share one environment.

librosa compiles its numba functions with ``cache=True``; by default numba writes them into
librosa's ``__pycache__`` in site-packages, shared by every process of the environment.  Two
processes compiling at once can leave a function's ``.nbc`` and its gufunc wrapper's ``.nbc``
from different processes (numba issue 10128, librosa issue 1998); every later process then
crashes with SIGSEGV inside ``librosa.yin``.

So no process of ours ever reads or writes a shared numba cache:

- each process points ``NUMBA_CACHE_DIR`` at a *private* temporary directory before librosa is
  imported (``isolate``); numba then ignores site-packages' ``__pycache__`` entirely, so a
  corrupted cache left there by an older run cannot hurt us either;
- the private directory starts as a copy of a *snapshot*: a complete cache written by one
  process into its own private directory, copied aside and renamed into place in one atomic
  step (``publish``), never modified afterwards.  The first process to finish a feature
  extraction publishes it, so only the first run in an environment pays numba's compile time
  (~30 s); every later process copies ~3 MB.

Snapshots live under ``$GRCF_NUMBA_CACHE`` (default ``~/.cache/grcf/numba``), one folder per
Python / numba / librosa version and CPU architecture.  Deleting that folder is always safe.
"""

from __future__ import annotations

import atexit
import logging
import os
import platform
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

ENV_ROOT = "GRCF_NUMBA_CACHE"
_state = {"pid": None, "dir": None, "published": False}


def snapshot_root() -> Path:
    root = os.environ.get(ENV_ROOT)
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "grcf" / "numba"


def _snapshot_dir() -> Path:
    from importlib.metadata import PackageNotFoundError, version

    def v(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "none"

    key = f"py{sys.version_info[0]}{sys.version_info[1]}-numba{v('numba')}-librosa{v('librosa')}-{platform.machine()}"
    return snapshot_root() / key


def has_snapshot() -> bool:
    return _snapshot_dir().is_dir()


def isolate() -> Path:
    """Give this process its own numba cache directory (idempotent per process); returns it.

    Must run before librosa (whose jitted functions pick their cache location when defined) is
    imported; spawned workers call it again and get their own directory, even though they
    inherit the parent's ``NUMBA_CACHE_DIR``.
    """
    if _state["pid"] == os.getpid():
        return _state["dir"]
    if "librosa.core.pitch" in sys.modules:
        log.warning("librosa was imported before grcf isolated numba's cache; this process uses %s",
                    os.environ.get("NUMBA_CACHE_DIR") or "librosa's shared __pycache__")
    private = Path(tempfile.mkdtemp(prefix=f"grcf-numba-{os.getpid()}-"))
    snap = _snapshot_dir()
    if snap.is_dir():
        try:
            shutil.copytree(snap, private, dirs_exist_ok=True)
        except OSError as e:  # unreadable snapshot: compile instead
            log.warning("cannot copy numba cache snapshot %s (%s); compiling", snap, e)
    os.environ["NUMBA_CACHE_DIR"] = str(private)
    if "numba" in sys.modules:  # numba reads its config at import
        import numba.core.config

        numba.core.config.reload_config()
    _state.update(pid=os.getpid(), dir=private, published=snap.is_dir())
    atexit.register(shutil.rmtree, private, ignore_errors=True)
    return private


def publish() -> None:
    """After a successful extraction: make this process's cache the snapshot if there is none."""
    if _state["pid"] != os.getpid() or _state["published"]:
        return
    _state["published"] = True
    snap = _snapshot_dir()
    if snap.is_dir():
        return
    tmp = snap.parent / f".{snap.name}.{uuid.uuid4().hex}.tmp"
    try:
        snap.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(_state["dir"], tmp)
        os.rename(tmp, snap)  # atomic; fails if another process published first
    except OSError:
        pass  # lost the race, or read-only home: the next process compiles for itself
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
