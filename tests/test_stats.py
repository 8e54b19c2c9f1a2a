"""Known answers for bench.stats: numpy/scipy on fixed vectors and textbook examples."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from bench import stats

# Demsar (2006), Table 6: AUC of C4.5, C4.5+m, C4.5+cf, C4.5+m+cf on 14 data sets. The table prints
# 0.975 twice for 'voting', but the paper's ranks (C4.5+cf 2.893) need C4.5+cf ahead there: 0.97501.
DEMSAR = np.array([
    [0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
    [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
    [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
    [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
    [0.972, 0.981, 0.97501, 0.975], [0.957, 0.978, 0.946, 0.970],
])

X = np.array([0.21, 0.25, 0.19, 0.24, 0.26, 0.23, 0.22])
Y = np.array([0.20, 0.22, 0.20, 0.21, 0.22, 0.20, 0.21])


def tidy(values: dict[str, list[float]], metric: str = "recall@20", scenario: str = "popularity",
         test_set: str = "ood", backbone: str = "mf") -> pd.DataFrame:
    """A Store.table()-shaped frame: one row per sampler and seed."""
    rows = []
    for sampler, vals in values.items():
        for seed, v in enumerate(vals):
            rows.append({"grid": "g", "key": f"{backbone}-{scenario}-{sampler}-{seed}", "sampler": sampler,
                         "backbone": backbone, "scenario": scenario, "dataset": "synthetic", "seed": seed,
                         "test_set": test_set, "metric": metric, "value": v, "epoch_s": 1.0,
                         "false_hard_negative_rate": 0.1})
    return pd.DataFrame(rows)


def test_summary_matches_numpy_and_scipy() -> None:
    summary = stats.summarize(tidy({"uniform": list(Y), "dns": list(X)}))
    row = summary.set_index("sampler").loc["dns"]
    assert row["n_seeds"] == 7
    assert row["mean"] == pytest.approx(X.mean())
    assert row["std"] == pytest.approx(np.std(X, ddof=1))
    low, high = sps.t.interval(0.95, 6, loc=X.mean(), scale=sps.sem(X))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert row["rank"] == 1
    assert list(summary.columns) == stats.SUMMARY_COLUMNS


def test_paired_tests_match_scipy() -> None:
    assert stats.paired_ttest(X, Y) == pytest.approx(sps.ttest_rel(X, Y).pvalue)
    assert stats.paired_wilcoxon(X, Y) == pytest.approx(sps.wilcoxon(X, Y).pvalue)
    comparison = stats.compare(tidy({"uniform": list(Y), "dns": list(X)}))
    row = comparison[comparison["reference"] == "baseline"].iloc[0]
    assert row["p_ttest"] == pytest.approx(sps.ttest_rel(X, Y).pvalue)
    assert row["p_wilcoxon"] == pytest.approx(sps.wilcoxon(X, Y).pvalue)
    assert row["p_ttest_holm"] == pytest.approx(row["p_ttest"])  # a family of one
    assert row["direction"] == "better" and row["significant_ttest"]
    assert row["warning"] == ""


def test_holm_textbook() -> None:
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(3)
    for p in [rng.random(7), rng.random(12) ** 4, np.array([0.02, 0.02, 0.5, 0.001, 1.0])]:
        assert stats.holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    adjusted = stats.holm([0.01, math.nan, 0.04])
    assert math.isnan(adjusted[1]) and adjusted[[0, 2]] == pytest.approx([0.02, 0.04])


def test_holm_runs_within_each_family() -> None:
    noise = np.array([0.001, -0.002, 0.0015, -0.001, 0.002, -0.0005, 0.001])
    values = {"uniform": list(Y), "dns": list(X), "pop": list(Y + 0.02 + noise), "mixgcf": list(Y - 0.01 + noise[::-1])}
    comparison = stats.compare(tidy(values))
    family = comparison[comparison["reference"] == "baseline"].set_index("sampler")
    assert len(family) == 3
    assert family["p_ttest_holm"].to_numpy() == pytest.approx(stats.holm(family["p_ttest"]))


def test_relative_improvement_delta_method() -> None:
    rel, low, high = stats.relative_improvement(X, Y, higher=True)
    ratio = X.mean() / Y.mean()
    assert rel == pytest.approx((ratio - 1) * 100)
    se = np.sqrt(np.var(X, ddof=1) / Y.mean() ** 2 + ratio ** 2 * np.var(Y, ddof=1) / Y.mean() ** 2
                 - 2 * ratio * np.cov(X, Y)[0, 1] / Y.mean() ** 2) / np.sqrt(len(X))
    half = sps.t.ppf(0.975, len(X) - 1) * se * 100
    assert (low, high) == pytest.approx((rel - half, rel + half))


def test_direction_flips_for_lower_is_better() -> None:
    # dns recommends less popular items (lower avg_pop@20): that is better, and improvement is positive.
    table = tidy({"uniform": list(100 * Y), "dns": list(100 * Y - 3 - X)}, metric="avg_pop@20")
    row = stats.compare(table).query("reference == 'baseline'").iloc[0]
    assert row["diff"] < 0 and row["direction"] == "better" and row["rel_improvement"] > 0
    summary = stats.summarize(table).set_index("sampler")
    assert summary.loc["dns", "rank"] == 1 and summary.loc["uniform", "rank"] == 2
    assert stats.best_sampler(stats.summarize(table)).iloc[0] == "dns"
    # the same numbers on a higher-is-better metric read the other way round
    row = stats.compare(tidy({"uniform": list(100 * Y), "dns": list(100 * Y - 3 - X)})).iloc[0]
    assert row["direction"] == "worse" and row["rel_improvement"] < 0


def test_identical_sampler_is_never_significant() -> None:
    users = np.arange(50)
    rng = np.random.default_rng(0)
    vectors = {f"mf-popularity-{s}-{seed}": rng.random(50) for s in ("uniform", "dns") for seed in range(7)}
    vectors |= {f"mf-popularity-copy-{seed}": vectors[f"mf-popularity-uniform-{seed}"] for seed in range(7)}

    def loader(key: str) -> dict[str, np.ndarray]:
        return {"ood/users": users, "ood/recall@20": vectors[key]}

    table = tidy({"uniform": list(Y), "copy": list(Y), "dns": list(X)})
    comparison = stats.compare(table, per_user=loader)
    row = comparison.query("reference == 'baseline' and sampler == 'copy'").iloc[0]
    for test in stats.TESTS:
        assert row[f"p_{test}"] == 1.0 and row[f"p_{test}_holm"] == 1.0
        assert not row[f"significant_{test}"]
    assert row["direction"] == "same" and row["rel_improvement"] == 0
    assert row["n_users"] == 350
    dns = comparison.query("reference == 'baseline' and sampler == 'dns'").iloc[0]
    assert dns["p_user"] == pytest.approx(sps.wilcoxon(
        np.concatenate([vectors[f"mf-popularity-dns-{s}"] for s in range(7)]),
        np.concatenate([vectors[f"mf-popularity-uniform-{s}"] for s in range(7)])).pvalue)


def test_best_reference_and_seed_warning() -> None:
    comparison = stats.compare(tidy({"uniform": list(Y[:3]), "dns": list(X[:3]), "pop": list(Y[:3] + [0.001, 0.003, 0.002])}))
    best = comparison[comparison["reference"] == "best"]
    assert set(best["reference_sampler"]) == {"dns"} and set(best["sampler"]) == {"uniform", "pop"}
    assert "cannot reach p < 0.05" in best["warning"].iloc[0]
    assert not comparison["significant_wilcoxon"].any()
    assert stats.min_wilcoxon_seeds(0.05) == 6
    assert stats.seed_count_warning(6) == ""
    assert "no paired test" in stats.seed_count_warning(1)


def test_friedman_and_ranks_on_demsar() -> None:
    names = ["c45", "c45_m", "c45_cf", "c45_m_cf"]
    rows = []
    for block, scores in enumerate(DEMSAR):
        for name, score in zip(names, scores):
            rows.append({"backbone": "mf", "scenario": f"d{block}", "dataset": "x", "test_set": "ood",
                         "metric": "recall@20", "sampler": name, "mean": score})
    summary = pd.DataFrame(rows)
    ranks = stats.average_ranks(summary, "recall@20").set_index("sampler")["average_rank"]
    assert ranks[names].to_numpy() == pytest.approx([3.143, 2.000, 2.893, 1.964], abs=1e-3)
    result = stats.friedman_nemenyi(summary, "recall@20").iloc[0]
    expected = sps.friedmanchisquare(*DEMSAR.T)
    assert result["statistic"] == pytest.approx(expected.statistic)
    assert result["p_value"] == pytest.approx(expected.pvalue)
    # Demsar's 9.28 is the statistic without scipy's correction for ties 
    n, k = DEMSAR.shape
    uncorrected = 12 * n / (k * (k + 1)) * (np.sum(ranks.to_numpy() ** 2) - k * (k + 1) ** 2 / 4)
    assert uncorrected == pytest.approx(9.28, abs=0.01)
    assert result["critical_difference"] == pytest.approx(1.25, abs=0.01)
    assert result["q_alpha"] == pytest.approx(2.569, abs=1e-3)


def test_nemenyi_critical_difference() -> None:
    assert stats.nemenyi_q(4) == pytest.approx(2.569, abs=1e-3)
    assert stats.nemenyi_q(2) == pytest.approx(1.960, abs=1e-3)
    assert stats.nemenyi_critical_difference(4, 14) == pytest.approx(2.569 * math.sqrt(20 / 84), abs=1e-3)


def test_friedman_warns_with_too_few_blocks() -> None:
    summary = stats.summarize(tidy({"uniform": list(Y), "dns": list(X), "pop": list(Y + 0.01)}))
    result = stats.friedman_nemenyi(summary, "recall@20").iloc[0]
    assert result["n_blocks"] == 1 and math.isnan(result["p_value"]) and "2 blocks" in result["warning"]


def test_paper_aggregate_hand_made() -> None:
    rows = []
    means = {  # (scenario, metric): {sampler: mean}
        ("popularity", "recall@20"): {"uniform": 0.10, "dns": 0.20, "cnsdiff": 0.22},  # +10 %
        ("popularity", "ndcg@20"): {"uniform": 0.05, "dns": 0.04, "cnsdiff": 0.06},    # +20 %
        ("temporal", "recall@20"): {"uniform": 0.30, "dns": 0.25, "cnsdiff": 0.27},    # -10 %
        ("temporal", "avg_pop@20"): {"uniform": 9.0, "dns": 8.0, "cnsdiff": 1.0},      # not accuracy
    }
    for (scenario, metric), by_sampler in means.items():
        for sampler, mean in by_sampler.items():
            rows.append({"backbone": "mf", "scenario": scenario, "dataset": "x", "test_set": "ood",
                         "metric": metric, "sampler": sampler, "mean": mean})
    summary = pd.DataFrame(rows)
    detail = stats.improvement_over_best_other(summary, "cnsdiff").set_index(["scenario", "metric"])
    assert detail.loc[("popularity", "recall@20"), "best_other"] == "dns"
    assert detail.loc[("temporal", "recall@20"), "best_other"] == "uniform"
    assert detail["rel_improvement"].sort_values().to_numpy() == pytest.approx([-10, 10, 20])
    headline = stats.paper_aggregate(summary, "cnsdiff").iloc[0]
    assert headline["n_values"] == 3
    assert headline["mean_rel_improvement"] == pytest.approx(20 / 3)
    # with avg_pop@20 included, lower is better: 1 against the best other 8 is +87.5 %
    both = stats.improvement_over_best_other(summary, "cnsdiff", metrics=["avg_pop@20"]).iloc[0]
    assert both["best_other"] == "dns" and both["rel_improvement"] == pytest.approx(87.5)
    # a variant of the same sampler is not a baseline, even when it is the best of the others
    variant = summary[summary["sampler"] == "cnsdiff"].assign(sampler="cnsdiff[variant=released]",
                                                               mean=lambda f: f["mean"] * 2)
    with_variant = pd.concat([summary, variant])
    detail = stats.improvement_over_best_other(with_variant, "cnsdiff").set_index(["scenario", "metric"])
    assert detail.loc[("popularity", "recall@20"), "best_other"] == "dns"
    assert stats.paper_aggregate(with_variant, "cnsdiff").iloc[0]["mean_rel_improvement"] == pytest.approx(20 / 3)
    released = stats.improvement_over_best_other(with_variant, "cnsdiff[variant=released]")
    assert "cnsdiff" not in set(released["best_other"])


def test_unknown_metric_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        stats.summarize(tidy({"uniform": [0.1, 0.2]}, metric="mystery@5"))
