"""The features step through the workflow engines: shared MOSI raw data, a synthetic MMSA pickle."""

from __future__ import annotations

import subprocess

import pyarrow.parquet as pq
import pytest

from support.commands import dvc, snakemake
from support.mmsa import make_mmsa, write_pickle
from support.project import REPO, copy_project, edit_params

SHARED = REPO.parent / "shared" / "data" / "mosi"


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "label.csv").exists(), reason="../shared/data/mosi is absent (a fresh clone)")
def test_snakemake_builds_shared_mosi_features(tmp_path):
    project = copy_project(tmp_path / "project")
    edit_params(project, {"datasets.mosi.path": str(SHARED), "features.text.max_length": 32})
    snakemake(project, "--cores", "2", "features/mosi.parquet")
    table = pq.read_table(project / "features/mosi.parquet",
                          columns=["id", "has_media", "text_len", "audio_len", "vision_len"]).to_pandas()
    assert len(table) == 2197  # every labelled segment has text
    assert (table.text_len > 0).all()
    media = table[table.has_media]
    assert len(media) == 27
    assert (media.audio_len > 0).all() and (media.vision_len > 0).all()
    assert (table[~table.has_media][["audio_len", "vision_len"]] == 0).all().all()
    # (DVC runs the same command: the MMSA-pickle test below shows both engines write the same bytes)


def _pickle_project(tmp_path):
    src = write_pickle(tmp_path, make_mmsa(aligned=False))
    project = copy_project(tmp_path / "project")
    params = edit_params(project, {"run.datasets": ["embedded"]})
    params["datasets"]["synth"] = {"source": "mmsa_pickle", "path": str(src), "task": "regression", "metrics": "mosi"}
    params["run"]["datasets"] = ["synth"]
    import yaml

    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def _check_synth(path):
    t = pq.read_table(path, columns=["id", "split", "audio_len"]).to_pandas()
    assert sorted(t.split.unique()) == ["test", "train", "valid"] and len(t) == 12
    assert (t.audio_len > 0).all()


@pytest.mark.slow
def test_snakemake_and_dvc_build_features_from_an_mmsa_pickle(tmp_path):
    project = _pickle_project(tmp_path)
    snakemake(project, "--cores", "1", "features/synth.parquet")
    _check_synth(project / "features/synth.parquet")
    first = (project / "features/synth.parquet").read_bytes()

    (project / "features/synth.parquet").unlink()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    dvc(project, "init", "-q")
    dvc(project, "repro", "features@synth")
    _check_synth(project / "features/synth.parquet")
    # same command, same bytes: the two engines are interchangeable
    assert (project / "features/synth.parquet").read_bytes() == first
