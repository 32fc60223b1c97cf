"""What a user watching the console sees: a missing `grcf` stops the run with one line, a long
job's progress reaches the console while its log keeps everything, a raw dataset is one short
input (a manifest of its files), broken YAML names its file and line, and
`features.on_error: skip` lets an unreadable clip through validate as a warning."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from grcf.pipeline import preflight, sources
from grcf.pipeline.progress import Progress
from support.commands import dry_run, snakemake, tool_env
from support.project import REPO

BIN = Path(sys.executable).parent
MOSEI = REPO.parent / "shared" / "data" / "mosei"


# ---------------------------------------------------------------- grcf on PATH


def test_grcf_missing_from_path_is_one_line_naming_the_fix(tmp_path):
    problem = preflight.grcf_on_path(path=str(tmp_path))
    assert problem and "\n" not in problem
    assert "make run" in problem and "source .venv/bin/activate" in problem
    other = tmp_path / "bin"
    other.mkdir()
    (other / "grcf").write_text("#!/bin/sh\n")
    (other / "grcf").chmod(0o755)
    assert "is not this environment's" in preflight.grcf_on_path(path=str(other))
    assert preflight.grcf_on_path(path=str(BIN)) is None


@pytest.mark.slow
def test_snakemake_without_grcf_on_path_stops_before_any_job(small_project):
    env = {**tool_env(), "PATH": "/usr/bin:/bin"}  # snakemake by its full path, grcf not findable
    p = subprocess.run([str(BIN / "snakemake"), "--cores", "1", "features/embedded.validation.json"],
                       cwd=small_project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=300)
    assert p.returncode != 0
    lines = [line for line in p.stdout.splitlines() if line.startswith("grcf:")]
    assert len(lines) == 1 and "source .venv/bin/activate" in lines[0], p.stdout[-2000:]
    assert "Traceback" not in p.stdout and "exit status 127" not in p.stdout, p.stdout[-2000:]
    assert not (small_project / "features" / "embedded.validation.json").exists()
    assert not (small_project / "logs" / "validate").exists()  # no job started


def test_makefile_shows_failed_logs_and_checks_the_experiment_file_first():
    make = (REPO / "Makefile").read_text()
    assert "--show-failed-logs" in make
    assert "python -m grcf.config params.yaml $(EXPERIMENT)" in make
    assert "grcf.pipeline.preflight tables $(EXPERIMENT)" in make and "cat results/" not in make


# ---------------------------------------------------------------- progress on the console


def test_progress_lines_are_short_and_throttled():
    now = [0.0]
    shown = []
    p = Progress("features mosi_av", shown.append, every=20, clock=lambda: now[0])
    bar = "clips: {pct:3d}%|####      | {n}/360 [00:{s:02d}<01:30,  2.30clip/s]"
    for n in range(0, 361, 12):
        now[0] = n / 4  # 90 s for the whole bar
        p.feed(bar.format(pct=n * 100 // 360, n=n, s=int(n / 4) % 60) + "\r")
    p.feed("wrote features/mosi_av.parquet\n")
    p.close()
    assert shown[0] == "features mosi_av: clips 0/360 (0%), 00:00 elapsed, ~01:30 left"
    assert shown[-1].startswith("features mosi_av: clips 360/360 (100%)") and "left" not in shown[-1]
    assert 4 <= len(shown) <= 7, shown  # a line per 20 s of 90 s, plus start and end


def test_progress_filter_keeps_the_whole_log_and_the_exit_status(tmp_path):
    log = tmp_path / "logs" / "job.log"
    script = ("printf 'warming up\\nclips:  50%%|#####     | 1/2 [00:01<00:01,  1.0clip/s]\\r"
              "clips: 100%%|##########| 2/2 [00:02<00:00,  1.0clip/s]\\nboom\\n' >&2; exit 3")
    cmd = f"set -o pipefail; ( {script} ) 2>&1 | {sys.executable} -m grcf.pipeline.progress {log} --label job"
    p = subprocess.run(["bash", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.returncode == 3
    assert p.stderr.splitlines() == ["job: clips 1/2 (50%), 00:01 elapsed, ~00:01 left", "job: clips 2/2 (100%), 00:02 elapsed"]
    assert "warming up" in log.read_text() and "boom" in log.read_text()


# ---------------------------------------------------------------- the sources manifest


def test_manifest_changes_only_with_file_content(tmp_path):
    a, b = tmp_path / "label.csv", tmp_path / "clip.mp4"
    a.write_text("id,label\n1,0.5\n")
    b.write_bytes(b"\0" * 100)
    m = sources.refresh(tmp_path / "m.sha256", [a, b, tmp_path / "gone.mp4"])
    lines = m.read_text().splitlines()
    assert len(lines) == 3 and lines[2] == f"missing  -  {tmp_path / 'gone.mp4'}"
    assert lines[0].split()[1:] == ["15", str(a)]
    stamp = m.stat().st_mtime_ns
    time.sleep(0.01)
    os.utime(a)  # touched, same bytes
    b.write_bytes(b"\0" * 100)  # rewritten, same bytes
    sources.refresh(m, [a, b, tmp_path / "gone.mp4"])
    assert m.stat().st_mtime_ns == stamp
    a.write_text("id,label\n1,0.7\n")
    sources.refresh(m, [a, b, tmp_path / "gone.mp4"])
    assert m.stat().st_mtime_ns != stamp and m.read_text() != "\n".join(lines) + "\n"


def _raw_folder(root: Path, zero_byte=True) -> Path:
    rows = [("v1", "1", "a fine movie", 1.0, "train"), ("v1", "2", "dull and long", -1.0, "train"),
            ("v2", "1", "not bad at all", 0.5, "valid"), ("v3", "1", "terrible plot", -2.0, "test")]
    root.mkdir(parents=True)
    with open(root / "label.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "clip_id", "text", "label", "annotation", "mode"])
        w.writerows([(*r[:4], "x", r[4]) for r in rows])
    (root / "Raw" / "v1").mkdir(parents=True)
    if zero_byte:
        (root / "Raw" / "v1" / "1.mp4").write_bytes(b"")
    return root


@pytest.mark.slow
def test_raw_dataset_is_one_manifest_input(small_project, tmp_path):
    """A failing validate/features job prints its inputs: one manifest path, not one per clip."""
    root = _raw_folder(tmp_path / "raw")
    params_path = small_project / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["datasets"]["mini"] = {"source": "mmsa_raw", "path": str(root), "task": "regression",
                                  "metrics": "mosi", "modalities": ["text", "audio"]}
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    _, out = snakemake(small_project, "-n", "features/mini.parquet")
    inputs = [line.split(":", 1)[1].split(",") for line in out.splitlines() if line.strip().startswith("input:")]
    assert inputs and all(len(i) <= 2 for i in inputs), inputs
    assert any(".grcf/sources/mini.sha256" in x for i in inputs for x in i), inputs
    manifest = (small_project / ".grcf/sources/mini.sha256").read_text().splitlines()
    assert [line.split()[-1] for line in manifest] == [str(root / "label.csv"), str(root / "Raw/v1/1.mp4")]
    assert dry_run(small_project, "features/mini.parquet")["features"] == 1


# ---------------------------------------------------------------- YAML errors


@pytest.mark.slow
def test_broken_params_yaml_names_file_and_line(small_project):
    params = small_project / "params.yaml"
    params.write_text(params.read_text().replace("run:\n", "run:\n  datasets: [embedded\n", 1))
    rc, out = snakemake(small_project, "-n", check=False)
    assert rc != 0
    assert "params.yaml:" in out and "not valid YAML" in out, out[-2000:]
    assert "Config file is not valid JSON or YAML" not in out


def test_broken_experiment_file_names_file_and_line(tmp_path):
    bad = tmp_path / "experiments" / "x.yaml"
    bad.parent.mkdir()
    bad.write_text("experiment: x\nrun:\n  datasets: [mosi_text\n  seeds: [0]\n")
    p = subprocess.run([sys.executable, "-m", "grcf.config", str(REPO / "params.yaml"), "experiments/x.yaml"],
                       cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.returncode != 0
    assert p.stderr.startswith("grcf: experiments/x.yaml:4:") and "line 3" in p.stderr, p.stderr


# ---------------------------------------------------------------- on_error and validate


@pytest.mark.parametrize("on_error, rc, severity", [("skip", 0, "WARNING"), ("fail", 1, "ERROR")])
def test_validate_follows_features_on_error_for_a_zero_byte_clip(tmp_path, on_error, rc, severity):
    root = _raw_folder(tmp_path / "raw")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"]["mini"] = {"source": "mmsa_raw", "path": str(root), "task": "regression", "metrics": "mosi"}
    params["features"]["on_error"] = on_error
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    p = subprocess.run([str(BIN / "grcf"), "validate", "--params", "params.yaml", "--dataset", "mini",
                        "--out", "v.json"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, env=tool_env())
    assert p.returncode == rc, p.stdout
    line = next(x for x in p.stdout.splitlines() if "zero-byte" in x)
    assert line.startswith(f"{severity} ") and "1.mp4" in line, p.stdout


@pytest.mark.shared_data
@pytest.mark.skipif(not (MOSEI / "label.csv").exists(), reason="../shared/data/mosei is absent (a fresh clone)")
def test_mosei_text_validates(tmp_path):
    p = subprocess.run([str(BIN / "grcf"), "validate", "--params", str(REPO / "params.yaml"), "--dataset", "mosei_text"],
                       cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=tool_env())
    assert p.returncode == 0 and "0 error(s)" in p.stdout, p.stdout[-2000:]
