"""The DVC side of the pipeline (dvc.yaml) on the shrunk embedded dataset, in a tmp git repo.

One full ``dvc repro``, then status/metrics/plots, a parameter change, the
engine interplay (Snakemake reruns stage 2 in the same dir, ``dvc commit -f``
records it), push / pull through a local remote, and a ``dvc exp run -S`` override.  The tests build on each
other in file order.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shlex
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

from support.commands import dry_run, dvc, run_cmd, snakemake
from support.project import SMALL, copy_project, edit_params, read_params, readme_commands

pytestmark = pytest.mark.slow

VARIANTS = tuple(SMALL[("run", "variants")])
SEEDS = tuple(SMALL[("run", "seeds")])
RUNS = [(v, s) for v in VARIANTS for s in SEEDS]
RUN_STAGES = ("train_stage1", "train_stage2", "evaluate")


def cached_outputs(project: Path) -> list[Path]:
    """The outputs DVC caches (cache: true): what push/pull moves."""
    return [project / "features" / "embedded.parquet"] + [
        project / "runs" / "default" / "embedded" / v / f"seed{s}" / name
        for v, s in RUNS for name in ("stage1.pt", "stage2.pt")]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def status(project: Path) -> dict:
    _, out = dvc(project, "status", "--json")
    return json.loads(out[out.index("{"):])


def stages_run(output: str) -> Counter:
    """Stages ``dvc repro`` ran (or would run, with --dry): Counter of stage base names."""
    return Counter(m.split("@")[0] for m in re.findall(r"^Running stage '([^']+)'", output, re.M))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A git + DVC repo holding the shrunk pipeline, reproduced once with ``dvc repro``."""
    root = tmp_path_factory.mktemp("dvc")
    project = copy_project(root / "project")
    git = lambda *a: run_cmd(["git", *a], project)  # noqa: E731
    git("init", "-q")
    git("config", "user.email", "grcf-tests@example.invalid")
    git("config", "user.name", "grcf tests")
    git("config", "commit.gpgsign", "false")
    dvc(project, "init", "-q")
    dvc(project, "config", "core.analytics", "false")
    dvc(project, "remote", "add", "-d", "local", root / "remote")
    git("add", "-A")
    git("commit", "-q", "-m", "pipeline")
    t0 = time.monotonic()
    _, out = dvc(project, "repro")
    print(f"\n[timing] full `dvc repro` (shrunk embedded, {len(VARIANTS)} variants x {len(SEEDS)} seeds, serial): "
          f"{time.monotonic() - t0:.1f} s")
    n = len(RUNS)
    assert stages_run(out) == Counter(check_params=1, validate=1, features=1, train_stage1=n, train_stage2=n,
                                      evaluate=n, summarize=1, report=1, export=1), out[-3000:]
    return project


def test_repro_outputs_and_clean_status(project):
    assert status(project) == {}
    for path in cached_outputs(project):
        assert path.is_file(), path
    for v, s in RUNS:
        metrics = json.loads((project / "runs/default/embedded" / v / f"seed{s}" / "metrics.json").read_text())
        assert {"test", "valid"} <= set(metrics)
    assert (project / "results/default/embedded/report.html").is_file()
    assert (project / "dvc.lock").is_file()


def test_metrics_show_lists_the_headline_summary(project):
    """DVC's metrics are the headline summary per dataset (a few columns in `dvc exp show`); a run's
    metrics.json is shown when named."""
    _, out = dvc(project, "metrics", "show", "--json")
    shown = json.loads(out[out.index("{"):])
    paths = set()

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k.endswith(".json"):
                    paths.add(k)
                walk(v)

    walk(shown)
    assert paths == {"results/default/embedded/summary.json"}, (sorted(paths), out[:2000])
    _, table = dvc(project, "metrics", "show", "--md")
    assert "grcf.Corr" in table or "grcf.MAE" in table, table[:3000]
    # the values themselves are there (a GRCF test Corr)
    _, table = dvc(project, "metrics", "show", "runs/default/embedded/grcf/seed0/metrics.json")
    assert "test.Corr" in table, table[:3000]


