"""The `grcf` command: one subcommand per pipeline step; rules and stages only call these."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from grcf.errors import GrcfError


SERVED_ENTRY = f"{__name__}:run"  # what `grcf server` runs for each job (it never imports this module)


def _params(args):
    from grcf.config import load_params

    return load_params(args.params)


def _add_params(p):
    p.add_argument("--params", default="params.yaml", help="the pipeline configuration (default: params.yaml)")


def _add_run_command(sub, name: str, help: str, func, **paths):
    """A subcommand of one run (dataset x variant x seed): the shared flags, then its own
    required path flags (`out_dir="..."` adds `--out-dir`)."""
    p = sub.add_parser(name, help=help)
    _add_params(p)
    p.add_argument("--dataset", required=True, help="a dataset name from params.yaml `datasets`")
    p.add_argument("--variant", required=True, help="a variant name from params.yaml `variants`")
    p.add_argument("--seed", type=int, required=True, help="the run's seed (initial weights, batch order)")
    p.add_argument("--features", required=True, type=Path, help="the dataset's feature store (Parquet)")
    for dest, text in paths.items():
        p.add_argument("--" + dest.replace("_", "-"), required=True, type=Path, help=text)
    p.set_defaults(func=func)
    return p


# ---------------------------------------------------------------- features


def cmd_features_build(args):
    from grcf.data import datasets

    kind, src, options = datasets.feature_options(_params(args), args.dataset)
    datasets.build(kind, src, args.out, options)
    print(f"wrote {args.out}")


def cmd_features_embedded(args):
    from grcf.data import datasets

    datasets.build("embedded", None, args.out, _params(args)["datasets"]["embedded"])
    print(f"wrote {args.out}")


def _cmd_features_kind(kind):
    def run(args):
        options = {}
        if Path(args.params).exists():
            options.update(_params(args).get("features", {}))
        for key in ("dataset", "split", "text_model", "text_order", "workers", "on_error", "fps"):
            value = getattr(args, key, None)
            if value is None:
                continue
            if key == "text_model":
                options["text"] = {**options.get("text", {}), "model": value}
            elif key == "fps":
                options["vision"] = {**options.get("vision", {}), "fps": value}
            else:
                options[key] = value
        if getattr(args, "modalities", None):
            options["modalities"] = args.modalities.split(",")
        from grcf.data import datasets

        datasets.build(kind, getattr(args, "src", None), args.out, options)
        print(f"wrote {args.out}")

    return run


# ---------------------------------------------------------------- training and evaluation


def _setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _run_cfg(args) -> dict:
    from grcf.config import resolve_run

    return resolve_run(_params(args), args.dataset, args.variant)


def _print_best(stage: int, args, info: dict) -> None:
    print(f"stage {stage} {args.dataset}/{args.variant}/seed{args.seed}: best epoch {info['best_epoch']} "
          f"({info['select']}={info['best_score']})")


def cmd_train_stage1(args):
    from grcf.training.train import train_stage1

    _print_best(1, args, train_stage1(_run_cfg(args), args.features, args.out, args.log, args.seed))


def cmd_train_stage2(args):
    from grcf.training.train import train_stage2

    _print_best(2, args, train_stage2(_run_cfg(args), args.features, args.init, args.out, args.log, args.seed))


def cmd_evaluate(args):
    from grcf.training.evaluate import evaluate_run

    result = evaluate_run(_run_cfg(args), args.features, args.model, args.out_dir, args.seed, params_file=args.params,
                          test_features=args.test_features)
    print(" ".join(f"{k}={v:.4f}" for k, v in result["test"].items()))


def cmd_summarize(args):
    from grcf.results.summarize import summarize

    params = _params(args)
    summarize(args.runs, args.dataset, params["run"]["variants"], params["run"]["seeds"], args.out_dir)
    print((Path(args.out_dir) / "summary.md").read_text())


def cmd_summarize_cv(args):
    from grcf.results.summarize import summarize_cv

    params = _params(args)
    if args.cv not in params.get("cv", {}):
        raise GrcfError(f"{args.params}: no cross-validation group {args.cv!r} under `cv`")
    summarize_cv(args.runs, params["cv"][args.cv], params["run"]["variants"], params["run"]["seeds"], args.out_dir, args.cv)
    print((Path(args.out_dir) / "cv_summary.md").read_text())


def cmd_report(args):
    from grcf.results.report import write_report

    params = _params(args)
    write_report(args.runs, args.dataset, params["run"]["variants"], params["run"]["seeds"], args.summary_dir, args.out)
    print(f"wrote {args.out}")


def cmd_sweep(args):
    from grcf.pipeline.sweep import run_sweep

    root = Path(args.params).resolve().parent
    result = run_sweep(root, _params(args), args.workdir, cores=args.cores)
    print(result["ranking"].to_string(index=False))
    print("\nbest (add to params.yaml to keep it):\n" + result["variant_yaml"])
    print(result["summary"])


def cmd_check_params(args):
    from grcf.atomic import write_text

    _params(args)  # loads and validates; a typo is a GrcfError naming the key and the closest setting
    if args.out:  # a stamp of constant content: stages after it rerun for their own params, not for this
        write_text(args.out, "params checked\n")
    print(f"{args.params}: valid")


def cmd_validate(args):
    from grcf.data.validate import main as validate_main

    return validate_main(args)


# ---------------------------------------------------------------- a throw-away local Slurm


def cmd_slurm_up(args):
    from grcf.pipeline.slurm_cluster import SlurmStartError, export_lines, start_cluster

    try:
        info = start_cluster(args.state, partition=args.partition, gpus=args.gpus, gpu_type=args.gpu_type)
    except SlurmStartError as e:
        raise GrcfError(f"could not start the local Slurm: {e}") from None
    print(f"grcf: single-node Slurm up in {info.startup_seconds:.1f} s: partition {info.partition}, node "
          f"{info.nodename} ({info.cpus} CPUs, {info.real_memory_mb} MB, {info.gpus} fake GPU(s)); state in {info.root}.\n"
          f"grcf: the lines on stdout point Slurm's commands at it (`eval \"$(grcf slurm up)\"` runs them; "
          f"another shell: eval \"$(grcf slurm env --state {args.state})\"); stop it with: grcf slurm down --state {args.state}",
          file=sys.stderr)
    print(export_lines(info), end="")


def cmd_slurm_env(args):
    from grcf.pipeline.slurm_cluster import state_exports

    print(state_exports(args.state), end="")


def cmd_slurm_down(args):
    from grcf.pipeline.slurm_cluster import stop_cluster

    if not stop_cluster(args.state):
        raise GrcfError(f"no local Slurm is running from {args.state} (no {Path(args.state) / 'cluster.json'})")
    print(f"grcf: stopped the local Slurm of {args.state}", file=sys.stderr)


def cmd_server_start(args):
    from grcf.pipeline.server import start

    pid = start(args.socket, entry=SERVED_ENTRY)
    sock = args.socket.absolute()
    print(f"grcf: server up (pid {pid}, log {sock.with_suffix('.log')}); `grcf` commands run there while "
          f"GRCF_SERVER is set (`eval \"$(grcf server start)\"` sets it); stop it with: grcf server stop --socket {sock}",
          file=sys.stderr)
    print(f"export GRCF_SERVER={sock}")


def cmd_server_stop(args):
    from grcf.pipeline.server import stop

    if not stop(args.socket):
        raise GrcfError(f"no server on {args.socket.absolute()}")
    print(f"grcf: stopped the server on {args.socket.absolute()}", file=sys.stderr)


def cmd_server_run(args):
    from grcf.pipeline.server import Server

    Server(args.socket, SERVED_ENTRY).serve()


# ---------------------------------------------------------------- parser


def _command_group(sub, name, help_, commands, option, **option_kw) -> dict:
    """`grcf <name> <command>` for each (command, func, help), all sharing one Path option; the subparsers by name."""
    group = sub.add_parser(name, help=help_).add_subparsers(dest=f"{name}_command", required=True)
    parsers = {}
    for command, func, command_help in commands:
        q = parsers[command] = group.add_parser(command, help=command_help)
        q.add_argument(option, type=Path, **option_kw)
        q.set_defaults(func=func)
    return parsers


def build_parser() -> argparse.ArgumentParser:
    from grcf.data.datasets import CHECKABLE, FORMATS

    ap = argparse.ArgumentParser(prog="grcf", description=__doc__)
    ap.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    sub = ap.add_subparsers(dest="command", required=True)

    f = sub.add_parser("features", help="build a dataset's Parquet feature store")
    fsub = f.add_subparsers(dest="kind", required=True)
    p = fsub.add_parser("build", help="build the store of a dataset named in params.yaml (what the pipeline runs)")
    _add_params(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_features_build)
    p = fsub.add_parser("embedded", help="write the embedded synthetic dataset")
    p.add_argument("out", type=Path)
    _add_params(p)
    p.set_defaults(func=cmd_features_embedded)
    for fmt in (f for f in FORMATS.values() if f.command):
        src_help, extra = fmt.describes, fmt.options
        p = fsub.add_parser(fmt.command, help=f"{src_help} -> Parquet")
        p.add_argument("src", type=Path, help=src_help)
        p.add_argument("out", type=Path, help="the Parquet file to write")
        _add_params(p)
        p.add_argument("--dataset", help="dataset name recorded in the metadata")
        if "text_model" in extra:
            p.add_argument("--text-model", dest="text_model", help="HF model name or local path ('default': offline MiniLM)")
        if "workers" in extra:
            p.add_argument("--workers", type=int, help="parallel clip workers")
            p.add_argument("--on-error", dest="on_error", choices=["fail", "skip"], help="an unreadable clip fails the step or is skipped")
            p.add_argument("--fps", type=float, help="video frames per second to analyse")
        if "modalities" in extra:
            p.add_argument("--modalities", help="comma-separated subset of text,audio,vision")
        if "split" in extra:
            p.add_argument("--split", help="speaker_independent or fold0..fold4")
        if "text_order" in extra:
            p.add_argument("--text-order", dest="text_order", choices=["utterance_first", "context_first"],
                           help="target line first, so truncation cuts context only (default), or context first")
        p.set_defaults(func=_cmd_features_kind(fmt.name))

    p = sub.add_parser("validate", help="check a dataset or feature store before any training")
    p.add_argument("path", type=Path, nargs="?", help="; ".join(FORMATS[k].describes for k in CHECKABLE))
    p.add_argument("--kind", choices=CHECKABLE, help="default: guessed")
    p.add_argument("--params", default=None, help="params.yaml; with --dataset, validate that dataset's source")
    p.add_argument("--dataset", default=None)
    p.add_argument("--out", type=Path, default=None, help="also write the report as JSON here (a pipeline stamp)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("check-params", help="check a params file against the schema (DVC's first stage)")
    _add_params(p)
    p.add_argument("--out", type=Path, default=None, help="a stamp to write when valid")
    p.set_defaults(func=cmd_check_params)

    p = sub.add_parser("sweep", help="tune a variant on valid (params.yaml `sweep`), then run the best on the seeds")
    _add_params(p)
    p.add_argument("--workdir", required=True, type=Path, help="the sweep's workspace (a copy of the workflow)")
    p.add_argument("--cores", type=int, default=2)
    p.set_defaults(func=cmd_sweep)

    _add_run_command(sub, "train-stage1", "stage 1: group-wise ranking; best epoch by the validation ranking score",
                     cmd_train_stage1, out="stage-1 checkpoint (.pt)", log="per-epoch log (CSV)")
    _add_run_command(sub, "train-stage2", "stage 2: calibration from the stage-1 checkpoint; best epoch by validation MAE",
                     cmd_train_stage2, init="the stage-1 checkpoint", out="stage-2 checkpoint (.pt)", log="per-epoch log (CSV)")
    p = _add_run_command(sub, "evaluate", "metrics.json (test, valid beside it), predictions.csv, run_info.json",
                         cmd_evaluate, model="the stage-2 checkpoint", out_dir="the run's folder for the three files")
    p.add_argument("--test-features", type=Path, default=None,
                   help="transfer: take the test fold from this store (another dataset, same encoder)")

    p = sub.add_parser("summarize", help="mean ± std over seeds and paired comparisons (CSV, Markdown, LaTeX, JSON)")
    _add_params(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--runs", default="runs", type=Path, help="root of runs/<dataset>/<variant>/seed<k>")
    p.add_argument("--out-dir", required=True, type=Path)
    p.set_defaults(func=cmd_summarize)

    p = sub.add_parser("summarize-cv", help="mean ± std over the folds of a cross-validation group (params.yaml `cv`)")
    _add_params(p)
    p.add_argument("--cv", required=True, help="a group name under `cv` in params.yaml")
    p.add_argument("--runs", default="runs", type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.set_defaults(func=cmd_summarize_cv)

    p = sub.add_parser("report", help="a self-contained HTML report with the table and plots")
    _add_params(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--runs", default="runs", type=Path)
    p.add_argument("--summary-dir", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_report)

    up = _command_group(
        sub, "slurm", "a throw-away single-node Slurm on this machine, to try `--profile slurm`",
        [("up", cmd_slurm_up, "start munge, slurmctld and slurmd; print the environment to export"),
         ("env", cmd_slurm_env, "print the environment of a running one again"),
         ("down", cmd_slurm_down, "stop it (cancels its jobs)")],
        "--state", default=".slurm-local", help="the folder holding everything it writes (default: .slurm-local)")["up"]
    up.add_argument("--partition", default="debug")
    up.add_argument("--gpus", type=int, default=1, help="fake GPUs on the node (gres gpu:<type>:N; 0: none)")
    up.add_argument("--gpu-type", dest="gpu_type", default="fake")

    _command_group(
        sub, "server", "a warm process that runs grcf commands without re-importing torch (one machine)",
        [("start", cmd_server_start, "start it in the background; print `export GRCF_SERVER=...`"),
         ("stop", cmd_server_stop, "stop it"),
         ("run", cmd_server_run, "serve in the foreground")],
        "--socket", default=".grcf-server.sock", help="its Unix socket (default: .grcf-server.sock)")

    from grcf.cli_predict import add_parsers as add_predict_parsers

    add_predict_parsers(sub)  # export, predict
    return ap


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if os.environ.get("GRCF_SERVER") and argv[:1] != ["server"]:
        from grcf.pipeline.client import run_on_server

        rc = run_on_server(os.environ["GRCF_SERVER"], argv)
        if rc is not None:
            return rc
    return run(argv)


def run(argv) -> int:
    """The command itself, in this process (a `grcf server` child calls this)."""
    args = build_parser().parse_args(argv)
    _setup_logging()
    try:
        rc = args.func(args)
    except GrcfError as e:
        if args.verbose:
            raise
        print(f"grcf: error: {e}", file=sys.stderr)
        return 1
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
