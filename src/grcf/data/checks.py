"""Checks every source format shares, each reporting to a sink.

A sink has `error(file, message, *, record, split, field, check)`, `warning(...)` and an `info`
dict. `grcf validate` passes its collector (every problem, one line each); a builder passes
`Strict()`, which raises the first error as a DataError naming the file and the record. So each
format's parsing of keys, splits, ids and shapes is written once, in its datasets/<format>.py,
and the builder and the validator cannot drift apart.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict

import numpy as np

from grcf.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
ID_SEP = "$_$"  # MMSA's id convention (video_id$_$clip_id), so raw and pickle stores share ids


class Abort(Exception):
    """A fatal problem was recorded; nothing further can be checked."""


class Strict:
    """The builders' sink: the first error is raised; warnings go to the debug log (the builder
    logs what it does about them, e.g. values replaced)."""

    def __init__(self):
        self.info: dict = {}

    def error(self, file, message, *, record=None, split=None, field=None, check=None):
        # the record in brackets is the id, else the split (or fold) the problem is in
        where = [w for w in (f"split {split}" if record is not None and split else None, field) if w]
        raise DataError(file, f"{', '.join(where)}: {message}" if where else message,
                        record=record if record is not None else split)

    def warning(self, file, message, *, record=None, split=None, field=None, check=None):
        log.debug("%s [%s %s %s]: %s", file, split, record, field, message)


def message_of(e: DataError) -> str:
    """The message of a DataError without its `file [record]: ` prefix."""
    where = f"{e.file}" + (f" [{e.record}]" if e.record is not None else "")
    text = str(e)
    return text[len(where) + 2:] if text.startswith(where + ": ") else text


def load_pickle(path, sink, what="pickle"):
    from grcf.data.safe_pickle import safe_load

    try:
        return safe_load(path, encoding="latin1")  # latin1: release pickles made under Python 2 hold numpy bytes
    except DataError as e:
        sink.error(path, message_of(e))
        raise Abort from None
    except Exception as e:  # pragma: no cover - safe_load wraps everything, but never a traceback
        sink.error(path, f"cannot read {what} ({type(e).__name__}: {e})")
        raise Abort from None


def check_splits(file, sink, present, expected=SPLITS, *, field="split", extra_is_error=False):
    missing = [s for s in expected if s not in present]
    extra = sorted(str(s) for s in present if s not in expected)
    if missing:
        sink.error(file, f"missing split(s) {missing}; expected {list(expected)}", field=field)
    if extra:
        (sink.error if extra_is_error else sink.warning)(
            file, f"unexpected split(s) {extra}; expected {list(expected)}", field=field)


def check_ids(file, sink, ids_by_split: dict):
    """Duplicate ids within a split and ids listed in several splits (leakage)."""
    where = defaultdict(list)
    for split, ids in ids_by_split.items():
        counts = Counter(ids)
        for i, n in counts.items():
            if n > 1:
                sink.error(file, f"duplicate id ({n} rows)", record=i, split=split, field="id", check="duplicate id")
            where[i].append(split)
    for i, splits in where.items():
        if len(splits) > 1:
            sink.error(file, f"id in several splits: {', '.join(splits)}", record=i, split=splits[-1], field="id",
                       check="id in several splits")


def check_label(file, sink, value, lo, hi, *, record, split, field="label") -> float | None:
    """The label as a float, or None after reporting it (missing, not a number, NaN/inf, out of lo..hi)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        sink.error(file, "label missing", record=record, split=split, field=field, check="label missing")
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        sink.error(file, f"label {value!r} is not a number", record=record, split=split, field=field,
                   check="label not a number")
        return None
    if math.isnan(x):
        sink.error(file, "label is NaN", record=record, split=split, field=field, check="label NaN")
    elif math.isinf(x):
        sink.error(file, f"label is {x}", record=record, split=split, field=field, check="label inf")
    elif lo is not None and not lo <= x <= hi:
        sink.error(file, f"label {x:g} outside {lo:g}..{hi:g}", record=record, split=split, field=field,
                   check="label out of range")
    else:
        return x
    return None


def label_bounds(label_range, default):
    """(lo, hi) floats from an explicit range or the format's default; (None, None) checks no range."""
    r = label_range if label_range is not None else default
    if r is None:
        return None, None
    return float(r[0]), float(r[1])


def nonfinite_counts(a: np.ndarray):
    """(NaN, +inf, -inf) counts of a float array."""
    if not np.issubdtype(a.dtype, np.floating):
        return 0, 0, 0
    return int(np.isnan(a).sum()), int(np.isposinf(a).sum()), int(np.isneginf(a).sum())


def describe(nan, pinf, ninf):
    return ", ".join(f"{n} {w}" for n, w in ((nan, "NaN"), (pinf, "+inf"), (ninf, "-inf")) if n)
