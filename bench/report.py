"""Leaderboards and plots of a results directory: what ``bench report`` writes, one folder per grid.

Per grid: ``leaderboard.md`` (mean ± std, best bold, second underlined, significance marks,
legend, seed-count warnings), ``leaderboard.csv`` (every statistic of ``bench.stats``, long form),
``leaderboard.tex``, and PNG plots. Figures are built on ``matplotlib.figure.Figure`` with the Agg
canvas, never through pyplot, so no backend or figure registry is touched and nothing stays open.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import Bbox
from tabulate import tabulate

from bench import stats
from bench.metrics import ACCURACY_METRICS
from bench.store import Store, open_results

DEFAULT_METRICS = ("recall@20", "ndcg@20")
COST_METRIC = "ndcg@20"
HATCHES = ("", "//", "..", "xx", "\\\\", "++")
MARKERS = ("o", "s", "^", "D", "v", "P")


def _natural(labels: pd.Series) -> pd.Series:
    """Sort key reading numbers as numbers: ``x[c=0]``, ``x[c=0.8]``, ``x[c=1.6]``, ``x[c=10]``."""
    return labels.map(lambda text: tuple((0, float(p), "") if i % 2 else (1, 0.0, p)
                                         for i, p in enumerate(re.split(r"(\d+(?:\.\d+)?)", str(text)))))


@dataclass(frozen=True)
class _Style:
    """How a leaderboard cell is marked up in one output format."""

    bold: str
    underline: str
    pm: str
    better: str
    worse: str
    differs: str
    up: str
    down: str
    escape: Callable[[str], str]


def _latex_escape(text: str) -> str:
    for char in "\\&%$#_{}":
        text = text.replace(char, "\\" + char)
    return text


MARKDOWN = _Style("**{}**", "<u>{}</u>", " ± ", "†", "‡", "\\*", "↑", "↓", lambda s: s)
LATEX = _Style(r"\textbf{{{}}}", r"\underline{{{}}}", r" $\pm$ ", r"$^{\dagger}$", r"$^{\ddagger}$",
               r"$^{*}$", r"$\uparrow$", r"$\downarrow$", _latex_escape)


def _number(x: float) -> str:
    """Four decimals for scores, fewer for large values such as popularity counts."""
    if not np.isfinite(x):
        return "–"
    return f"{x:.4f}" if abs(x) < 10 else f"{x:.2f}" if abs(x) < 1000 else f"{x:.0f}"


def _mean_std(mean: float, std: float, pm: str) -> str:
    """'mean ± std' with the std at the mean's precision; the mean alone for a single seed."""
    text = _number(mean)
    if np.isfinite(std):
        text += pm + f"{std:.{len(text.partition('.')[2])}f}"
    return text


def _cell(row: pd.Series, marks: str, style: _Style) -> str:
    """'mean ± std' of one column's entry, bold if best, underlined if second."""
    text = _mean_std(row["mean"], row["std"], style.pm)
    if row["rank"] == 1:
        text = style.bold.format(text)
    elif row["rank"] == 2:
        text = style.underline.format(text)
    return text + (" " + marks if marks else "")


def _marks(comparisons: pd.DataFrame, style: _Style) -> dict[tuple, str]:
    """(group..., sampler) -> marks from the seeds-level paired t-test, Holm-corrected:
    vs the baseline († better / ‡ worse) and vs the group's best (*)."""
    marks: dict[tuple, str] = {}
    for row in comparisons[comparisons["significant_ttest"]].itertuples(index=False):
        key = tuple(getattr(row, c) for c in stats.GROUP) + (row.sampler,)
        if row.reference == "baseline":
            mark = style.better if row.direction == "better" else style.worse
        else:
            mark = style.differs
        marks[key] = marks.get(key, "") + mark
    return marks


def _leaderboard_rows(
    summary: pd.DataFrame, comparisons: pd.DataFrame, backbone: str, metrics: Sequence[str], style: _Style
) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of one backbone's table: samplers by columns (scenario, dataset, metric)."""
    part = summary[summary["backbone"] == backbone]
    blocks = part[["scenario", "dataset"]].drop_duplicates().sort_values(["scenario", "dataset"], key=_natural)
    columns = [(s, d, m) for s, d in blocks.itertuples(index=False) for m in metrics
               if ((part["scenario"] == s) & (part["dataset"] == d) & (part["metric"] == m)).any()]
    headers = ["sampler"] + [
        style.escape(f"{s}/{d} {m} ") + (style.up if stats.higher_is_better(m) else style.down)
        for s, d, m in columns
    ] + ["avg rank", "s/epoch"]
    order = (part.groupby("sampler")
             .agg(avg_rank=("rank", "mean"), epoch_s=("epoch_s", "mean"))
             .reset_index().sort_values(["avg_rank", "sampler"]))
    marks = _marks(comparisons, style)
    rows = []
    for sampler, avg_rank, epoch_s in order.itertuples(index=False):
        cells = [style.escape(sampler)]
        for s, d, m in columns:
            hit = part[(part["scenario"] == s) & (part["dataset"] == d) & (part["metric"] == m)
                       & (part["sampler"] == sampler)]
            if hit.empty:
                cells.append("–")
                continue
            row = hit.iloc[0]
            key = tuple(row[c] for c in stats.GROUP) + (sampler,)
            cells.append(_cell(row, marks.get(key, ""), style))
        cells += [f"{avg_rank:.2f}", f"{epoch_s:.3g}"]
        rows.append(cells)
    return headers, rows


