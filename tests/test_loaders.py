"""Loaders and catalogue on the real files: counts from each SOURCE.md, errors a user can cause."""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bench.registry import UnknownNameError
from scenarios import catalogue
from scenarios.catalogue import ChecksumError, DataDirError, list_datasets, load, resolve_data_dir, verify
from scenarios.loaders import (
    DataFormatError,
    Interactions,
    read_adjacency,
    read_dense_matrix,
    read_movielens_csv,
    read_movielens_udata,
    read_pairs,
    read_rating_csv,
    read_selfrec,
    read_zip_tsv,
)


def counts(x: Interactions) -> tuple[int, int, int]:
    return len(x), len(np.unique(x.users)), len(np.unique(x.items))


# (reader, file, rows, users, items) as computed in each SOURCE.md
FILES = [
    (read_selfrec, "yelp2018/cnsdiff_drgo/train.txt", 238_515, 8_093, 13_879),
    (read_selfrec, "yelp2018/cnsdiff_drgo/valid_iid.txt", 47_570, 7_953, 10_854),
    (read_selfrec, "yelp2018/cnsdiff_drgo/test_iid.txt", 95_173, 8_090, 12_508),
    (read_selfrec, "yelp2018/cnsdiff_drgo/test.txt", 16_346, 6_212, 6_360),
    (read_selfrec, "food/cnsdiff_drgo/train.txt", 106_253, 7_732, 6_293),
    (read_selfrec, "food/cnsdiff_drgo/test.txt", 46_149, 7_724, 6_159),
    (read_selfrec, "kuairec/cnsdiff_drgo_partial/test_iid.txt", 172_404, 7_146, 4_545),
    (read_selfrec, "kuairec/cnsdiff_drgo_partial/test_ood.txt", 215_729, 1_408, 3_235),
    (read_pairs, "food/drgnn_temporal/train.txt", 196_242, 7_450, 10_977),
    (read_pairs, "amazon_beauty/drgnn_popularity/train.txt", 158_802, 22_356, 11_299),
    (read_pairs, "amazon_beauty/drgnn_popularity/test.txt", 35_232, 16_767, 10_854),
    (read_pairs, "yahoo_r3/drgnn_exposure/train.txt", 125_077, 14_382, 1_000),
    (read_pairs, "coat/drgnn_exposure/test.txt", 840, 237, 253),
    (read_adjacency, "yahoo_r3/advinfonce/train.txt", 88_684, None, None),
    (read_adjacency, "yahoo_r3/advinfonce/valid.txt", 36_393, None, None),
    (read_adjacency, "yahoo_r3/advinfonce/test_ood.txt", 4_671, 2_383, 942),
    (read_adjacency, "coat/advinfonce/test_ood.txt", 860, None, None),
    (read_rating_csv, "yahoo_r3/raw_autodebias/user.txt", 311_704, 15_400, 1_000),
    (read_rating_csv, "yahoo_r3/raw_autodebias/random.txt", 54_000, 5_400, 1_000),
    (read_rating_csv, "coat/raw_autodebias/user.txt", 6_960, 290, 300),
    (read_dense_matrix, "coat/raw_autodebias/test.ascii", 4_640, 290, 300),
    (read_movielens_udata, "ml-100k/u.data", 100_000, 943, 1_682),
    (read_movielens_csv, "ml-latest-small/ratings.csv", 100_836, 610, 9_724),
]

# (zip, member, rows, users, items)
ZIPS = [
    ("douban/irbench_book_popularity/proc.zip", "train.tsv", 750_538, 18_662, 15_207),
    ("douban/irbench_music_popularity/proc.zip", "test.tsv", 180_636, 12_184, None),
    ("amazon2014/irbench_electronic_popularity/proc.zip", "train.tsv", 187_616, 13_455, 8_360),
    ("amazon2014/irbench_electronic_temporal/proc.zip", "train.tsv", 140_712, 12_312, 7_375),
    ("amazon2014/irbench_electronic_temporal/proc.zip", "test.tsv", 24_668, 7_210, 4_607),
    ("amazon2014/irbench_cd_temporal/proc.zip", "test.tsv", 11_712, 1_616, 5_968),
    ("food/irbench_temporal/proc.zip", "train.tsv", 139_822, 5_136, 9_203),
    ("ml-1m/irbench_temporal/proc.zip", "test.tsv", 43_821, 738, 2_926),
]


