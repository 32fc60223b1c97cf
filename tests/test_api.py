"""The Python API (`from grcf import load_model`): one code path with `grcf predict`.

The bundle is the shipped model when it is there, else a tiny text model trained by conftest's
`text_bundle_dir` (support.bundles); the clip is a real shared MOSI clip, else a synthetic one with a transcript.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from support.bundles import sample_clip, shipped_bundle


def _cli(*args) -> int:
    from grcf.cli import main

    return main([str(a) for a in args])


def test_import_grcf_stays_light():
    code = "import sys, grcf; assert callable(grcf.load_model); print(sorted(m for m in ('torch', 'pandas', 'grcf.use.api') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_predict_returns_the_csv_of_grcf_predict(text_model, text_bundle_dir, tmp_path):
    """Media and a folder: the DataFrame is `grcf predict`'s CSV, column for column."""
    clip, text = sample_clip(tmp_path)
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a", "b"):  # sidecar transcripts: no speech recognition needed for the folder
        shutil.copyfile(clip, folder / f"{name}.mp4")
    (folder / "a.txt").write_text("I really loved this film\n")
    (folder / "b.txt").write_text("it was boring and far too long\n")
    inputs = [folder] if text else [clip, folder]
    got = text_model.predict(inputs)
    out = tmp_path / "pred.csv"
    assert _cli("predict", text_bundle_dir, *inputs, "-o", out, "-q") == 0
    want = pd.read_csv(out, keep_default_na=False)
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want) == len(inputs) + 1
    np.testing.assert_allclose(got["score"].to_numpy(float), want["score"].to_numpy(float), atol=1e-9)
    assert list(got["transcript"]) == list(want["transcript"])
    assert got.attrs["failed"] == []
    assert not out.with_suffix(".json").exists()


def test_predict_text_scores_sentences_as_the_text_of_a_clip(text_model, tmp_path):
    """A typed sentence scores as the same sentence given as a clip's transcript."""
    clip, _ = sample_clip(tmp_path)
    rows = text_model.predict_text(["what a great movie", "the plot was a mess"])
    assert list(rows.columns) == ["id", "score", "polarity", "class7", "transcript", "modalities"]
    assert list(rows["transcript"]) == ["what a great movie", "the plot was a mess"]
    assert set(rows["modalities"]) == {"text"}
    assert list(rows["polarity"]) == ["positive" if s > 0 else "negative" if s < 0 else "neutral" for s in rows["score"]]
    as_clip = text_model.predict(clip, transcript=_write(tmp_path / "t.txt", "what a great movie"))
    assert as_clip["score"].iloc[0] == pytest.approx(rows["score"].iloc[0], abs=1e-6)
    assert text_model.predict_text("what a great movie")["score"].iloc[0] == pytest.approx(rows["score"].iloc[0], abs=1e-6)


def _write(path, text):
    path.write_text(text + "\n")
    return path


def test_bad_text_and_bad_media_are_clear_errors(text_model, tmp_path):
    from grcf.errors import GrcfError

    with pytest.raises(GrcfError, match="empty text"):
        text_model.predict_text(["fine", "  "])
    with pytest.raises(GrcfError, match="no texts"):
        text_model.predict_text([])
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(GrcfError, match="not a supported input"):
        text_model.predict([bad])


def test_the_plot_is_predicts_timeline(text_model, tmp_path):
    clip, text = sample_clip(tmp_path)
    rows = text_model.predict([clip], transcript=_write(tmp_path / "t.txt", text) if text else None)
    png = text_model.plot(rows, tmp_path / "timeline.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_a_bundle_the_shipped_model_is_used(text_bundle_dir, tmp_path, monkeypatch):
    """`load_model()` and `grcf predict INPUT` (no bundle) both take the shipped model
    (GRCF_PRETRAINED points the default elsewhere, here at the test bundle)."""
    from grcf import load_model

    monkeypatch.setenv("GRCF_PRETRAINED", str(text_bundle_dir))
    assert load_model().path == text_bundle_dir
    clip, text = sample_clip(tmp_path)
    extra = ["--transcript", _write(tmp_path / "t.txt", text)] if text else []
    assert _cli("predict", clip, "-o", tmp_path / "default.csv", "-q", *extra) == 0
    assert _cli("predict", text_bundle_dir, clip, "-o", tmp_path / "given.csv", "-q", *extra) == 0
    a, b = pd.read_csv(tmp_path / "default.csv"), pd.read_csv(tmp_path / "given.csv")
    assert a["score"].tolist() == b["score"].tolist()

    monkeypatch.setenv("GRCF_PRETRAINED", str(tmp_path / "nowhere"))
    with pytest.raises(Exception, match="shipped model is not there"):
        load_model()
    assert _cli("predict", text_bundle_dir, "-o", tmp_path / "x.csv") == 1  # a bundle and nothing to score


@pytest.mark.skipif(shipped_bundle() is None, reason="the shipped model (models/pretrained/) is not built")
def test_the_shipped_model_reads_plain_sentiment():
    """The issue's acceptance line: a positive then a negative score."""
    from grcf import load_model

    rows = load_model().predict_text(["I loved it", "it was awful"])
    assert rows["score"].iloc[0] > 0 > rows["score"].iloc[1]
    assert list(rows["polarity"]) == ["positive", "negative"]
