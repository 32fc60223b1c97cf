"""`grcf validate`: check a dataset or feature store before any training, without building it.

Every problem is one line naming the file, the split, the record id and the field:

    ERROR label.csv [split=train id=vid$_$3 field=label]: label 4.2 outside -3..3

Errors are what would make a feature build fail or silently corrupt the data (bad labels,
duplicate or leaking ids, NaN features, undecodable clips); warnings are known quirks that the
builders handle (-inf in MMSA audio, NaN in the UR-FUNNY release features, clips without a face).
Rows of an MMSA raw folder without an MP4 are text-only by design: an info count, not a problem.

Each format's checks live beside its reader (`check` in datasets/<format>.py, and in store.py
for a feature store), sharing its parsing; this module collects their problems and prints them.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from grcf.data import datasets
from grcf.data.checks import Abort, message_of
from grcf.errors import DataError, GrcfError

MAX_PER_CHECK = 20  # per (file, split, field, check): more are folded into one "... and N more" line


@dataclass
class Problem:
    severity: str  # "error" | "warning"
    file: str
    record: str | None
    split: str | None
    field: str | None
    message: str

    def line(self) -> str:
        where = [f"{k}={v}" for k, v in (("split", self.split), ("id", self.record), ("field", self.field)) if v is not None]
        loc = f" [{' '.join(where)}]" if where else ""
        return f"{self.severity.upper()} {self.file}{loc}: {self.message}"


class Report(list):
    """A list of Problems plus `info` counts (text-only rows, clips checked, ...) and the kind."""

    def __init__(self, *args, kind=None, **kw):
        super().__init__(*args, **kw)
        self.kind = kind
        self.info: dict = {}

    @property
    def errors(self) -> int:
        return sum(p.severity == "error" for p in self)

    @property
    def warnings(self) -> int:
        return sum(p.severity == "warning" for p in self)


# the checks of one clip's media; with features.on_error: skip the builder keeps such a row
# text-only, so validate reports them as warnings instead of errors
CLIP_CHECKS = {"zero-byte", "undecodable", "no audio", "audio undecodable", "no video", "video undecodable"}


class _Collector:
    """The validator's sink (see grcf.data.checks): every problem into the report, repeats folded."""

    def __init__(self, report: Report, on_error: str = "fail"):
        self.on_error = on_error
        self.report = report
        self.info = report.info
        self._seen: Counter = Counter()
        self._folded: dict = {}

    def add(self, severity, file, message, *, record=None, split=None, field=None, check=None):
        if severity == "error" and self.on_error == "skip" and check in CLIP_CHECKS:
            severity, message = "warning", f"{message} (features.on_error: skip: the row is kept text-only)"
        key = (severity, str(file), split, field, check or message)
        self._seen[key] += 1
        if self._seen[key] > MAX_PER_CHECK:
            self._folded[key] = self._seen[key] - MAX_PER_CHECK
            return
        self.report.append(Problem(severity, str(file), None if record is None else str(record), split, field, message))

    def error(self, file, message, **kw):
        self.add("error", file, message, **kw)

    def warning(self, file, message, **kw):
        self.add("warning", file, message, **kw)

    def finish(self):
        for (severity, file, split, field, check), n in self._folded.items():
            self.report.append(Problem(severity, file, None, split, field, f"... and {n} more like: {check}"))
        self._folded.clear()


def guess_kind(path) -> str:
    path = Path(path)
    kind = datasets.sniff(path)
    if kind is not None:
        return kind
    if path.is_dir():
        raise DataError(path, f"cannot guess the dataset kind: a folder without {datasets.folder_markers()}; pass --kind")
    raise DataError(path, f"cannot guess the dataset kind from {path.name!r}; pass --kind ({', '.join(datasets.CHECKABLE)})")


