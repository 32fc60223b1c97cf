"""Small MMSA sources: a pickle with exactly MMSA's keys and dtypes, and a raw folder's label.csv.

(A raw folder with real clips: ``support.media.make_raw_folder``.)
"""

from __future__ import annotations

import pickle

import numpy as np

SIZES = {"train": 5, "valid": 3, "test": 4}


def make_mmsa(aligned: bool, sims: bool = False, seed=0, L=12, La=20, Lv=15, Da=5, Dv=7):
    """A synthetic pickle with exactly MMSA's keys and dtypes."""
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in SIZES.items():
        la, lv = (L, L) if aligned else (La, Lv)
        tl = rng.integers(3, L + 1, n)
        text_bert = np.zeros((n, 3, L), dtype=np.float32)
        for i, k in enumerate(tl):
            text_bert[i, 0, :k] = rng.integers(100, 1000, k)
            text_bert[i, 1, :k] = 1
        d = {
            "id": np.array([f"vid{split}{i // 2}$_${i}" for i in range(n)], dtype=object),
            "raw_text": np.array([f"sentence {split} {i}" for i in range(n)], dtype=object),
            "text": rng.standard_normal((n, L, 768)).astype(np.float32),
            "text_bert": text_bert,
            "audio": rng.standard_normal((n, la, Da)).astype(np.float32),
            "vision": rng.standard_normal((n, lv, Dv)).astype(np.float32),
            "regression_labels": rng.uniform(-1 if sims else -3, 1 if sims else 3, n).astype(np.float32),
            "classification_labels": rng.integers(0, 3, n).astype(np.float32),
            "annotations": np.array(["Positive"] * n, dtype=object),
        }
        d["audio"][0, 1, 2] = -np.inf  # MMSA files carry -inf from log energies
        d["audio"][-1, 0, :] = -np.inf
        if not aligned:
            d["audio_lengths"] = [int(x) for x in rng.integers(1, La + 1, n)]
            d["vision_lengths"] = [int(x) for x in rng.integers(1, Lv + 1, n)]
            d["audio_lengths"][0] = La
            d["audio_lengths"][-1] = max(1, d["audio_lengths"][-1])
        if sims:
            for m in "TAV":
                d[f"regression_labels_{m}"] = rng.uniform(-1, 1, n).astype(np.float32)
        data[split] = d
    return data


def write_pickle(folder, data, name="data.pkl"):
    """Pickle ``data`` (protocol 4, as MMSA's files) to folder/name; returns the path."""
    p = folder / name
    p.write_bytes(pickle.dumps(data, protocol=4))
    return p


# ---------------------------------------------------------------- a raw folder's label.csv

GOOD_ROWS = [
    ("vidA", "1", "i loved it", "2.4", "Positive", "train"),
    ("vidA", "2", "it was fine", "0.0", "Neutral", "train"),
    ("vidB", "1", "boring film", "-1.5", "Negative", "valid"),
    ("vidC", "1", "great acting", "3.0", "Positive", "test"),
]


def write_raw(root, rows=GOOD_ROWS, header="video_id,clip_id,text,label,annotation,mode"):
    """An MMSA raw root with label.csv only (no clips); returns root."""
    root.mkdir(parents=True, exist_ok=True)
    body = "\n".join(",".join(r) for r in rows)
    (root / "label.csv").write_text(f"{header}\n{body}\n")
    return root
