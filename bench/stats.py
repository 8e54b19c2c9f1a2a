"""Which differences between samplers are real: intervals, paired tests, ranks and effect sizes.

Every function is a pure function of the tidy score table that ``Store.table()`` returns (one
row per cell, test set and metric; pass one grid at a time) or of the summary built from it, plus
an optional per-user loader; nothing here reads or writes files.

Conventions:

- a *group* is one (backbone, scenario, dataset, test set, metric); samplers are compared inside
  a group, paired by seed (the seed fixes initialisation, sampling and split order for every
  sampler alike);
- p-values are two-sided; the reported ``direction`` (better / worse / same) comes from the sign
  of the mean difference and the metric's ``higher_is_better``, so a lower-is-better metric such
  as ``avg_pop@20`` reads the right way round;
- Holm's correction runs within each *family*: one group x one reference (``baseline`` or
  ``best``) x one test (t-test, Wilcoxon, per-user Wilcoxon);
- relative improvement (%) is the ratio of the paired means, signed so that positive means
  better; its interval comes from the delta method (linearisation of the ratio of paired means,
  t quantile with n - 1 degrees of freedom), so the point estimate is the one papers report
  (ratio of means), not a mean of per-seed ratios.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from bench.metrics import ACCURACY_METRICS, METRICS

GROUP = ["backbone", "scenario", "dataset", "test_set", "metric"]
CELL = ["backbone", "scenario", "dataset"]
RANK_BLOCK = ["backbone", "scenario", "dataset", "test_set"]
TESTS = ("ttest", "wilcoxon", "user")

PerUserLoader = Callable[[str], Mapping[str, np.ndarray]]

SUMMARY_COLUMNS = GROUP + ["sampler", "n_seeds", "mean", "std", "ci_low", "ci_high", "rank", "epoch_s"]
COMPARISON_COLUMNS = GROUP + [
    "sampler", "reference", "reference_sampler", "n_seeds", "mean", "reference_mean", "diff",
    "direction", "rel_improvement", "rel_ci_low", "rel_ci_high",
    "p_ttest", "p_ttest_holm", "significant_ttest",
    "p_wilcoxon", "p_wilcoxon_holm", "significant_wilcoxon",
    "n_users", "p_user", "p_user_holm", "significant_user",
    "warning",
]


def higher_is_better(metric: str) -> bool:
    """The metric's direction; an unknown metric is an error, never silently 'higher'."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: its direction (higher or lower is better) is not declared")
    return METRICS[metric].higher_is_better