@pytest.mark.parametrize("reader, path, rows, users, items", FILES, ids=[f[1] for f in FILES])
def test_reader_counts(data_dir: Path, reader, path: str, rows: int, users: int | None, items: int | None) -> None:
    got = reader(data_dir / path)
    assert got.users.dtype == np.int64 and got.items.dtype == np.int64
    assert got.users.min() >= 0 and got.items.min() >= 0
    n, n_users, n_items = counts(got)
    assert n == rows
    assert users is None or n_users == users
    assert items is None or n_items == items


@pytest.mark.parametrize("path, member, rows, users, items", ZIPS, ids=[f"{z[0]}/{z[1]}" for z in ZIPS])
def test_zip_counts(data_dir: Path, path: str, member: str, rows: int, users: int, items: int | None) -> None:
    n, n_users, n_items = counts(read_zip_tsv(data_dir / path, member))
    assert (n, n_users) == (rows, users)
    assert items is None or n_items == items


def test_yelp_broken_first_record_is_the_pair_0_1(data_dir: Path) -> None:
    train = read_selfrec(data_dir / "yelp2018/cnsdiff_drgo/train.txt")
    assert (train.users[0], train.items[0]) == (0, 1)
    assert len(train.unique_pairs()) == len(train)  # the repaired pair duplicates nothing


@pytest.mark.parametrize("name, train_positives, test_positives", [("yahoo_r3", 125_077, 4_749), ("coat", 1_905, 860)])
def test_rating_thresholds(data_dir: Path, name: str, train_positives: int, test_positives: int) -> None:
    data = load(name, data_dir)
    assert (len(data.parts["train"]), len(data.parts["test"])) == (train_positives, test_positives)
    assert data.parts["train"].ratings.min() >= 4


def test_movielens_positives_and_ids(data_dir: Path) -> None:
    ml100k = load("ml-100k", data_dir).parts["ratings"]
    assert len(ml100k) == 55_375 and ml100k.timestamps is not None
    raw = read_movielens_udata(data_dir / "ml-100k/u.data")
    assert (raw.users.max(), raw.items.max()) == (942, 1681)  # 1-based made 0-based
    small = read_movielens_csv(data_dir / "ml-latest-small/ratings.csv")
    assert small.items.max() == 9_723  # sparse movieIds re-indexed densely
    assert len(load("ml-latest-small", data_dir).parts["ratings"]) == 48_580


def test_coat_ascii_matches_csv(data_dir: Path) -> None:
    dense = read_dense_matrix(data_dir / "coat/raw_autodebias/train.ascii")
    csv = read_rating_csv(data_dir / "coat/raw_autodebias/user.txt")
    as_set = lambda x: set(zip(x.users.tolist(), x.items.tolist(), x.ratings.tolist()))  # noqa: E731
    assert as_set(dense) == as_set(csv)


def test_kuairec_train_is_deduplicated(data_dir: Path) -> None:
    data = load("kuairec", data_dir)
    assert len(data.parts["train"]) == 151_878
    assert data.dropped["train"]["duplicates_dropped"] == 20_526
    assert data.partial


