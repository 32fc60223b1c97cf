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

from matplotlib.ticker import MaxNLocator  # noqa: E402

from grcf.results import tables  # noqa: E402
from grcf.atomic import write_text  # noqa: E402
from grcf.results.backbone_summary import collapse_note  # noqa: E402
from grcf.results.seeds import collect, run_dir, test_labels  # noqa: E402
from grcf.results.summarize import reference_rows  # noqa: E402
from grcf.training.metrics import BIAS_GAP, COLLAPSE_ONE_SIDE, COLLAPSE_STD_RATIO  # noqa: E402


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _grid(n, size=3.2, cols=4, **kw):
    # constrained layout keeps the suptitle, panel titles and axis labels apart
    cols = min(n, cols)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False,
                             layout="constrained", **kw)
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


def scatter_plot(pred: pd.DataFrame, variants, classification: bool):
    fig, axes = _grid(len(variants))
    for ax, v in zip(axes, variants):
        d = pred[pred.variant == v]
        y = d.label + (np.random.default_rng(0).normal(0, 0.03, len(d)) if classification else 0)
        ax.scatter(y, d.prediction, s=6, alpha=0.35)
        lo, hi = float(min(d.label.min(), d.prediction.min())), float(max(d.label.max(), d.prediction.max()))
        if not classification:
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set(title=v, xlabel="true", ylabel="predicted (logit)" if classification else "predicted")
    fig.suptitle("Predicted vs true (test split, all seeds)")
    return fig


CURVE_COLUMNS = {1: ("valid_Corr", "valid_auc"), 2: ("valid_MAE", "valid_acc")}  # each stage's selection score


def _read_log(path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def curves_plot(runs, dataset, variants, seeds):
    """Validation score per epoch: a row per stage, a panel per variant, one colour per seed."""
    fig, axes = plt.subplots(2, len(variants), figsize=(3.2 * len(variants) + 0.8, 6.2), squeeze=False,
                             layout="constrained", sharex="row")
    for row, stage in enumerate((1, 2)):
        for col, v in enumerate(variants):
            ax = axes[row, col]
            for j, s in enumerate(seeds):
                df = _read_log(run_dir(runs, dataset, v, s) / f"stage{stage}_log.csv")
                score = [c for c in df.columns if c.startswith("valid_")] if len(df) else []
                if not score:
                    continue
                name = next((c for c in CURVE_COLUMNS[stage] if c in df.columns), score[0])
                ax.plot(df.epoch, df[name], color=f"C{j}", lw=1.2, marker=".", ms=3, label=f"seed {s}")
                ax.set_ylabel(name.replace("valid_", "valid "))
            ax.set_title(f"{v}: stage {stage}", fontsize=10)
            if row == 1:
                ax.set_xlabel("epoch")
            if not ax.get_lines():
                ax.text(0.5, 0.5, "stage not trained", ha="center", va="center", transform=ax.transAxes,
                        fontsize=9, color="0.4")
                ax.set_xticks([])
                ax.set_yticks([])
        handles, labels = next(((a.get_legend_handles_labels()) for a in axes[row] if a.get_lines()), ([], []))
        if handles:
            axes[row, -1].legend(handles, labels, fontsize=7, title="seed colours", title_fontsize=7,
                                 loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.suptitle("Validation score per epoch (the score each stage selects on)")
    return fig


def metrics_plot(metrics: pd.DataFrame, variants, reference: pd.DataFrame | None = None):
    """Dot and error bar (mean ± std over seeds) per variant, a panel per headline metric.

    The value axis fits the data, so differences of a few tenths of a point stay visible; reference
    predictors (majority class, chance) are dashed lines where the panel has them.
    """
    names = [c for c in metrics.columns if c not in ("variant", "seed")]
    cols = tables.comparison_columns(names)
    fig, axes = _grid(len(cols), size=2.9, cols=3, sharey=True)
    g = metrics.groupby("variant")
    y = np.arange(len(variants))
    for ax, (col, m, label) in zip(axes, cols):
        scale = 100.0 if col.percent else 1.0
        mean = g[m].mean().reindex(variants) * scale
        std = g[m].std(ddof=1).reindex(variants).fillna(0) * scale
        ax.errorbar(mean, y, xerr=std, fmt="o", color="C0", ecolor="0.3", capsize=3, ms=5)
        if reference is not None and m in reference.columns:
            for k, (name, r) in enumerate(reference.iterrows()):
                ax.axvline(r[m] * scale, color=f"C{k + 1}", ls="--", lw=1, label=name)
        ax.set_title(f"{label} {tables.arrow(col)}" + (" (%)" if col.percent else ""), fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.tick_params(axis="x", labelsize=7)
        ax.tick_params(axis="y", labelsize=8)
        ax.margins(x=0.15)
        ax.grid(axis="x", lw=0.3)
    axes[0].set_yticks(y, variants)
    axes[0].set_ylim(len(variants) - 0.5, -0.5)
    if reference is not None:
        axes[0].legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.12), borderaxespad=0, ncol=2)
    fig.suptitle("Test metrics: mean ± std over seeds")
    return fig


def confusion_plot(pred: pd.DataFrame, variants, classification: bool):
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
                ax.text(j, i, c, ha="center", va="center", fontsize=6,
                        color="white" if c > cm.max() / 2 else "black")
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes)
        ax.set(title=v, xlabel="predicted", ylabel="true")
    fig.suptitle("Confusion matrix, " + ("threshold 0" if classification else "7-class rounding") + " (test, all seeds)")
    return fig


