"""Benchmark `grcf predict` on the shared MOSI clips (prints figures; not a timed test).

    python benchmarks/bench_predict.py [--bundle models/mosi/grcf] [--workers 2] [--workdir DIR]

Without --bundle it first trains a small bundle on the 27 shared clips (real feature code,
2 epochs; the figures below do not depend on its quality). Prints:
  bundle load time (in a warm process, and a fresh process including imports);
  seconds per clip and real-time factor (wall / media seconds) with audio+vision extraction,
  (a) text given (sidecar transcripts), (b) with offline speech recognition;
  the recognizer's word error rate against label.csv's transcripts on the 27 clips;
  a 3-minute video assembled from the clips with PyAV: wall time, real-time factor, utterances,
  and its sentiment-over-time PNG (--png, default <workdir>/timeline.png).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
MOSI = REPO.parent / "shared" / "data" / "mosi"


def clip_rows():
    labels = pd.read_csv(MOSI / "label.csv", dtype=str, keep_default_na=False)
    clips = sorted(MOSI.glob("Raw/*/*.mp4"), key=lambda p: (p.parent.name, int(p.stem)))
    by_key = {(r.video_id, r.clip_id): r for r in labels.itertuples()}
    return [(p, by_key[(p.parent.name, p.stem)]) for p in clips]


def train_bundle(work: Path) -> Path:
    """A bundle trained on the 27 clips (one video train, the other valid/test): the tests' own builder."""
    sys.path.insert(0, str(REPO / "tests"))
    from support.bundles import mini_mosi_root, small_params, train_and_export

    root = work / "mini"
    mini_mosi_root(root)
    params = small_params(work, "mini", {"source": "mmsa_raw", "path": str(root), "task": "regression",
                                         "metrics": "mosi"}, epochs=2, hidden=None)
    return train_and_export(work, params, "mini", progress=True)


def media_seconds(paths) -> float:
    import av

    total = 0.0
    for p in paths:
        with av.open(str(p)) as c:
            total += c.duration / 1e6
    return total


def concat_clips(paths, out: Path, min_seconds: float = 180.0) -> float:
    """Concatenate clips (looping the list) into one mp4 of at least `min_seconds`; returns its length."""
    import av

    with av.open(str(paths[0])) as c:
        w, h = c.streams.video[0].width, c.streams.video[0].height
    fps, sr = 25, 16000
    t = 0.0
    with av.open(str(out), "w") as dst:
        vs = dst.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        if vs.codec_context.name == "libx264":
            vs.options = {"preset": "ultrafast"}  # assembling the input is not what is measured
        aus = dst.add_stream("aac", rate=sr)
        aus.layout = "mono"
        vpts = apts = 0
        k = 0
        while t < min_seconds:
            src_path = paths[k % len(paths)]
            k += 1
            with av.open(str(src_path)) as src:
                n_audio = 0
                resampler = av.AudioResampler(format="fltp", layout="mono", rate=sr)  # per clip: formats differ
                for frame in [*src.decode(audio=0), None]:
                    for f in resampler.resample(frame):
                        f.pts = apts + n_audio
                        n_audio += f.samples
                        for pkt in aus.encode(f):
                            dst.mux(pkt)
                clip_len = n_audio / sr
                n_video = 0
                src.seek(0)  # the audio pass consumed the demuxer
                for frame in src.decode(video=0):
                    if n_video >= int(round(clip_len * fps)):
                        break
                    f = frame.reformat(width=w, height=h, format="yuv420p")
                    f.pts, f.time_base = vpts + n_video, Fraction(1, fps)
                    for pkt in vs.encode(f):
                        dst.mux(pkt)
                    n_video += 1
                apts += n_audio
                vpts += max(n_video, int(round(clip_len * fps)))
                t = apts / sr
        for pkt in vs.encode(None):
            dst.mux(pkt)
        for pkt in aus.encode(None):
            dst.mux(pkt)
    return t


def normalise(text: str) -> str:
    """label.csv's convention: lower case, no punctuation, apostrophes dropped ("didnt")."""
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower().replace("'", "").replace("-", " ")).split())


