"""Grid files and names: expansion, rules, stable keys, paired seeds, and clear errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.grid import Cell, Component, GridError, build_grid, load_grid, names_grid, parse_name
from samplers import SAMPLERS
from scenarios import SCENARIOS

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN = {"epochs": 2, "eval_every": 1, "batch_size": 1024}
BASE = {
    "samplers": ["uniform[n_negatives=1,2]"],
    "backbones": ["mf"],
    "scenarios": ["exposure[dataset=synthetic,confounding=0.5,1.5]"],
    "seeds": 2,
    "train": TRAIN,
}
GRID_TOML = """\
name = "tiny"
samplers = ["uniform[n_negatives=1,2]"]
backbones = ["mf"]
scenarios = ["exposure[dataset=synthetic,confounding=0.5,1.5]"]
seeds = 2

[train]
epochs = 2
eval_every = 1
batch_size = 1024
"""


def grid(**changes):
    return build_grid({**BASE, **changes}, "g", "g.toml")


def one_cell(sampler="uniform", backbone="mf", scenario="exposure[dataset=synthetic]", seed=0, train=None) -> Cell:
    cells = build_grid(
        {"samplers": [sampler], "backbones": [backbone], "scenarios": [scenario], "seeds": [seed], "train": train or TRAIN},
        "g", "g.toml",
    ).cells
    assert len(cells) == 1
    return cells[0]


# -- names with parameters -------------------------------------------------------------------


def test_plain_name_is_one_component_with_defaults():
    (component,) = parse_name("uniform", SAMPLERS, "here")
    assert component == Component("uniform")
    assert component.label == "uniform"
    assert component.resolved(SAMPLERS) == {"n_negatives": 1}


def test_values_expand_to_one_component_each_and_are_coerced():
    components = parse_name("uniform[n_negatives=1,2, 3]", SAMPLERS, "here")
    assert [c.label for c in components] == ["uniform[n_negatives=1]", "uniform[n_negatives=2]", "uniform[n_negatives=3]"]
    assert [c.resolved(SAMPLERS)["n_negatives"] for c in components] == [1, 2, 3]
    assert all(isinstance(c.resolved(SAMPLERS)["n_negatives"], int) for c in components)


def test_several_parameters_give_their_product():
    components = parse_name("exposure[dataset=synthetic,confounding=0.5,1.5,2.5]", SCENARIOS, "here")
    assert [c.label for c in components] == [
        "exposure[dataset=synthetic,confounding=0.5]",
        "exposure[dataset=synthetic,confounding=1.5]",
        "exposure[dataset=synthetic,confounding=2.5]",
    ]
    assert [c.resolved(SCENARIOS)["confounding"] for c in components] == [0.5, 1.5, 2.5]
    assert {c.resolved(SCENARIOS)["dataset"] for c in components} == {"synthetic"}


def test_product_of_two_multi_valued_parameters():
    components = parse_name("exposure[dataset=synthetic,coat,confounding=0.5,1.5]", SCENARIOS, "here")
    pairs = [(c.resolved(SCENARIOS)["dataset"], c.resolved(SCENARIOS)["confounding"]) for c in components]
    assert pairs == [("synthetic", 0.5), ("synthetic", 1.5), ("coat", 0.5), ("coat", 1.5)]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("nosuchsampler", "unknown sampler 'nosuchsampler'"),
        ("uniform[bogus=1]", "no parameter 'bogus'"),
        ("uniform[n_negatives=abc]", "expects int"),
        ("uniform[n_negatives=1.5]", "expects int"),
        ("uniform[1,2]", "has no parameter name"),
        ("uniform[=3]", "empty parameter name"),
        ("uniform[n_negatives=1", "cannot read"),
    ],
)
def test_bad_names_raise_grid_error_naming_where(text, fragment):
    with pytest.raises(GridError) as info:
        parse_name(text, SAMPLERS, "grids/x.toml: samplers[0]")
    message = str(info.value)
    assert message.startswith("grids/x.toml: samplers[0]: ")
    assert fragment in message


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(GridError, match="known: .*uniform"):
        parse_name("nosuchsampler", SAMPLERS, "here")


# -- grids: cells, labels, rules ---------------------------------------------------------------


def test_grid_is_the_product_of_samplers_backbones_scenarios_seeds():
    g = grid(backbones=["mf", "lightgcn"])
    assert len(g.cells) == 2 * 2 * 2 * 2
    combos = {(c.sampler.label, c.backbone.label, c.scenario.label, c.seed) for c in g.cells}
    assert len(combos) == 16
    assert {c.sampler.label for c in g.cells} == {"uniform[n_negatives=1]", "uniform[n_negatives=2]"}
    assert {c.backbone.label for c in g.cells} == {"mf", "lightgcn"}
    assert {c.scenario.label for c in g.cells} == {
        "exposure[dataset=synthetic,confounding=0.5]", "exposure[dataset=synthetic,confounding=1.5]"}
    assert {c.seed for c in g.cells} == {0, 1}
    assert {c.dataset for c in g.cells} == {"synthetic"}
    assert len({c.key for c in g.cells}) == 16
    assert all(c.train_config().epochs == 2 and c.train_config().batch_size == 1024 for c in g.cells)


def test_seeds_as_a_list_and_single_strings_are_accepted():
    g = grid(samplers="uniform", scenarios="exposure[dataset=synthetic]", seeds=[7, 3])
    assert [c.seed for c in g.cells] == [7, 3]
    assert [c.sampler.label for c in g.cells] == ["uniform", "uniform"]


def test_include_rule_keeps_only_matching_cells():
    g = grid(include=[{"sampler": "uniform[n_negatives=2]"}])
    assert len(g.cells) == 4
    assert {c.sampler.label for c in g.cells} == {"uniform[n_negatives=2]"}


def test_exclude_rule_drops_matching_cells_with_glob_patterns():
    g = grid(exclude=[{"sampler": "uniform[[]n_negatives=1[]]", "scenario": "*confounding=1.5*"}])
    assert len(g.cells) == 6
    dropped = [c for c in g.cells if c.sampler.label.endswith("=1]") and "1.5" in c.scenario.label]
    assert dropped == []


def test_include_and_exclude_together():
    g = grid(include=[{"scenario": "*confounding=0.5*"}], exclude=[{"sampler": "*=1]"}])
    assert {(c.sampler.label, c.scenario.label) for c in g.cells} == {
        ("uniform[n_negatives=2]", "exposure[dataset=synthetic,confounding=0.5]")}
    assert len(g.cells) == 2  # two seeds


def test_rule_on_dataset():
    g = build_grid({**BASE, "scenarios": ["exposure[dataset=synthetic,coat]"], "include": [{"dataset": "coat"}]}, "g", "g.toml")
    assert {c.dataset for c in g.cells} == {"coat"}
    assert len(g.cells) == 4


def test_equivalent_names_do_not_make_duplicate_cells():
    g = grid(samplers=["uniform", "uniform[n_negatives=1]"], seeds=1)
    keys = [c.key for c in g.cells]
    assert len(keys) == len(set(keys)) == 2  # uniform == uniform[n_negatives=1] (the default)


def test_load_grid_reads_toml_and_takes_name_from_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(GRID_TOML)
    g = load_grid(path)
    assert g.name == "tiny"
    assert len(g.cells) == 8
    unnamed = tmp_path / "other.toml"
    unnamed.write_text(GRID_TOML.replace('name = "tiny"\n', ""))
    assert load_grid(unnamed).name == "other"


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO_ROOT / "grids").glob("*.toml")))
def test_shipped_grids_load(name):
    g = load_grid(REPO_ROOT / "grids" / f"{name}.toml")
    assert g.name == name
    assert g.cells
    if name == "quick":  # the embedded default needs no download
        assert {c.dataset for c in g.cells} == {"synthetic"}


def test_cells_know_the_size_of_their_grid_which_is_not_part_of_the_key():
    g = grid()
    assert {c.grid_cells for c in g.cells} == {len(g.cells)}
    part = grid(exclude=[{"sampler": "uniform[n_negatives=2]"}])
    assert {c.grid_cells for c in part.cells} == {len(part.cells)} and len(part.cells) < len(g.cells)
    assert {c.key for c in part.cells} < {c.key for c in g.cells}


def test_standard_grid_is_six_samplers_two_backbones_four_presets_five_seeds():
    g = load_grid(REPO_ROOT / "grids" / "standard.toml")
    assert len(g.cells) == 6 * 2 * 4 * 5 and not g.skipped
    assert {c.scenario.label for c in g.cells} == {"popularity", "temporal", "exposure", "mixed"}
    assert "cnsdiff[variant=released]" in {c.sampler.label for c in g.cells}


def test_curves_setting_is_a_list_of_set_names(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(GRID_TOML + 'curves = ["ood"]\n')
    assert load_grid(path).cells[0].train_config().curves == ("ood",)
    path.write_text(GRID_TOML + 'curves = "ood"\n')
    with pytest.raises(GridError, match="train.curves: expects a list of names"):
        load_grid(path)


def test_names_grid_from_command_line_names():
    g = names_grid(["uniform[n_negatives=1,2]"], ["mf"], ["exposure[dataset=synthetic]"], 3, {})
    assert g.name == "cli"
    assert len(g.cells) == 6


# -- stable keys ---------------------------------------------------------------------------------


def test_key_is_stable_across_instantiations():
    a, b = grid().cells, grid().cells
    assert [c.key for c in a] == [c.key for c in b]
    assert all(len(c.key) == 20 for c in a)


def test_key_is_stable_across_processes(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(GRID_TOML)
    code = (
        "import json, sys; from bench.grid import load_grid; "
        "g = load_grid(sys.argv[1]); "
        "print(json.dumps([[c.key, c.pairing_seed('init'), c.pairing_seed('order'), c.sampler_seed()] for c in g.cells]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    here = [[c.key, c.pairing_seed("init"), c.pairing_seed("order"), c.sampler_seed()] for c in load_grid(path).cells]
    assert json.loads(out.stdout) == here


def test_key_ignores_how_a_default_is_spelled():
    assert one_cell("uniform").key == one_cell("uniform[n_negatives=1]").key
    assert one_cell(train={**TRAIN, "lr": 0.001}).key == one_cell(train=TRAIN).key  # 1e-3 is the default lr
    assert one_cell(train={**TRAIN, "lr": 1}).key == one_cell(train={**TRAIN, "lr": 1.0}).key


def test_key_does_not_depend_on_grid_name_or_train_order():
    a = build_grid({**BASE, "train": {"epochs": 2, "eval_every": 1, "batch_size": 1024}}, "one", "a.toml").cells
    b = build_grid({**BASE, "train": {"batch_size": 1024, "eval_every": 1, "epochs": 2}}, "two", "b.toml").cells
    assert [c.key for c in a] == [c.key for c in b]


@pytest.mark.parametrize(
    "change",
    [
        {"sampler": "uniform[n_negatives=2]"},
        {"backbone": "lightgcn"},
        {"backbone": "mf[dim=32]"},
        {"scenario": "exposure[dataset=synthetic,confounding=1.5]"},
        {"scenario": "popularity[dataset=synthetic]"},
        {"scenario": "exposure[dataset=coat]"},
        {"seed": 1},
        {"train": {**TRAIN, "epochs": 3}},
        {"train": {**TRAIN, "lr": 0.01}},
        {"train": {**TRAIN, "batch_size": 512}},
        {"train": {**TRAIN, "patience": 7}},
    ],
)
def test_changing_anything_that_determines_the_numbers_changes_the_key(change):
    assert one_cell(**change).key != one_cell().key


# -- paired seeds ----------------------------------------------------------------------------------


def split_draws(cell: Cell) -> list[int]:
    """The first draws of the split's randomness, derived as the runner derives it."""
    scenario = SCENARIOS.create(cell.scenario.name, **dict(cell.scenario.params))
    return scenario.split_rng(cell.seed).integers(0, 2**62, size=4).tolist()