def test_plots_show_writes_html(project, tmp_path):
    out_dir = tmp_path / "plots"
    dvc(project, "plots", "show", "-o", out_dir)
    index = out_dir / "index.html"
    assert index.is_file()
    html = index.read_text()
    for name in ("stage1_log.csv", "stage2_log.csv", "predictions.csv"):
        assert name in html, name


def test_stage2_lr_change_is_seen_by_dvc(project):
    params = read_params(project)
    lr = params["stage2"]["lr"]
    edit_params(project, {"stage2.lr": lr * 4})
    n = len(RUNS)
    # DVC reports the stages whose own deps/params changed: stage 2 of every run ...
    # (and the params check, which reads the whole file)
    changed = status(project)
    assert Counter(name.split("@")[0] for name in changed) == Counter(check_params=1, train_stage2=n), changed
    for name, reasons in changed.items():
        assert "params.yaml" in json.dumps(reasons), reasons
    # ... and `repro` would rerun those, nothing upstream (plain --dry cannot know that stage 2's
    # outputs will change, so it lists stage 2 only; --force-downstream would force every stage
    # after the check; the real rerun of stage 2 and what follows: test_exp_show_lists_...)
    _, out = dvc(project, "repro", "--dry")
    assert stages_run(out) == Counter(check_params=1, train_stage2=n), out[-3000:]
    # back to what dvc.lock records (nothing was run)
    edit_params(project, {"stage2.lr": lr})
    assert status(project) == {}


def test_snakemake_run_then_dvc_commit(project):
    """Engine interplay: Snakemake reruns steps in the DVC repo, docs/dvc.md's `dvc commit -f` records them."""
    n = len(RUNS)
    run_dirs = [project / "runs/default/embedded" / v / f"seed{s}" for v, s in RUNS]
    produced = [d / name for d in run_dirs for name in ("metrics.json", "predictions.csv")]
    produced += [project / "results/default/embedded" / name
                 for name in ("summary.csv", "summary.md", "summary.json", "comparisons.csv")]
    by_dvc = {p: (p.stat().st_mtime_ns, sha256(p)) for p in produced}
    cached = {p: sha256(p) for p in cached_outputs(project)}
    # Snakemake has no metadata for the files DVC made; the DVC outputs' mtimes
    # are in DAG order, so it plans only what is forced (evaluate) and downstream
    expected = Counter(evaluate=n, summarize=1, report=1, export=1, all=1)
    assert dry_run(project, "--forcerun", "evaluate") == expected
    t0 = time.monotonic()
    snakemake(project, "--cores", "2", "--forcerun", "evaluate")
    print(f"\n[timing] Snakemake rerun of evaluate + summarize + report in the DVC repo: "
          f"{time.monotonic() - t0:.1f} s")
    # the same commands give the same files, whichever engine ran them
    for p, (mtime, digest) in by_dvc.items():
        assert p.stat().st_mtime_ns != mtime, f"{p} was not rewritten"
        assert sha256(p) == digest, f"{p}: Snakemake wrote different bytes than DVC"
    assert {p: sha256(p) for p in cached} == cached

    # whatever DVC now sees as stale is downstream of what Snakemake reran
    stale = Counter(name.split("@")[0] for name in status(project))
    assert set(stale) <= {"evaluate", "summarize", "report", "export"}, stale
    # the command docs/dvc.md gives for this situation
    commit = set(readme_commands("dvc commit", "docs/dvc.md"))
    assert len(commit) == 1, commit
    dvc(project, *commit.pop().split()[1:])
    assert status(project) == {}
    _, out = dvc(project, "repro")
    assert stages_run(out) == Counter(), out[-3000:]
    assert "didn't change, skipping" in out, out[-3000:]


