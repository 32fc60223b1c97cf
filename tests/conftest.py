"""Fixtures and hooks of the suite: the offline model hub, a shrunk pipeline copy, xdist groups, Slurm.

Builders the tests share (pipeline copies, tool runs, small stores, a synthetic clip) live in
``tests/support/``; test modules import them from there, never from this file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grcf.pipeline.slurm_cluster import single_node_slurm, slurm_available
from support.bundles import text_bundle
from support.project import copy_project

# nothing in the suite may wait on (or reach) a model hub: every model is an offline one
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def small_project(tmp_path) -> Path:
    """A shrunk copy of the pipeline in a tmp dir (see support.project.SMALL); returns its Path."""
    return copy_project(tmp_path / "project")


# ------------------------------------------------------------------ pytest-xdist groups

# Modules whose tests start Slurm daemons: one worker runs them all, so one cluster at a time.
SLURM_MODULES = {"test_slurm_pipeline", "test_slurm_cluster", "test_slurm_check"}


@pytest.hookimpl(wrapper=True)  # the marks must exist before xdist's own hook turns them into groups
def pytest_collection_modifyitems(config, items):
    """`make test` runs `pytest -n 2 --dist loadgroup`: keep the tests of a module-scoped fixture
    on one worker (built once, not once per worker) and every Slurm test on one worker."""
    for item in items:
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        if module in SLURM_MODULES:
            item.add_marker(pytest.mark.xdist_group("slurm"))
            continue
        defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        if any(d.scope == "module" for fds in defs.values() for d in fds):
            item.add_marker(pytest.mark.xdist_group(module))
    return (yield)


# ------------------------------------------------------------------ Slurm


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real single-node Slurm (src/grcf/pipeline/slurm_cluster.py) for the session; skips when unavailable."""
    ok, why = slurm_available()
    if not ok:
        pytest.skip(why)
    with single_node_slurm(tmp_path_factory.mktemp("slurm"), partition="debug",
                           gpus=1, gpu_type="fake") as info:
        yield info


# module scope: the hook above keeps a module's tests on one worker, so a tiny bundle is trained once per module
@pytest.fixture(scope="module")
def text_bundle_dir(tmp_path_factory) -> Path:
    """The API and demo tests' text bundle: the shipped model, else a tiny one trained here (support.bundles)."""
    return text_bundle(tmp_path_factory)


@pytest.fixture(scope="module")
def text_model(text_bundle_dir):
    """`grcf.load_model` of `text_bundle_dir`."""
    from grcf import load_model

    return load_model(text_bundle_dir)
