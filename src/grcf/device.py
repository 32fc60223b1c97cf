"""The torch device a step runs on (`auto`: CUDA when present, else the CPU).

Its own module so that a step that only picks a device (building features) does not import the
training code, and so does not rerun when that code changes (grcf.pipeline.codedeps).
"""

from __future__ import annotations

import torch

from grcf.errors import GrcfError


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GrcfError("device: cuda was asked for but no CUDA device is available")
    return torch.device(name)