def test_samplers_of_one_scenario_backbone_seed_share_split_init_order_seeds():
    a = one_cell("uniform[n_negatives=1]")
    b = one_cell("uniform[n_negatives=2]")
    assert split_draws(a) == split_draws(b)
    for purpose in ("init", "order", "probe"):
        assert a.pairing_seed(purpose) == b.pairing_seed(purpose), purpose
    assert a.sampler_seed() != b.sampler_seed()
    assert a.key != b.key


def test_pairing_seeds_follow_scenario_backbone_and_seed():
    base = one_cell()
    other_seed = one_cell(seed=1)
    assert split_draws(base) != split_draws(other_seed)
    assert all(base.pairing_seed(p) != other_seed.pairing_seed(p) for p in ("init", "order"))
    assert base.sampler_seed() != other_seed.sampler_seed()
    other_scenario = one_cell(scenario="exposure[dataset=synthetic,confounding=1.5]")
    assert split_draws(base) != split_draws(other_scenario)
    other_backbone = one_cell(backbone="lightgcn")
    assert split_draws(base) == split_draws(other_backbone)  # same data split
    assert base.pairing_seed("init") != other_backbone.pairing_seed("init")
    # distinct purposes draw distinct seeds
    assert len({base.pairing_seed(p) for p in ("init", "order", "probe")} | {base.sampler_seed()}) == 4