def t_interval(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean; NaN bounds with fewer than two values."""
    x = np.asarray(list(values), dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    sem = stats.sem(x)
    if sem == 0:
        return float(x.mean()), float(x.mean())
    low, high = stats.t.interval(confidence, len(x) - 1, loc=x.mean(), scale=sem)
    return float(low), float(high)


def min_wilcoxon_seeds(alpha: float = 0.05) -> int:
    """Smallest n at which the exact two-sided Wilcoxon test can reach p < alpha (its least p is 2 / 2^n)."""
    return math.floor(math.log2(2 / alpha)) + 1


def seed_count_warning(n_seeds: int, alpha: float = 0.05) -> str:
    """A sentence when n paired seeds cannot make a difference significant, else ''."""
    needed = min_wilcoxon_seeds(alpha)
    if n_seeds < 2:
        return f"{n_seeds} paired seed(s): no paired test is possible (run at least {needed} seeds)"
    if n_seeds < needed:
        return (f"{n_seeds} paired seeds: the exact two-sided Wilcoxon test cannot reach p < {alpha:g} "
                f"(needs >= {needed} seeds)")
    return ""


def _all_zero(d: np.ndarray) -> bool:
    return bool(np.all(np.abs(d) <= 1e-12))


def paired_ttest(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided paired t-test p-value; identical vectors give 1, fewer than two pairs NaN."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        return math.nan
    if _all_zero(x - y):
        return 1.0
    return float(stats.ttest_rel(x, y).pvalue)


def paired_wilcoxon(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; identical vectors give 1 (scipy would warn or give NaN)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) == 0:
        return math.nan
    if _all_zero(x - y):
        return 1.0
    return float(stats.wilcoxon(x, y).pvalue)


def relative_improvement(
    x: np.ndarray, y: np.ndarray, higher: bool, confidence: float = 0.95
) -> tuple[float, float, float]:
    """(improvement %, low, high) of x over y, paired by position; positive means x is better.

    Point estimate: 100 * (mean(x) / mean(y) - 1), sign flipped for a lower-is-better metric.
    Interval: delta method for the ratio R of paired means, se(R) = sd(x - R y) / (sqrt(n) |mean(y)|),
    with a t quantile on n - 1 degrees of freedom.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ybar = y.mean() if len(y) else math.nan
    if len(x) == 0 or ybar == 0 or not np.isfinite(ybar):
        return math.nan, math.nan, math.nan
    ratio = x.mean() / ybar
    sign = 1.0 if higher else -1.0
    rel = sign * (ratio - 1.0) * 100.0
    if len(x) < 2:
        return float(rel), math.nan, math.nan
    se = np.std(x - ratio * y, ddof=1) / (math.sqrt(len(x)) * abs(ybar))
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * se * 100.0
    return float(rel), float(rel - half), float(rel + half)


def holm(pvalues: Iterable[float]) -> np.ndarray:
    """Holm-adjusted p-values; NaN entries stay NaN and are not counted in the family.

    The step-down formula (sorted p times m, m - 1, ..., 1, running maximum, capped at 1) is written
    out because statsmodels' ``multipletests(method="holm")``, which the tests check it against,
    runs a full ``gc.collect()`` on every call: 0.2 s each with torch loaded, minutes over a grid.
    """
    p = np.asarray(list(pvalues), dtype=float)
    adjusted = np.full_like(p, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    return adjusted


def _check_unique(table: pd.DataFrame) -> None:
    dup = table.duplicated(GROUP + ["sampler", "seed"])
    if dup.any():
        row = table[dup].iloc[0]
        raise ValueError(
            f"several runs for sampler {row['sampler']!r}, seed {row['seed']} in "
            f"{row['backbone']}/{row['scenario']}/{row['dataset']}: pass one grid at a time"
        )


def summarize(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean, std, t-interval over seeds and rank (1 = best, direction-aware) per group and sampler."""
    _check_unique(table)
    rows = []
    for key, frame in table.groupby(GROUP + ["sampler"], sort=True):
        values = frame["value"].to_numpy(dtype=float)
        low, high = t_interval(values, confidence)
        rows.append(dict(zip(GROUP + ["sampler"], key)) | {
            "n_seeds": len(values),
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
            "ci_low": low,
            "ci_high": high,
            "epoch_s": float(frame["epoch_s"].mean()),
        })
    summary = pd.DataFrame(rows, columns=[c for c in SUMMARY_COLUMNS if c != "rank"])
    if summary.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    sign = summary["metric"].map(lambda m: -1.0 if higher_is_better(m) else 1.0)
    summary["rank"] = (sign * summary["mean"]).groupby([summary[c] for c in GROUP]).rank(method="min")
    return summary[SUMMARY_COLUMNS]


def best_sampler(summary: pd.DataFrame) -> pd.Series:
    """Best sampler by mean per group (direction-aware; ties go to the first name)."""
    sign = summary["metric"].map(lambda m: 1.0 if higher_is_better(m) else -1.0)
    ordered = summary.assign(_score=sign * summary["mean"]).sort_values(
        GROUP + ["_score", "sampler"], ascending=[True] * len(GROUP) + [False, True]
    )
    return ordered.groupby(GROUP, sort=True)["sampler"].first()


def _per_user_pairs(
    vectors: Callable[[str], Mapping[str, np.ndarray]], keys_x: list[str], keys_y: list[str],
    test_set: str, metric: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user values of two samplers over their shared seeds, aligned user by user and concatenated."""
    xs, ys = [], []
    for kx, ky in zip(keys_x, keys_y):
        vx, vy = vectors(kx), vectors(ky)
        name, users = f"{test_set}/{metric}", f"{test_set}/users"
        if name not in vx or name not in vy:
            continue
        _, ix, iy = np.intersect1d(vx[users], vy[users], return_indices=True)
        a, b = np.asarray(vx[name], dtype=float)[ix], np.asarray(vy[name], dtype=float)[iy]
        ok = np.isfinite(a) & np.isfinite(b)
        xs.append(a[ok])
        ys.append(b[ok])
    if not xs:
        return np.empty(0), np.empty(0)
    return np.concatenate(xs), np.concatenate(ys)


def compare(
    table: pd.DataFrame,
    per_user: PerUserLoader | None = None,
    baseline: str = "uniform",
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Each sampler against the baseline and against the group's best sampler, paired by seed.

    Rows: one per (group, sampler, reference) with reference ``baseline`` (the sampler named
    ``baseline``) or ``best`` (the group's best by mean); a sampler is not compared with itself.
    ``mean``/``reference_mean`` are over the paired seeds. ``per_user`` (key -> vectors as
    ``Store.per_user``) adds the Wilcoxon test on per-user differences pooled over the paired
    seeds; without it, or for a metric with no per-user vector, ``p_user`` is NaN.
    """
    _check_unique(table)
    summary = summarize(table, confidence)
    best = best_sampler(summary) if not summary.empty else pd.Series(dtype=object)
    rows = []
    for cell_key, cell in table.groupby(CELL, sort=True):
        loaded: dict[str, Mapping[str, np.ndarray]] = {}  # this cell's vectors, dropped after it

        def vectors(key: str) -> Mapping[str, np.ndarray]:
            if key not in loaded:
                loaded[key] = per_user(key)  # type: ignore[misc]
            return loaded[key]

        for (test_set, metric), frame in cell.groupby(["test_set", "metric"], sort=True):
            group = dict(zip(CELL, cell_key)) | {"test_set": test_set, "metric": metric}
            higher = higher_is_better(metric)
            wide = frame.pivot(index="seed", columns="sampler", values="value")
            keys = frame.pivot(index="seed", columns="sampler", values="key")
            references = {"baseline": baseline, "best": best[tuple(group[c] for c in GROUP)]}
            for reference, ref_sampler in references.items():
                if ref_sampler not in wide.columns:
                    continue
                for sampler in wide.columns:
                    if sampler == ref_sampler:
                        continue
                    paired = wide[[sampler, ref_sampler]].dropna()
                    ux = uy = np.empty(0)
                    if per_user is not None and len(paired):
                        ux, uy = _per_user_pairs(
                            vectors, list(keys.loc[paired.index, sampler]),
                            list(keys.loc[paired.index, ref_sampler]), test_set, metric,
                        )
                    rows.append(group | {"sampler": sampler, "reference": reference,
                                         "reference_sampler": ref_sampler}
                                | _paired_row(paired[sampler].to_numpy(), paired[ref_sampler].to_numpy(),
                                              ux, uy, higher, alpha, confidence))
    result = pd.DataFrame(rows, columns=[c for c in COMPARISON_COLUMNS if "_holm" not in c and "significant" not in c])
    for test in TESTS:
        result[f"p_{test}_holm"] = math.nan
        result[f"significant_{test}"] = False
    for _, family in result.groupby(GROUP + ["reference"], sort=False):
        for test in TESTS:
            adjusted = holm(family[f"p_{test}"])
            result.loc[family.index, f"p_{test}_holm"] = adjusted
            result.loc[family.index, f"significant_{test}"] = np.nan_to_num(adjusted, nan=1.0) < alpha
    return result[COMPARISON_COLUMNS]


def _paired_row(
    x: np.ndarray, y: np.ndarray, ux: np.ndarray, uy: np.ndarray, higher: bool, alpha: float, confidence: float
) -> dict:
    """Effect and uncorrected tests of x against y (seeds), and of ux against uy (pooled users)."""
    n = len(x)
    diff = float(x.mean() - y.mean()) if n else math.nan
    rel, rel_low, rel_high = relative_improvement(x, y, higher, confidence)
    return {
        "n_seeds": n,
        "mean": float(x.mean()) if n else math.nan,
        "reference_mean": float(y.mean()) if n else math.nan,
        "diff": diff,
        "direction": _direction(diff, higher),
        "rel_improvement": rel,
        "rel_ci_low": rel_low,
        "rel_ci_high": rel_high,
        "p_ttest": paired_ttest(x, y),
        "p_wilcoxon": paired_wilcoxon(x, y),
        "n_users": len(ux),
        "p_user": paired_wilcoxon(ux, uy) if len(ux) else math.nan,
        "warning": seed_count_warning(n, alpha),
    }


def _direction(diff: float, higher: bool) -> str:
    if not np.isfinite(diff) or abs(diff) <= 1e-12:
        return "same"
    return "better" if (diff > 0) == higher else "worse"


def _rank_matrix(summary: pd.DataFrame, metric: str, test_set: str | None) -> pd.DataFrame:
    """Ranks (1 = best, ties averaged) of each sampler in each complete block, blocks x samplers."""
    frame = summary[summary["metric"] == metric]
    if test_set is not None:
        frame = frame[frame["test_set"] == test_set]
    means = frame.pivot_table(index=RANK_BLOCK, columns="sampler", values="mean").dropna()
    sign = -1.0 if higher_is_better(metric) else 1.0
    ranks = stats.rankdata(sign * means.to_numpy(), axis=1) if len(means) else means.to_numpy()
    return pd.DataFrame(ranks, index=means.index, columns=means.columns)


def average_ranks(summary: pd.DataFrame, metric: str, test_set: str | None = None) -> pd.DataFrame:
    """Average rank per sampler over the blocks (backbone, scenario, dataset, test set) where all samplers ran."""
    ranks = _rank_matrix(summary, metric, test_set)
    out = pd.DataFrame({
        "sampler": ranks.columns,
        "average_rank": ranks.mean(axis=0).to_numpy() if len(ranks) else math.nan,
        "n_blocks": len(ranks),
    })
    return out.sort_values(["average_rank", "sampler"]).reset_index(drop=True)


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Nemenyi's q_alpha: the studentized range quantile (infinite df) over sqrt(2), as in Demsar (2006)."""
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def nemenyi_critical_difference(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Least difference of average ranks that Nemenyi's test calls significant."""
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n_blocks))


def friedman_nemenyi(
    summary: pd.DataFrame, metric: str, test_set: str | None = None, alpha: float = 0.05
) -> pd.DataFrame:
    """Friedman test over the complete blocks and Nemenyi's critical difference, as one row."""
    ranks = _rank_matrix(summary, metric, test_set)
    n_blocks, k = ranks.shape
    statistic = p_value = cd = q = math.nan
    warning = ""
    if k >= 2 and n_blocks >= 1:
        q = nemenyi_q(k, alpha)
        cd = nemenyi_critical_difference(k, n_blocks, alpha)
    if k < 3 or n_blocks < 2:
        warning = f"Friedman test needs >= 3 samplers and >= 2 blocks (have {k} and {n_blocks})"
    elif np.all(ranks.to_numpy() == ranks.to_numpy()[:, :1]):
        statistic, p_value = 0.0, 1.0  # every block a full tie: no evidence of any difference
    else:  # ranking the within-block ranks again changes nothing, so they stand in for the means
        result = stats.friedmanchisquare(*[ranks[c].to_numpy() for c in ranks.columns])
        statistic, p_value = float(result.statistic), float(result.pvalue)
    return pd.DataFrame([{
        "metric": metric, "test_set": test_set, "k": k, "n_blocks": n_blocks,
        "statistic": statistic, "p_value": p_value, "q_alpha": q, "critical_difference": cd,
        "warning": warning,
    }])


def sampler_family(label: str) -> str:
    """The registered name of a sampler label: ``cnsdiff[variant=released]`` -> ``cnsdiff``."""
    return label.partition("[")[0]


def improvement_over_best_other(
    summary: pd.DataFrame, sampler: str, metrics: Iterable[str] = ACCURACY_METRICS,
    test_set: str | None = None,
) -> pd.DataFrame:
    """Per group: the sampler's relative improvement (%) of the mean over the best *other* sampler.

    Other means of another family: a sampler's own variants (``cnsdiff[variant=released]`` for
    ``cnsdiff``) are not its baselines, as a paper's "best baseline" excludes the method itself.
    """
    frame = summary[summary["metric"].isin(list(metrics))]
    if test_set is not None:
        frame = frame[frame["test_set"] == test_set]
    rows = []
    for key, group in frame.groupby(GROUP, sort=True):
        own = group[group["sampler"] == sampler]
        others = group[group["sampler"].map(sampler_family) != sampler_family(sampler)]
        if own.empty or others.empty:
            continue
        higher = higher_is_better(key[GROUP.index("metric")])
        best = others.sort_values(["mean", "sampler"], ascending=[not higher, True]).iloc[0]
        mine = float(own["mean"].iloc[0])
        rel = (1.0 if higher else -1.0) * (mine / best["mean"] - 1.0) * 100.0 if best["mean"] else math.nan
        rows.append(dict(zip(GROUP, key)) | {
            "sampler": sampler, "best_other": best["sampler"], "mean": mine,
            "best_other_mean": float(best["mean"]), "rel_improvement": rel,
        })
    return pd.DataFrame(rows, columns=GROUP + ["sampler", "best_other", "mean", "best_other_mean", "rel_improvement"])


def paper_aggregate(
    summary: pd.DataFrame, sampler: str, metrics: Iterable[str] = ACCURACY_METRICS,
    test_set: str | None = None,
) -> pd.DataFrame:
    """The paper's headline number: mean over metrics and groups of the improvement over the best other sampler."""
    per_group = improvement_over_best_other(summary, sampler, metrics, test_set)
    values = per_group["rel_improvement"].dropna()
    return pd.DataFrame([{
        "sampler": sampler, "test_set": test_set, "n_values": len(values),
        "mean_rel_improvement": float(values.mean()) if len(values) else math.nan,
        "share_better": float((values > 0).mean()) if len(values) else math.nan,
    }])
