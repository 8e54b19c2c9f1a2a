"""The four shift scenarios on real data and on the simulator: leak-free, seeded, really shifted."""
from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from scenarios import SCENARIOS, Split
from scenarios.catalogue import DataDirError
from scenarios.describe import describe, format_description

SHIFTS = ["popularity", "temporal", "exposure", "mixed"]

# small real datasets, one or two per scenario, each built by its protocol (seeded)
SEEDED = [
    ("popularity", "coat"),
    ("popularity", "ml-100k"),
    ("temporal", "ml-100k"),
    ("temporal", "food_irbench"),
    ("exposure", "coat"),
    ("mixed", "ml-100k"),
    ("mixed", "amazon_electronic"),
]


def build(scenario: str, dataset: str, data_dir: Path | None, seed: int = 0) -> Split:
    spec = SCENARIOS.create(scenario, dataset=dataset)
    return spec.build(data_dir, spec.split_rng(seed))


@pytest.fixture(scope="module")
def yelp(data_dir: Path) -> Split:
    return build("popularity", "yelp2018", data_dir)


@pytest.fixture(scope="module")
def yahoo(data_dir: Path) -> Split:
    return build("exposure", "yahoo_r3", data_dir)


def assert_leak_free(split: Split) -> None:
    """No pair in two sets, and every held-out user and item seen in train."""
    sets = {"train": split.train, "valid": split.valid, **split.tests}
    for (a, left), (b, right) in combinations(sets.items(), 2):
        assert left.multiply(right).nnz == 0, f"{a} and {b} share pairs"
    user_seen = np.diff(split.train.indptr) > 0
    item_seen = split.item_popularity > 0
    for name in ["valid", *split.tests]:
        held = sets[name].tocoo()
        assert held.nnz > 0, f"{name} is empty"
        assert user_seen[held.row].all() and item_seen[held.col].all(), f"{name} has cold users or items"


def assert_real_meta(split: Split) -> None:
    for key in ("source", "checksums", "dropped", "protocol", "diagnostics", "split_checksum"):
        assert key in split.meta
    assert split.meta["checksums"] and all(len(sha) == 64 for sha in split.meta["checksums"].values())
    assert set(split.tests) == {"iid", "ood"}


def test_yelp_preset_is_the_authors_split(yelp: Split) -> None:
    assert_leak_free(yelp)
    assert_real_meta(yelp)
    assert {name: s["interactions"] for name, s in yelp.sizes().items()} == {
        "train": 238_515, "valid": 47_570, "iid": 95_173, "ood": 16_346,
    }
    diagnostics = yelp.meta["diagnostics"]["ood"]
    assert diagnostics["top20_share_test"] < diagnostics["top20_share_train"]


def test_yahoo_exposure_is_shifted(yahoo: Split) -> None:
    assert_leak_free(yahoo)
    assert_real_meta(yahoo)
    ood = yahoo.meta["diagnostics"]["ood"]
    assert ood["top20_share_test"] < ood["top20_share_train"]
    assert yahoo.meta["diagnostics"]["iid"]["top20_share_test"] > ood["top20_share_test"]
    dropped = yahoo.meta["dropped"]["ood"]
    assert yahoo.tests["ood"].nnz + dropped["cold_dropped"] + dropped["logged_overlap_dropped"] == 4_749


def test_temporal_food_preset_reports_its_sizes(data_dir: Path) -> None:
    d = describe("temporal", data_dir=data_dir, seed=3)
    assert d["dataset"] == "food"
    assert {name: s["interactions"] for name, s in d["sizes"].items()} == {
        "train": 106_253, "valid": 20_468, "iid": 43_183, "ood": 46_149,
    }
    text = format_description(d)
    assert "106,253" in text and "food/cnsdiff_drgo/train.txt" in text


def test_preset_file_split_ignores_the_seed(data_dir: Path) -> None:
    assert build("temporal", "food", data_dir, 0).checksum() == build("temporal", "food", data_dir, 1).checksum()


@pytest.mark.parametrize("scenario, dataset", SEEDED)
def test_seeded_split_is_leak_free_and_reproducible(data_dir: Path, scenario: str, dataset: str) -> None:
    split = build(scenario, dataset, data_dir, 0)
    assert_leak_free(split)
    assert_real_meta(split)
    assert split.checksum() == build(scenario, dataset, data_dir, 0).checksum()
    assert split.checksum() != build(scenario, dataset, data_dir, 1).checksum()


def test_coat_exposure_drops_the_doubly_observed_pairs(data_dir: Path) -> None:
    split = build("exposure", "coat", data_dir)
    assert split.meta["dropped"]["ood"]["logged_overlap_dropped"] == 91
    assert "91" in split.meta["note"]


def test_kuairec_is_marked_partial(data_dir: Path) -> None:
    split = build("exposure", "kuairec", data_dir)
    assert split.meta["partial"] is True
    assert split.meta["dropped"]["train"]["duplicates_dropped"] == 20_526
    assert_leak_free(split)


def test_mixed_resamples_towards_the_tail(data_dir: Path) -> None:
    mixed = build("mixed", "amazon_electronic", data_dir)
    temporal = build("temporal", "amazon_electronic", data_dir)
    assert mixed.train.nnz == temporal.train.nnz  # same train, only the test is re-sampled
    assert (mixed.meta["diagnostics"]["ood"]["mean_train_popularity_of_test_items"]
            < temporal.meta["diagnostics"]["ood"]["mean_train_popularity_of_test_items"])


def test_missing_data_dir_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEGBENCH_DATA", raising=False)
    with pytest.raises(DataDirError, match="--data-dir"):
        build("exposure", "coat", None)


@pytest.mark.parametrize("scenario", SHIFTS)
def test_synthetic_ood_is_shifted_and_truth_consistent(scenario: str) -> None:
    split = build(scenario, "synthetic", None, seed=0)
    ood = split.meta["diagnostics"]["ood"]
    assert ood["top20_share_test"] < ood["top20_share_train"]
    # observed pairs are truly relevant; temporal and mixed OOD follow later preferences, so only
    # the sets drawn from the first period are checked there
    observed = [split.train, split.valid, split.tests["iid"]]
    if scenario in ("popularity", "exposure"):
        observed.append(split.tests["ood"])
    for matrix in observed:
        rows, cols = matrix.nonzero()
        assert split.truth[rows, cols].all()
    assert_leak_free(split)


def test_synthetic_mixed_resamples_among_warm_pairs_only() -> None:
    """Cold pairs never take the re-sample's room: none is left to drop after it."""
    for seed in range(3):
        split = build("mixed", "synthetic", None, seed=seed)
        assert split.meta["dropped"]["ood"]["cold_dropped"] == 0 and split.tests["ood"].nnz > 0


def test_describe_gives_the_split_of_that_seed(data_dir: Path) -> None:
    d = describe("exposure", "coat", data_dir, seed=5)
    assert d["split_checksum"] == build("exposure", "coat", data_dir, 5).checksum()
    assert set(d["diagnostics"]) == {"valid", "iid", "ood"}
    assert d["dropped"]["ood"]["logged_overlap_dropped"] == 91
    assert set(d["checksums"]) == {"coat/raw_autodebias/user.txt", "coat/raw_autodebias/random.txt"}
