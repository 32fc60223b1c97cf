"""A small MUStARD release (sarcasm_data.json, split_indices.p) and a fake text encoder."""

from __future__ import annotations

import json
import pickle
import zlib

import numpy as np

DIM = 8


def fake_encoder(texts, *, model="default", max_length=64, batch_size=64, device="cpu", progress=True):
    """Hashed bag-of-words: one deterministic DIM-vector per word."""
    out = []
    for t in texts:
        words = t.split()[:max_length] or [""]
        out.append(np.asarray([np.random.default_rng(zlib.crc32(w.encode())).standard_normal(DIM) for w in words],
                              dtype=np.float32))
    return out


SHOWS = ["BBT", "FRIENDS", "BBT", "GOLDENGIRLS", "FRIENDS", "SARCASMOHOLICS",
         "BBT", "FRIENDS", "BBT", "BBT", "FRIENDS", "GOLDENGIRLS",
         "BBT", "BBT", "SARCASMOHOLICS", "BBT", "GOLDENGIRLS", "BBT", "BBT", "BBT"]
N = len(SHOWS)
SARC = [i % 2 == 0 for i in range(N)]
IDS = [f"{i % 3 + 1}_{100 + 7 * i}" for i in range(N)]


def make_json(d, **override):
    data = {}
    for i, cid in enumerate(IDS):
        data[cid] = {
            "utterance": f"utterance number {i}",
            "speaker": f"SPK{i % 4}",
            "context": [f"context one {i}", f"context two {i}"],
            "context_speakers": ["ALICE", "BOB"],
            "show": SHOWS[i],
            "sarcasm": SARC[i],
        }
    for cid, rec in override.items():
        data[cid] = rec
    path = d / "sarcasm_data.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def fold_pairs():
    idx = np.arange(N)
    return [(np.setdiff1d(idx, idx[k::5]), idx[k::5]) for k in range(5)]


def make_folds(d, pairs=None):
    with open(d / "split_indices.p", "wb") as f:
        pickle.dump(pairs if pairs is not None else fold_pairs(), f, protocol=2)


def sarcasm_not_bool(d):
    """Corrupt: a release in ``d`` whose record IDS[2] has sarcasm 1 (not a bool)."""
    make_json(d, **{IDS[2]: {"utterance": "x", "speaker": "S", "context": [], "context_speakers": [],
                             "show": "BBT", "sarcasm": 1}})


def fold_index_out_of_range(d):
    """Corrupt: a release in ``d`` whose fold 1 train indices reach past the records."""
    make_json(d)
    pairs = fold_pairs()
    pairs[1] = (np.append(pairs[1][0], N), pairs[1][1])
    make_folds(d, pairs)