def _legend(baseline: str, alpha: float) -> str:
    return (
        f"Cells: mean ± std over seeds. **Bold**: best, <u>underlined</u>: second best per column "
        f"(↑ higher is better, ↓ lower is better). † significantly better than `{baseline}`, "
        f"‡ significantly worse than `{baseline}`, \\* significantly different from the column's best: "
        f"two-sided paired t-test over seeds (paired by seed), Holm-corrected within each column and "
        f"reference, α = {alpha:g}. avg rank: mean rank over the columns shown. s/epoch: mean seconds "
        f"per training epoch. Wilcoxon and per-user tests, intervals and relative improvements are in "
        f"`leaderboard.csv`."
    )


def _false_hard_negative_markdown(runs: pd.DataFrame) -> list[str]:
    """Lines of the false-hard-negative table: mean ± std over seeds per (backbone, sampler) and
    (scenario, dataset), so a sampler's rate can be read next to its quality; none when unmeasured."""
    runs = runs.drop_duplicates("key").dropna(subset=["false_hard_negative_rate"])
    if runs.empty:
        return []
    rates = (runs.groupby(["backbone", "sampler", "scenario", "dataset"])["false_hard_negative_rate"]
             .agg(["mean", "std"]).reset_index())
    rates["block"] = rates["scenario"] + "/" + rates["dataset"]
    blocks = rates["block"].drop_duplicates().sort_values(key=_natural).tolist()
    rows = []
    for (backbone, sampler), part in rates.groupby(["backbone", "sampler"], sort=True):
        by_block = part.set_index("block")
        rows.append([backbone, sampler] + [
            _mean_std(by_block.at[b, "mean"], by_block.at[b, "std"], MARKDOWN.pm) if b in by_block.index else "–"
            for b in blocks])
    return ["### False-hard-negative rate (lower is better)", "",
            "Share of the chosen negatives that the user truly likes (synthetic data) or holds out as a "
            "valid or test positive (real data; a synthesised negative counts as its nearest real item), "
            "averaged over a run's epochs; mean ± std over seeds.", "",
            tabulate(rows, ["backbone", "sampler"] + blocks, tablefmt="pipe", disable_numparse=True), ""]


def _markdown_grid(
    grid: str, summary: pd.DataFrame, comparisons: pd.DataFrame, metrics: Sequence[str],
    test_set: str, baseline: str, alpha: float, runs: pd.DataFrame,
) -> str:
    """One grid's leaderboard; ``summary``/``comparisons`` cover all metrics of this test set,
    ``runs`` (the grid's ``Store.table()`` rows) gives the cell count, the selection rule and the
    false-hard-negative table."""
    shown = summary[summary["metric"].isin(metrics)]
    if shown.empty:
        return f"## Leaderboard: grid `{grid}`\n\nNo `{test_set}` results for {', '.join(metrics)}.\n"
    lines = [f"## Leaderboard: grid `{grid}`, `{test_set}` test", ""]
    done, expected = _cell_counts(runs)
    if done < expected:
        lines += [f"> **Incomplete grid: {done} of {expected} cells done.** Means, ranks and tests below cover "
                  f"the finished cells only; `python -m bench status {grid}` lists the rest.", ""]
    on_tests = sorted(set(runs["selected_on"]) - {"valid"})
    if on_tests:
        lines += [f"> **Epoch selected on the {', '.join(f'`{t}`' for t in on_tests)} test set, not on `valid`** "
                  "(parity with code that selects so): these figures are optimistic and not comparable "
                  "with leaderboards selected on `valid`.", ""]
    for backbone in sorted(shown["backbone"].unique()):
        headers, rows = _leaderboard_rows(shown, comparisons, backbone, metrics, MARKDOWN)
        lines += [f"### backbone `{backbone}`", "",
                  tabulate(rows, headers, tablefmt="pipe", disable_numparse=True), ""]

    lines += ["### Average ranks across (backbone, scenario, dataset) blocks", ""]
    present = [m for m in metrics if m in set(shown["metric"])]
    ranks = {m: stats.average_ranks(shown, m).set_index("sampler")["average_rank"] for m in present}
    rank_table = pd.DataFrame(ranks)
    rank_table = rank_table.sort_values(present[0]) if len(present) else rank_table
    lines += [tabulate([[s] + [f"{v:.2f}" for v in r] for s, r in zip(rank_table.index, rank_table.to_numpy())],
                       ["sampler"] + present, tablefmt="pipe", disable_numparse=True), ""]
    for metric in present:
        test = stats.friedman_nemenyi(shown, metric, alpha=alpha).iloc[0]
        if test["warning"]:
            lines.append(f"- {metric}: {test['warning']}.")
        else:
            lines.append(f"- {metric}: Friedman χ² = {test['statistic']:.3f}, p = {test['p_value']:.3g} "
                         f"over {test['n_blocks']} blocks; Nemenyi critical difference = "
                         f"{test['critical_difference']:.2f}.")
    lines.append("")

    accuracy = [m for m in ACCURACY_METRICS if m in set(summary["metric"])]
    if accuracy and summary["sampler"].nunique() > 1:
        aggregate = pd.concat([stats.paper_aggregate(summary, s, accuracy)
                               for s in sorted(summary["sampler"].unique())])
        aggregate = aggregate.sort_values("mean_rel_improvement", ascending=False)
        rows = [[a.sampler, f"{a.mean_rel_improvement:+.2f}", f"{a.share_better:.0%}", str(a.n_values)]
                for a in aggregate.itertuples(index=False)]
        lines += ["### Mean relative improvement over the best other sampler (paper-style)", "",
                  f"Over the accuracy metrics {', '.join(accuracy)} and every (backbone, scenario, dataset): "
                  f"100 (mean / best other mean - 1), averaged; a sampler's own variants "
                  f"(`name[...]`) are not among its others.", "",
                  tabulate(rows, ["sampler", "mean improvement %", "share ahead", "values"],
                           tablefmt="pipe", disable_numparse=True), ""]

    lines += _false_hard_negative_markdown(runs)
    lines += ["### Legend", "", _legend(baseline, alpha), ""]
    shown_comparisons = comparisons[comparisons["metric"].isin(metrics)]
    warnings = sorted(set(w for w in shown_comparisons["warning"] if w))
    for warning in warnings:
        lines.append(f"> **Warning:** {warning}.")
    return "\n".join(lines).rstrip() + "\n"


