"""bench.report on a small fake results directory written through Store.write."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report import curve_table, format_markdown_leaderboard, scenario_sweeps, selection_table, write_report
from bench.store import Store

EFFECT = {"uniform": 0.0, "dns": 0.02, "cnsdiff": 0.05, "mixgcf": 0.03, "popularity": -0.02}
COST = {"uniform": 0.4, "dns": 1.1, "cnsdiff": 2.5, "mixgcf": 1.6, "popularity": 0.5}
FHN = {"uniform": 0.02, "dns": 0.09, "cnsdiff": 0.05, "mixgcf": 0.07, "popularity": 0.03}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_results(root: Path, samplers=("uniform", "dns", "cnsdiff"), scenarios=("popularity", "temporal"),
                 backbones=("mf",), seeds=(0, 1, 2), n_users: int = 40, grid: str = "quick",
                 selected_on: str = "valid", curves: tuple[str, ...] = (), grid_cells: int = 0) -> Store:
    """Fake finished cells: per-user recall/ndcg/avg_pop with a sampler effect and a shared seed effect.

    A scenario may carry parameters as a grid label does: ``popularity[confounding=0.8]``.
    """
    store = Store(root)
    for backbone in backbones:
        for s_index, scenario in enumerate(scenarios):
            for seed in seeds:
                rng_seed = np.random.default_rng([s_index, seed, len(backbone)])
                users = {t: 0.15 + 0.05 * s_index + 0.1 * rng_seed.standard_normal(n_users)  # shared by samplers
                         for t in ("ood", "iid", "valid")}
                for sampler in samplers:
                    rng = np.random.default_rng([s_index, seed, len(backbone), len(sampler), ord(sampler[0])])
                    key = f"{grid}-{backbone}-{scenario}-{sampler}-{seed}"
                    metrics, per_user = {}, {}
                    for t_index, test_set in enumerate(("ood", "iid", "valid")):
                        shift = 0.03 * t_index + EFFECT[sampler] + 0.004 * rng.standard_normal()
                        recall = np.clip(users[test_set] + shift + 0.02 * rng.standard_normal(n_users), 0, 1)
                        ndcg = 0.6 * recall
                        avg_pop = 50 - 200 * EFFECT[sampler] + rng.standard_normal(n_users)
                        per_user |= {f"{test_set}/users": np.arange(n_users), f"{test_set}/recall@20": recall,
                                     f"{test_set}/ndcg@20": ndcg, f"{test_set}/avg_pop@20": avg_pop}
                        metrics[test_set] = {"recall@20": recall.mean(), "ndcg@20": ndcg.mean(),
                                             "avg_pop@20": avg_pop.mean(), "coverage@20": 0.3 + EFFECT[sampler] + 0.01 * rng.random()}
                    rates = FHN[sampler] + 0.01 * rng.random(4)
                    record = {
                        "key": key, "status": "done",
                        "cell": {"grid": grid, "sampler_label": sampler, "backbone_label": backbone,
                                 "scenario": scenario.split("[")[0], "scenario_label": scenario,
                                 "scenario_params": scenario_params(scenario), "dataset": "synthetic", "seed": seed,
                                 "train": {"curves": list(curves)}, "grid_cells": grid_cells},
                        "history": [{"epoch": e, **{f"{c}/{m}": 0.1 + 0.01 * e for c in curves
                                                    for m in ("recall@20", "ndcg@20")}}
                                    for e in range(4)],
                        "metrics": metrics, "selected_on": selected_on,
                        "timings": {"epoch_s": COST[sampler] * (1 + 0.05 * rng.random()) * (2 if backbone == "lightgcn" else 1)},
                        "diagnostics": {"false_hard_negative_rate": rates.tolist(),
                                        "negative_popularity_percentile": (50 + rng.random(4)).tolist(),
                                        "false_hard_negative_rate_mean": float(rates.mean())},
                    }
                    store.write(record, per_user)
    return store


def scenario_params(label: str) -> dict:
    """``name[a=1,b=x]`` -> ``{"a": 1.0, "b": "x", "dataset": "synthetic"}`` (numbers as floats)."""
    inner = label.partition("[")[2].rstrip("]")
    pairs = [item.split("=") for item in inner.split(",") if item]
    return {k: float(v) if v.replace(".", "", 1).isdigit() else v for k, v in pairs} | {"dataset": "synthetic"}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path, list[Path]]:
    root = tmp_path_factory.mktemp("results")
    store = make_results(root)
    out = root / "report"
    return store, out, write_report(root, out)


def test_files_written_per_grid(report) -> None:
    _, out, written = report
    names = {p.name for p in written}
    assert names == {"leaderboard.md", "leaderboard.csv", "leaderboard.tex", "bars_recall@20.png",
                     "bars_ndcg@20.png", "critical_difference.png", "quality_vs_cost.png",
                     "false_hard_negatives.png"}
    assert all(p.parent == out / "quick" and p.exists() for p in written)


def test_pngs_are_real_images(report) -> None:
    _, _, written = report
    for path in written:
        if path.suffix == ".png":
            data = path.read_bytes()
            assert data[:8] == PNG_MAGIC and len(data) > 5000, path.name


def test_markdown_rows_marks_and_warning(report) -> None:
    _, out, _ = report
    text = (out / "quick" / "leaderboard.md").read_text()
    table = text.split("### backbone `mf`")[1].split("###")[0]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert set(rows) >= {"uniform", "dns", "cnsdiff"}
    assert rows["cnsdiff"].count("**") == 2 * 4  # best in all four columns (2 scenarios x 2 metrics)
    assert rows["dns"].count("<u>") == 4 and "**" not in rows["uniform"]
    assert "†" in rows["cnsdiff"] and "†" not in rows["uniform"]
    assert "cannot reach p < 0.05" in text and "Legend" in text and "Holm" in text
    assert "popularity/synthetic recall@20 ↑" in rows["sampler"] and "s/epoch" in rows["sampler"]


def test_selection_on_a_test_set_is_labelled(report, tmp_path: Path) -> None:
    _, out, _ = report
    assert "selected on" not in (out / "quick" / "leaderboard.md").read_text()
    store = make_results(tmp_path, grid="parity", seeds=(0, 1), selected_on="ood")
    text = format_markdown_leaderboard(store.table())
    assert "**Epoch selected on the `ood` test set, not on `valid`**" in text


def test_curves_plot_only_for_runs_that_traced_curves(report, tmp_path: Path) -> None:
    _, out, written = report
    assert not (out / "quick" / "curves_recall@20.png").exists()
    make_results(tmp_path, grid="parity", seeds=(0,), curves=("valid", "ood"))
    files = write_report(tmp_path, tmp_path / "report")
    path = tmp_path / "report" / "parity" / "curves_recall@20.png"
    assert path in files and path.read_bytes().startswith(PNG_MAGIC)
    frame = curve_table(list(Store(tmp_path).records()), "recall@20")
    assert set(frame["set"]) == {"valid", "ood"} and frame["epoch"].max() == 4


def test_selection_along_the_curves_on_a_hand_made_case(tmp_path: Path) -> None:
    # valid peaks at epoch index 1 and 2 (first max: 1), ood at index 3; two seeds
    valid = [0.10, 0.30, 0.30, 0.20]
    ood = {0: [0.01, 0.02, 0.03, 0.05], 1: [0.03, 0.04, 0.05, 0.07]}
    records = [{"key": f"k{seed}", "cell": {"sampler_label": "uniform", "backbone_label": "lightgcn",
                                             "scenario": "popularity", "scenario_label": "popularity",
                                             "dataset": "yelp2018", "seed": seed,
                                             "train": {"curves": ["valid", "ood"], "selection_metric": "recall@20"}},
                "history": [{"epoch": e, "valid/recall@20": valid[e], "valid/ndcg@20": 0.0,
                             "ood/recall@20": ood[seed][e], "ood/ndcg@20": ood[seed][e] / 2} for e in range(4)]}
               for seed in (0, 1)]
    table = selection_table(records, ("recall@20", "ndcg@20"), "ood").set_index("selected_on")
    assert table.loc["valid", "epoch"] == 2 and table.loc["ood", "epoch"] == 4  # 1-based
    assert table.loc["valid", "recall@20"] == pytest.approx(0.03) and table.loc["valid", "ndcg@20"] == pytest.approx(0.015)
    assert table.loc["ood", "recall@20"] == pytest.approx(0.06) and (table["n_seeds"] == 2).all()
    # a run without curves contributes nothing
    assert selection_table([records[0] | {"cell": records[0]["cell"] | {"train": {}}}], ("recall@20",), "ood").empty


def test_the_leaderboard_of_a_traced_grid_shows_the_selection_section(report, tmp_path: Path) -> None:
    _, out, _ = report
    assert "Epoch selection along the traced curves" not in (out / "quick" / "leaderboard.md").read_text()
    make_results(tmp_path, grid="parity", seeds=(0,), curves=("valid", "ood"))
    write_report(tmp_path, tmp_path / "report")
    text = (tmp_path / "report" / "parity" / "leaderboard.md").read_text()
    section = text.split("### Epoch selection along the traced curves")[1]
    assert "| uniform " in section and "`valid`" in section and "`ood`" in section


def test_a_partial_grid_says_so(report, tmp_path: Path) -> None:
    _, out, _ = report
    assert "Incomplete grid" not in (out / "quick" / "leaderboard.md").read_text()
    store = make_results(tmp_path, seeds=(0, 1), grid_cells=20)  # 3 samplers x 2 scenarios x 2 seeds = 12 done
    assert "**Incomplete grid: 12 of 20 cells done.**" in format_markdown_leaderboard(store.table())
    complete = make_results(tmp_path / "complete", seeds=(0, 1), grid_cells=12)
    assert "Incomplete grid" not in format_markdown_leaderboard(complete.table())


def test_csv_is_the_long_stats_table(report) -> None:
    _, out, _ = report
    frame = pd.read_csv(out / "quick" / "leaderboard.csv")
    assert {"mean", "std", "ci_low", "ci_high", "vs_baseline_p_ttest_holm", "vs_best_p_wilcoxon_holm",
            "vs_baseline_p_user", "vs_baseline_rel_improvement"} <= set(frame.columns)
    assert set(frame["test_set"]) == {"ood", "iid", "valid"}
    cns = frame[(frame["sampler"] == "cnsdiff") & (frame["metric"] == "recall@20")]
    assert (cns["vs_baseline_n_users"] == 3 * 40).all() and (cns["vs_baseline_p_user"] < 0.05).all()
    pop = frame[(frame["sampler"] == "cnsdiff") & (frame["metric"] == "avg_pop@20")]
    assert (pop["vs_baseline_direction"] == "better").all()


def test_latex_table(report) -> None:
    _, out, _ = report
    tex = (out / "quick" / "leaderboard.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\textbf{" in tex and r"$\pm$" in tex and "cnsdiff" in tex


def test_format_markdown_leaderboard_matches_file(report) -> None:
    store, out, _ = report
    printed = format_markdown_leaderboard(store.table())
    assert "## Leaderboard: grid `quick`, `ood` test" in printed
    # the printed one skips the per-user tests, which do not enter the markdown
    assert printed == (out / "quick" / "leaderboard.md").read_text()


def test_unknown_metric_or_test_set_is_a_clear_error(report, tmp_path: Path) -> None:
    store, _, _ = report
    with pytest.raises(ValueError, match="not in"):
        write_report(store.root, tmp_path, metrics=("mrr@7",))
    with pytest.raises(ValueError, match="test set"):
        write_report(store.root, tmp_path, test_set="future")
    with pytest.raises(ValueError, match="no finished runs"):
        write_report(tmp_path / "empty", tmp_path)


def test_scenario_parameters_sort_as_numbers() -> None:
    from bench.report import _natural

    labels = pd.Series(["popularity[confounding=0.8]", "popularity[confounding=10]", "popularity[confounding=0]", "exposure"])
    assert pd.DataFrame({"s": labels}).sort_values("s", key=_natural)["s"].tolist() == [
        "exposure", "popularity[confounding=0]", "popularity[confounding=0.8]", "popularity[confounding=10]"]


def test_a_swept_scenario_parameter_is_found_and_plotted(tmp_path: Path) -> None:
    labels = ("popularity[confounding=0]", "popularity[confounding=0.8]", "popularity[confounding=1.6]")
    make_results(tmp_path, grid="sweep", seeds=(0, 1), scenarios=labels + ("temporal",))
    records = list(Store(tmp_path).records())
    sweeps = scenario_sweeps(records)
    assert sweeps == {(label, "synthetic"): ("confounding", value) for label, value in zip(labels, (0.0, 0.8, 1.6))}
    files = write_report(tmp_path, tmp_path / "report")
    path = tmp_path / "report" / "sweep" / "sweep_recall@20.png"
    assert path in files and path.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("labels", [
    ("popularity[confounding=0,mode=a]", "popularity[confounding=0.8,mode=b]"),  # two parameters vary
    ("popularity[mode=a]", "popularity[mode=b]"),  # not a number
    ("popularity[confounding=0]",),  # one value only
])
def test_no_sweep_without_exactly_one_numeric_parameter_varying(tmp_path: Path, labels) -> None:
    make_results(tmp_path, grid="sweep", seeds=(0, 1), scenarios=labels)
    assert scenario_sweeps(list(Store(tmp_path).records())) == {}
    files = write_report(tmp_path, tmp_path / "report")
    assert not any(p.name.startswith("sweep_") for p in files)


def test_markdown_false_hard_negative_table(report) -> None:
    """One row per (backbone, sampler), one column per (scenario, dataset), the records' rates."""
    store, out, _ = report
    text = (out / "quick" / "leaderboard.md").read_text()
    section = text.split("### False-hard-negative rate")[1].split("###")[0]
    rows = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[3:-1]]
            for line in section.splitlines() if line.startswith("| mf")}
    assert set(rows) == {"uniform", "dns", "cnsdiff"}
    header = next(line for line in section.splitlines() if line.startswith("| backbone"))
    assert [c.strip() for c in header.split("|")[3:-1]] == ["popularity/synthetic", "temporal/synthetic"]
    runs = store.table().drop_duplicates("key")
    for sampler, cells in rows.items():
        expected = runs[(runs["sampler"] == sampler) & (runs["scenario"] == "popularity")]["false_hard_negative_rate"]
        assert cells[0] == f"{expected.mean():.4f} ± {expected.std():.4f}"
        assert FHN[sampler] <= float(cells[1].split(" ± ")[0]) <= FHN[sampler] + 0.01


def test_single_seed_cells_show_the_mean_alone(tmp_path: Path) -> None:
    """One seed has no spread: every table shows its mean without a '± nan'."""
    store = make_results(tmp_path, seeds=(0,))
    write_report(tmp_path, tmp_path / "report")
    text = (tmp_path / "report" / "quick" / "leaderboard.md").read_text()
    assert "nan" not in text
    section = text.split("### False-hard-negative rate")[1].split("###")[0]
    uniform = next(line for line in section.splitlines() if line.startswith("| mf") and "| uniform " in line)
    rate = store.table().query("sampler == 'uniform' and scenario == 'popularity'")["false_hard_negative_rate"]
    assert uniform.split("|")[3].strip() == f"{rate.iloc[0]:.4f}"