@pytest.mark.parametrize(
    "reader, text, line, snippet",
    [
        (read_selfrec, "0 1 1\n0 2 1\n1 x 1\n", 3, "non-integer token 'x'"),
        (read_selfrec, "0 1 1\n0 2\n1 3 1\n", 2, "expected 3 fields"),
        (read_selfrec, "0 1 1\n7\n1 3 1\n", 2, "expected 3 fields"),
        (read_selfrec, "0 1 1\n0 1 1\n7\n", 3, "expected 3 fields"),
        (read_selfrec, "0 1 1\n0 -2 1\n", 2, "negative value '-2'"),
        (read_pairs, "0 1\n0 2 3\n", 2, "expected 2 fields"),
        (read_adjacency, "0 1 2\n1 2.5\n", 2, "non-integer token '2.5'"),
        (read_rating_csv, "0,1,4\n0,2,4.5\n1,3,x\n", 3, "non-numeric token 'x'"),
        (read_dense_matrix, "0 1 2\n0 1\n", 2, "expected 3 columns"),
        (read_movielens_udata, "1\t1\t4\t5\n0\t2\t3\t4\n", 2, "zero id"),
        (read_movielens_csv, "user,movie\n1,2,3,4\n", 1, "expected the header"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, reader, text: str, line: int, snippet: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=snippet) as error:
        reader(path)
    bad_line = text.splitlines()[line - 1]
    assert f"{path}:{line}:" in str(error.value) and repr(bad_line) in str(error.value)


def test_broken_record_join_only_before_a_pair(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("0\n0 1\n1 3 1\n\n2 3 1\n")
    got = read_selfrec(path)
    assert got.users.tolist() == [0, 1, 2] and got.items.tolist() == [1, 3, 3]


def test_malformed_zip_member_names_member_and_line(tmp_path: Path) -> None:
    path = tmp_path / "proc.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("train.tsv", "user_procid\titem_procid\n0\t1\n0\t1\t2\n")
    with pytest.raises(DataFormatError, match=r"proc\.zip/train\.tsv:3: expected 2 fields"):
        read_zip_tsv(path, "train.tsv")


def test_every_catalogue_file_matches_its_checksum(data_dir: Path) -> None:
    names = [name for name, _, _ in list_datasets()]
    for required in ["yelp2018", "food", "food_drgnn", "food_irbench", "yahoo_r3", "yahoo_r3_drgnn", "coat",
                     "coat_drgnn", "douban_book", "douban_music", "amazon_electronic", "amazon_cd",
                     "amazon_beauty", "ml-1m", "ml-100k", "ml-latest-small", "kuairec"]:
        assert required in names
    for name in names:
        assert set(verify(name, data_dir)) == {f.path for f in catalogue.dataset_files(name).values()}


def test_checksums_are_cached_per_file_state(data_dir: Path) -> None:
    verify("coat", data_dir)
    before = catalogue._sha256.cache_info().hits
    verify("coat", data_dir)
    assert catalogue._sha256.cache_info().hits == before + 2


def test_checksum_mismatch_names_the_file(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "coat/raw_autodebias"
    folder.mkdir(parents=True)
    for name in ("user.txt", "random.txt"):  # plain copies: the shared originals are read-only
        shutil.copyfile(data_dir / "coat/raw_autodebias" / name, folder / name)
    changed = folder / "user.txt"
    data = bytearray(changed.read_bytes())
    data[-2] = ord("1") if data[-2] != ord("1") else ord("2")  # the last rating, same size
    changed.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="user.txt"):
        verify("coat", tmp_path)
    changed.unlink()
    with pytest.raises(DataDirError, match="coat/raw_autodebias/user.txt"):
        load("coat", tmp_path)


def test_data_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEGBENCH_DATA", raising=False)
    with pytest.raises(DataDirError, match="--data-dir.*NEGBENCH_DATA"):
        resolve_data_dir(None)
    with pytest.raises(DataDirError, match="does not exist"):
        resolve_data_dir(tmp_path / "nowhere")
    monkeypatch.setenv("NEGBENCH_DATA", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir(str(tmp_path)) == tmp_path


def test_unknown_dataset_lists_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="yelp2018"):
        catalogue.get_dataset("yelp")
