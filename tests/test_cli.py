"""The command line: list, describe, and user errors as one clear line with exit status 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from backbones import BACKBONES
from bench.cli import main
from bench.metrics import METRICS
from samplers import SAMPLERS
from scenarios import SCENARIOS
from scenarios.catalogue import CATALOGUE

REPO_ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


def first_column(text: str) -> set[str]:
    """The first word of every table row (tabulate's plain format: header, rule, rows)."""
    return {line.split()[0] for line in text.splitlines()[2:] if line.strip()}


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("samplers", lambda: SAMPLERS.names()),
        ("backbones", lambda: BACKBONES.names()),
        ("scenarios", lambda: SCENARIOS.names()),
        ("datasets", lambda: sorted(CATALOGUE)),
        ("metrics", lambda: sorted(m.name for m in METRICS.values())),
    ],
)
def test_list_shows_every_registered_name(kind, expected, capsys):
    assert main(["list", kind]) == 0
    out = capsys.readouterr().out
    assert first_column(out) == set(expected())


def test_list_shows_parameters_and_defaults(capsys):
    assert main(["list", "samplers"]) == 0
    out = capsys.readouterr().out
    assert "n_negatives=1" in out and "uniform" in out
    assert main(["list", "backbones"]) == 0
    assert "dim=" in capsys.readouterr().out
    main(["list", "metrics"])
    rows = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows["recall@20"] == "higher" and rows["avg_pop@20"] == "lower"
    main(["list", "scenarios"])
    assert "synthetic" in capsys.readouterr().out


