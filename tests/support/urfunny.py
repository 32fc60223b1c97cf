"""A small UR-FUNNY release (the SDK pickles) and a fake text encoder, for the builder and `grcf validate`."""

from __future__ import annotations

import pickle
import zlib

import numpy as np

DIM = 8


class FakeEncoder:
    """Hashed bag-of-words: one deterministic DIM-vector per word; records its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, texts, *, model="default", max_length=64, batch_size=64, device="cpu", progress=True):
        self.calls.append(dict(texts=list(texts), model=model, max_length=max_length, batch_size=batch_size))
        out = []
        for t in texts:
            words = t.split()[:max_length] or [""]
            rows = [np.random.default_rng(zlib.crc32(w.encode())).standard_normal(DIM) for w in words]
            out.append(np.asarray(rows, dtype=np.float32))
        return out


FOLDS = {"train": [0, 1, 2, 3], "dev": [4, 5], "test": [6, 7]}
LABELS = {0: 1, 1: 0, 2: np.int64(1), 3: 0, 4: 1.0, 5: 0, 6: 1, 7: 0}


def dump_pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _feature_sdk(dim, rng):
    sdk = {}
    for i in range(8):
        ctx = [rng.standard_normal((2, dim)), rng.standard_normal((4, dim))]
        if i == 3:
            ctx.append(np.zeros((0,)))  # a context sentence with no aligned words
        sdk[i] = {"punchline_features": rng.standard_normal((3, dim)), "context_features": ctx}
    return sdk


def make_release(d, features=True):
    language = {
        i: {
            "punchline_sentence": f"punch{i} line",
            "context_sentences": [f"first{i} context", f"second{i} context"],
            "punchline_features": [1, 2], "context_features": [[3], [4, 5]],
            "punchline_intervals": np.zeros((2, 2)),
        }
        for i in range(8)
    }
    dump_pickle(d / "language_sdk.pkl", language)
    dump_pickle(d / "humor_label_sdk.pkl", dict(LABELS))
    dump_pickle(d / "data_folds.pkl", {k: list(v) for k, v in FOLDS.items()})
    dump_pickle(d / "word_embedding_list.pkl", [np.zeros(4)])
    sdks = {}
    if features:
        rng = np.random.default_rng(0)
        sdks["audio"] = _feature_sdk(5, rng)
        sdks["audio"][1]["punchline_features"][0, 0] = np.nan
        sdks["audio"][2]["context_features"][0][1, 2] = np.inf
        sdks["vision"] = _feature_sdk(7, rng)
        dump_pickle(d / "covarep_features_sdk.pkl", sdks["audio"])
        dump_pickle(d / "openface_features_sdk.pkl", sdks["vision"])
    return sdks


def label_not_binary(d):
    """Corrupt a release in ``d``: record 2's humor label is 2."""
    dump_pickle(d / "humor_label_sdk.pkl", {**LABELS, 2: 2})
