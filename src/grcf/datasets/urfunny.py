"""UR-FUNNY v2 (humor detection) from its public release pickles into a grcf feature store.

Inputs in `src_dir`: language_sdk.pkl, humor_label_sdk.pkl, data_folds.pkl (required) and
covarep_features_sdk.pkl (audio), openface_features_sdk.pkl (vision) (optional).
Text is re-encoded from the raw sentences; audio/vision are the released word-aligned features.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..safe_pickle import safe_load
from ..store import write_store
from .text_order import UTTERANCE_FIRST, join_text, text_order

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

    for name in (LANGUAGE, LABELS, FOLDS):
        if not (src_dir / name).exists():
            raise DataError(src_dir / name, "required UR-FUNNY file not found")
    # latin1: the release may hold Python 2 pickles (numpy arrays need it); Python 3 str is unaffected
    language = _as_dict(safe_load(src_dir / LANGUAGE, encoding="latin1"), src_dir / LANGUAGE)
    humor = _as_dict(safe_load(src_dir / LABELS, encoding="latin1"), src_dir / LABELS)
    folds = safe_load(src_dir / FOLDS, encoding="latin1")

    keys, splits = _read_folds(src_dir / FOLDS, folds)
    ids = [str(k) for k in keys]
    labels = [_label(src_dir / LABELS, humor, k) for k in keys]
    texts = [_text(src_dir / LANGUAGE, language, k, use_context, order) for k in keys]

    columns: dict[str, list] = {}
    meta_mods: dict[str, dict] = {}
    if "text" in modalities:
        text_opts = {"device": options.get("device", "cpu"), **(options.get("text") or {})}
        model = text_opts.get("model", "default")
        if text_encoder is None:
            from ..features.text import encode_texts as text_encoder
        columns["text"] = _encode(text_encoder, texts, text_opts, options.get("progress", True), src_dir / LANGUAGE)
        meta_mods["text"] = {"producer": f"text:{model}", "max_length": int(text_opts.get("max_length", 64))}
    for m in ("audio", "vision"):
        if m in modalities:
            path = src_dir / FEATURE_FILES[m]
            feats = _as_dict(safe_load(path, encoding="latin1"), path)
            columns[m] = _features(path, feats, keys, context_features, m)
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


def _as_dict(obj, path) -> dict:
    if not isinstance(obj, dict):
        raise DataError(path, f"expected a dict keyed by id, got {type(obj).__name__}")
    return obj


def _read_folds(path: Path, folds) -> tuple[list, list[str]]:
    if not isinstance(folds, dict):
        raise DataError(path, f"expected a dict with train/dev/test, got {type(folds).__name__}")
    keys, splits, seen = [], [], {}
    for fold, split in FOLD_SPLITS.items():
        if fold not in folds:
            raise DataError(path, f"missing fold {fold!r}")
        for k in list(folds[fold]):
            k = _plain(k)
            if k in seen:
                raise DataError(path, f"id appears in both {seen[k]!r} and {fold!r}" if seen[k] != fold
                                else f"id listed twice in {fold!r}", record=str(k))
            seen[k] = fold
            keys.append(k)
            splits.append(split)
    if not keys:
        raise DataError(path, "all folds are empty")
    return keys, splits


def _plain(k):
    # numpy integers from the folds must match the pickles' int keys and stringify cleanly
    return k.item() if isinstance(k, np.generic) else k


def _label(path, humor: dict, k) -> float:
    if k not in humor:
        raise DataError(path, "id listed in data_folds.pkl has no label", record=str(k))
    v = humor[k]
    try:
        f = float(np.asarray(v).reshape(-1)[0]) if np.size(v) == 1 else None
    except (TypeError, ValueError):
        f = None
    if f not in (0.0, 1.0):
        raise DataError(path, f"humor label must be 0 or 1, got {v!r}", record=str(k))
    return f


def _fix_text(s: str) -> str:
    # a Python 2 pickle read as latin1 leaves UTF-8 mojibake; undo it when that round-trips
    try:
        return s.encode("latin1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s


def _text(path, language: dict, k, use_context: bool, order: str = UTTERANCE_FIRST) -> str:
    entry = language.get(k)
    if not isinstance(entry, dict):
        raise DataError(path, "id listed in data_folds.pkl has no language entry", record=str(k))
    punch = entry.get("punchline_sentence")
    if not isinstance(punch, str):
        raise DataError(path, "missing or non-string punchline_sentence", record=str(k))
    context = []
    if use_context:
        ctx = entry.get("context_sentences", [])
        if not isinstance(ctx, (list, tuple)) or not all(isinstance(c, str) for c in ctx):
            raise DataError(path, "context_sentences must be a list of strings", record=str(k))
        context = [c.strip() for c in ctx]
    text = _fix_text(join_text(punch.strip(), context, order).strip())
    if not text:
        raise DataError(path, "empty text (no punchline or context words)", record=str(k))
    return text


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


def _features(path: Path, feats: dict, keys: list, use_context: bool, m: str) -> list:
    """Per id: punchline features, with context features first when use_context; NaN/inf -> 0."""
    out, missing, bad_values, bad_samples, dim = [], 0, 0, 0, None
    for k in keys:
        entry = feats.get(k)
        if entry is None:
            missing += 1
            out.append(None)
            continue
        if not isinstance(entry, dict) or "punchline_features" not in entry:
            raise DataError(path, "entry lacks punchline_features", record=str(k))
        pieces = list(entry.get("context_features") or []) if use_context else []
        pieces.append(entry["punchline_features"])
        arrays = []
        for p in pieces:
            a = np.asarray(p, dtype=np.float32)
            if a.size == 0:  # sentences without aligned words come as empty arrays
                continue
            if a.ndim != 2:
                raise DataError(path, f"{m} features have shape {a.shape}, expected (L, D)", record=str(k))
            if dim is None:
                dim = a.shape[1]
            if a.shape[1] != dim:
                raise DataError(path, f"{m} feature dim {a.shape[1]} differs from {dim}", record=str(k))
            arrays.append(a)
        if not arrays:
            out.append(None)
            continue
        a = np.concatenate(arrays, axis=0)
        bad = ~np.isfinite(a)
        if bad.any():
            # the released COVAREP/OpenFace features are known to hold NaN/inf
            bad_values += int(bad.sum())
            bad_samples += 1
            a = np.where(bad, np.float32(0), a)
        out.append(a)
    if bad_values:
        log.warning("urfunny: %s: replaced %d NaN/inf values by 0 in %d samples", path.name, bad_values, bad_samples)
    if missing:
        log.warning("urfunny: %s: %d ids have no %s features (stored as missing)", path.name, missing, m)
    if all(a is None for a in out):
        raise DataError(path, f"no {m} features for any id")
    return out