def _cell_counts(table: pd.DataFrame) -> tuple[int, int]:
    """(finished cells, cells in the grid as its records state it; 0 when they do not)."""
    return table["key"].nunique(), int(table["grid_cells"].max())


def format_markdown_leaderboard(
    table: pd.DataFrame, metrics: Sequence[str] = DEFAULT_METRICS, test_set: str = "ood",
    alpha: float = 0.05, baseline: str = "uniform",
) -> str:
    """Markdown leaderboard of a ``Store.table()`` frame, one section per grid (what ``bench run`` prints)."""
    part = table[table["test_set"] == test_set]
    if part.empty:
        return f"No finished runs with a `{test_set}` test set.\n"
    sections = []
    for grid, sub in part.groupby("grid", sort=True):
        summary = stats.summarize(sub)
        comparisons = stats.compare(sub[sub["metric"].isin(metrics)], baseline=baseline, alpha=alpha)
        sections.append(_markdown_grid(grid, summary, comparisons, metrics, test_set, baseline, alpha, sub))
    return "\n".join(sections)


def _latex(summary: pd.DataFrame, comparisons: pd.DataFrame, metrics: Sequence[str], test_set: str,
           grid: str, baseline: str, alpha: float) -> str:
    shown = summary[summary["metric"].isin(metrics)]
    parts = []
    for backbone in sorted(shown["backbone"].unique()):
        headers, rows = _leaderboard_rows(shown, comparisons, backbone, metrics, LATEX)
        caption = _latex_escape(
            f"Grid {grid}, backbone {backbone}, {test_set} test: mean ± std over seeds; best bold, second "
            f"underlined; dagger / double dagger: significantly better / worse than {baseline}, star: "
            f"significantly different from the best (two-sided paired t-test over seeds, Holm-corrected, "
            f"alpha = {alpha:g})."
        ).replace("±", r"$\pm$")
        body = tabulate(rows, headers, tablefmt="latex_raw", disable_numparse=True)
        parts.append("\\begin{table}[t]\n\\centering\n\\small\n"
                     f"\\caption{{{caption}}}\n{body}\n\\end{{table}}\n")
    return "\n".join(parts)


def _long_table(summary: pd.DataFrame, comparisons: pd.DataFrame) -> pd.DataFrame:
    """Summary rows with the comparison against each reference as prefixed columns."""
    keys = stats.GROUP + ["sampler"]
    out = summary
    for reference in ("baseline", "best"):
        part = comparisons[comparisons["reference"] == reference].drop(columns="reference")
        part = part.rename(columns={c: f"vs_{reference}_{c}" for c in part.columns if c not in keys})
        out = out.merge(part, on=keys, how="left")
    return out


# --- plots -------------------------------------------------------------------------------------

def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)
    return path


