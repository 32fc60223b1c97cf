"""The synthetic clip of tests/support/media.py: a real MP4 that grcf's extractors read like a recorded one.

With it, raw extraction is tested on a fresh clone, without the shared MOSI clips of ../shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from grcf.data.extractors.audio import AUDIO_DIM, LIBROSA_FEATURES, extract_audio
from grcf.data.extractors.vision import VISION_DIM, extract_vision
from support.media import make_clip, make_raw_folder

SECONDS = 3.0
VOICED, LOG_F0 = LIBROSA_FEATURES.index("voiced"), LIBROSA_FEATURES.index("log_f0")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("media") / "talk.mp4", SECONDS)


def test_clip_decodes_with_a_video_and_an_audio_track_of_its_length(clip):
    import av

    with av.open(str(clip)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
        assert c.duration / 1e6 == pytest.approx(SECONDS, abs=0.1)
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.width, v.height) == (320, 240) and a.sample_rate == 16000
        frames = sum(1 for _ in c.decode(v))
    assert frames == int(SECONDS * 25)
    with av.open(str(clip)) as c:
        samples = sum(f.samples for f in c.decode(c.streams.audio[0]))
    assert samples / 16000 == pytest.approx(SECONDS, abs=0.1)


def test_audio_extractor_sees_voiced_and_unvoiced_frames(clip):
    feats = extract_audio(clip)
    assert feats.shape[1] == AUDIO_DIM and feats.shape[0] == pytest.approx(SECONDS / 0.04, abs=3)
    assert np.isfinite(feats).all()
    voiced = feats[:, VOICED] > 0
    assert 0.2 < voiced.mean() < 0.9, voiced.mean()  # syllables and pauses
    f0 = np.exp(feats[voiced, LOG_F0])
    assert 90 < f0.min() and f0.max() < 250, (f0.min(), f0.max())  # the drawn contour: 100-220 Hz


def test_vision_extractor_finds_the_drawn_face(clip):
    feats, info = extract_vision(clip, fps=5)
    assert info["frames_total"] == int(SECONDS * 5)
    assert info["frames_with_face"] >= 0.8 * info["frames_total"], info
    assert feats.shape == (info["frames_with_face"], VISION_DIM) and np.isfinite(feats).all()
    cx, cy, w, h = feats[:, :4].mean(0)
    assert abs(cx - 0.5) < 0.1 and abs(cy - 0.5) < 0.15 and w > 0.3  # a centred talking head


def test_a_clip_without_face_or_speech(tmp_path):
    quiet = make_clip(tmp_path / "empty_room.mp4", 1.0, face=False, speech=False)
    feats, info = extract_vision(quiet)
    assert feats.shape == (0, VISION_DIM) and info["frames_with_face"] == 0 and info["frames_total"] > 0
    audio = extract_audio(quiet)
    assert np.isfinite(audio).all() and audio[:, VOICED].mean() < 0.1


def test_raw_folder_of_synthetic_clips_builds_a_store(tmp_path):
    from grcf.data.datasets.mmsa_raw import build
    from grcf.data.store import load_split, read_meta
    from grcf.data.validate import validate_path

    rows = [("vidA", 1, "i loved it", 2.4, "Positive", "train"),
            ("vidA", 2, "it was fine", 0.0, "Neutral", "train"),
            ("vidB", 1, "boring film", -1.5, "Negative", "valid"),
            ("vidC", 1, "great acting", 3.0, "Positive", "test")]
    root = make_raw_folder(tmp_path / "raw", rows, seconds=1.5)
    assert [p.line() for p in validate_path(root) if p.severity == "error"] == []
    out = build(root, tmp_path / "synthetic.parquet",
                {"modalities": ["audio", "vision"], "progress": False, "dataset": "synthetic"})
    meta = read_meta(out)
    assert {m: meta["modalities"][m]["dim"] for m in ("audio", "vision")} == {"audio": AUDIO_DIM, "vision": VISION_DIM}
    train = load_split(out, "train")
    assert list(train.ids) == ["vidA$_$1", "vidA$_$2"]
    for m in ("audio", "vision"):
        assert train.masks[m].sum(1).min() > 0, m  # every clip gave frames (the face was found)
        assert np.isfinite(train.features[m]).all()
    log = json.loads(Path(str(out) + ".log.json").read_text())
    assert log["failed_clips"] == [] and log["no_face_clips"] == []