def validate_path(path, kind=None, *, label_range=None, check_media=True, on_error="fail") -> Report:
    """Check one dataset source or feature store; returns its problems (a list, with `.info`).
    `on_error`: the features.on_error setting (skip: an unreadable clip is a warning)."""
    path = Path(path)
    report = Report()
    col = _Collector(report, on_error)
    if not path.exists():
        col.error(path, "not found")
        col.finish()
        return report
    try:
        kind = kind or guess_kind(path)
    except DataError as e:
        col.error(path, message_of(e))
        col.finish()
        return report
    if kind not in datasets.CHECKABLE:
        col.error(path, f"unknown kind {kind!r}; expected one of {', '.join(datasets.CHECKABLE)}")
        col.finish()
        return report
    report.kind = kind
    fmt = datasets.get(kind)
    if fmt.reads_marker and path.is_dir():
        path = path / fmt.marker
    try:
        fmt.check(path, col, label_range=label_range, check_media=check_media)
    except Abort:
        pass
    except DataError as e:
        col.error(e.file, message_of(e), record=e.record)
    except Exception as e:  # a check must never end in a traceback: report it as one line
        col.error(path, f"validation stopped unexpectedly ({type(e).__name__}: {e})")
    col.finish()
    return report


# ---------------------------------------------------------------- CLI


def _summary(report: Report, path) -> str:
    info = report.info
    extra = []
    if "text_only_rows" in info:
        extra.append(f"{info['rows']} rows, {info['clips_found']} with an MP4, {info['text_only_rows']} text-only (no MP4)")
        if info.get("media_checked"):
            extra.append(f"{info['media_checked']} clips decoded")
        elif info["clips_found"]:
            extra.append("media not checked (text-only dataset)")
        if info.get("no_face_clips"):
            extra.append(f"{info['no_face_clips']} without a face")
    elif "rows" in info:
        extra.append(f"{info['rows']} rows")
    elif "records" in info:
        extra.append(f"{info['records']} records")
    for k, v in info.items():
        if k.endswith("_missing") and v:
            extra.append(f"{v} rows without {k[:-8]}")
    tail = f" ({'; '.join(extra)})" if extra else ""
    return f"validate {path} [{report.kind}]: {report.errors} error(s), {report.warnings} warning(s){tail}"


def _resolve(args):
    """(path, kind, label_range, check_media, dataset name, source) from the CLI arguments."""
    path = getattr(args, "path", None)
    path = Path(path) if path not in (None, "") else None
    kind = getattr(args, "kind", None)
    dataset = getattr(args, "dataset", None)
    params_path = getattr(args, "params", None)
    label_range, check_media, source = None, True, None
    args.on_error = getattr(args, "on_error", None) or "fail"
    if dataset:
        from grcf.config import dataset_config, load_params

        params = load_params(params_path or "params.yaml")
        args.on_error = params.get("features", {}).get("on_error", "fail")
        ds = dataset_config(params, dataset)
        source = ds.get("source")
        if source == "embedded":
            return path, "embedded", None, False, dataset, source
        if path is None:
            if not ds.get("path"):
                raise GrcfError(f"dataset {dataset!r} has no `path` in {params_path or 'params.yaml'}")
            path = Path(ds["path"])
        kind = kind or (source if source in datasets.CHECKABLE else None)
        if ds.get("label_range") is not None:
            label_range = ds["label_range"]
        elif ds.get("task") == "classification":
            label_range = (0.0, 1.0)
        mods = ds.get("modalities")
        if mods is not None and not any(m in ("audio", "vision") for m in mods):
            check_media = False  # a text-only dataset never reads its clips
    if path is None:
        raise GrcfError("validate needs a path, or --dataset with a `path` in params.yaml")
    return path, kind, label_range, check_media, dataset, source


def main(args) -> int:
    path, kind, label_range, check_media, dataset, source = _resolve(args)
    if kind == "embedded":
        report = Report(kind="embedded")
        report.info["note"] = "embedded generator: nothing to check"
        shown = path or f"<{dataset}: embedded>"
    else:
        report = validate_path(path, kind, label_range=label_range, check_media=check_media, on_error=args.on_error)
        shown = path
    for p in report:
        print(p.line(), file=sys.stdout)
    print(_summary(report, shown))
    out = getattr(args, "out", None)
    if out:
        from grcf.atomic import write_json

        write_json(out, {
            "path": None if path is None else str(path), "kind": report.kind, "dataset": dataset, "source": source,
            "ok": report.errors == 0, "errors": report.errors, "warnings": report.warnings,
            "check_media": check_media, "info": report.info, "problems": [asdict(p) for p in report],
        })
    return 1 if report.errors else 0