def _colors(samplers: Sequence[str]) -> dict[str, tuple]:
    """One stable colour per sampler, shared by every plot of a grid."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(samplers) <= 10 else "tab20"]
    return {s: cmap(i % cmap.N) for i, s in enumerate(sorted(samplers))}


def _grid_of_panels(n: int, width: float = 4.6, height: float = 3.6) -> tuple[Figure, list]:
    ncols = 2 if n == 4 else min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _interval_bars(frame: pd.DataFrame, title: str, ylabel: str, colors: dict[str, tuple]) -> Figure:
    """Bars per sampler (hatch per backbone) with 95 % intervals, one panel per (scenario, dataset)."""
    blocks = frame[["scenario", "dataset"]].drop_duplicates().sort_values(["scenario", "dataset"], key=_natural)
    backbones = sorted(frame["backbone"].unique())
    fig, axes = _grid_of_panels(len(blocks))
    width = 0.8 / len(backbones)
    for ax, (scenario, dataset) in zip(axes, blocks.itertuples(index=False)):
        part = frame[(frame["scenario"] == scenario) & (frame["dataset"] == dataset)]
        samplers = sorted(part["sampler"].unique())
        x = np.arange(len(samplers))
        for j, backbone in enumerate(backbones):
            rows = part[part["backbone"] == backbone].set_index("sampler").reindex(samplers)
            mean = rows["mean"].to_numpy(dtype=float)
            err = np.nan_to_num(np.vstack([mean - rows["ci_low"], rows["ci_high"] - mean]), nan=0.0)
            ax.bar(x + (j - (len(backbones) - 1) / 2) * width, mean, width, yerr=err, capsize=3,
                   color=[colors[s] for s in samplers], hatch=HATCHES[j % len(HATCHES)],
                   edgecolor="black", linewidth=0.6)
        ax.set_xticks(x, samplers, rotation=30, ha="right")
        ax.set_title(f"{scenario} · {dataset}")
        ax.set_xlabel("sampler")
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    if len(backbones) > 1:
        handles = [Patch(facecolor="white", edgecolor="black", hatch=HATCHES[j % len(HATCHES)], label=b)
                   for j, b in enumerate(backbones)]
        fig.legend(handles=handles, title="backbone", loc="outside right center")
    else:
        title += f", backbone {backbones[0]}"
    fig.suptitle(title)
    return fig


def _plot_bars(summary: pd.DataFrame, metric: str, test_set: str, colors: dict, path: Path) -> Path:
    frame = summary[summary["metric"] == metric]
    arrow = "higher is better" if stats.higher_is_better(metric) else "lower is better"
    title = f"{metric} on the {test_set} test ({arrow})\nmean over seeds with 95 % t-interval"
    return _save(_interval_bars(frame, title, metric, colors), path)


def curve_table(records: Sequence[dict], metric: str) -> pd.DataFrame:
    """One row per (record, evaluated epoch, set) for the sets a run traced with ``train.curves``."""
    rows = []
    for rec in records:
        cell = rec["cell"]
        for name in cell.get("train", {}).get("curves", []):
            for entry in rec.get("history", []):
                if f"{name}/{metric}" in entry:
                    rows.append({"sampler": cell["sampler_label"], "backbone": cell["backbone_label"],
                                 "scenario": cell.get("scenario_label", cell["scenario"]), "dataset": cell["dataset"],
                                 "seed": cell["seed"], "set": name, "epoch": entry["epoch"] + 1,
                                 "value": entry[f"{name}/{metric}"]})
    return pd.DataFrame(rows, columns=["sampler", "backbone", "scenario", "dataset", "seed", "set", "epoch", "value"])


def selection_table(records: Sequence[dict], metrics: Sequence[str], test_set: str) -> pd.DataFrame:
    """What selecting the epoch on each traced set gives, from the runs' curves (``train.curves``).

    Per run and traced set: the first epoch with the best value of the run's selection metric on
    that set, and the ``test_set`` metrics at that epoch; then the mean over seeds per
    (backbone, scenario, dataset, sampler, set). Empty when no run traced ``test_set`` and a set.
    """
    rows = []
    for rec in records:
        cell = rec["cell"]
        selection = cell.get("train", {}).get("selection_metric", "recall@20")
        history = rec.get("history", [])
        for name in cell.get("train", {}).get("curves", []):
            entries = [e for e in history if f"{name}/{selection}" in e and all(f"{test_set}/{m}" in e for m in metrics)]
            if not entries:
                continue
            values = np.array([e[f"{name}/{selection}"] for e in entries])
            best = entries[int(values.argmax() if stats.higher_is_better(selection) else values.argmin())]
            rows.append({"backbone": cell["backbone_label"], "scenario": cell.get("scenario_label", cell["scenario"]),
                         "dataset": cell["dataset"], "sampler": cell["sampler_label"], "selected_on": name,
                         "epoch": best["epoch"] + 1} | {m: best[f"{test_set}/{m}"] for m in metrics})
    columns = ["backbone", "scenario", "dataset", "sampler", "selected_on", "epoch", *metrics]
    if not rows:
        return pd.DataFrame(columns=columns + ["n_seeds"])
    frame = pd.DataFrame(rows, columns=columns)
    groups = frame.groupby(columns[:5], sort=True)
    return groups[["epoch", *metrics]].mean().join(groups.size().rename("n_seeds")).reset_index()


def _selection_markdown(records: Sequence[dict], metrics: Sequence[str], test_set: str) -> str:
    """The ``selection_table`` as a markdown section; empty when no run traced curves."""
    table = selection_table(records, metrics, test_set)
    if table.empty:
        return ""
    rows = [[r["sampler"], r["backbone"], f"{r['scenario']}/{r['dataset']}", f"`{r['selected_on']}`",
             f"{r['epoch']:.1f}", *[_number(r[m]) for m in metrics], str(r["n_seeds"])]
            for r in table.to_dict("records")]
    headers = ["sampler", "backbone", "scenario", "epoch selected on", "epoch", *[f"{test_set} {m}" for m in metrics],
               "seeds"]
    return "\n".join([
        "### Epoch selection along the traced curves", "",
        f"Each run traced its curves (`train.curves`): for each traced set, the epoch (1-based, mean over seeds) "
        f"with the best selection metric on that set and the `{test_set}` figures at that epoch. Selecting on "
        f"a test set is optimistic; `valid` is the suite's rule.", "",
        tabulate(rows, headers, tablefmt="pipe", disable_numparse=True), "", ""])


def _plot_curves(records: Sequence[dict], metric: str, colors: dict, path: Path) -> Path | None:
    """``metric`` against epoch (mean over seeds) per traced set; None when no run traced curves."""
    curves = curve_table(records, metric)
    if curves.empty:
        return None
    panels = curves[["scenario", "dataset", "backbone", "set"]].drop_duplicates().sort_values(
        ["scenario", "dataset", "backbone", "set"], key=_natural)
    fig, axes = _grid_of_panels(len(panels))
    for ax, (scenario, dataset, backbone, name) in zip(axes, panels.itertuples(index=False)):
        part = curves[(curves["scenario"] == scenario) & (curves["dataset"] == dataset)
                      & (curves["backbone"] == backbone) & (curves["set"] == name)]
        for sampler, frame in part.groupby("sampler"):
            mean = frame.groupby("epoch")["value"].mean()
            ax.plot(mean.index, mean.to_numpy(), marker=".", color=colors[sampler], label=sampler)
            best = mean.idxmax() if stats.higher_is_better(metric) else mean.idxmin()
            ax.plot([best], [mean[best]], marker="*", markersize=12, color=colors[sampler], markeredgecolor="black")
        ax.set_title(f"{name} set: {scenario} · {dataset}\n{backbone}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Training curves: {metric} per evaluated epoch (mean over seeds); star: the curve's best epoch")
    return _save(fig, path)


def _plot_false_hard_negatives(table: pd.DataFrame, colors: dict, path: Path) -> Path | None:
    """Mean false-hard-negative rate over seeds with its t-interval; None when no run measured it."""
    runs = table.drop_duplicates("key").dropna(subset=["false_hard_negative_rate"])
    if runs.empty:
        return None
    rows = []
    for key, frame in runs.groupby(["backbone", "scenario", "dataset", "sampler"]):
        values = frame["false_hard_negative_rate"].to_numpy(dtype=float)
        low, high = stats.t_interval(values)
        rows.append(dict(zip(["backbone", "scenario", "dataset", "sampler"], key))
                    | {"mean": values.mean(), "ci_low": low, "ci_high": high})
    title = ("False-hard-negative rate per sampler: share of chosen negatives the user truly likes\n"
             "(synthetic data) or holds out (real data); mean over seeds with 95 % t-interval")
    return _save(_interval_bars(pd.DataFrame(rows), title, "false-hard-negative rate", colors), path)


def scenario_sweeps(records: Sequence[dict]) -> dict[tuple[str, str], tuple[str, float]]:
    """``(scenario label, dataset) -> (parameter, value)`` for scenarios swept over one numeric parameter.

    A sweep is a scenario run on one dataset under several labels whose resolved parameters differ
    in exactly one numeric parameter (``popularity[confounding=0,0.8,1.6]``, say).
    """
    labels: dict[tuple[str, str], dict[str, dict]] = {}
    for rec in records:
        cell = rec["cell"]
        params = {k: v for k, v in cell.get("scenario_params", {}).items() if k != "dataset"}
        labels.setdefault((cell["scenario"], cell["dataset"]), {})[cell.get("scenario_label", cell["scenario"])] = params
    sweeps = {}
    for (_, dataset), by_label in labels.items():
        if len(by_label) < 2:
            continue
        names = set().union(*by_label.values())
        varying = [n for n in sorted(names) if len({repr(p.get(n)) for p in by_label.values()}) > 1]
        values = [p.get(varying[0]) for p in by_label.values()] if len(varying) == 1 else []
        if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            sweeps.update({(label, dataset): (varying[0], float(p[varying[0]])) for label, p in by_label.items()})
    return sweeps


def _plot_sweeps(summary: pd.DataFrame, table: pd.DataFrame, records: Sequence[dict], metric: str,
                 test_set: str, colors: dict, path: Path) -> Path | None:
    """``metric`` and the false-hard-negative rate against a swept scenario parameter, a line per sampler.

    One column of panels per (backbone, scenario, dataset, parameter); None when the grid sweeps nothing.
    """
    sweeps = scenario_sweeps(records)
    if not sweeps:
        return None

    def with_sweep(frame: pd.DataFrame) -> pd.DataFrame:
        keys = list(zip(frame["scenario"], frame["dataset"]))
        swept = [sweeps.get(k) for k in keys]
        frame = frame.assign(parameter=[s[0] if s else None for s in swept],
                             x=[s[1] if s else math.nan for s in swept]).dropna(subset=["parameter"])
        return frame.assign(family=frame["scenario"].str.replace(r"\[.*$", "", regex=True))

    quality = with_sweep(summary[summary["metric"] == metric])
    runs = with_sweep(table.drop_duplicates("key").dropna(subset=["false_hard_negative_rate"]))
    rows = []
    for key, frame in runs.groupby(["backbone", "family", "dataset", "parameter", "x", "sampler"]):
        values = frame["false_hard_negative_rate"].to_numpy(dtype=float)
        low, high = stats.t_interval(values)
        rows.append(dict(zip(["backbone", "family", "dataset", "parameter", "x", "sampler"], key))
                    | {"mean": values.mean(), "ci_low": low, "ci_high": high})
    panels_of = ["backbone", "family", "dataset", "parameter"]
    rates = pd.DataFrame(rows, columns=panels_of + ["x", "sampler", "mean", "ci_low", "ci_high"])
    columns = list(quality[panels_of].drop_duplicates().sort_values(panels_of).itertuples(index=False))
    if not columns:
        return None
    fig = Figure(figsize=(5.0 * len(columns) + 1.5, 7.6), layout="constrained")
    axes = fig.subplots(2, len(columns), squeeze=False)
    arrow = "higher is better" if stats.higher_is_better(metric) else "lower is better"
    for j, block in enumerate(columns):
        for ax, frame, ylabel in ((axes[0, j], quality, f"{metric} ({test_set} test, {arrow})"),
                                  (axes[1, j], rates, "false-hard-negative rate")):
            part = frame[np.logical_and.reduce([frame[c] == v for c, v in zip(panels_of, block)])]
            for sampler, line in part.groupby("sampler"):
                line = line.sort_values("x")
                ax.plot(line["x"], line["mean"], marker="o", color=colors[sampler], label=sampler)
                ax.fill_between(line["x"], line["ci_low"], line["ci_high"], color=colors[sampler], alpha=0.15)
            ax.set_xlabel(block.parameter)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        axes[0, j].set_title(f"{block.family} · {block.dataset} · {block.backbone}")
    handles = [Line2D([], [], marker="o", color=c, label=s) for s, c in colors.items() if s in set(quality["sampler"])]
    fig.legend(handles=handles, title="sampler", loc="outside right center")
    fig.suptitle(f"{metric} on the {test_set} test (top) and false-hard-negative rate (bottom)\n"
                 f"against the swept scenario parameter\nmean over seeds, band: 95 % t-interval")
    return _save(fig, path)


def _cliques(ranks: np.ndarray, cd: float) -> list[tuple[int, int]]:
    """Maximal runs of rank-sorted samplers whose average ranks differ by less than the CD."""
    spans = []
    for i in range(len(ranks)):
        j = max(j for j in range(i, len(ranks)) if ranks[j] - ranks[i] < cd)
        if j > i and not any(a <= i and j <= b for a, b in spans):
            spans.append((i, j))
    return spans


def _draw_critical_difference(ax, ranks: pd.DataFrame, test: pd.Series, metric: str, test_set: str) -> None:
    """Demsar's diagram: rank axis (best on the right), CD bar, bars joining indistinguishable samplers."""
    names = list(ranks["sampler"])
    values = ranks["average_rank"].to_numpy(dtype=float)
    k = len(names)
    cd = float(test["critical_difference"])
    pos = lambda r: k + 1 - r  # noqa: E731  (rank 1 drawn on the right)
    ax.set_axis_off()
    ax.hlines(0, 1, k, color="black", linewidth=1)
    for r in range(1, k + 1):
        ax.vlines(pos(r), 0, 0.12, color="black", linewidth=1)
        ax.text(pos(r), 0.18, str(r), ha="center", va="bottom", fontsize=9)
    if np.isfinite(cd):
        ax.hlines(0.75, 1, 1 + cd, color="black", linewidth=1.5)
        ax.vlines([1, 1 + cd], 0.69, 0.81, color="black", linewidth=1.5)
        ax.text(1 + cd / 2, 0.85, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    spans = _cliques(values, cd) if np.isfinite(cd) else []
    for c, (i, j) in enumerate(spans):
        y = -0.22 - 0.14 * c
        ax.hlines(y, pos(values[i]) + 0.04, pos(values[j]) - 0.04, color="black", linewidth=4)
    top = -0.35 - 0.14 * len(spans)
    step = 0.32
    half = math.ceil(k / 2)
    for i, (name, r) in enumerate(zip(names, values)):
        if i < half:  # better half labelled on the right, best nearest the axis
            y, end, ha = top - i * step, k + 0.25, "left"
        else:  # worse half on the left, worst nearest the axis
            y, end, ha = top - (k - 1 - i) * step, 1 - 0.25, "right"
        ax.vlines(pos(r), y, 0, color="0.3", linewidth=0.8)
        ax.hlines(y, pos(r), end, color="0.3", linewidth=0.8)
        ax.text(end + (0.05 if ha == "left" else -0.05), y, f"{name} ({r:.2f})", ha=ha, va="center", fontsize=9)
    margin = 0.45 * max(k - 1, 2)
    ax.set_xlim(1 - margin, k + margin)
    ax.set_ylim(top - half * step, 1.1)
    if test["warning"]:
        verdict = test["warning"]
    else:
        verdict = f"Friedman p = {test['p_value']:.3g}"
    ax.set_title(f"{metric}, {test_set} test: average rank over {int(test['n_blocks'])} blocks (1 = best); "
                 f"{verdict}", fontsize=10)


def _plot_critical_difference(summary: pd.DataFrame, metrics: Sequence[str], test_set: str,
                              alpha: float, path: Path) -> Path | None:
    panels = []
    for metric in metrics:
        ranks = stats.average_ranks(summary, metric)
        if len(ranks) >= 2 and ranks["n_blocks"].iloc[0] >= 1:
            panels.append((metric, ranks, stats.friedman_nemenyi(summary, metric, alpha=alpha).iloc[0]))
    if not panels:
        return None
    heights = [1.6 + 0.2 * len(r) for _, r, _ in panels]
    fig = Figure(figsize=(9, sum(heights) + 0.6), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights).ravel()
    for ax, (metric, ranks, test) in zip(axes, panels):
        _draw_critical_difference(ax, ranks, test, metric, test_set)
    fig.suptitle(f"Critical-difference diagram (Nemenyi test, α = {alpha:g})\n"
                 f"samplers joined by a thick bar are not significantly different")
    return _save(fig, path)


def _label_points(fig: Figure, labelled: list[tuple]) -> None:
    """Sampler names next to their points, each at the first offset that overlaps no marker or earlier label.

    The layout is run and then frozen first, so the positions measured are the saved ones; a name
    with no free spot is left out (the legend still names every colour).
    """
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    fig.set_layout_engine("none")
    renderer = canvas.get_renderer()
    radius = 4.5 * fig.dpi / 72  # markers are 7 points wide, plus their edge
    placed = [Bbox.from_extents(px - radius, py - radius, px + radius, py + radius)
              for px, py in (ax.transData.transform((x, y)) for ax, x, y, _ in labelled)]
    offsets = [(6, 2, "left", "bottom"), (6, -2, "left", "top"), (-6, 2, "right", "bottom"),
               (-6, -2, "right", "top"), (0, 8, "center", "bottom"), (0, -8, "center", "top")]
    for ax, x, y, text in labelled:
        for dx, dy, ha, va in offsets:
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                                fontsize=8)
            box = label.get_window_extent(renderer)
            inside = ax.bbox.contains(box.x0, box.y0) and ax.bbox.contains(box.x1, box.y1)
            if inside and not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
            label.remove()