def test_list_of_an_unknown_kind_is_refused(capsys):
    with pytest.raises(SystemExit) as info:
        main(["list", "gadgets"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_describe_prints_sizes_and_diagnostics_as_json(capsys):
    pytest.importorskip("scenarios.describe", reason="scenarios/describe.py not written yet")
    assert main(["describe", "popularity", "--dataset", "synthetic", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["scenario"] == "popularity" and result["dataset"] == "synthetic"
    assert result["n_users"] > 0 and result["n_items"] > 0
    assert {"train", "valid", "ood"} <= set(result["sizes"])
    train = result["sizes"]["train"]
    assert train["interactions"] > 0 and 0 < train["users"] <= result["n_users"] and 0 < train["items"] <= result["n_items"]
    assert "ood" in result["diagnostics"]
    ood = result["diagnostics"]["ood"]
    assert "gini_train" in ood and "spearman" in ood
    # a popularity shift: the test set is less concentrated on popular items than the training set
    assert ood["gini_test"] < ood["gini_train"]


def test_describe_is_the_same_split_for_the_same_seed(capsys):
    pytest.importorskip("scenarios.describe", reason="scenarios/describe.py not written yet")
    main(["describe", "popularity", "--dataset", "synthetic", "--json", "--seed", "3"])
    a = json.loads(capsys.readouterr().out)
    main(["describe", "popularity", "--dataset", "synthetic", "--json", "--seed", "3"])
    b = json.loads(capsys.readouterr().out)
    main(["describe", "popularity", "--dataset", "synthetic", "--json", "--seed", "4"])
    c = json.loads(capsys.readouterr().out)
    assert a == b
    assert a["split_checksum"] != c["split_checksum"]


def test_describe_prints_a_readable_table(capsys):
    pytest.importorskip("scenarios.describe", reason="scenarios/describe.py not written yet")
    assert main(["describe", "exposure", "--dataset", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("scenario exposure on synthetic")
    assert "ood" in out and "train" in out


def test_unknown_sampler_on_the_command_line_lists_known_names(tmp_path):
    result = bench("run", "--samplers", "nosuchsampler", "--scenarios", "exposure[dataset=synthetic]",
                   "--results", str(tmp_path), "--quiet")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("negbench: error: command line: samplers[0]: unknown sampler 'nosuchsampler'")
    known = lines[0].split("known: ", 1)[1].split(", ")
    assert known == SAMPLERS.names()
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["run", "--samplers", "uniform[n_negatives=x]"], "expects int"),
        (["run", "--backbones", "nosuchbackbone"], "unknown backbone 'nosuchbackbone'; known: "),
        (["run", "--scenarios", "nosuchscenario"], "unknown scenario 'nosuchscenario'; known: "),
        (["run", "--scenarios", "exposure[dataset=nosuchdata]"], "cannot be built on dataset 'nosuchdata'; supported: "),
        (["status", "--samplers", "uniform[bogus=1]"], "no parameter 'bogus'"),
        (["run", "quick", "--samplers", "uniform"], "either a grid file or --samplers"),
        (["run", "no/such/grid.toml"], "no/such/grid.toml: no such grid file"),
        (["status", "no/such/grid.toml"], "no such grid file"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, fragment, tmp_path, capsys):
    assert main([*argv, "--results", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("negbench: error: "), captured.err
    assert fragment in lines[0]
    assert captured.out == ""
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_threads_must_be_a_positive_integer(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--samplers", "uniform", "--threads", value, "--results", str(tmp_path)])
    assert info.value.code == 2
    assert "--threads" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


REAL_GRID = """\
samplers = ["uniform"]
backbones = ["mf"]
scenarios = ["exposure[dataset=coat]"]
seeds = 1
[train]
epochs = 2
eval_every = 1
batch_size = 1024
"""


def test_missing_data_directory_names_data_dir_and_the_variable(tmp_path):
    grid = tmp_path / "real.toml"
    grid.write_text(REAL_GRID)
    env = {k: v for k, v in os.environ.items() if k != "NEGBENCH_DATA"}
    result = bench("run", str(grid), "--results", str(tmp_path / "results"), "--quiet", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("negbench: error: ")
    assert "--data-dir" in lines[0] and "NEGBENCH_DATA" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results" / "runs").exists()  # nothing ran, nothing recorded as failed


def test_a_data_directory_that_does_not_exist_is_named(tmp_path, monkeypatch, capsys):
    grid = tmp_path / "real.toml"
    grid.write_text(REAL_GRID)
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("NEGBENCH_DATA", str(missing))
    assert main(["run", str(grid), "--results", str(tmp_path / "results"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "NEGBENCH_DATA" in err and len(err.strip().splitlines()) == 1
    monkeypatch.delenv("NEGBENCH_DATA")
    assert main(["run", str(grid), "--results", str(tmp_path / "results"), "--data-dir", str(missing), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "--data-dir" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results" / "runs").exists()


def test_describe_real_data_without_a_data_directory(monkeypatch, capsys):
    pytest.importorskip("scenarios.describe", reason="scenarios/describe.py not written yet")
    monkeypatch.delenv("NEGBENCH_DATA", raising=False)
    assert main(["describe", "exposure", "--dataset", "coat"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--data-dir" in err and "NEGBENCH_DATA" in err


def test_status_of_names_from_the_command_line(tmp_path, capsys):
    argv = ["status", "--samplers", "uniform[n_negatives=1,2]", "--scenarios", "exposure[dataset=synthetic]",
            "--results", str(tmp_path)]
    assert main(argv) == 1  # incomplete
    out = capsys.readouterr().out
    assert "grid cli: INCOMPLETE: done 0, failed 0, missing 2 of 2" in out
    assert "uniform[n_negatives=1]" in out and "uniform[n_negatives=2]" in out


def test_status_of_a_synthetic_grid_needs_no_data_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NEGBENCH_DATA", raising=False)
    grid = tmp_path / "syn.toml"
    grid.write_text(REAL_GRID.replace("dataset=coat", "dataset=synthetic"))
    assert main(["status", str(grid), "--results", str(tmp_path)]) == 1
    assert "missing 1 of 1" in capsys.readouterr().out


def test_run_status_export_and_report_from_the_archive(tmp_path, capsys):
    grid = tmp_path / "tiny.toml"
    grid.write_text('samplers = ["uniform", "dns"]\nbackbones = ["mf"]\nscenarios = ["exposure[dataset=synthetic]"]\n'
                    "seeds = 2\n[train]\nepochs = 2\neval_every = 1\nbatch_size = 1024\n")
    results, archive = tmp_path / "results", tmp_path / "export" / "records.tar.gz"
    assert main(["run", str(grid), "--results", str(results), "--quiet"]) == 0
    assert main(["status", str(grid), "--results", str(results)]) == 0
    assert "grid tiny: complete: done 4" in capsys.readouterr().out
    assert main(["export", str(grid), "--results", str(results), "--out", str(archive)]) == 0
    assert "exported 4 of 4 cells" in capsys.readouterr().out
    assert main(["report", "--results", str(archive), "--out", str(tmp_path / "report")]) == 0
    from_archive = (tmp_path / "report" / "tiny" / "leaderboard.md").read_text()
    assert main(["report", "--results", str(results), "--out", str(tmp_path / "direct")]) == 0
    assert from_archive == (tmp_path / "direct" / "tiny" / "leaderboard.md").read_text()
    assert "| dns " in from_archive and "| uniform " in from_archive
    # without per-user vectors: smaller, same leaderboard, the per-user test columns empty
    small = tmp_path / "export" / "small.tar.gz"
    assert main(["export", str(grid), "--results", str(results), "--out", str(small), "--without-per-user"]) == 0
    assert small.stat().st_size < archive.stat().st_size
    assert main(["report", "--results", str(small), "--out", str(tmp_path / "small")]) == 0
    assert (tmp_path / "small" / "tiny" / "leaderboard.md").read_text() == from_archive
    full_csv = pd.read_csv(tmp_path / "direct" / "tiny" / "leaderboard.csv")
    small_csv = pd.read_csv(tmp_path / "small" / "tiny" / "leaderboard.csv")
    per_user = [c for c in full_csv.columns if "_user" in c]
    assert per_user and full_csv["vs_baseline_p_user"].notna().any() and small_csv["vs_baseline_p_user"].isna().all()
    pd.testing.assert_frame_equal(small_csv.drop(columns=per_user, errors="ignore"), full_csv.drop(columns=per_user))


def test_cells_shared_by_two_grids_are_reported_under_both(tmp_path, capsys):
    """A cell computed by one grid and found cached by another counts in both grids' reports."""
    common = 'backbones = ["mf"]\nseeds = 1\n[train]\nepochs = 2\neval_every = 1\nbatch_size = 1024\n'
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text('samplers = ["uniform", "dns"]\nscenarios = ["exposure[dataset=synthetic,confounding=0.8]"]\n' + common)
    second.write_text('samplers = ["uniform", "dns"]\nscenarios = ["exposure[dataset=synthetic,confounding=0.8,1.6]"]\n'
                      + common)
    results, out = tmp_path / "results", tmp_path / "report"
    assert main(["run", str(first), "--results", str(results), "--quiet"]) == 0
    assert main(["run", str(second), "--results", str(results), "--quiet"]) == 0
    assert "done 2, cached 2" in capsys.readouterr().err
    # run again, all cached: its printed leaderboard holds each sampler once, the grid complete
    assert main(["run", str(second), "--results", str(results)]) == 0
    captured = capsys.readouterr()
    assert "done 0, cached 4" in captured.err and "Incomplete grid" not in captured.out
    assert captured.out.count("## Leaderboard: grid") == 1 and "## Leaderboard: grid `second`" in captured.out
    board = captured.out.split("### backbone `mf`")[1].split("###")[0]
    assert len([line for line in board.splitlines() if line.startswith("| dns ")]) == 1
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    second_board = (out / "second" / "leaderboard.md").read_text()
    assert "Incomplete grid" not in second_board
    assert "exposure[confounding=0.8]/synthetic" in second_board and "exposure[confounding=1.6]/synthetic" in second_board
    first_board = (out / "first" / "leaderboard.md").read_text()
    assert "Incomplete grid" not in first_board and "confounding=1.6" not in first_board
    # the archive of the second grid carries its cell list, so its report reads the same
    archive = tmp_path / "second.tar.gz"
    assert main(["export", str(second), "--results", str(results), "--out", str(archive)]) == 0
    assert main(["report", "--results", str(archive), "--out", str(tmp_path / "from_archive")]) == 0
    assert (tmp_path / "from_archive" / "second" / "leaderboard.md").read_text() == second_board
    assert not (tmp_path / "from_archive" / "first").exists()


def test_report_of_an_empty_results_directory_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no finished runs" in err


def test_a_shared_cell_is_named_as_each_grid_spells_it(tmp_path):
    """A cell computed by a grid that leaves a parameter at its default is labelled with that
    parameter in the report of a grid that sweeps it, and without it in its own grid's report."""
    common = 'samplers = ["uniform", "dns"]\nbackbones = ["mf"]\nseeds = 1\n[train]\nepochs = 2\neval_every = 1\nbatch_size = 1024\n'
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text('scenarios = ["exposure[dataset=synthetic]"]\n' + common)
    second.write_text('scenarios = ["exposure[dataset=synthetic,confounding=0.8,1.6]"]\n' + common)
    results, out = tmp_path / "results", tmp_path / "report"
    assert main(["run", str(first), "--results", str(results), "--quiet"]) == 0
    assert main(["run", str(second), "--results", str(results), "--quiet"]) == 0
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    second_board = (out / "second" / "leaderboard.md").read_text()
    assert "exposure[confounding=0.8]/synthetic recall@20" in second_board
    assert " exposure/synthetic recall@20" not in second_board
    assert " exposure/synthetic recall@20" in (out / "first" / "leaderboard.md").read_text()
    assert (out / "second" / "sweep_recall@20.png").exists()
    archive = tmp_path / "second.tar.gz"
    assert main(["export", str(second), "--results", str(results), "--out", str(archive)]) == 0
    assert main(["report", "--results", str(archive), "--out", str(tmp_path / "from_archive")]) == 0
    assert (tmp_path / "from_archive" / "second" / "leaderboard.md").read_text() == second_board
