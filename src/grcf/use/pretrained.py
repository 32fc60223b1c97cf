"""The shipped model (`snakemake pretrained`, `grcf pretrained`): a bundle from `grcf export`, scored on
the test splits of datasets it never saw, with a model card for people who did not train it.

The bundle is an ordinary one (load_bundle reads it); `metrics.json` gains a `transfer` section
({dataset: {"test": metrics}}) and README.md is the shipped card.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from grcf.errors import GrcfError

# what the card says of the datasets it may name (the shared data's README and the datasets' terms)
DATA = {
    "mosei_text": ("CMU-MOSEI", "text and sentiment labels of 22,788 YouTube opinion segments, the"
                   " CMU-MultimodalSDK standard folds (train 16,274 / valid 1,861 / test 4,653)"),
    "mosi_text": ("CMU-MOSI", "text and sentiment labels of 2,197 YouTube opinion segments, the standard"
                  " folds (train 1,283 / valid 229 / test 685)"),
}


def write_pretrained(run_root, out, *, features, params_file, transfer: dict | None = None) -> Path:
    """Export the best-validation seed of `run_root` to `out`, score it on each transfer store's
    test split and write the shipped card."""
    from grcf.config import load_params
    from grcf.use.bundle import export_bundle, load_bundle
    from grcf.use.predict import Options, predict

    params = load_params(params_file)
    out = export_bundle(run_root, out, seeds=params["run"]["seeds"], features=features,
                        predict_settings=params.get("predict"))
    bundle = load_bundle(out)
    scores = {}
    for name, store in (transfer or {}).items():
        result = predict(bundle, [Path(store)], Options(output=None, progress=False))
        test = result["metrics"].get(str(store), {}).get("test")
        if not test:
            raise GrcfError(f"{store}: no labelled test split to score the model on")
        n = int(((result["rows"]["split"] == "test")).sum())
        scores[name] = {"test": test, "n_test": n}
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["transfer"] = scores
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    digest = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    (out / "README.md").write_text(card(bundle.config, metrics, digest))
    return out


def _row(name, split, m, keys, note=""):
    return f"| {name} {split}{note} | " + " | ".join(f"{m[k]:.3f}" if k in m else "" for k in keys) + " |"


def card(config: dict, metrics: dict, sha256: str) -> str:
    ds = config["dataset"]
    title, about = DATA.get(ds, (ds, "see params.yaml"))
    text = (config["features"].get("text") or {})
    keys = [k for k in ("MAE", "Corr", "Has0_acc_2", "Non0_acc_2", "Non0_F1_score", "Mult_acc_7") if k in (metrics.get("test") or {})]
    keys = keys or sorted(metrics.get("test") or {})
    lines = [
        f"# grcf shipped model: GRCF text model trained on {title}",
        "",
        "The model `grcf predict` (without a bundle), `grcf.load_model()` and `grcf demo` use. It scores the"
        " sentiment of English text on CMU-MOSI's scale, -3 (very negative) to +3 (very positive); for a clip,"
        " the text is its transcript (a sidecar .txt/.srt, or offline speech recognition with Whisper tiny.en).",
        "",
        "## What it is",
        "",
        f"- Architecture: grcf's fusion model on the text modality only ({config['model_cfg'].get('hidden')} hidden"
        f" units), over frozen sentence-encoder features ({text.get('producer') or text.get('model')},"
        f" max {text.get('max_length')} tokens); audio and video are not used.",
        "- Training: GRCF (stage 1: group-wise ranking; stage 2: calibration to the label scale), the"
        f" `{config['variant']}` variant of params.yaml.",
        f"- Data: {title}, {about}. Trained on the train fold; the seed (of"
        f" {len(config['selection'].get('scores_by_seed') or {1: 0})}) and each stage's epoch were chosen on the"
        " valid fold; the test folds were used only for the numbers below.",
        f"- Files: model.safetensors (sha256 {sha256[:16]}...), config.json (architecture and feature"
        " settings), metrics.json; loaded without unpickling.",
        "",
        "## Test metrics",
        "",
        "| data | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
        _row(title, "valid", metrics.get("valid") or {}, keys, " (model selection)"),
        _row(title, "test", metrics.get("test") or {}, keys),
    ]
    for name, m in (metrics.get("transfer") or {}).items():
        lines.append(_row(DATA.get(name, (name,))[0], "test", m["test"], keys, f" ({m['n_test']} segments, never seen)"))
    lines += [
        "",
        "MMSA's metrics: MAE on the -3..3 scale (lower is better); Corr: Pearson correlation; Has0_acc_2:"
        " negative vs non-negative; Non0_acc_2 / Non0_F1_score: negative vs positive without the neutral"
        " segments; Mult_acc_7: the 7-class label (rounded score). Reproduce with `snakemake pretrained --cores 2` (the numbers repeat on the"
        " same machine; another machine may differ in the third decimal).",
        "",
        "## Limits",
        "",
        "- English only: the sentence encoder (all-MiniLM-L6-v2, frozen) and the speech recognizer are English.",
        "- Text only: tone of voice and facial expression are ignored, and for a clip the score is only as good"
        " as its transcript (speech-recognition errors change it).",
        "- Single-speaker monologue clips like the training data (people reviewing films and products on"
        " YouTube): dialogue, several speakers, sarcasm and domains far from opinion videos are out of scope.",
        "- Long media is scored per utterance and averaged by duration; the score is a regression output,"
        " not a probability.",
        "",
        "## Data terms",
        "",
        "CMU-MOSEI and CMU-MOSI are research datasets released by Carnegie Mellon University for research use;"
        " their original terms apply to this model, which is derived from them: use it for research, not in"
        " products or decisions about people.",
        "",
        "## Use",
        "",
        "```bash",
        "grcf predict clip.mp4 -o predictions.csv --plot      # no bundle: this model",
        "grcf demo                                           # a local web page",
        "python -c \"from grcf import load_model; print(load_model().predict_text(['I loved it', 'it was awful']))\"",
        "```",
        "",
    ]
    return "\n".join(lines)
