"""MUStARD (sarcasm detection) from sarcasm_data.json into a grcf feature store (text only).

Splits: "speaker_independent" (test = the FRIENDS clips) or "fold0".."fold4" from the released
split_indices.p beside the json. In both, valid is a seeded label-stratified slice of train, so
model selection never sees test. The json and the folds are parsed once, for both the builder and
`grcf validate` (`check`).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np

from grcf.data.checks import Abort, Strict, load_pickle
from grcf.errors import DataError
from grcf.data.extractors import producer
from grcf.data.store import write_store
from grcf.data.datasets.text_order import UTTERANCE_FIRST, join_text, text_order

log = logging.getLogger(__name__)

SPLIT_FILE = "split_indices.p"
SPEAKER_INDEPENDENT = "speaker_independent"
TEST_SHOW = "FRIENDS"
REQUIRED = ("utterance", "speaker", "context", "context_speakers", "show", "sarcasm")
PRODUCER = "grcf.datasets.mustard"


def fold_names(json_path) -> list[str]:
    """Splits available for this json: speaker_independent, plus fold0.. when split_indices.p exists."""
    path = Path(json_path).with_name(SPLIT_FILE)
    names = [SPEAKER_INDEPENDENT]
    if path.exists():
        names += [f"fold{i}" for i in range(len(load_folds(path, Strict())))]
    return names


def source_files(json_path, options: dict) -> list[Path]:
    """What a build reads: the json, and split_indices.p beside it for a `foldK` split."""
    files = [Path(json_path)]
    if str(options.get("split", "")).startswith("fold"):
        files.append(Path(json_path).parent / SPLIT_FILE)
    return files


def build(json_path, out, options: dict | None = None, text_encoder=None) -> Path:
    """Write the MUStARD feature store to `out`; returns `out`.

    options: split (default speaker_independent), valid_fraction (0.1), seed (0),
    use_context (True), text_order (utterance_first), text {model, max_length, batch_size,
    device}, dataset, progress.
    """
    options = dict(options or {})
    json_path, out = Path(json_path), Path(out)
    split = options.get("split", SPEAKER_INDEPENDENT)
    valid_fraction = float(options.get("valid_fraction", 0.1))
    if not 0.0 <= valid_fraction < 1.0:
        raise DataError(json_path, f"valid_fraction must be in [0, 1), got {valid_fraction}")
    seed = int(options.get("seed", 0))
    use_context = bool(options.get("use_context", True))
    order = text_order(options, json_path)

    sink = Strict()
    records = read_records(json_path, sink, use_context)
    ids = list(records)
    labels = np.array([1.0 if records[i]["sarcasm"] else 0.0 for i in ids])

    if split == SPEAKER_INDEPENDENT:
        is_test = np.array([records[i]["show"] == TEST_SHOW for i in ids])
        train_idx, test_idx = np.flatnonzero(~is_test), np.flatnonzero(is_test)
        if not test_idx.size or not train_idx.size:
            raise DataError(json_path, f"speaker-independent split needs both {TEST_SHOW} and other shows")
    elif isinstance(split, str) and split.startswith("fold") and split[4:].isdigit():
        split_path = json_path.with_name(SPLIT_FILE)
        if not split_path.exists():
            raise DataError(split_path, f"split {split!r} needs the MUStARD split file beside the json")
        folds = load_folds(split_path, sink)
        k = int(split[4:])
        if k >= len(folds):
            raise DataError(split_path, f"split {split!r} requested but the file has {len(folds)} folds")
        train_idx, test_idx = fold_indices(split_path, sink, folds[k], len(ids), split)
    else:
        raise DataError(json_path, f"unknown split {split!r}; expected {SPEAKER_INDEPENDENT} or fold0..fold4")

    valid_idx = _carve_valid(train_idx, labels, valid_fraction, seed)
    train_idx = np.setdiff1d(train_idx, valid_idx)
    assign = np.full(len(ids), "", dtype=object)
    assign[train_idx], assign[valid_idx], assign[test_idx] = "train", "valid", "test"
    keep = np.flatnonzero(assign != "")
    if keep.size < len(ids):
        log.warning("mustard: %d clips are in neither train nor test of %s; left out", len(ids) - keep.size, split)

    sel = [ids[i] for i in keep]
    texts = [_text(records[i], use_context, order) for i in sel]
    text_opts = dict(options.get("text") or {})
    model = text_opts.get("model", "default")
    if text_encoder is None:
        from grcf.data.extractors.text import encode_texts as text_encoder
    feats = text_encoder(
        texts,
        model=model,
        max_length=int(text_opts.get("max_length", 64)),
        batch_size=int(text_opts.get("batch_size", 64)),
        device=text_opts.get("device", options.get("device", "cpu")),
        progress=options.get("progress", True),
    )
    if len(feats) != len(texts):
        raise DataError(json_path, f"text encoder returned {len(feats)} arrays for {len(texts)} texts")

    meta = {
        "dataset": options.get("dataset", "mustard"),
        "producer": PRODUCER,
        "task": "classification",
        "label_range": [0, 1],
        "modalities": {"text": {"producer": producer("text", {"model": model}), "max_length": int(text_opts.get("max_length", 64))}},
        "source": {"json": str(json_path), "split": split, "valid_fraction": valid_fraction,
                   "seed": seed, "use_context": use_context, "text_order": order},
    }
    write_store(
        out, ids=sel, splits=[str(s) for s in assign[keep]], labels=labels[keep],
        modalities={"text": feats}, meta=meta, video_ids=sel, clip_ids=sel, texts=texts,
        extra_columns={"show": [records[i]["show"] for i in sel], "speaker": [records[i]["speaker"] for i in sel]},
    )
    log.info("mustard: wrote %s (%s: %s)", out, split,
             {s: int((assign[keep] == s).sum()) for s in ("train", "valid", "test")})
    return out


def check(path, sink, *, label_range=None, check_media=True):
    """`grcf validate` of sarcasm_data.json (and split_indices.p beside it): every problem reported to `sink`."""
    if path.suffix.lower() in (".p", ".pkl", ".pickle"):
        path = path.with_name("sarcasm_data.json")
    data = read_records(path, sink)
    shows = Counter(rec["show"] for rec in data.values() if isinstance(rec, dict) and isinstance(rec.get("show"), str))
    if shows and (shows.get(TEST_SHOW, 0) == 0 or shows.get(TEST_SHOW, 0) == sum(shows.values())):
        sink.warning(path, "speaker-independent split needs both FRIENDS (test) and other shows", field="show")
    sink.info.update(records=len(data), shows=dict(shows))
    split_path = path.with_name(SPLIT_FILE)
    if not split_path.exists():
        return
    folds = load_folds(split_path, sink)
    if folds is None:
        return
    if len(folds) != 5:
        sink.warning(split_path, f"{len(folds)} folds, MUStARD releases 5")
    sink.info["folds"] = len(folds)
    for k, pair in enumerate(folds):
        fold_indices(split_path, sink, pair, len(data), f"fold{k}")


def read_records(path: Path, sink, use_context=True) -> dict:
    """The json's records by clip id (file order, which split_indices.p indexes), each one checked."""
    if not path.exists():
        sink.error(path, "MUStARD json not found")
        raise Abort
    dup_lists = []

    def hook(pairs):
        counts = Counter(k for k, _ in pairs)
        dup_lists.append([k for k, n in counts.items() if n > 1])
        return dict(pairs)

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f, object_pairs_hook=hook)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
        sink.error(path, f"not valid JSON ({e})")
        raise Abort from None
    if not isinstance(data, dict) or not data:
        sink.error(path, "expected a non-empty JSON object keyed by clip id")
        raise Abort
    for cid in dup_lists[-1] if dup_lists else []:
        sink.error(path, "duplicate id (the JSON object repeats the key; only the last is kept)", record=cid, field="id",
                   check="duplicate id")
    for cid, rec in data.items():
        kw = dict(record=cid)
        if not isinstance(rec, dict):
            sink.error(path, "record is not an object", check="not object", **kw)
            continue
        miss = [k for k in REQUIRED if k not in rec]
        for key in miss:
            sink.error(path, f"missing key {key!r}", field=key, check=f"missing {key}", **kw)
        for key in ("utterance", "speaker", "show"):
            if key in rec and not isinstance(rec[key], str):
                sink.error(path, f"{key} must be a string", field=key, check=f"type {key}", **kw)
        if "sarcasm" in rec and not isinstance(rec["sarcasm"], bool):
            sink.error(path, f"sarcasm must be true/false, got {rec['sarcasm']!r}", field="sarcasm", check="sarcasm", **kw)
        for key in ("context", "context_speakers"):
            if key in rec and (not isinstance(rec[key], list) or not all(isinstance(c, str) for c in rec[key])):
                sink.error(path, f"{key} must be a list of strings", field=key, check=f"type {key}", **kw)
        if (use_context and isinstance(rec.get("context"), list) and isinstance(rec.get("context_speakers"), list)
                and len(rec["context"]) != len(rec["context_speakers"])):
            sink.error(path, f"{len(rec['context'])} context lines but {len(rec['context_speakers'])} context speakers",
                       field="context_speakers", check="ctx len", **kw)
        if isinstance(rec.get("utterance"), str) and not rec["utterance"].strip():
            sink.error(path, "empty text (utterance)", field="utterance", check="empty text", **kw)
    return data


