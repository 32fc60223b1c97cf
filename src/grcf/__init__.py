"""grcf: group-wise ranking then calibration for multimodal sentiment analysis."""

__version__ = "0.1.0"

MODALITIES = ("text", "audio", "vision")
