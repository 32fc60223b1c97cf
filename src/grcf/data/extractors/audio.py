"""Frame-level acoustic features from a media file's audio track (PyAV decode, librosa or openSMILE)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grcf.errors import DataError

# librosa backend columns, in order (Da = 45)
LIBROSA_FEATURES = (
    [f"mfcc{i}" for i in range(20)]
    + [f"mfcc_delta{i}" for i in range(20)]
    + ["rms", "zcr", "log_f0", "voiced", "spectral_centroid"]
)
AUDIO_DIM = len(LIBROSA_FEATURES)
F0_MIN, F0_MAX = 65.0, 500.0


def _why(e: Exception) -> str:
    # av errors repeat the file name in str(e); the DataError already names the file
    return f"{type(e).__name__}: {getattr(e, 'strerror', None) or e}"


def open_media(path):
    """An opened PyAV container, or a DataError naming the file (missing, empty, undecodable)."""
    import av

    path = Path(path)
    if not path.exists():
        raise DataError(path, "media file not found")
    if path.stat().st_size == 0:
        raise DataError(path, "media file is empty (0 bytes)")
    try:
        return av.open(str(path))
    except Exception as e:  # av raises InvalidDataError, OSError, ...
        raise DataError(path, f"cannot decode media ({_why(e)})") from None


def decode_audio(path, sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 waveform at `sample_rate` from the first audio stream of `path`."""
    import av

    path = Path(path)
    container = open_media(path)
    try:
        if not container.streams.audio:
            raise DataError(path, "no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):  # flush the resampler's buffered tail
            chunks.append(out.to_ndarray().reshape(-1))
    except DataError:
        raise
    except Exception as e:
        raise DataError(path, f"cannot decode audio ({_why(e)})") from None
    finally:
        container.close()
    wave = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if wave.size == 0:
        raise DataError(path, "audio track has no samples")
    if not np.isfinite(wave).all():
        raise DataError(path, "decoded audio contains NaN or inf")
    return wave


def extract_audio(path, *, sample_rate: int = 16000, hop_seconds: float = 0.04, backend: str = "librosa") -> np.ndarray:
    """[T, Da] float32 frame features, one frame per `hop_seconds`."""
    return audio_features(decode_audio(path, sample_rate), sample_rate=sample_rate, hop_seconds=hop_seconds,
                          backend=backend, source=path)


def audio_features(wave: np.ndarray, *, sample_rate: int = 16000, hop_seconds: float = 0.04, backend: str = "librosa",
                   source="audio") -> np.ndarray:
    """[T, Da] float32 frame features of a decoded mono waveform (a whole clip or a slice of one)."""
    from threadpoolctl import threadpool_limits

    hop = max(1, int(round(hop_seconds * sample_rate)))
    if backend not in ("librosa", "opensmile"):
        raise DataError(source, f"unknown audio backend {backend!r}; expected librosa or opensmile")
    # one BLAS thread: librosa's mel and DCT products sum in another order with more threads, so the
    # same clip would give other floats on a machine with more cores (clips run in parallel instead)
    with threadpool_limits(limits=1, user_api="blas"):
        if backend == "librosa":
            feats = _librosa_features(wave, sample_rate, hop)
        else:
            feats = _opensmile_features(wave, sample_rate, hop_seconds)
    if feats.shape[0] == 0:
        raise DataError(source, "audio too short for a single feature frame")
    feats = np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0)  # e.g. silent frames' log terms
    return np.ascontiguousarray(feats, dtype=np.float32)


def warm_librosa() -> None:
    """Compile librosa's numba functions once, before a process pool starts (see numba_cache).

    Without a snapshot every worker would compile the same functions at the same time; with one
    this returns at once.
    """
    from grcf.data.extractors import numba_cache

    if numba_cache.has_snapshot():
        return
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 150 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    _librosa_features(wave, 16000, 640)


def _librosa_features(wave, sr, hop):
    from grcf.data.extractors import numba_cache

    numba_cache.isolate()  # before librosa defines its jitted functions
    import librosa

    n_fft = 1024
    while n_fft < 2 * hop:
        n_fft *= 2
    if wave.size < n_fft:  # pad very short clips so every analysis window is defined
        wave = np.pad(wave, (0, n_fft - wave.size))
    spec = np.abs(librosa.stft(wave, n_fft=n_fft, hop_length=hop)) ** 2
    mel = librosa.feature.melspectrogram(S=spec, sr=sr, n_mels=40)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20)
    width = min(9, mfcc.shape[1] - (1 - mfcc.shape[1] % 2))  # delta needs an odd width <= T
    delta = librosa.feature.delta(mfcc, width=width) if width >= 3 else np.zeros_like(mfcc)
    rms = librosa.feature.rms(S=np.sqrt(spec), frame_length=n_fft)
    zcr = librosa.feature.zero_crossing_rate(wave, frame_length=n_fft, hop_length=hop)
    centroid = librosa.feature.spectral_centroid(S=np.sqrt(spec), sr=sr) / (sr / 2)
    f0 = librosa.yin(wave, fmin=F0_MIN, fmax=F0_MAX, sr=sr, frame_length=n_fft, hop_length=hop)
    # yin has no voicing decision (pyin does but is ~50x slower): call a frame voiced when it
    # has speech-level energy, a low zero-crossing rate and an f0 off the search bounds
    t = min(mfcc.shape[1], rms.shape[1], zcr.shape[1], f0.shape[0], centroid.shape[1])
    r, z, f = rms[0, :t], zcr[0, :t], f0[:t]
    voiced = (r > 0.1 * (np.percentile(r, 95) + 1e-8)) & (z < 0.25) & (f > F0_MIN * 1.05) & (f < F0_MAX * 0.95)
    log_f0 = np.where(voiced, np.log(f), 0.0)
    numba_cache.publish()
    return np.concatenate(
        [mfcc[:, :t], delta[:, :t], np.log1p(100 * r)[None], z[None], log_f0[None], voiced[None].astype(np.float32), centroid[:, :t]],
        axis=0,
    ).T


def _opensmile_features(wave, sr, hop_seconds):
    """eGeMAPSv02 LLDs (25 per 10 ms), mean-pooled to one frame per `hop_seconds`."""
    import opensmile

    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
    )
    lld = smile.process_signal(wave, sr).to_numpy(dtype=np.float32)
    k = max(1, int(round(hop_seconds / 0.01)))
    t = lld.shape[0] // k
    if t == 0:
        return lld[:0]
    return lld[: t * k].reshape(t, k, -1).mean(axis=1)