def _plot_quality_vs_cost(summary: pd.DataFrame, metric: str, test_set: str, colors: dict,
                          path: Path) -> Path | None:
    """Score against seconds per epoch, one point per (sampler, backbone), one panel per (scenario, dataset)."""
    frame = summary[(summary["metric"] == metric) & np.isfinite(summary["epoch_s"])]
    if frame.empty:
        return None
    blocks = frame[["scenario", "dataset"]].drop_duplicates().sort_values(["scenario", "dataset"], key=_natural)
    backbones = sorted(frame["backbone"].unique())
    fig, axes = _grid_of_panels(len(blocks), width=5.0, height=4.0)
    labelled = []
    for ax, (scenario, dataset) in zip(axes, blocks.itertuples(index=False)):
        part = frame[(frame["scenario"] == scenario) & (frame["dataset"] == dataset)]
        for row in part.itertuples(index=False):
            err = np.nan_to_num([[row.mean - row.ci_low], [row.ci_high - row.mean]], nan=0.0)
            ax.errorbar(row.epoch_s, row.mean, yerr=err, fmt=MARKERS[backbones.index(row.backbone) % len(MARKERS)],
                        color=colors[row.sampler], markersize=7, capsize=3, markeredgecolor="black")
            labelled.append((ax, row.epoch_s, row.mean, row.sampler))
        ax.margins(x=0.2, y=0.15)
        if part["epoch_s"].max() > 20 * part["epoch_s"].min() > 0:
            ax.set_xscale("log")
        else:
            ax.set_xlim(left=0)
        ax.set_title(f"{scenario} · {dataset}")
        ax.set_xlabel("seconds per epoch")
        ax.set_ylabel(f"{metric} ({test_set})")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], linestyle="", marker="o", color=c, markeredgecolor="black", label=s)
               for s, c in colors.items() if s in set(frame["sampler"])]
    handles += [Line2D([], [], linestyle="", marker=MARKERS[j % len(MARKERS)], color="white",
                       markeredgecolor="black", label=f"backbone {b}") for j, b in enumerate(backbones)]
    fig.legend(handles=handles, loc="outside right center")
    fig.suptitle(f"Quality against cost: {metric} on the {test_set} test against seconds per training epoch\n"
                 f"mean over seeds with 95 % t-interval; one point per sampler and backbone")
    _label_points(fig, labelled)
    return _save(fig, path)


