"""A self-contained HTML report: the summary table and the plots a researcher looks at."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .atomic import write_text  # noqa: E402
from .summarize import collect, run_dir  # noqa: E402


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _grid(n, size=3.2):
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat


def load_predictions(runs, dataset, variants, seeds, split="test") -> pd.DataFrame:
    frames = []
    for v in variants:
        for s in seeds:
            df = pd.read_csv(run_dir(runs, dataset, v, s) / "predictions.csv")
            frames.append(df[df.split == split].assign(variant=v, seed=s))
    return pd.concat(frames, ignore_index=True)


def scatter_plot(pred: pd.DataFrame, variants, classification: bool) -> str:
    fig, axes = _grid(len(variants))
    for ax, v in zip(axes, variants):
        d = pred[pred.variant == v]
        y = d.label + (np.random.default_rng(0).normal(0, 0.03, len(d)) if classification else 0)
        ax.scatter(y, d.prediction, s=6, alpha=0.35)
        lo, hi = float(min(d.label.min(), d.prediction.min())), float(max(d.label.max(), d.prediction.max()))
        if not classification:
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set(title=v, xlabel="true", ylabel="predicted")
    fig.suptitle("Predicted vs true (test split, all seeds)")
    return _png(fig)


def curves_plot(runs, dataset, variants, seeds) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for stage, ax in zip((1, 2), axes):
        for i, v in enumerate(variants):
            for j, s in enumerate(seeds):
                log = run_dir(runs, dataset, v, s) / f"stage{stage}_log.csv"
                df = pd.read_csv(log) if log.stat().st_size else pd.DataFrame()
                score = [c for c in df.columns if c.startswith("valid_")] if len(df) else []
                if not score:
                    continue
                col = {1: "valid_Corr", 2: "valid_MAE"}.get(stage)
                col = col if col in df.columns else score[0]
                ax.plot(df.epoch, df[col], color=f"C{i}", alpha=0.7, lw=1, label=v if j == 0 else None)
                ax.set(xlabel="epoch", ylabel=col)
        ax.set_title(f"stage {stage}: validation per epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no variant trains this stage", ha="center", transform=ax.transAxes)
    return _png(fig)


def bars_plot(metrics: pd.DataFrame, variants) -> str:
    names = [c for c in metrics.columns if c not in ("variant", "seed")]
    fig, axes = _grid(len(names), size=2.8)
    g = metrics.groupby("variant")
    for ax, m in zip(axes, names):
        mean, std = g[m].mean().reindex(variants), g[m].std(ddof=1).reindex(variants).fillna(0)
        ax.bar(range(len(variants)), mean, yerr=std, color=[f"C{i}" for i in range(len(variants))], capsize=3)
        ax.set_xticks(range(len(variants)), variants, rotation=45, ha="right", fontsize=7)
        ax.set_title(m, fontsize=9)
    fig.suptitle("Test metrics: mean ± std over seeds")
    fig.tight_layout()
    return _png(fig)


def confusion_plot(pred: pd.DataFrame, variants, classification: bool) -> str:
    classes = np.arange(2) if classification else np.arange(-3, 4)
    fig, axes = _grid(len(variants))
    for ax, v in zip(axes, variants):
        d = pred[pred.variant == v]
        if classification:
            t, p = (d.label > 0.5).astype(int), (d.prediction > 0).astype(int)
        else:
            t = np.round(np.clip(d.label, -3, 3)).astype(int)
            p = np.round(np.clip(d.prediction, -3, 3)).astype(int)
        cm = np.zeros((len(classes), len(classes)), dtype=int)
        np.add.at(cm, (t - classes[0], p - classes[0]), 1)
        ax.imshow(cm, cmap="Blues")
        for (i, j), c in np.ndenumerate(cm):
            if c:
                ax.text(j, i, c, ha="center", va="center", fontsize=6)
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes)
        ax.set(title=v, xlabel="predicted", ylabel="true")
    fig.suptitle("Confusion matrix, " + ("threshold 0" if classification else "7-class rounding") + " (test, all seeds)")
    return _png(fig)


def write_report(runs, dataset, variants, seeds, summary_dir, out) -> Path:
    summary_dir = Path(summary_dir)
    metrics = collect(runs, dataset, variants, seeds)
    pred = load_predictions(runs, dataset, variants, seeds)
    classification = "auc" in metrics.columns
    table_md = (summary_dir / "summary.md").read_text()
    comp = pd.read_csv(summary_dir / "comparisons.csv") if (summary_dir / "comparisons.csv").stat().st_size > 1 else None
    sections = [
        ("Predicted vs true", scatter_plot(pred, variants, classification)),
        ("Validation curves", curves_plot(runs, dataset, variants, seeds)),
        ("Metrics across variants", bars_plot(metrics, variants)),
        ("Confusion matrix", confusion_plot(pred, variants, classification)),
    ]
    table = pd.read_csv(summary_dir / "summary.csv", index_col=0)
    body = [f"<h1>grcf report: {html.escape(dataset)}</h1>",
            f"<p>{len(variants)} variant(s) × {len(seeds)} seed(s); test split; model selection on valid only.</p>",
            "<h2>Summary (mean ± std over seeds)</h2>", _summary_html(table)]
    if comp is not None and len(comp):
        body += ["<h2>Paired comparisons (variant − baseline)</h2>",
                 comp.to_html(index=False, float_format=lambda x: f"{x:.4f}", classes="t")]
    if (summary_dir / "backbone_diff.png").exists():  # zoo runs (grcf.backbone_summary)
        import base64

        png = base64.b64encode((summary_dir / "backbone_diff.png").read_bytes()).decode()
        sections.insert(0, ("Per backbone: grcf − pointwise (95 % CI)", png))
        body += ["<h2>Backbone × objective</h2>", f"<pre>{html.escape((summary_dir / 'backbones.md').read_text())}</pre>"]
    for title, png in sections:
        body += [f"<h2>{title}</h2>", f'<img alt="{title}" src="data:image/png;base64,{png}">']
    body += ["<h2>Summary as Markdown</h2>", f"<pre>{html.escape(table_md)}</pre>"]
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>grcf report: " + html.escape(dataset)
            + "</title><style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
            "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px}"
            "img{max-width:100%}</style></head><body>" + "\n".join(body) + "</body></html>")
    write_text(out, page)
    return Path(out)


def _summary_html(table: pd.DataFrame) -> str:
    metrics = [c[:-5] for c in table.columns if c.endswith("_mean")]
    rows = ["<table><tr><th>variant</th>" + "".join(f"<th>{m}</th>" for m in metrics) + "</tr>"]
    for v, r in table.iterrows():
        cells = "".join(f"<td>{r[m + '_mean']:.4f} ± {r[m + '_std']:.4f}</td>" for m in metrics)
        rows.append(f"<tr><td>{html.escape(str(v))}</td>{cells}</tr>")
    return "".join(rows) + "</table>"
