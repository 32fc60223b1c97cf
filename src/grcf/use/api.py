"""The Python API: one loaded model that scores media, folders, datasets and raw texts.

    from grcf import load_model
    m = load_model()                      # the shipped model (models/pretrained/), or load_model("models/mosi/grcf")
    m.predict(["clip.mp4", "folder/"])    # a DataFrame with the columns of `grcf predict`'s CSV
    m.predict_text(["what a great movie"])

`Model.predict` is `grcf.use.predict.predict` with the bundle loaded once and no files written, so
the API, `grcf predict` and `grcf demo` score through one code path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from grcf.errors import GrcfError

# the model the project ships (built by `snakemake pretrained`, committed under models/pretrained/)
PRETRAINED_NAME = "grcf-text-mosei"
PRETRAINED_ENV = "GRCF_PRETRAINED"  # another bundle folder to use as the default


def pretrained_path() -> Path:
    """Where the shipped model is: $GRCF_PRETRAINED, else models/pretrained/<name> of this checkout."""
    env = os.environ.get(PRETRAINED_ENV)
    if env:
        return Path(env)
    # src/grcf/use/api.py -> the repository root
    return Path(__file__).resolve().parents[3] / "models" / "pretrained" / PRETRAINED_NAME


def default_bundle() -> Path:
    path = pretrained_path()
    if not is_bundle(path):
        raise GrcfError(f"{path}: the shipped model is not there (a source checkout holds it under models/pretrained/;"
                        " `snakemake pretrained` rebuilds it); or give a bundle folder from `grcf export`")
    return path


def is_bundle(path) -> bool:
    """A folder written by `grcf export` (its config.json says so)."""
    cfg = Path(path) / "config.json"
    if not (Path(path).is_dir() and cfg.is_file() and (Path(path) / "model.safetensors").is_file()):
        return False
    try:
        from grcf.use.bundle import FORMAT

        return json.loads(cfg.read_text()).get("format") == FORMAT
    except (ValueError, OSError, UnicodeDecodeError):
        return False


def _damaged_bundle(path: Path) -> bool:
    """A folder with a bundle's config.json or weights that is no dataset: a broken bundle, which
    load_bundle then names (rather than reading it as an input to the shipped model)."""
    from grcf.data import datasets

    return (path.is_dir() and any((path / f).is_file() for f in ("config.json", "model.safetensors"))
            and datasets.sniff(path) is None)


def split_bundle(paths) -> tuple[Path, list[Path]]:
    """`[BUNDLE] INPUT...` as `grcf predict` takes them: a leading bundle folder, else the shipped model."""
    paths = [Path(p) for p in paths]
    if paths and (is_bundle(paths[0]) or _damaged_bundle(paths[0])):
        if len(paths) == 1:
            raise GrcfError(f"{paths[0]}: a bundle but no inputs to score after it")
        return paths[0], paths[1:]
    return default_bundle(), paths


class Model:
    """A loaded bundle. `predict` and `predict_text` return pandas DataFrames; nothing is written."""

    def __init__(self, bundle):
        self.bundle = bundle

    @property
    def path(self) -> Path:
        return self.bundle.path

    @property
    def config(self) -> dict:
        return self.bundle.config

    @property
    def metrics(self) -> dict:
        return self.bundle.metrics

    @property
    def task(self) -> str:
        return self.bundle.task

    @property
    def modalities(self) -> list[str]:
        return self.bundle.modalities

    def __repr__(self) -> str:
        c = self.config
        return (f"grcf.Model({str(self.path)!r}: {c['dataset']}/{c['variant']} seed {c['seed']},"
                f" {c['task']}, {'+'.join(self.modalities)})")

    def predict(self, inputs, *, transcript=None, asr_model: str = "default", workers: int = 1,
                on_error: str | None = None, max_segment_seconds: float | None = None, progress: bool = False):
        """Score media files, folders of them, or datasets (what `grcf predict` reads): one row per item
        (per utterance and a `segment=all` row for long media), the columns of predict's CSV.
        Skipped items are in `df.attrs["failed"]` ((path, message) pairs), dataset metrics in
        `df.attrs["metrics"]`."""
        from grcf.use.predict import Options, predict

        inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
        opts = Options(output=None, transcript=Path(transcript) if transcript else None, asr_model=asr_model,
                       workers=workers, on_error=on_error, max_segment_seconds=max_segment_seconds, progress=progress)
        result = predict(self.bundle, inputs, opts)
        rows = result["rows"].drop(columns=["kind"])
        rows.attrs["failed"] = [(str(p), msg) for p, msg in result["failed"]]
        rows.attrs["metrics"] = result["metrics"]
        return rows

    def predict_text(self, texts, *, progress: bool = False):
        """Score sentences (a string or a list): one row each (id, score, polarity, class7, transcript,
        modalities); a multimodal bundle scores them with audio and vision marked absent."""
        from grcf.use.predict import predict_texts

        return predict_texts(self.bundle, texts, progress=progress)

    def plot(self, rows, out) -> Path:
        """The sentiment timeline of one media input's rows (the picture of `grcf predict --plot`)."""
        from grcf.use.predict import plot_timeline

        if rows["input"].nunique() != 1:
            raise GrcfError("plot takes the rows of one media input (select them by the `input` column)")
        return plot_timeline(rows, Path(out), self.bundle)


def load_model(bundle=None, device: str = "cpu") -> Model:
    """A bundle folder (`grcf export`), or the shipped model when none is given."""
    from grcf.use.bundle import load_bundle

    return Model(load_bundle(Path(bundle) if bundle is not None else default_bundle(), device=device))
