"""Feature extractors: text (transformer hidden states), audio (librosa/openSMILE), vision (OpenCV faces).

`producer(modality, settings)` is the one place a feature's producer string is made: every builder
that extracts features records it in the store, and `grcf predict` compares a bundle's with the one
it would extract before any extraction starts. `canonical` maps strings written by earlier
versions (`text:<model>`, `opencv-haar@5.0fps`) to the same form.
"""

from __future__ import annotations

import re


def _number(x) -> str:
    """One spelling per value: 5, 5.0 and "5" -> "5"; 0.04 -> "0.04"."""
    r = repr(float(x))
    return r[:-2] if r.endswith(".0") else r


def producer(modality: str, settings: dict | None = None) -> str:
    """The producer string of features grcf extracts: `transformers:<model>` (text),
    `<backend>@<hop>s` (audio), `opencv-haar@<fps>fps` (vision)."""
    s = settings or {}
    if modality == "text":
        return f"transformers:{s.get('model') or 'default'}"
    if modality == "audio":
        return f"{s.get('backend') or 'librosa'}@{_number(s.get('hop_seconds', 0.04))}s"
    if modality == "vision":
        return f"opencv-haar@{_number(s.get('fps', 5))}fps"
    raise ValueError(f"unknown modality {modality!r}")


_LEGACY = (
    (re.compile(r"^text:(?P<model>.+)$"), lambda m: producer("text", {"model": m["model"]})),
    (re.compile(r"^transformers:(?P<model>.+)$"), lambda m: producer("text", {"model": m["model"]})),
    (re.compile(r"^(?P<backend>librosa|opensmile)@(?P<hop>[0-9.eE+-]+)s$"),
     lambda m: producer("audio", {"backend": m["backend"], "hop_seconds": m["hop"]})),
    (re.compile(r"^opencv-haar@(?P<fps>[0-9.eE+-]+)fps$"), lambda m: producer("vision", {"fps": m["fps"]})),
)


def canonical(value: str | None) -> str:
    """A stored producer string in the form `producer` makes; others (a release's own features,
    `mmsa_pickle`, `synthetic`) unchanged."""
    value = value or ""
    for pattern, make in _LEGACY:
        m = pattern.match(value)
        if m:
            try:
                return make(m)
            except ValueError:  # not a number after all: leave it as written
                return value
    return value


def extractable(value: str | None) -> bool:
    """Whether grcf's own extractors make features of this producer (so media can be scored)."""
    c = canonical(value)
    return any(pattern.match(c) for pattern, _ in _LEGACY[1:])


def settings_of(value: str | None) -> dict:
    """The settings a canonical producer string encodes ({} for producers grcf does not extract)."""
    c = canonical(value)
    if c.startswith("transformers:"):
        return {"model": c.split(":", 1)[1]}
    m = _LEGACY[2][0].match(c)
    if m:
        return {"backend": m["backend"], "hop_seconds": float(m["hop"])}
    m = _LEGACY[3][0].match(c)
    if m:
        return {"fps": float(m["fps"])}
    return {}
