"""Paper-ready tables: the headline metrics under the names papers use, as Markdown, LaTeX, HTML.

A headline column is one or more metrics shown in one cell ("Acc-2 (has0/non0)" holds Has0 and
Non0 accuracy, as MOSI papers print them), with a direction marker, in percent with one decimal
where papers use percent, and the best variant's value in bold (per metric, at display
precision, so ties are all bold). Reference rows (majority class, chance) are shown, never bold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from grcf.training.metrics import LOWER_IS_BETTER


@dataclass(frozen=True)
class Column:
    name: str  # as printed
    metrics: tuple[str, ...]  # metric keys shown in this cell, joined by " / "
    percent: bool = True  # x 100, one decimal; else three decimals

    @property
    def lower_is_better(self) -> bool:
        return all(m in LOWER_IS_BETTER for m in self.metrics)


HEADLINES = {
    "mosi": (
        Column("Acc-2 (has0/non0)", ("Has0_acc_2", "Non0_acc_2")),
        Column("F1 (has0/non0)", ("Has0_F1_score", "Non0_F1_score")),
        Column("Acc-5", ("Mult_acc_5",)),
        Column("Acc-7", ("Mult_acc_7",)),
        Column("MAE", ("MAE",), percent=False),
        Column("Corr", ("Corr",), percent=False),
    ),
    "sims": (
        Column("Acc-2", ("Mult_acc_2",)),
        Column("Acc-3", ("Mult_acc_3",)),
        Column("Acc-5", ("Mult_acc_5",)),
        Column("F1", ("F1_score",)),
        Column("MAE", ("MAE",), percent=False),
        Column("Corr", ("Corr",), percent=False),
    ),
    "binary": (
        Column("Acc", ("acc",)),
        Column("F1 (weighted)", ("f1_weighted",)),
        Column("AUC", ("auc",), percent=False),
    ),
}


def metric_set(metrics) -> str | None:
    """Which metric set a list of metric keys comes from (None: unknown, no headline table)."""
    metrics = set(metrics)
    for name in ("binary", "mosi", "sims"):
        if {m for c in HEADLINES[name] for m in c.metrics} <= metrics:
            return name
    return None


def headline_columns(metrics) -> tuple[Column, ...]:
    kind = metric_set(metrics)
    return HEADLINES[kind] if kind else tuple(Column(m, (m,), percent=False) for m in metrics)


def headline_metrics(metrics) -> list[str]:
    """The metric keys of the headline table, in order."""
    return [m for c in headline_columns(metrics) for m in c.metrics]


def value(col: Column, x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{100 * x:.1f}" if col.percent else f"{x:.3f}"


def diff(col: Column, x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:+.1f}" if col.percent else f"{x:+.3f}"


def _best(col: Column, metric: str, means: pd.Series) -> set[str]:
    shown = {v: value(col, x) for v, x in means.items() if math.isfinite(x)}
    if len(shown) < 2:
        return set()
    best = (min if col.lower_is_better else max)(shown.values(), key=float)
    return {v for v, s in shown.items() if s == best}


@dataclass
class Cell:
    parts: list[tuple[str, str | None, bool]]  # (mean, std or None, bold) per metric of the column


def marks(table: pd.DataFrame) -> dict[str, str]:
    """Per variant, what its name carries in a headline table: collapsed seeds and a sign bias
    (summarize's `collapsed_seeds` and `test_sign_bias` columns; none in an older summary.csv)."""
    out = {}
    for v, r in table.iterrows():
        notes = []
        k, n = r.get("collapsed_seeds", 0), r.get("n_seeds", 0)
        k = pd.to_numeric(k, errors="coerce")
        if pd.notna(k) and k > 0:
            notes.append(f"collapsed {int(k)}/{int(n)}")
        if r.get("test_sign_bias", False) == 1:  # True, or 1.0 once a mean over folds
            notes.append("sign bias")
        if notes:
            out[str(v)] = "(" + ", ".join(notes) + ")"
    return out


def headline_cells(table: pd.DataFrame, reference: pd.DataFrame | None = None):
    """(columns, rows, reference rows): rows are (name, [Cell per column]).

    `table` is summarize's mean/std table (index = variant, columns `<metric>_mean`/`_std`);
    `reference` has one row per reference predictor and plain metric columns. A variant's name
    carries its flags (see marks).
    """
    flags = marks(table)
    metrics = [c[: -len("_mean")] for c in table.columns if c.endswith("_mean")]
    cols = headline_columns(metrics)
    best = {(c.name, m): _best(c, m, table[f"{m}_mean"]) for c in cols for m in c.metrics}
    rows = []
    for v, r in table.iterrows():
        cells = []
        for c in cols:
            parts = []
            for m in c.metrics:
                std = r.get(f"{m}_std", math.nan)
                parts.append((value(c, r[f"{m}_mean"]),
                              value(c, std) if math.isfinite(std) and math.isfinite(r[f"{m}_mean"]) else None,
                              v in best[(c.name, m)]))
            cells.append(Cell(parts))
        rows.append((f"{v} {flags[str(v)]}" if str(v) in flags else str(v), cells))
    refs = []
    if reference is not None:
        for name, r in reference.iterrows():
            refs.append((str(name), [Cell([(value(c, r.get(m, math.nan)), None, False) for m in c.metrics])
                                     for c in cols]))
    return cols, rows, refs


def arrow(col: Column, latex: bool = False) -> str:
    if latex:
        return r"$\downarrow$" if col.lower_is_better else r"$\uparrow$"
    return "↓" if col.lower_is_better else "↑"


def units_note(cols) -> str:
    pct = [c.name for c in cols if c.percent]
    raw = [c.name for c in cols if not c.percent]
    note = "↑ higher is better, ↓ lower is better; best variant in bold."
    if pct:
        note += f" {', '.join(pct)} in %."
    return note + (f" {', '.join(raw)} as raw values." if raw else "")


# ---------------------------------------------------------------- Markdown


def _md_cell(cell: Cell) -> str:
    out = []
    for mean, std, bold in cell.parts:
        s = f"**{mean}**" if bold else mean
        out.append(s + (f" ± {std}" if std is not None else ""))
    return " / ".join(out)


def markdown_headline(table: pd.DataFrame, reference: pd.DataFrame | None = None) -> list[str]:
    cols, rows, refs = headline_cells(table, reference)
    lines = ["| variant | " + " | ".join(f"{c.name} {arrow(c)}" for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    lines += [f"| {v} | " + " | ".join(_md_cell(c) for c in cells) + " |" for v, cells in rows]
    lines += [f"| *{v}* | " + " | ".join(_md_cell(c) for c in cells) + " |" for v, cells in refs]
    return lines


# ---------------------------------------------------------------- LaTeX

_TEX_ESCAPE = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(s: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(s))


def _tex_cell(cell: Cell) -> str:
    out = []
    for mean, std, bold in cell.parts:
        s = rf"\textbf{{{mean}}}" if bold else mean
        out.append(s + (rf"$\pm${std}" if std is not None else ""))
    return " / ".join(out)


def latex_headline(dataset: str, table: pd.DataFrame, reference: pd.DataFrame | None, n_seeds: int,
                   what: str | None = None) -> str:
    cols, rows, refs = headline_cells(table, reference)
    what = what or f"mean $\\pm$ std over {n_seeds} seed(s)"
    pct = ", ".join(tex_escape(c.name) for c in cols if c.percent)
    caption = (f"{tex_escape(dataset)}: test results, {what}. Best variant in bold; "
               r"$\uparrow$ higher is better, $\downarrow$ lower is better." + (f" {pct} in \\%." if pct else ""))
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{caption}}}",
             rf"\label{{tab:grcf-{tex_escape(dataset).replace(chr(92), '')}}}",
             r"\begin{tabular}{l" + "c" * len(cols) + "}", r"\toprule",
             "Variant & " + " & ".join(f"{tex_escape(c.name)} {arrow(c, latex=True)}" for c in cols) + r" \\",
             r"\midrule"]
    lines += [tex_escape(v) + " & " + " & ".join(_tex_cell(c) for c in cells) + r" \\" for v, cells in rows]
    if refs:
        lines.append(r"\midrule")
        lines += [r"\textit{" + tex_escape(v) + "} & " + " & ".join(_tex_cell(c) for c in cells) + r" \\"
                  for v, cells in refs]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def comparison_columns(metrics) -> list[tuple[Column, str, str]]:
    """(column, metric, short name) per headline metric, one column each in a comparison table."""
    out = []
    for c in headline_columns(metrics):
        for m in c.metrics:
            if len(c.metrics) == 1:
                out.append((c, m, c.name))
            else:  # "Acc-2 (has0/non0)" -> "Acc-2 (has0)", "Acc-2 (non0)"
                base, _, inner = c.name.partition(" (")
                label = inner.rstrip(")").split("/")[c.metrics.index(m)]
                out.append((c, m, f"{base} ({label})"))
    return out