def figures(runs, dataset, variants, seeds) -> list[tuple[str, object]]:
    """The report's figures as (title, matplotlib figure); the caller closes them."""
    metrics = collect(runs, dataset, variants, seeds)
    pred = load_predictions(runs, dataset, variants, seeds)
    classification = tables.metric_set(metrics.columns) == "binary"
    reference = reference_rows(metrics, test_labels(runs, dataset, variants, seeds))
    return [
        ("Predicted vs true", scatter_plot(pred, variants, classification)),
        ("Validation curves", curves_plot(runs, dataset, variants, seeds)),
        ("Metrics across variants", metrics_plot(metrics, variants, reference)),
        ("Confusion matrix", confusion_plot(pred, variants, classification)),
    ]


def health_html(table: pd.DataFrame) -> list[str]:
    """Prediction bias per split and collapsed seeds per variant, from summary.csv."""
    def rates(r, sp):
        pp, lp = r.get(f"{sp}_pred_positive_rate", np.nan), r.get(f"{sp}_label_positive_rate", np.nan)
        if not np.isfinite(pp):
            return "n/a"
        return f"{100 * pp:.1f} % / {100 * lp:.1f} %" + (" ⚠" if r.get(f"{sp}_sign_bias") == 1 else "")

    rows = ["<tr><th>variant</th><th>collapsed seeds</th>" + "".join(
        f"<th>{sp} bias</th><th>{sp} positive: predicted / true</th>" for sp in ("valid", "test")) + "</tr>"]
    for v, r in table.iterrows():
        k = int(r.collapsed_seeds)
        cells = [f"<b>{k}/{int(r.n_seeds)}</b>" if k else "0"]
        for sp in ("valid", "test"):
            b = r.get(f"{sp}_bias", np.nan)
            cells += ["n/a" if not np.isfinite(b) else f"{b:+.3f}", rates(r, sp)]
        rows.append(f"<tr><td>{html.escape(str(v))}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    note = (f"Mean over seeds. Bias = mean prediction − mean label; positive rates over the items with a nonzero "
            f"label (binary tasks: all items, logit > 0). ⚠: predicted-positive rate {100 * BIAS_GAP:.0f} points or "
            f"more from the true rate. Collapsed: test predictions nearly constant (std < {COLLAPSE_STD_RATIO:g} × "
            f"the labels' std) or ≥ {100 * COLLAPSE_ONE_SIDE:.0f} % on one side of zero.")
    return ["<h2>Prediction bias and collapsed runs</h2>", "<table>" + "".join(rows) + "</table>",
            f"<p><small>{html.escape(note)}</small></p>"]


def write_report(runs, dataset, variants, seeds, summary_dir, out) -> Path:
    summary_dir = Path(summary_dir)
    metrics = collect(runs, dataset, variants, seeds)
    reference = reference_rows(metrics, test_labels(runs, dataset, variants, seeds))
    table_md = (summary_dir / "summary.md").read_text()
    comp = pd.read_csv(summary_dir / "comparisons.csv") if (summary_dir / "comparisons.csv").stat().st_size > 1 else None
    sections = [(title, _png(fig)) for title, fig in figures(runs, dataset, variants, seeds)]
    table = pd.read_csv(summary_dir / "summary.csv", index_col=0)
    body = [f"<h1>grcf report: {html.escape(dataset)}</h1>",
            f"<p>{len(variants)} variant(s) × {len(seeds)} seed(s); test split; model selection on valid only.</p>",
            "<h2>Summary (mean ± std over seeds)</h2>", tables.html_headline(table, reference)]
    if "collapsed_seeds" in table.columns:
        body += health_html(table)
    if comp is not None and len(comp):
        if "baseline_collapsed" in comp.columns:  # the note beside each pair whose baseline collapsed
            comp = comp.assign(note=[collapse_note(r) for r in comp.itertuples()])
        body += ["<h2>Paired comparisons (variant − baseline)</h2>",
                 "<p>Each pair once; default variants against the default baselines, tuned against tuned.</p>",
                 comp.to_html(index=False, float_format=lambda x: f"{x:.4f}", classes="t")]
    if (summary_dir / "backbone_diff.png").exists():  # zoo runs (grcf.results.backbone_summary)
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
