"""The registry of dataset formats: the one list of every source a feature store is built from.

Each format is one module here with `build(src, out, options)` and `check(path, sink, ...)`
(the parquet store's are in grcf.data.store), plus one `Format` line in FORMATS. Everything that
asks "which format is this?" asks this registry: `grcf validate`, `grcf features`, `grcf predict`'s
input sniffing, the pipeline's code fingerprints and the Snakefile's input files.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from grcf import MODALITIES
from grcf.errors import DataError, GrcfError


@dataclass(frozen=True)
class Format:
    name: str  # the `source:` of a params.yaml dataset, and `grcf validate --kind`
    module: str  # where its build and check live
    describes: str  # one phrase for help texts and error messages
    extracts: tuple = ()  # modalities it encodes itself (from media or text); its store holds the rest as given
    marker: str | None = None  # a file whose presence marks a folder of this format
    suffixes: tuple = ()  # file suffixes of this format
    filename: str | None = None  # a file of this exact name stands for its folder (label.csv)
    is_store: bool = False  # already a feature store: read as it is
    reads_marker: bool = False  # its reader takes the marker file itself, so a folder means that file
    command: str | None = None  # `grcf features <command> SRC OUT` builds one outside the pipeline
    options: tuple = ()  # the feature options that command takes as flags

    def load(self):
        return import_module(self.module)

    def check(self, path, sink, **kw):
        return self.load().check(path, sink, **kw)

    def source_files(self, path, options: dict) -> list[str]:
        """The user's files a build reads (the pipeline's inputs); a format module may narrow or extend
        them with `source_files(path, options)`."""
        own = getattr(self.load(), "source_files", None)
        return [str(p) for p in own(path, options)] if own else [str(path)]


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("embedded", "grcf.data.datasets.embedded", "the embedded synthetic dataset"),
    Format("mmsa_pickle", "grcf.data.datasets.mmsa_pickle",
           "an MMSA feature pickle (train/valid/test of id, text, audio, vision, labels)",
           suffixes=(".pkl", ".pickle"), command="mmsa"),
    Format("mmsa_raw", "grcf.data.datasets.mmsa_raw", "an MMSA raw folder (label.csv + Raw/<video_id>/<clip_id>.mp4)",
           extracts=MODALITIES, marker="label.csv", filename="label.csv", command="raw",
           options=("text_model", "workers", "on_error", "fps", "modalities")),
    Format("urfunny", "grcf.data.datasets.urfunny", "a UR-FUNNY release folder (its pickles)", extracts=("text",),
           marker="humor_label_sdk.pkl", command="urfunny", options=("text_model", "modalities", "text_order")),
    Format("mustard", "grcf.data.datasets.mustard", "MUStARD's sarcasm_data.json (split_indices.p beside it for 5-fold)",
           extracts=("text",), marker="sarcasm_data.json", reads_marker=True, suffixes=(".json",), command="mustard",
           options=("text_model", "split", "text_order")),
    Format("parquet", "grcf.data.store", "a grcf Parquet feature store", suffixes=(".parquet",), is_store=True),
)}
CHECKABLE = tuple(n for n in FORMATS if n != "embedded")  # what `grcf validate --kind` accepts


def get(name: str) -> Format:
    if name not in FORMATS:
        raise GrcfError(f"unknown dataset source {name!r}; expected one of {', '.join(FORMATS)}")
    return FORMATS[name]


def sniff(path) -> str | None:
    """The format of a file or folder, from its marker file, name or suffix (None: not a dataset)."""
    path = Path(path)
    if path.is_dir():
        for f in FORMATS.values():
            if f.marker and (path / f.marker).is_file():
                return f.name
        return None
    for f in FORMATS.values():
        if f.filename == path.name:
            return f.name
    for f in FORMATS.values():
        if path.suffix.lower() in f.suffixes:
            return f.name
    return None


def folder_markers() -> str:
    """The marker files, for messages ("label.csv (MMSA raw), ...")."""
    return ", ".join(f"{f.marker} ({f.name})" for f in FORMATS.values() if f.marker)


def requested_modalities(src, options: dict) -> list[str]:
    """`options["modalities"]` (default: all three), refused with a DataError if it names another."""
    modalities = list(options.get("modalities") or MODALITIES)
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise DataError(src, f"unknown modalities {unknown}; expected a subset of {list(MODALITIES)}")
    return modalities


def feature_options(params: dict, dataset: str) -> tuple[str, str | None, dict]:
    """(source format, source path, options) of one params.yaml dataset, feature settings merged in."""
    from grcf.config import dataset_config

    ds = dataset_config(params, dataset)
    options = {**params.get("features", {}), **{k: v for k, v in ds.items() if k not in ("source", "path")}}
    options.update(dataset=dataset, device=params.get("device", "auto"))
    return ds["source"], ds.get("path"), options


def source_files(kind: str, path, options: dict) -> list[str]:
    """The user's files a dataset is built from (none for the embedded generator)."""
    return [] if path is None else get(kind).source_files(path, options)


def build(kind: str, src, out, options: dict):
    """Build the feature store `out` from `src` of format `kind` (written atomically)."""
    if options.get("device", "auto") == "auto":  # resolved here, not in params, so a job's settings don't depend on the node
        from grcf.device import pick_device

        options = {**options, "device": str(pick_device("auto"))}
    fmt = get(kind)
    if kind == "embedded":
        return fmt.load().build(out, {**options.get("generator", {}), "dataset": options.get("dataset", "embedded")})
    if src is None:
        raise GrcfError(f"dataset source {kind!r} needs a `path`")
    return fmt.load().build(src, out, options)

