"""UR-FUNNY v2 (humor detection) from its public release pickles into a grcf feature store.

Inputs in `src_dir`: language_sdk.pkl, humor_label_sdk.pkl, data_folds.pkl (required) and
covarep_features_sdk.pkl (audio), openface_features_sdk.pkl (vision) (optional).
Text is re-encoded from the raw sentences; audio/vision are the released word-aligned features.
The release is parsed once (folds, labels, texts, features) for both the builder and `grcf
validate` (`check`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from grcf.data.checks import Abort, Strict, check_ids, check_label, check_splits, label_bounds, load_pickle
from grcf.errors import DataError
from grcf.data.extractors import producer
from grcf.data.store import write_store
from grcf.data.datasets.text_order import UTTERANCE_FIRST, join_text, text_order

log = logging.getLogger(__name__)

LANGUAGE = "language_sdk.pkl"
LABELS = "humor_label_sdk.pkl"
FOLDS = "data_folds.pkl"
FEATURE_FILES = {"audio": "covarep_features_sdk.pkl", "vision": "openface_features_sdk.pkl"}
FOLD_SPLITS = {"train": "train", "dev": "valid", "test": "test"}
PRODUCER = "grcf.datasets.urfunny"


def build(src_dir, out, options: dict | None = None, text_encoder=None) -> Path:
    """Write the UR-FUNNY feature store to `out`; returns `out`.

    options: use_context (default True), text_order (utterance_first: the punchline first, so
    truncation cuts context, not the punchline; or context_first), context_features (audio/vision
    include the context sentences' features; default = use_context), text {model, max_length, batch_size, device},
    modalities (default: text + audio/vision whose pickles exist), dataset (name), progress.
    """
    options = dict(options or {})
    src_dir, out = Path(src_dir), Path(out)
    use_context = bool(options.get("use_context", True))
    order = text_order(options, src_dir)
    context_features = bool(options.get("context_features", use_context))
    modalities = _modalities(src_dir, options.get("modalities"))

    sink = Strict()
    loaded = _load_release(src_dir, sink)
    keys_split = read_folds(src_dir / FOLDS, sink, loaded[FOLDS])
    if not keys_split:
        raise DataError(src_dir / FOLDS, "all folds are empty")
    humor = _as_dict(loaded[LABELS], src_dir / LABELS, sink)
    language = _as_dict(loaded[LANGUAGE], src_dir / LANGUAGE, sink)
    keys = [k for k, _ in keys_split]
    splits = [split for _, split in keys_split]
    ids = [str(k) for k in keys]
    labels = [humor_label(src_dir / LABELS, sink, humor, k, split, 0.0, 1.0) for k, split in keys_split]
    texts = [text_of(src_dir / LANGUAGE, sink, language.get(k), k, split, use_context, order) for k, split in keys_split]

    columns: dict[str, list] = {}
    meta_mods: dict[str, dict] = {}
    if "text" in modalities:
        text_opts = {"device": options.get("device", "cpu"), **(options.get("text") or {})}
        model = text_opts.get("model", "default")
        if text_encoder is None:
            from grcf.data.extractors.text import encode_texts as text_encoder
        columns["text"] = _encode(text_encoder, texts, text_opts, options.get("progress", True), src_dir / LANGUAGE)
        meta_mods["text"] = {"producer": producer("text", {"model": model}), "max_length": int(text_opts.get("max_length", 64))}
    for m in ("audio", "vision"):
        if m in modalities:
            path = src_dir / FEATURE_FILES[m]
            feats = _as_dict(load_pickle(path, sink), path, sink)
            columns[m], bad_values, bad_samples, missing = read_features(path, sink, feats, keys_split, m,
                                                                         context_features)
            if bad_values:
                log.warning("urfunny: %s: replaced %d NaN/inf values by 0 in %d samples", path.name, bad_values,
                            bad_samples)
            if missing:
                log.warning("urfunny: %s: %d ids have no %s features (stored as missing)", path.name, missing, m)
            meta_mods[m] = {"producer": f"urfunny-release:{FEATURE_FILES[m]}"}

    meta = {
        "dataset": options.get("dataset", "urfunny"),
        "producer": PRODUCER,
        "task": "classification",
        "label_range": [0, 1],
        "modalities": meta_mods,
        "source": {"dir": str(src_dir), "use_context": use_context, "text_order": order,
                   "context_features": context_features},
    }
    write_store(out, ids=ids, splits=splits, labels=labels, modalities=columns, meta=meta,
                video_ids=ids, clip_ids=ids, texts=texts)
    counts = {s: splits.count(s) for s in ("train", "valid", "test")}
    log.info("urfunny: wrote %s (%s; modalities %s)", out, counts, list(columns))
    return out


def _modalities(src_dir: Path, requested) -> list[str]:
    if requested is None:
        return ["text"] + [m for m, f in FEATURE_FILES.items() if (src_dir / f).exists()]
    requested = list(requested)
    for m in requested:
        if m not in ("text", *FEATURE_FILES):
            raise DataError(src_dir, f"unknown modality {m!r}; expected text, audio, vision")
        if m in FEATURE_FILES and not (src_dir / FEATURE_FILES[m]).exists():
            raise DataError(src_dir / FEATURE_FILES[m], f"modality {m} requested but its feature file is missing")
    if not requested:
        raise DataError(src_dir, "no modalities requested")
    return requested


def check(root, sink, *, label_range=None, check_media=True):
    """`grcf validate` of a UR-FUNNY release folder: every problem reported to `sink`."""
    loaded = _load_release(root, sink)
    keys_split = read_folds(root / FOLDS, sink, loaded[FOLDS]) if FOLDS in loaded else []
    lo, hi = label_bounds(label_range, (0.0, 1.0))
    humor, language = (_as_dict(loaded[n], root / n, sink) if n in loaded else None for n in (LABELS, LANGUAGE))
    for k, split in keys_split:
        if humor is not None:
            humor_label(root / LABELS, sink, humor, k, split, lo, hi)
        if language is not None:
            text_of(root / LANGUAGE, sink, language.get(k), k, split)
    for m, name in FEATURE_FILES.items():
        p = root / name
        if not p.exists():
            continue
        try:
            feats = _as_dict(load_pickle(p, sink), p, sink)
        except Abort:
            continue
        if feats is not None:
            read_features(p, sink, feats, keys_split, m)


def _load_release(root: Path, sink) -> dict:
    """The required pickles by name (each one missing or unreadable is reported and left out)."""
    loaded = {}
    for name in (LANGUAGE, LABELS, FOLDS):
        p = root / name
        if not p.exists():
            sink.error(p, "required UR-FUNNY file not found")
            continue
        try:
            loaded[name] = load_pickle(p, sink)
        except Abort:
            continue
    return loaded


def _as_dict(obj, path, sink) -> dict | None:
    if not isinstance(obj, dict):
        sink.error(path, f"expected a dict keyed by id, got {type(obj).__name__}")
        return None
    return obj


def read_folds(path: Path, sink, folds) -> list[tuple]:
    """(id, split) for every id of data_folds.pkl, in fold order; splits and ids checked."""
    if not isinstance(folds, dict):
        sink.error(path, f"expected a dict with train/dev/test, got {type(folds).__name__}")
        return []
    check_splits(path, sink, list(folds), expected=tuple(FOLD_SPLITS))
    ids_by_split, keys_split = {}, []
    for fold, split in FOLD_SPLITS.items():
        if fold not in folds:
            continue
        keys = [_plain(k) for k in list(folds[fold])]
        ids_by_split[split] = [str(k) for k in keys]
        keys_split += [(k, split) for k in keys]
    check_ids(path, sink, ids_by_split)
    return keys_split


def _plain(k):
    # numpy integers from the folds must match the pickles' int keys and stringify cleanly
    return k.item() if isinstance(k, np.generic) else k


def humor_label(path, sink, humor: dict, k, split, lo, hi) -> float | None:
    if k not in humor:
        sink.error(path, "id listed in data_folds.pkl has no label", record=k, split=split, field="label", check="no label")
        return None
    v = humor[k]
    x = float(np.asarray(v).reshape(-1)[0]) if np.size(v) == 1 and _numeric(v) else v
    y = check_label(path, sink, x, lo, hi, record=k, split=split)
    if y is not None and y not in (0.0, 1.0):
        sink.error(path, f"humor label must be 0 or 1, got {x!r}", record=k, split=split, field="label",
                   check="label not binary")
        return None
    return y


def _numeric(v):
    try:
        float(np.asarray(v).reshape(-1)[0])
        return True
    except (TypeError, ValueError):
        return False


def _fix_text(s: str) -> str:
    # a Python 2 pickle read as latin1 leaves UTF-8 mojibake; undo it when that round-trips
    try:
        return s.encode("latin1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s


def text_of(path, sink, entry, k, split, use_context=True, order: str = UTTERANCE_FIRST) -> str | None:
    """The text of one id (punchline and, when use_context, context sentences in `order`), or None."""
    kw = dict(record=k, split=split)
    if not isinstance(entry, dict):
        sink.error(path, "id listed in data_folds.pkl has no language entry", field="text", check="no text", **kw)
        return None
    punch = entry.get("punchline_sentence")
    if not isinstance(punch, str):
        sink.error(path, "missing or non-string punchline_sentence", field="punchline_sentence", check="punch", **kw)
        return None
    ctx = entry.get("context_sentences", []) if use_context else []
    if not isinstance(ctx, (list, tuple)) or not all(isinstance(c, str) for c in ctx):
        sink.error(path, "context_sentences must be a list of strings", field="context_sentences", check="ctx", **kw)
        ctx = []
    if not punch.strip() and not any(c.strip() for c in ctx):
        sink.error(path, "empty text (no punchline or context words)", field="punchline_sentence", check="empty text",
                   **kw)
        return None
    if not punch.strip():
        sink.warning(path, "empty punchline_sentence", field="punchline_sentence", check="empty punch", **kw)
    return _fix_text(join_text(punch.strip(), [c.strip() for c in ctx], order).strip())


def _encode(encoder, texts, text_opts, progress, source) -> list[np.ndarray]:
    out = encoder(
        texts,
        model=text_opts.get("model", "default"),
        max_length=int(text_opts.get("max_length", 64)),
        batch_size=int(text_opts.get("batch_size", 64)),
        device=text_opts.get("device", "cpu"),
        progress=progress,
    )
    if len(out) != len(texts):
        raise DataError(source, f"text encoder returned {len(out)} arrays for {len(texts)} texts")
    return out


def read_features(path: Path, sink, feats: dict, keys_split: list, m: str, use_context=True):
    """Per id: punchline features, with context features first when use_context; NaN/inf -> 0.
    Returns (arrays, NaN/inf values replaced, samples with them, ids without features)."""
    out, dim, dim_from = [], None, None
    missing = bad_vals = bad_rows = 0
    first_bad = None
    for k, split in keys_split:
        entry = feats.get(k)
        if entry is None:
            missing += 1
            out.append(None)
            continue
        if not isinstance(entry, dict) or "punchline_features" not in entry:
            sink.error(path, "entry lacks punchline_features", record=k, split=split, field=m, check="no punch feats")
            out.append(None)
            continue
        pieces = [("punchline_features", entry["punchline_features"])]
        if use_context:
            pieces += [("context_features", c) for c in (entry.get("context_features") or [])]
        arrays, row_bad = [], 0
        for fname, piece in pieces:
            try:
                a = np.asarray(piece, dtype=np.float32)
            except (TypeError, ValueError) as e:
                sink.error(path, f"{fname} is not numeric ({e})", record=k, split=split, field=m, check="not numeric")
                continue
            if a.size == 0:  # sentences without aligned words come as empty arrays
                continue
            if a.ndim != 2:
                sink.error(path, f"{fname} has shape {a.shape}, expected (L, D)", record=k, split=split, field=m,
                           check="shape")
                continue
            if dim is None:
                dim, dim_from = a.shape[1], k
            elif a.shape[1] != dim:
                sink.error(path, f"feature dim {a.shape[1]} differs from {dim} (id {dim_from})", record=k, split=split,
                           field=m, check="dim differs")
            bad = ~np.isfinite(a)
            if bad.any():  # the released COVAREP/OpenFace features are known to hold NaN/inf
                row_bad += int(bad.sum())
                a = np.where(bad, np.float32(0), a)
            if a.shape[1] == dim:
                arrays.append((fname, a))
        if row_bad:
            bad_vals += row_bad
            bad_rows += 1
            first_bad = first_bad if first_bad is not None else (k, split)
        # checked punchline first, but in the sequence the context comes first
        arrays.sort(key=lambda piece: piece[0] == "punchline_features")
        out.append(np.concatenate([a for _, a in arrays], axis=0) if arrays else None)
    if bad_vals:
        sink.warning(path, f"{bad_vals} NaN/inf values in {bad_rows} samples (first shown); the builder replaces them "
                           "with 0", record=first_bad[0], split=first_bad[1], field=m)
    if missing:
        sink.warning(path, f"{missing} ids have no {m} features (stored as missing)", field=m)
        sink.info[f"{m}_missing"] = missing
    if keys_split and missing == len(keys_split):
        sink.error(path, f"no {m} features for any id", field=m)
    return out, bad_vals, bad_rows, missing