def _text(rec: dict, use_context: bool, order: str = UTTERANCE_FIRST) -> str:
    # speaker-prefixed lines keep who-said-what, which sarcasm often hinges on
    utterance = f"{rec['speaker']}: {rec['utterance'].strip()}"
    context = [f"{s}: {c.strip()}" for s, c in zip(rec["context_speakers"], rec["context"])] if use_context else []
    return join_text(utterance, context, order)


def load_folds(path: Path, sink) -> list | None:
    folds = load_pickle(path, sink)  # written by Python 2 with numpy arrays
    if not isinstance(folds, (list, tuple)) or not folds:
        sink.error(path, f"expected a list of (train, test) index pairs, got {type(folds).__name__}")
        return None
    return list(folds)


def fold_indices(path: Path, sink, pair, n: int, name: str):
    """(train, test) index arrays of one fold, checked against the n records; None if unusable."""
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        sink.error(path, "fold is not a (train, test) pair", split=name)
        return None
    parts = []
    for role, idx in zip(("train", "test"), pair):
        a = np.asarray(idx).reshape(-1)
        if a.size and not np.issubdtype(a.dtype, np.integer):
            if not (np.issubdtype(a.dtype, np.floating) and np.all(np.isfinite(a)) and np.all(a == np.round(a))):
                sink.error(path, f"{role} indices are not integers", split=name, field=role)
                parts.append(None)
                continue
        a = a.astype(np.int64)
        bad = a[(a < 0) | (a >= n)]
        if bad.size:
            sink.error(path, f"{bad.size} {role} indices out of range 0..{n - 1} (first {int(bad[0])})", split=name,
                       field=role)
        if np.unique(a).size != a.size:
            sink.error(path, f"{role} indices repeat", split=name, field=role)
        parts.append(a)
    if parts[0] is None or parts[1] is None:
        return None
    both = np.intersect1d(*parts)
    if both.size:
        sink.error(path, f"{both.size} indices in both train and test (first {int(both[0])})", split=name, field="test")
    if not parts[1].size:
        sink.error(path, "test indices are empty", split=name, field="test")
    return parts[0], parts[1]


def _carve_valid(train_idx: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded, label-stratified slice of train; each class keeps at least one train sample."""
    if fraction <= 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels[train_idx]):
        members = np.sort(train_idx[labels[train_idx] == c])
        k = int(round(fraction * members.size))
        k = min(max(k, 1), members.size - 1)  # >=1 so valid sees every class when it can
        if k > 0:
            picked.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
