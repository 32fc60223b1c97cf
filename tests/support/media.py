"""A small synthetic clip made by the tests (no ``../shared`` needed): a talking face and speech-like audio.

``make_clip`` writes an MP4 with

* a video track (H.264, yuv420p): a drawn face (head, hair, brows, eyes, nose, a mouth that opens
  with the sound) that drifts a few pixels, on a plain background.  At the default size (320x240)
  OpenCV's Haar frontal-face cascade, as ``grcf.data.extractors.vision`` runs it, finds it in every
  sampled frame; at other sizes the face is drawn to the same proportions, but detection is
  best-effort there (``face=False`` draws the background only: the extractor's no-face path).
* a 16 kHz mono AAC track: "syllables" of a voiced sound (a harmonic series on a falling-rising
  pitch contour, 100-220 Hz, shaped by two formant-like resonances), short unvoiced noise bursts
  between some of them, and pauses, so pitch and energy extractors see voiced, unvoiced and
  silent frames.  ``speech=False`` writes a near-silent track instead.

``make_raw_folder`` writes an MMSA raw root (label.csv + Raw/<video_id>/<clip_id>.mp4) of such clips.
"""

from __future__ import annotations

import fractions
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
RAW_HEADER = "video_id,clip_id,text,label,annotation,mode"