def test_a_changed_training_setting_keeps_the_pairing_of_samplers():
    a = one_cell("uniform[n_negatives=1]", train={**TRAIN, "epochs": 3})
    b = one_cell("uniform[n_negatives=2]", train={**TRAIN, "epochs": 3})
    assert a.pairing_seed("init") == b.pairing_seed("init") and a.pairing_seed("order") == b.pairing_seed("order")


# -- bad grid files ----------------------------------------------------------------------------------


BAD_GRIDS = {
    "unknown_sampler": (GRID_TOML.replace('"uniform[n_negatives=1,2]"', '"nosuchsampler"'),
                        ["samplers[0]", "unknown sampler 'nosuchsampler'", "known:", "uniform"]),
    "unknown_parameter": (GRID_TOML.replace("n_negatives=1,2", "n_negativez=1,2"),
                          ["samplers[0]", "no parameter 'n_negativez'"]),
    "wrong_type_value": (GRID_TOML.replace("n_negatives=1,2", "n_negatives=two"),
                         ["samplers[0]", "n_negatives", "expects int", "two"]),
    "wrong_type_train": (GRID_TOML.replace("epochs = 2", 'epochs = "2"'), ["train.epochs", "expects int"]),
    "unknown_train_setting": (GRID_TOML + "epoch = 3\n", ["train.epoch", "unknown setting"]),
    "toml_syntax": (GRID_TOML.replace("seeds = 2", "seeds = = 2"), ["TOML syntax error", "line 5"]),
    "unknown_top_level_key": (GRID_TOML.replace("seeds = 2", "seeds = 2\nsamplerz = []"), ["unknown key 'samplerz'"]),
    "missing_key": (GRID_TOML.replace('backbones = ["mf"]\n', ""), ["missing key 'backbones'"]),
    "seeds_zero": (GRID_TOML.replace("seeds = 2", "seeds = 0"), ["seeds", "0"]),
    "seeds_negative": (GRID_TOML.replace("seeds = 2", "seeds = -1"), ["seeds"]),
    "seeds_text": (GRID_TOML.replace("seeds = 2", 'seeds = "three"'), ["seeds", "three"]),
    "seeds_empty": (GRID_TOML.replace("seeds = 2", "seeds = []"), ["seeds"]),
    "seeds_mixed": (GRID_TOML.replace("seeds = 2", 'seeds = [1, "x"]'), ["seeds"]),
    "seeds_bool": (GRID_TOML.replace("seeds = 2", "seeds = [true]"), ["seeds"]),
    "seeds_duplicate": (GRID_TOML.replace("seeds = 2", "seeds = [1, 1]"), ["seeds", "twice"]),
    "sampler_not_text": (GRID_TOML.replace('"uniform[n_negatives=1,2]"', "3"), ["samplers[0]"]),
    "bad_rule": (GRID_TOML.replace("seeds = 2", 'seeds = 2\nexclude = [{seed = "1"}]'), ["exclude[0]"]),
}