# --- entry point -------------------------------------------------------------------------------

def _check_request(table: pd.DataFrame, metrics: Sequence[str], test_set: str, results_dir: Path) -> None:
    if table.empty:
        raise ValueError(f"no finished runs under {Path(results_dir) / 'runs'}")
    if test_set not in set(table["test_set"]):
        raise ValueError(f"test set {test_set!r} is not in {results_dir}; it has {sorted(set(table['test_set']))}")
    missing = [m for m in metrics if m not in set(table["metric"])]
    if missing:
        raise ValueError(f"metric(s) {missing} not in {results_dir}; it has {sorted(set(table['metric']))}")


def write_report(
    results_dir: str | Path, out_dir: str | Path, metrics: Sequence[str] = DEFAULT_METRICS,
    test_set: str = "ood", per_user: bool = True, alpha: float = 0.05, baseline: str = "uniform",
) -> list[Path]:
    """Write every grid's leaderboards and plots under ``out_dir/<grid>/``; return the files written.

    A record without a grid name goes to ``out_dir/default/``. ``per_user`` adds the per-user
    Wilcoxon tests (pooled over seeds) to ``leaderboard.csv``; the marks use the seeds-level t-test.
    Raises ValueError, naming what exists, for an empty results directory, an unknown test set or
    a metric that no run recorded.
    """
    with open_results(results_dir) as store:
        return _write_report(store, Path(results_dir), Path(out_dir), metrics, test_set, per_user, alpha, baseline)