def speech_like(seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(wave float32 in [-1, 1], envelope): voiced syllables, unvoiced bursts and pauses.

    ``envelope`` is the voiced amplitude per sample (0 in pauses); the video opens the mouth with it.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    # phrases of syllables (~4 per second) separated by pauses of 0.2-0.4 s
    envelope = np.zeros(n)
    pos = 0.1
    while pos < seconds:
        phrase = rng.uniform(0.6, 1.1)
        syl = 0.0
        while syl < phrase and pos + syl < seconds:
            length = rng.uniform(0.15, 0.28)
            a, b = int((pos + syl) * sample_rate), min(n, int((pos + syl + length) * sample_rate))
            if b > a:
                envelope[a:b] = np.sin(np.linspace(0, np.pi, b - a)) ** 0.7 * rng.uniform(0.6, 1.0)
            syl += length + rng.uniform(0.02, 0.06)
        pos += phrase + rng.uniform(0.2, 0.4)
    # pitch: a slow falling-rising contour with some vibrato-like wobble
    f0 = 160 + 50 * np.sin(2 * np.pi * 0.35 * t + 0.5) + 8 * np.sin(2 * np.pi * 5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voiced = np.zeros(n)
    for k in range(1, 16):  # harmonics, weighted by two formant-like bumps (~500 Hz, ~1500 Hz)
        fk = k * f0
        gain = np.exp(-((fk - 500) / 250) ** 2) + 0.5 * np.exp(-((fk - 1500) / 400) ** 2) + 0.05 / k
        voiced += gain * np.sin(k * phase)
    voiced /= np.abs(voiced).max() + 1e-9
    # unvoiced bursts ("s", "t"): high-passed noise just before some syllables
    noise = np.diff(rng.standard_normal(n + 1))
    onsets = np.flatnonzero((envelope[1:] > 0) & (envelope[:-1] == 0))
    unvoiced = np.zeros(n)
    for i, o in enumerate(onsets):
        if i % 2 == 0:
            a = max(0, o - int(0.06 * sample_rate))
            unvoiced[a:o] = np.hanning(o - a) if o > a else 0
    wave = 0.5 * envelope * voiced + 0.08 * unvoiced * noise + 0.002 * rng.standard_normal(n)
    return np.clip(wave, -1, 1).astype(np.float32), envelope


def draw_face(size=(320, 240), *, center=None, mouth_open: float = 0.0, face: bool = True) -> np.ndarray:
    """An RGB uint8 frame: a drawn frontal face (unless ``face`` is False) on a plain background.

    ``mouth_open``: 0 (closed) .. 1.  The face height is 3/4 of the frame height.
    """
    import cv2

    W, H = size
    img = np.full((H, W), 70, np.float32)
    if face:
        cx, cy = center if center is not None else (W // 2, H // 2)
        fh = int(0.75 * H)
        fw = int(fh * 0.75)
        cv2.ellipse(img, (cx, cy), (fw // 2, fh // 2), 0, 0, 360, 190, -1)  # head
        cv2.ellipse(img, (cx, cy - int(fh * 0.38)), (int(fw * 0.52), int(fh * 0.2)), 0, 180, 360, 40, -1)  # hair
        ey, ex = cy - int(fh * 0.08), int(fw * 0.22)
        for s in (-1, 1):
            cv2.ellipse(img, (cx + s * ex, ey - int(fh * 0.09)), (int(fw * 0.14), int(fh * 0.025)), 0, 0, 360, 60, -1)  # brow
            cv2.ellipse(img, (cx + s * ex, ey), (int(fw * 0.13), int(fh * 0.05)), 0, 0, 360, 120, -1)  # socket
            cv2.ellipse(img, (cx + s * ex, ey), (int(fw * 0.09), int(fh * 0.035)), 0, 0, 360, 235, -1)  # white
            cv2.circle(img, (cx + s * ex, ey), int(fh * 0.03), 25, -1)  # iris
        cv2.ellipse(img, (cx, cy + int(fh * 0.12)), (int(fw * 0.08), int(fh * 0.04)), 0, 0, 360, 140, -1)  # nose
        mouth_h = int(fh * (0.03 + 0.03 * float(np.clip(mouth_open, 0, 1))))  # more than this hides the face from Haar
        cv2.ellipse(img, (cx, cy + int(fh * 0.28)), (int(fw * 0.2), mouth_h), 0, 0, 360, 60, -1)  # mouth
        img = cv2.GaussianBlur(img, (0, 0), max(0.5, fh * 0.015))
    gray = np.clip(img, 0, 255).astype(np.uint8)
    # a skin-ish tint; the extractors read gray frames
    return np.stack([gray, (gray * 0.85).astype(np.uint8), (gray * 0.7).astype(np.uint8)], axis=-1)


def make_clip(path, seconds: float = 3.0, *, face: bool = True, speech: bool = True, fps: int = 25,
              size: tuple[int, int] = (320, 240), seed: int = 0) -> Path:
    """Write an MP4 at ``path`` (parents created): a drawn talking face and speech-like 16 kHz audio."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    W, H = size
    if speech:
        wave, envelope = speech_like(seconds, SAMPLE_RATE, seed)
    else:
        n = int(round(seconds * SAMPLE_RATE))
        wave = (0.001 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)
        envelope = np.zeros(n)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "18"}
        a_s = c.add_stream("aac", rate=SAMPLE_RATE)
        a_s.layout = "mono"
        for i in range(int(round(seconds * fps))):
            t = i / fps
            lo, hi = int(t * SAMPLE_RATE), int((t + 1 / fps) * SAMPLE_RATE)
            mouth = float(envelope[lo:hi].mean()) if hi > lo else 0.0
            center = (W // 2 + int(round(0.03 * W * np.sin(2 * np.pi * 0.3 * t))),
                      H // 2 + int(round(0.015 * H * np.cos(2 * np.pi * 0.2 * t))))
            frame = av.VideoFrame.from_ndarray(draw_face(size, center=center, mouth_open=mouth, face=face), format="rgb24")
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        block = 1024
        for s in range(0, wave.size, block):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[None, s:s + block]), format="fltp", layout="mono")
            f.sample_rate, f.pts, f.time_base = SAMPLE_RATE, s, fractions.Fraction(1, SAMPLE_RATE)
            for p in a_s.encode(f):
                c.mux(p)
        for p in a_s.encode():
            c.mux(p)
    return path


def make_raw_folder(root, rows, *, seconds: float = 2.0, **clip) -> Path:
    """An MMSA raw root: label.csv (video_id,clip_id,text,label,annotation,mode) and Raw/<video_id>/<clip_id>.mp4.

    ``rows``: tuples (video_id, clip_id, text, label, annotation, mode), strings or numbers; one
    synthetic clip per row (``seconds`` long, ``clip``: more ``make_clip`` arguments), each with its
    own audio (seeded by the row's position).
    """
    root = Path(root)
    (root / "Raw").mkdir(parents=True, exist_ok=True)
    lines = [RAW_HEADER]
    for i, row in enumerate(rows):
        video_id, clip_id, text, label, annotation, mode = (str(x) for x in row)
        assert "," not in text and '"' not in text, f"keep label.csv simple: {text!r}"
        lines.append(",".join((video_id, clip_id, text, label, annotation, mode)))
        make_clip(root / "Raw" / video_id / f"{clip_id}.mp4", seconds, seed=i, **clip)
    (root / "label.csv").write_text("\n".join(lines) + "\n")
    return root