@pytest.mark.parametrize("case", sorted(BAD_GRIDS))
def test_bad_grid_file_raises_grid_error_naming_file_and_key(tmp_path, case):
    text, fragments = BAD_GRIDS[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    with pytest.raises(GridError) as info:
        load_grid(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_grid_file_names_the_path(tmp_path):
    with pytest.raises(GridError, match="no such grid file"):
        load_grid(tmp_path / "nothere.toml")


# which bad files also go through the command line (each is a fresh interpreter: keep the list short)
CLI_CASES = ["unknown_sampler", "wrong_type_value", "toml_syntax"]


def test_bad_grid_files_through_the_cli_exit_2_with_one_line(tmp_path):
    procs = {}
    for case in CLI_CASES:  # started together: the interpreters' start-up overlaps
        path = tmp_path / f"{case}.toml"
        path.write_text(BAD_GRIDS[case][0])
        procs[case] = (path, subprocess.Popen(
            [sys.executable, "-m", "bench", "run", str(path), "--results", str(tmp_path / "results"), "--quiet"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    for case, (path, proc) in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (case, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, (case, err)
        assert lines[0].startswith(f"negbench: error: {path}: "), (case, err)
        assert "Traceback" not in err
        for fragment in BAD_GRIDS[case][1]:
            assert fragment in lines[0], (case, fragment, err)
        assert out == ""
    assert not (tmp_path / "results" / "runs").exists()  # nothing ran