def _write_report(
    store: Store, results_dir: Path, out_dir: Path, metrics: Sequence[str], test_set: str, per_user: bool,
    alpha: float, baseline: str,
) -> list[Path]:
    table = store.table()
    _check_request(table, metrics, test_set, results_dir)
    records = [r for r in store.records() if r.get("status") == "done"]
    memberships = store.memberships()

    def load(key: str) -> dict[str, np.ndarray]:
        return store.per_user(key) if store.users_path(key).exists() else {}

    written: list[Path] = []
    for grid, sub in table.groupby("grid", sort=True):
        folder = Path(out_dir) / (grid or "default")
        folder.mkdir(parents=True, exist_ok=True)
        summary = stats.summarize(sub)
        comparisons = stats.compare(sub, per_user=load if per_user else None, baseline=baseline, alpha=alpha)
        in_test = summary[summary["test_set"] == test_set]
        test_comparisons = comparisons[comparisons["test_set"] == test_set]

        grid_keys = set(sub["key"])
        labels = memberships.get(grid, {})  # the cells' names as this grid spells them
        grid_records = [r | {"cell": r["cell"] | labels.get(r["key"], {})} for r in records if r["key"] in grid_keys]
        markdown = _markdown_grid(grid, in_test, test_comparisons, metrics, test_set, baseline, alpha, sub)
        (folder / "leaderboard.md").write_text(markdown + _selection_markdown(grid_records, metrics, test_set))
        _long_table(summary, comparisons).to_csv(folder / "leaderboard.csv", index=False)
        (folder / "leaderboard.tex").write_text(
            _latex(in_test, test_comparisons, metrics, test_set, grid, baseline, alpha))
        written += [folder / "leaderboard.md", folder / "leaderboard.csv", folder / "leaderboard.tex"]

        colors = _colors(sorted(sub["sampler"].unique()))
        for metric in metrics:
            written.append(_plot_bars(in_test, metric, test_set, colors, folder / f"bars_{metric}.png"))
        optional = [
            _plot_critical_difference(in_test, metrics, test_set, alpha, folder / "critical_difference.png"),
            _plot_quality_vs_cost(in_test, COST_METRIC, test_set, colors, folder / "quality_vs_cost.png"),
            _plot_false_hard_negatives(sub, colors, folder / "false_hard_negatives.png"),
            _plot_sweeps(in_test, sub, grid_records, metrics[0], test_set, colors, folder / f"sweep_{metrics[0]}.png"),
            _plot_curves(grid_records, metrics[0], colors,
                         folder / f"curves_{metrics[0]}.png"),
        ]
        written += [p for p in optional if p is not None]
    return written