def latex_comparisons(dataset: str, comp: pd.DataFrame, metrics, n_seeds: int) -> str:
    cols = [x for x in comparison_columns(metrics) if x[1] in set(comp.metric)]
    caption = (f"{tex_escape(dataset)}: paired differences variant $-$ baseline over {n_seeds} seeds "
               r"(mean, 95\,\% bootstrap CI, Wilcoxon $p$). $^*$: $p<0.05$ and the CI excludes 0. "
               f"With {n_seeds} seeds the smallest possible two-sided $p$ is {2 / 2 ** n_seeds:.3f}.")
    lines = [r"\begin{table}[t]", r"\centering", r"\scriptsize", rf"\caption{{{caption}}}",
             r"\begin{tabular}{ll" + "c" * len(cols) + "}", r"\toprule",
             "Variant & Baseline & " + " & ".join(f"{tex_escape(n)} {arrow(c, latex=True)}" for c, _, n in cols)
             + r" \\", r"\midrule"]
    for (v, b), g in comp.groupby(["variant", "baseline"], sort=False):
        g = g.set_index("metric")
        cells = []
        for c, m, _ in cols:
            r = g.loc[m]
            star = "$^*$" if bool(r.get("significant")) else ""
            cells.append(f"${diff(c, r.mean_diff)}${star} [${diff(c, r.ci_low)}$, ${diff(c, r.ci_high)}$] "
                         f"$p$={r.p_wilcoxon:.2f}")
        k = pd.to_numeric(g.iloc[0].get("baseline_collapsed", 0), errors="coerce")
        base = f"{b} (collapsed {int(k)}/{int(g.iloc[0].n)})" if pd.notna(k) and k > 0 else b
        lines.append(f"{tex_escape(v)} & {tex_escape(base)} & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- HTML


def html_headline(table: pd.DataFrame, reference: pd.DataFrame | None = None) -> str:
    import html

    cols, rows, refs = headline_cells(table, reference)

    def cell(c: Cell) -> str:
        return " / ".join((f"<b>{m}</b>" if b else m) + (f" ± {s}" if s is not None else "") for m, s, b in c.parts)

    out = ["<table><tr><th>variant</th>" + "".join(f"<th>{html.escape(c.name)} {arrow(c)}</th>" for c in cols)
           + "</tr>"]
    out += [f"<tr><td>{html.escape(v)}</td>" + "".join(f"<td>{cell(c)}</td>" for c in cells) + "</tr>"
            for v, cells in rows]
    out += [f"<tr><td><i>{html.escape(v)}</i></td>" + "".join(f"<td>{cell(c)}</td>" for c in cells) + "</tr>"
            for v, cells in refs]
    return "".join(out) + "</table>" + f"<p><small>{html.escape(units_note(cols))}</small></p>"
