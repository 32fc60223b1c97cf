"""Audio/vision extraction and the raw-folder builder on real CMU-MOSI clips from ../shared/data."""

import csv
import json
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from grcf.errors import DataError

MOSI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mosi"
pytestmark = pytest.mark.skipif(not (MOSI / "Raw").is_dir(), reason=f"shared MOSI data not found at {MOSI}")

CLIPS = [("03bSnISJMiM", "5"), ("03bSnISJMiM", "10"), ("1DmNV9C1hbY", "8")]  # short clips keep the suite fast
NO_MEDIA = [("_dI--eQ6qVU", "1"), ("_dI--eQ6qVU", "2")]
FAST = {"text": {"max_length": 16, "batch_size": 8}, "progress": False}


def clip(v, c):
    return MOSI / "Raw" / v / f"{c}.mp4"


@pytest.mark.parametrize("vc", CLIPS[:2])
def test_audio_features(vc):
    from grcf.data.extractors.audio import AUDIO_DIM, extract_audio

    a = extract_audio(clip(*vc))
    assert a.dtype == np.float32 and a.ndim == 2 and a.shape[1] == AUDIO_DIM == 45
    assert a.shape[0] > 10  # 40 ms frames over a multi-second clip
    assert np.isfinite(a).all()
    assert (a.std(axis=0)[:42] > 0).all()  # MFCCs, deltas, rms, zcr all move over time
    assert set(np.unique(a[:, 43])) <= {0.0, 1.0} and a[:, 43].any()  # voiced flag, some speech


def test_audio_opensmile():
    pytest.importorskip("opensmile", reason="the optional extra grcf[opensmile] is not installed (make installs it)")
    from grcf.data.extractors.audio import extract_audio

    a = extract_audio(clip(*CLIPS[0]), backend="opensmile")
    assert a.shape[1] == 25 and a.shape[0] > 10 and np.isfinite(a).all() and (a.std(0) > 0).any()


@pytest.mark.parametrize("vc", CLIPS[:2])
def test_vision_features(vc):
    from grcf.data.extractors.vision import VISION_DIM, extract_vision

    v, info = extract_vision(clip(*vc), fps=5)
    assert v.dtype == np.float32 and v.shape[1] == VISION_DIM == 82
    assert 0 < v.shape[0] == info["frames_with_face"] <= info["frames_total"]
    assert np.isfinite(v).all()
    assert (v.std(axis=0)[:4] > 0).all()  # the face box moves
    assert (v[:, 18:].std(axis=0) > 0).mean() > 0.9  # the face patch changes
    assert ((v[:, :4] >= 0) & (v[:, :4] <= 1.01)).all()


