"""grcf.pipeline.codedeps: the modules each step runs (from the imports) and their code fingerprint. Fast;
the Snakemake side (what `snakemake -n` plans after an edit) is in test_pipeline_snakemake.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grcf.pipeline import codedeps

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def src(tmp_path) -> Path:
    """A copy of src/grcf to edit."""
    dest = tmp_path / "src" / "grcf"
    shutil.copytree(REPO / "src" / "grcf", dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def names(paths) -> set[str]:
    return {p.split("src/grcf/", 1)[1] for p in paths}


def test_steps_depend_on_what_they_import(src):
    stage1 = names(codedeps.modules("train_stage1", src=src))
    assert {"cli.py", "config.py", "training/train.py", "training/losses.py", "training/model.py", "data/store.py", "training/metrics.py"} <= stage1
    assert "data/extractors/text.py" in stage1  # a function-level import (text-encoder fine-tuning)
    assert not stage1 & {"results/report.py", "results/summarize.py", "training/evaluate.py", "data/validate.py", "data/datasets/embedded.py"}
    assert "results/summarize.py" in names(codedeps.modules("report", src=src))
    summarize = names(codedeps.modules("summarize", src=src))
    assert "results/summarize.py" in summarize and "results/report.py" not in summarize and "training/losses.py" not in summarize


@pytest.mark.parametrize("source, modalities, audio", [
    ("mmsa_raw", None, True),                 # CMU-MOSI raw clips, every modality
    ("mmsa_raw", ["text", "audio"], True),
    ("mmsa_raw", ["text"], False),            # mosi_text
    ("embedded", None, False),                # the generator extracts nothing
    ("mmsa_pickle", None, False),             # stored arrays
    ("mustard", None, False),
])
def test_features_depend_on_source_and_modalities(src, source, modalities, audio):
    for step in ("validate", "features"):
        deps = names(codedeps.modules(step, source, modalities, src=src))
        assert ("data/extractors/audio.py" in deps) == audio, (step, source, modalities, sorted(deps))
        own = codedeps.FORMATS[source]
        as_path = lambda module: module.removeprefix("grcf.").replace(".", "/") + ".py"  # noqa: E731
        formats = {as_path(m) for m in codedeps.FORMATS.values() if ".datasets." in m}  # not shared helpers (text_order, store)
        assert {as_path(own)} == deps & formats
        assert "training/losses.py" not in deps and "training/train.py" not in deps
    # without a source (DVC's foreach stage): every format and extractor
    assert {"data/extractors/audio.py", "data/datasets/mustard.py", "data/datasets/embedded.py"} <= names(codedeps.modules("features", src=src))


def test_fingerprint_ignores_comments_docstrings_and_layout(src):
    files = codedeps.modules("train_stage1", src=src)
    before = codedeps.fingerprint(files)
    losses = src / "training/losses.py"
    text = losses.read_text()
    doc = text.index('"""', text.index("def ")) + 3  # inside the first function's docstring
    edited = text[:doc] + "Reworded. " + text[doc:]
    edited = edited.replace("\n\n\ndef ", "\n\n\n# a comment\ndef ", 1).replace(" = ", "  =  ", 3)
    assert edited != text
    losses.write_text(edited)
    assert codedeps.fingerprint(files) == before
    losses.write_text(text.replace("import torch\n", "import torch\nCHANGED = 1\n", 1))
    assert codedeps.fingerprint(files) != before


def test_dvc_deps_follow_the_layers(src):
    """DVC's stages depend on sub-packages (src/grcf/training, src/grcf/data) and base modules, not on a
    list of module files; every module a step runs is inside one of them."""
    stage1 = codedeps.modules("train_stage1", src=src)
    grain = codedeps.packages(stage1)
    assert {f"{src}/training", f"{src}/data", f"{src}/config.py"} <= set(grain)
    assert len(grain) < len(stage1) and not [p for p in grain if p.count("/") > str(src).count("/") + 1]
    assert all(codedeps.covers(grain, m) for m in stage1)
    assert not codedeps.covers(grain, f"{src}/results/summarize.py")
    summarize = codedeps.packages(codedeps.modules("summarize", src=src))
    assert f"{src}/results" in summarize and f"{src}/use" not in summarize


def test_the_api_front_door_is_no_steps_code(src):
    """grcf/__init__.py's load_model imports grcf.use lazily for Python users; no pipeline step runs it."""
    assert "grcf.use" in (src / "__init__.py").read_text()
    for step in ("validate", "features", "train_stage1", "train_stage2", "evaluate", "summarize", "report"):
        assert not any("/use/" in m for m in codedeps.modules(step, src=src)), step