def test_push_then_pull_restores_identical_files(project, tmp_path):
    dvc(project, "push")
    digests = {p: sha256(p) for p in cached_outputs(project)}
    for path in digests:
        path.unlink()
    shutil.rmtree(project / ".dvc" / "cache")
    assert status(project) != {}
    dvc(project, "pull")
    assert {p: sha256(p) for p in digests if p.is_file()} == digests
    assert status(project) == {}


def test_exp_run_set_param_overrides_a_setting(project):
    """DVC's way of an experiment override (`dvc exp run -S`), here for one run's stage 2."""
    lr = read_params(project)["stage2"]["lr"] / 8
    _, out = dvc(project, "exp", "run", "-S", f"stage2.lr={lr}", "evaluate@embedded-grcf-0")
    assert stages_run(out) == Counter(check_params=1, train_stage2=1, evaluate=1), out[-3000:]
    info = json.loads((project / "runs/default/embedded/grcf/seed0/run_info.json").read_text())
    assert info["params"]["stage2"]["lr"] == lr and info["params_file"] == "params.yaml"
    assert info["git"]["commit"], info["git"]  # run in the repository itself: provenance kept


def test_exp_show_lists_changed_params_and_headline_metrics(project):
    """`dvc exp show` after `dvc exp run -S`: the changed param and the headline metrics (a few
    columns), with values in the experiment's row (its commit holds summary.json)."""
    lr = read_params(project)["stage2"]["lr"] * 2
    _, out = dvc(project, "exp", "run", "-n", "lr-x2", "-S", f"stage2.lr={lr}")
    n = len(RUNS)
    assert stages_run(out) == Counter(check_params=1, train_stage2=n, evaluate=n, summarize=1, report=1, export=1), out[-3000:]
    # docs/dvc.md's command: the changed params and the headline metrics, the deps' hashes dropped
    shown = [c for c in readme_commands("dvc exp show", "docs/dvc.md") if "--drop" in c]
    assert shown, "docs/dvc.md gives no `dvc exp show ... --drop ...` command"
    cmd = shlex.split(shown[0].replace("--md", "--csv"))
    _, out = dvc(project, *cmd[1:])
    header, *rows = [r for r in csv.reader(io.StringIO(out[out.index("Experiment"):])) if r]
    assert len(header) <= 25 and not [c for c in header if "/" in c], header  # it was 278 columns
    assert "stage2.lr" in header, header
    metrics = [c for c in header if "." in c and c.split(".")[0] in VARIANTS]
    assert metrics, header
    exp = next(r for r in rows if r[header.index("Experiment")] == "lr-x2")
    values = [exp[header.index(c)] for c in metrics]
    assert all(v not in ("", "!", "-") for v in values), dict(zip(metrics, values))
    assert float(exp[header.index("stage2.lr")]) == lr


def test_params_typo_stops_dvc_repro_before_any_output_is_removed(project):
    """A typo in params.yaml fails the first stage (check_params): every earlier output is still there."""
    outputs = [p for d in ("runs", "results", "models", "features") for p in (project / d).rglob("*") if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in outputs}
    assert any(p.name == "stage1_log.csv" for p in before)
    params = project / "params.yaml"
    text = params.read_text()
    params.write_text(text.replace("\nstage1:\n", "\nstage1:\n  grad_clp: 0.5\n", 1))
    assert params.read_text() != text
    try:
        rc, out = dvc(project, "repro", check=False)
        assert rc != 0
        assert "stage1.grad_clp is not a setting; did you mean stage1.grad_clip?" in out, out[-3000:]
        assert stages_run(out) == Counter(check_params=1), out[-3000:]
        missing = [p for p in before if not p.is_file()]
        assert not missing, missing
        assert {p: p.stat().st_mtime_ns for p in before} == before
    finally:
        params.write_text(text)