def make_video(path, *, audio=True, seconds=1.0):
    """A tiny MP4 of noise frames (no face), optionally with a tone; encoded with PyAV."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("mpeg4", rate=10)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        streams = [vs]
        if audio:  # every stream must exist before the first packet is muxed
            sr = 16000
            s = c.add_stream("aac", rate=sr)
            s.layout = "mono"
            streams.append(s)
        for _ in range(int(10 * seconds)):
            for p in vs.encode(av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), format="rgb24")):
                c.mux(p)
        if audio:
            t = np.arange(int(sr * seconds)) / sr
            w = (0.3 * np.sin(2 * np.pi * (150 + 50 * t) * t)).astype(np.float32)
            for k in range(0, w.size, 1024):
                fr = av.AudioFrame.from_ndarray(w[None, k:k + 1024], format="fltp", layout="mono")
                fr.sample_rate, fr.pts = sr, k
                for p in s.encode(fr):
                    c.mux(p)
        for st in streams:
            for p in st.encode():
                c.mux(p)
    return path


def test_no_face_and_media_errors(tmp_path):
    from grcf.data.extractors.audio import extract_audio
    from grcf.data.extractors.vision import VISION_DIM, extract_vision

    v, info = extract_vision(make_video(tmp_path / "noise.mp4"))
    assert v.shape == (0, VISION_DIM) and info["frames_with_face"] == 0 and info["frames_total"] > 0
    with pytest.raises(DataError, match="no audio track"):
        extract_audio(make_video(tmp_path / "silent.mp4", audio=False))
    (tmp_path / "empty.mp4").write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(1).bytes(4096))
    for f in (extract_audio, extract_vision):
        with pytest.raises(DataError, match="not found"):
            f(tmp_path / "missing.mp4")
        with pytest.raises(DataError, match="empty"):
            f(tmp_path / "empty.mp4")
        with pytest.raises(DataError, match="junk.mp4.*cannot decode"):
            f(junk)


def make_root(tmp_path, clips=CLIPS, no_media=NO_MEDIA, extra_rows=()):
    """A raw MMSA root: a label.csv subset of the shared one and Raw/ links to its clips."""
    root = tmp_path / "root"
    with open(MOSI / "label.csv", newline="") as f:
        rows = {(r["video_id"], r["clip_id"]): r for r in csv.DictReader(f)}
    wanted = [*clips, *no_media]
    with open(root.mkdir(parents=True) or root / "label.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["video_id", "clip_id", "text", "label", "annotation", "mode"])
        w.writeheader()
        for key in wanted:
            w.writerow(rows[key])
        for r in extra_rows:
            w.writerow(r)
    for v, c in clips:
        (root / "Raw" / v).mkdir(parents=True, exist_ok=True)
        os.symlink(clip(v, c), root / "Raw" / v / f"{c}.mp4")
    return root, rows, wanted


def test_build_raw(tmp_path):
    from grcf.data.datasets.mmsa_raw import build
    from grcf.data.store import load_split, read_meta

    root, rows, wanted = make_root(tmp_path)
    out = build(root, tmp_path / "mosi.parquet", {**FAST, "workers": 2, "dataset": "mosi"})
    meta = read_meta(out)
    assert meta["producer"] == "mmsa_raw" and meta["label_range"] == [-3.0, 3.0]
    assert {m: meta["modalities"][m]["dim"] for m in ("text", "audio", "vision")} == {"text": 384, "audio": 45, "vision": 82}
    t = pq.read_table(out, columns=["id", "split", "label", "raw_text", "has_media", "audio_len", "vision_len", "text_len"]).to_pylist()
    by_id = {r["id"]: r for r in t}
    assert set(by_id) == {f"{v}$_${c}" for v, c in wanted}
    for v, c in wanted:
        r, src = by_id[f"{v}$_${c}"], rows[(v, c)]
        assert r["split"] == src["mode"] and r["raw_text"] == src["text"] and r["label"] == pytest.approx(float(src["label"]))
        assert r["text_len"] > 0
        media = (v, c) in CLIPS
        assert r["has_media"] is media
        assert (r["audio_len"] > 0) is media and (r["vision_len"] > 0) is media
    tr = load_split(out, "train")  # the three clips are training segments
    assert tr.features["audio"].shape[2] == 45 and np.isfinite(tr.features["audio"]).all()
    log = json.loads(Path(str(out) + ".log.json").read_text())
    assert log["failed_clips"] == [] and log["n_with_media"] == len(CLIPS)


def test_build_raw_corrupt_clip(tmp_path, caplog):
    from grcf.data.datasets.mmsa_raw import build

    root, _, _ = make_root(tmp_path, clips=CLIPS[:1], no_media=NO_MEDIA[:1])
    bad = root / "Raw" / "03bSnISJMiM" / "5.mp4"
    bad.unlink()
    bad.write_bytes(np.random.default_rng(2).bytes(8192))
    out = tmp_path / "o.parquet"
    with pytest.raises(DataError) as e:
        build(root, out, {**FAST})
    assert "03bSnISJMiM$_$5" in str(e.value) and "5.mp4" in str(e.value) and "\n" not in str(e.value)
    assert not out.exists()
    with caplog.at_level(logging.WARNING):
        out = build(root, out, {**FAST, "on_error": "skip"})
    r = pq.read_table(out, columns=["id", "has_media", "audio_len", "text_len"]).to_pylist()
    assert all(not x["has_media"] and x["audio_len"] == 0 and x["text_len"] > 0 for x in r) and len(r) == 2
    log = json.loads(Path(str(out) + ".log.json").read_text())
    assert [f["id"] for f in log["failed_clips"]] == ["03bSnISJMiM$_$5"] and "decode" in log["failed_clips"][0]["error"]


def test_build_raw_no_face_and_empty_text(tmp_path):
    from grcf.data.datasets.mmsa_raw import build
    from grcf.data.store import load_split

    empty = {"video_id": "zz", "clip_id": "9", "text": "", "label": "0.5", "annotation": "Positive", "mode": "test"}
    noface = {"video_id": "nf", "clip_id": "1", "text": "no face here", "label": "-1", "annotation": "Negative", "mode": "test"}
    root, _, _ = make_root(tmp_path, clips=[], no_media=NO_MEDIA[:1], extra_rows=[empty, noface])
    (root / "Raw" / "nf").mkdir(parents=True)
    make_video(root / "Raw" / "nf" / "1.mp4")
    with pytest.raises(DataError, match=r"label.csv \[zz\$_\$9\]: empty text"):
        build(root, tmp_path / "o.parquet", FAST)
    out = build(root, tmp_path / "o.parquet", {**FAST, "on_error": "skip"})
    s = load_split(out, "test")
    assert list(s.ids) == ["nf$_$1"]
    assert s.masks["audio"].sum() > 0 and s.masks["vision"].sum() == 0  # vision missing, not zero-filled
    log = json.loads(Path(str(out) + ".log.json").read_text())
    assert [r["id"] for r in log["dropped_rows"]] == ["zz$_$9"] and [r["id"] for r in log["no_face_clips"]] == ["nf$_$1"]


def test_text_encoder_default():
    from grcf.data.extractors.text import default_model_path, encode_texts, resolve_model_name

    assert resolve_model_name("default") == default_model_path()
    assert resolve_model_name("bert-base-uncased") == "bert-base-uncased"
    out = encode_texts(["and i loved it", "but i can safely assure you that even if they didnt it would still be a hit"],
                       max_length=12, progress=False)
    assert [a.shape for a in out] == [(6, 384), (12, 384)]  # [CLS] 4 words [SEP]; truncated to 12
    with pytest.raises(DataError, match=r"\[1\]: empty text"):
        encode_texts(["fine", " "], progress=False)
