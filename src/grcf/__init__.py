"""grcf: group-wise ranking then calibration for multimodal sentiment analysis."""

__version__ = "0.1.0"

MODALITIES = ("text", "audio", "vision")


def load_model(bundle=None, device: str = "cpu"):
    """A trained model to score media, folders, datasets or texts (see `grcf.use.api`): the shipped
    model when `bundle` is None, else a bundle folder from `grcf export`.

    >>> from grcf import load_model
    >>> load_model().predict_text(["what a great movie"])  # doctest: +SKIP
    """
    # imported here, not at the top: `import grcf` stays light (every module imports MODALITIES from it)
    from grcf.use.api import load_model as _load

    return _load(bundle, device=device)
