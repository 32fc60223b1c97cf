"""MMSA raw folders of synthetic clips, and small bundles trained on them.

`speech_clip` writes a short MP4 (support.media's talking face and speech-like audio), so predict
and raw feature extraction are tested on a fresh clone without ../shared. `raw_folder` lays such clips
out as an MMSA raw root; `raw_bundle` and `mustard_bundle` train and export a one-epoch model on
one (real feature, training, evaluation and export code; the bundled MiniLM encodes the text).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from support.bundles import small_params, train_and_export

REPO = Path(__file__).resolve().parents[2]
MOSI = REPO.parent / "shared" / "data" / "mosi"
FPS = 10

WORDS = ["i", "really", "liked", "hated", "the", "film", "it", "was", "great", "boring", "fine", "acting", "plot"]


def speech_clip(path, *, seconds: float = 1.5, seed: int = 0) -> Path:
    """A short MP4 (support.media: a drawn talking face that OpenCV finds, speech-like 16 kHz audio)
    at 10 fps, which keeps feature extraction quick."""
    from support.media import make_clip

    return make_clip(path, seconds, fps=FPS, seed=seed)


def sentence(seed: int) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS, size=int(rng.integers(3, 7))))


def raw_folder(root, rows) -> Path:
    """An MMSA raw root: label.csv from `rows` (dicts with video_id, clip_id, text, label, annotation,
    mode; label/mode may be "" or left out) and a synthetic clip per row (a row with `clip=False` has
    none; `clip` bytes are written as the clip, e.g. a broken file)."""
    import pandas as pd

    root = Path(root)
    (root / "Raw").mkdir(parents=True, exist_ok=True)
    for k, r in enumerate(rows):
        clip = root / "Raw" / str(r["video_id"]) / f"{r['clip_id']}.mp4"
        if isinstance(r.get("clip"), bytes):
            clip.parent.mkdir(parents=True, exist_ok=True)
            clip.write_bytes(r["clip"])
        elif r.get("clip", True):
            speech_clip(clip, seed=k)
    cols = [c for c in ("video_id", "clip_id", "text", "label", "annotation", "mode") if any(c in r for r in rows)]
    pd.DataFrame([{c: r.get(c, "") for c in cols} for r in rows]).to_csv(root / "label.csv", index=False)
    return root


def synthetic_rows(n_train=8, n_valid=4, n_test=4) -> list[dict]:
    """Labelled rows whose label follows the words (liked/great: positive; hated/boring: negative)."""
    rows = []
    for k, mode in enumerate(["train"] * n_train + ["valid"] * n_valid + ["test"] * n_test):
        text = sentence(k)
        label = float(np.clip(sum(text.count(w) for w in ("liked", "great")) - sum(text.count(w) for w in ("hated", "boring")), -3, 3))
        rows.append({"video_id": f"vid{k // 4}", "clip_id": str(k % 4 + 1), "text": text, "label": f"{label:g}",
                     "annotation": "Positive" if label > 0 else "Negative" if label < 0 else "Neutral", "mode": mode})
    return rows


def mosi_rows(video_ids=None) -> list[dict] | None:
    """The shared real MOSI clips' label.csv rows (None without ../shared): dicts with `source`, the clip."""
    import pandas as pd

    if not (MOSI / "Raw").is_dir():
        return None
    labels = pd.read_csv(MOSI / "label.csv", dtype=str, keep_default_na=False)
    clips = {(p.parent.name, p.stem): p for p in sorted(MOSI.glob("Raw/*/*.mp4"))}
    rows = []
    for r in labels.to_dict("records"):
        if (r["video_id"], r["clip_id"]) in clips and (video_ids is None or r["video_id"] in video_ids):
            rows.append({**r, "source": clips[(r["video_id"], r["clip_id"])]})
    return rows


def link_folder(root, rows, **set_columns) -> Path:
    """An MMSA raw root of real clips (symlinked): `rows` from mosi_rows, columns overridden
    (`mode="train"`, `label=""`), a column set to None dropped."""
    import pandas as pd

    root = Path(root)
    for r in rows:
        clip = root / "Raw" / r["video_id"] / f"{r['clip_id']}.mp4"
        clip.parent.mkdir(parents=True, exist_ok=True)
        if not clip.exists():
            clip.symlink_to(r["source"])
    df = pd.DataFrame([{k: v for k, v in r.items() if k != "source"} for r in rows])
    for col, value in set_columns.items():
        if value is None:
            df = df.drop(columns=[col])
        else:
            df[col] = value
    df.to_csv(root / "label.csv", index=False)
    return root


def raw_bundle(tmp, modalities=("text", "audio", "vision")) -> Path:
    """A one-epoch bundle trained on a synthetic MMSA raw folder."""
    tmp = Path(tmp)
    root = raw_folder(tmp / "synthetic_raw", synthetic_rows())
    params = small_params(tmp, "synth", {"source": "mmsa_raw", "path": str(root), "task": "regression", "metrics": "mosi",
                                    "modalities": list(modalities)})
    return train_and_export(tmp, params, "synth")


def sarcasm_json(path, n=24) -> Path:
    """A tiny sarcasm_data.json in MUStARD's layout: FRIENDS items are the speaker-independent test."""
    data = {}
    for i in range(n):
        sarcastic = i % 2 == 0
        data[f"{i}_{100 + i}"] = {
            "utterance": ("oh great, another monday" if sarcastic else "thanks, that was helpful") + f" {sentence(i)}",
            "speaker": f"SPK{i % 3}", "context": [sentence(100 + i)], "context_speakers": ["ALICE"],
            "show": "FRIENDS" if i % 4 == 3 else "BBT", "sarcasm": sarcastic}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


def mustard_bundle(tmp) -> Path:
    """A one-epoch sarcasm bundle from a store the MUStARD builder made of `sarcasm_json`."""
    tmp = Path(tmp)
    src = sarcasm_json(tmp / "mustard" / "sarcasm_data.json")
    params = small_params(tmp, "sarc", {"source": "mustard", "path": str(src), "task": "classification", "metrics": "binary",
                                   "split": "speaker_independent", "valid_fraction": 0.25, "use_context": True,
                                   "text_order": "utterance_first"})
    return train_and_export(tmp, params, "sarc")