def cpu_seconds() -> float:
    """User+system CPU time of this process and its reaped children (the extraction workers)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed_predict(bundle, inputs, out, **kw):
    """(wall seconds, CPU seconds, result): CPU time says what a loaded machine's wall time hides."""
    from grcf.use.predict import Options, predict

    t0, c0 = time.perf_counter(), cpu_seconds()
    res = predict(bundle, inputs, Options(output=out, progress=False, **kw))
    return time.perf_counter() - t0, cpu_seconds() - c0, res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--png", type=Path)
    ap.add_argument("--minutes", type=float, default=3.0)
    args = ap.parse_args()
    if not (MOSI / "Raw").is_dir():
        sys.exit(f"{MOSI}: shared MOSI clips not found")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-predict-"))
    work.mkdir(parents=True, exist_ok=True)
    bundle = args.bundle or train_bundle(work)
    print(f"bundle: {bundle}   workers: {args.workers}   cores: {os.cpu_count()}")

    from grcf.use.bundle import load_bundle

    load_bundle(bundle)  # first load pays the imports (torch, safetensors): measured in a fresh process below
    warm = []
    for _ in range(3):
        t0 = time.perf_counter()
        load_bundle(bundle)
        warm.append(time.perf_counter() - t0)
    warm = min(warm)
    code = f"import time; t=time.perf_counter(); from grcf.use.bundle import load_bundle; load_bundle({str(bundle)!r}); print(time.perf_counter()-t)"
    cold = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    print(f"bundle load: {warm:.3f} s (warm process); {cold:.2f} s in a fresh process including imports")

    rows = clip_rows()
    text_dir, asr_dir = work / "clips_text", work / "clips_asr"
    for d in (text_dir, asr_dir):
        d.mkdir(exist_ok=True)
    for p, r in rows:
        name = f"{r.video_id}__{r.clip_id}.mp4"
        for d in (text_dir, asr_dir):
            if not (d / name).exists():
                shutil.copyfile(p, d / name)
        (text_dir / name).with_suffix(".txt").write_text(r.text + "\n")
    secs = media_seconds([p for p, _ in rows])
    n = len(rows)
    for label, folder in (("(a) text given", text_dir), ("(b) speech recognition", asr_dir)):
        wall, cpu, res = timed_predict(bundle, [folder], work / f"{folder.name}.csv", workers=args.workers)
        assert len(res["rows"]) == n, res["failed"]
        print(f"{label}: {n} clips, {secs:.1f} s of media, audio+vision+text: {wall:.1f} s wall = "
              f"{wall / n:.2f} s/clip, real-time factor {wall / secs:.2f} (< 1 is faster than real time); "
              f"{cpu:.1f} CPU s = {cpu / secs:.2f} CPU s per media s")
        if folder is asr_dir:
            import jiwer

            got = res["rows"].set_index("id")["transcript"]
            refs = [normalise(r.text) for _, r in rows]
            hyps = [normalise(got[f"{r.video_id}__{r.clip_id}"]) for _, r in rows]
            print(f"word error rate of the recognizer vs label.csv on {n} clips: {jiwer.wer(refs, hyps):.3f} "
                  f"({sum(len(r.split()) for r in refs)} reference words; lower case, punctuation and apostrophes removed)")

    video = work / "mosi_sequence.mp4"
    length = concat_clips([p for p, _ in rows], video, args.minutes * 60)
    wall, cpu, res = timed_predict(bundle, [video], work / "long.csv", workers=args.workers, plot=True)
    utt = res["rows"][res["rows"]["segment"] != "all"]
    print(f"{length:.0f}-s video assembled from the clips, speech recognition + audio+vision+text: {wall:.1f} s wall, "
          f"real-time factor {wall / length:.2f} ({cpu:.1f} CPU s); {len(utt)} utterances scored, whole-video score "
          f"{res['rows'][res['rows']['segment'] == 'all']['score'].iloc[0]:+.3f}")
    png = work / f"long.{video.stem}.png"
    if args.png:
        args.png.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, args.png)
        png = args.png
    print(f"timeline: {png}")


if __name__ == "__main__":
    main()
