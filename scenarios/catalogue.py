"""The catalogue of real datasets: which files, which reader, which checksum.

Files live in a data directory the user names (``--data-dir`` or ``NEGBENCH_DATA``); nothing
here is downloaded or committed. Every file is checked against the sha256 of its SOURCE.md
before use, and the checksums travel into ``split.meta["checksums"]`` so a result can always be
traced to the exact bytes it was computed from.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from bench.registry import UnknownNameError
from scenarios.loaders import READERS, Interactions
from scenarios.protocols import iid_partition, warm_matrix
from scenarios.split import Split, interaction_matrix

DATA_ENV = "NEGBENCH_DATA"


class DataDirError(ValueError):
    """The data directory is unset, missing, or lacks a file a dataset needs."""


class ChecksumError(ValueError):
    """A data file whose sha256 differs from the one its SOURCE.md records."""


@dataclass(frozen=True)
class DataFile:
    """One input of a dataset: a file (or a member of a zip) and the reader for its format."""

    path: str  # relative to the data directory
    sha256: str
    format: str  # a key of ``loaders.READERS``
    member: str | None = None  # inside a zip

    def read(self, data_dir: Path) -> Interactions:
        reader = READERS[self.format]
        return reader(data_dir / self.path, self.member) if self.member else reader(data_dir / self.path)


@dataclass(frozen=True)
class Dataset:
    """A named dataset: its parts by role (``train``, ``valid``, ``test_iid``, ``test``, ``ratings`` ...).

    ``min_rating`` turns explicit ratings into positives; ``dedupe`` names the parts whose
    repeated (user, item) rows are logs of one interaction; ``partial`` marks a dataset whose
    published protocol cannot be rebuilt from the files at hand.
    """

    description: str
    source: str
    parts: dict[str, DataFile]
    min_rating: float | None = None
    dedupe: tuple[str, ...] = ()
    partial: bool = False
    note: str = ""


def _selfrec_split(folder: str, sha: dict[str, str]) -> dict[str, DataFile]:
    return {role: DataFile(f"{folder}/{name}", sha[name], "selfrec") for role, name in
            [("train", "train.txt"), ("valid", "valid_iid.txt"), ("test_iid", "test_iid.txt"), ("test", "test.txt")]}


def _zip_split(path: str, sha: str, prefix: str = "") -> dict[str, DataFile]:
    return {f"{prefix}{role}": DataFile(path, sha, "zip_tsv", f"{role}.tsv") for role in ("train", "test")}


def _pairs_split(folder: str, train_sha: str, test_sha: str) -> dict[str, DataFile]:
    return {"train": DataFile(f"{folder}/train.txt", train_sha, "pairs"),
            "test": DataFile(f"{folder}/test.txt", test_sha, "pairs")}


def _rating_split(folder: str, user_sha: str, random_sha: str) -> dict[str, DataFile]:
    return {"train": DataFile(f"{folder}/user.txt", user_sha, "rating_csv"),
            "test": DataFile(f"{folder}/random.txt", random_sha, "rating_csv")}


_AMAZON = "amazon2014/irbench_{}_{}/proc.zip"

CATALOGUE: dict[str, Dataset] = {
    "yelp2018": Dataset(
        "Yelp2018, CNSDiff/DRGO authors' split: train, valid_iid, test_iid, test (OOD, long-tail items)",
        "yelp2018/cnsdiff_drgo",
        _selfrec_split("yelp2018/cnsdiff_drgo", {
            "train.txt": "c60a46d7e9ff98d8480531fbba38d054ebb3758b5c9964d94992d5abe10d81a9",
            "valid_iid.txt": "ff35042dcae460a7539d6480c2e86d8e51072113988b7806438c2c013a28feea",
            "test_iid.txt": "3e98eab701e87e4d54ecaedc8a02fc90c5adbfe71fbcdd1247ef59e113920d07",
            "test.txt": "438d4b3577564b4f17128f22ed965e8f1f867410e320f90bbeb6b86d51a93618",
        }),
        note="train.txt lines 1-2 are one record broken over two lines; read as the pair (0, 1)",
    ),
    "food": Dataset(
        "Food.com, CNSDiff/DRGO authors' split: train, valid_iid, test_iid, test (OOD, later period, inferred)",
        "food/cnsdiff_drgo",
        _selfrec_split("food/cnsdiff_drgo", {
            "train.txt": "6889b3c7ac2902c40f44a227f9cd9138ceaa777631930dfa9999812d9e9bfb75",
            "valid_iid.txt": "35955c06fae57612490d7b69a4c7619e121873dd05a66985630e7c2ed3fe61c2",
            "test_iid.txt": "de93811d88ee7c48ac88dcd44b94be6c2832de1a788a2a087466f5bbcd044d3a",
            "test.txt": "bb529628d6837ce88a91daf1aaf45314fd153ffd583090d8e41cd7d7470550e1",
        }),
    ),
    "food_drgnn": Dataset(
        "Food.com, DR-GNN temporal split (train, test; no timestamps)",
        "food/drgnn_temporal",
        _pairs_split("food/drgnn_temporal",
                     "41b8f27dd9d259105e256942e0c45f74ed62e9f3d9b82f537d556e3bc36b692a",
                     "7ca5dcf2db51f608337187a02bb068d8c3279a2ecde5f320189648fd90ff7abe"),
    ),
    "food_irbench": Dataset(
        "Food.com, IR-Benchmark global time cut (first 60 % train, last 20 % test)",
        "food/irbench_temporal",
        _zip_split("food/irbench_temporal/proc.zip",
                   "16ac884a45fd8168fe733894c4bf4259a4d03ac3da3d6ddd93e9442d0fd26fa8"),
    ),
    "yahoo_r3": Dataset(
        "Yahoo! R3 ratings >= 4: user-selected (logged, MNAR) and randomly exposed (MAR)",
        "yahoo_r3/raw_autodebias",
        _rating_split("yahoo_r3/raw_autodebias",
                      "a1fb32e1b74af1227151432db883e425fea8e6c9eb5d31be7aa082af48243275",
                      "ef7962a443c31a6edec90e8ae602597acb8a81c680ff33d1c45c5bb64324d0d5"),
        min_rating=4,
    ),
    "yahoo_r3_drgnn": Dataset(
        "Yahoo! R3, DR-GNN exposure split (train = logged positives, test = random positives; own ids)",
        "yahoo_r3/drgnn_exposure",
        _pairs_split("yahoo_r3/drgnn_exposure",
                     "ac0a159a20783a402cc6163770d9a768f4c8a8227fdb0e425acf16e1774b06a1",
                     "786ffcb36d54174fd7574796f75fc85724bd5500a41995e76ccd47a276147986"),
    ),
    "coat": Dataset(
        "Coat ratings >= 4: self-selected (logged) and randomly shown; tiny, for tests",
        "coat/raw_autodebias",
        _rating_split("coat/raw_autodebias",
                      "e2196cbdc56025e733e6eb812042ac05c9f3335f04fb6c50f230b9df87de6c2f",
                      "37fefc35e0104e9fff703114102083cdf59398484f70760bfd4baa0af22af952"),
        min_rating=4,
        note="91 random-exposure positives are also self-selected positives; they are removed from the test",
    ),
    "coat_drgnn": Dataset(
        "Coat, DR-GNN exposure split (train, test pairs; own ids)",
        "coat/drgnn_exposure",
        _pairs_split("coat/drgnn_exposure",
                     "3a0ab1c4ba7d1e66cfcb06a44c348331b49e92e4f46b18acfd0fb64881d76159",
                     "28e6eacf2a56c068f3d51d0bb48069cd73d442bc237af69d2b0ee9e81bcb2fcb"),
    ),
    "douban_book": Dataset(
        "Douban Book, IR-Benchmark item-uniform popularity split",
        "douban/irbench_book_popularity",
        _zip_split("douban/irbench_book_popularity/proc.zip",
                   "d19954e880ef6300c130b0cdac2978670f22c689d5a87523b6036e4a15e7750e"),
    ),
    "douban_music": Dataset(
        "Douban Music, IR-Benchmark item-uniform popularity split",
        "douban/irbench_music_popularity",
        _zip_split("douban/irbench_music_popularity/proc.zip",
                   "19976fb1c624f010d7d4bf6de985b0ff7175b242897978ef32f195fecae84487"),
    ),
    "amazon_electronic": Dataset(
        "Amazon 2014 Electronic, IR-Benchmark temporal (train, test) and popularity "
        "(popularity_train, popularity_test) splits in one id space",
        "amazon2014/irbench_electronic_{temporal,popularity}",
        {**_zip_split(_AMAZON.format("electronic", "temporal"),
                      "566e9c1ac8beab6870ae5d673abfedda943b36bf671eec19143c347d39338a13"),
         **_zip_split(_AMAZON.format("electronic", "popularity"),
                      "fa9c588acd1d8e3998f5ee05b259fcc0066aba1418413eb7034cb6352e49a9eb", "popularity_")},
    ),
    "amazon_cd": Dataset(
        "Amazon 2014 CD, IR-Benchmark temporal (train, test) and popularity "
        "(popularity_train, popularity_test) splits in one id space",
        "amazon2014/irbench_cd_{temporal,popularity}",
        {**_zip_split(_AMAZON.format("cd", "temporal"),
                      "743af0802b17b0fda7ff105f154a3f69ebb086741afee378a2e65cf9928b758f"),
         **_zip_split(_AMAZON.format("cd", "popularity"),
                      "dd87e147ad34733c49f4b117971d1f927fc331d985450a96d7aaa8ca0a95e08e", "popularity_")},
    ),
    "amazon_beauty": Dataset(
        "Amazon Beauty, DR-GNN popularity split (train, test)",
        "amazon_beauty/drgnn_popularity",
        _pairs_split("amazon_beauty/drgnn_popularity",
                     "ad2805033b9632ae510fd471ed297e7c072f6722160904f82d6a3fd4308b9b95",
                     "3b544a46c0f56b674550b316ee5400b54738a6a546bde2679f75ae4e99c1e6c2"),
    ),
    "ml-1m": Dataset(
        "MovieLens-1M, IR-Benchmark global time cut (first 60 % train, last 20 % test)",
        "ml-1m/irbench_temporal",
        _zip_split("ml-1m/irbench_temporal/proc.zip",
                   "509a35cb3440b0f1265e6dca05f952d7f8e0741879bd397e4de95263d4e156ee"),
    ),
    "ml-100k": Dataset(
        "MovieLens-100K raw ratings >= 4 with timestamps",
        "ml-100k",
        {"ratings": DataFile("ml-100k/u.data", "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
                             "movielens_udata")},
        min_rating=4,
    ),
    "ml-latest-small": Dataset(
        "MovieLens latest-small raw ratings >= 4 with timestamps (movie ids re-indexed)",
        "ml-latest-small",
        {"ratings": DataFile("ml-latest-small/ratings.csv",
                             "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646", "movielens_csv")},
        min_rating=4,
    ),
    "kuairec": Dataset(
        "KuaiRec-lite (partial): train on the deduplicated big-matrix IID positives, test on the fully exposed small matrix",
        "kuairec/cnsdiff_drgo_partial",
        {"train": DataFile("kuairec/cnsdiff_drgo_partial/test_iid.txt",
                           "c291bdda8c9b9f6f6ed5c8b9229e75babea2a388f5fe6f7089564558d08cf8b8", "selfrec"),
         "test": DataFile("kuairec/cnsdiff_drgo_partial/test_ood.txt",
                          "9b84b51b426348276f204a681b6be6368b18ab8f84590f48c72ee4804a8c78fa", "selfrec")},
        dedupe=("train",),
        partial=True,
        note="KuaiRec-lite fallback of its SOURCE.md: the authors' train.txt is missing, so test_iid.txt "
             "(deduplicated) serves as training data; not comparable with the paper's KuaiRec numbers",
    ),
}


@dataclass
class LoadedDataset:
    """The parts of a dataset read, thresholded and deduplicated, with the checksums of their files."""

    name: str
    source: str
    parts: dict[str, Interactions]
    checksums: dict[str, str]
    n_users: int
    n_items: int
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    partial: bool = False
    note: str = ""


def get_dataset(name: str) -> Dataset:
    """The catalogue entry of ``name``; an unknown name lists the known ones."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownNameError(f"unknown dataset {name!r}; known: {', '.join(sorted(CATALOGUE))}") from None


def dataset_files(name: str) -> dict[str, DataFile]:
    """The files of ``name`` by role (a zip serves two roles through its members)."""
    return dict(get_dataset(name).parts)


def list_datasets() -> list[tuple[str, str, str]]:
    """(name, description, formats) of every dataset in the catalogue."""
    return [
        (name, spec.description, ", ".join(sorted({f.format for f in spec.parts.values()})))
        for name, spec in sorted(CATALOGUE.items())
    ]


def resolve_data_dir(explicit: str | Path | None) -> Path:
    """The data directory: the explicit argument, else ``$NEGBENCH_DATA``; it must exist."""
    raw, origin = (explicit, "--data-dir") if explicit else (os.environ.get(DATA_ENV), DATA_ENV)
    if not raw:
        raise DataDirError(
            f"no data directory given: pass --data-dir DIR or set {DATA_ENV}=DIR "
            "(the folder holding yelp2018/, food/, yahoo_r3/, ...)"
        )
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise DataDirError(
            f"data directory {str(path)!r} (from {origin}) does not exist; "
            f"pass --data-dir DIR or set {DATA_ENV}=DIR to the folder holding the datasets"
        )
    return path


@functools.lru_cache(maxsize=512)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, cached per (path, size, mtime) so repeated loads do not rehash."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def verify(name: str, data_dir: Path) -> dict[str, str]:
    """Check every file of ``name`` against its recorded sha256; return {relative path: sha256}."""
    spec = get_dataset(name)
    checksums: dict[str, str] = {}
    for data_file in spec.parts.values():
        path = Path(data_dir) / data_file.path
        if not path.is_file():
            raise DataDirError(
                f"dataset {name!r} needs {data_file.path}, missing from the data directory {str(data_dir)!r} "
                f"(see {spec.source.split('/')[0]}/SOURCE.md)"
            )
        actual = file_sha256(path)
        if actual != data_file.sha256:
            raise ChecksumError(
                f"{path}: sha256 {actual} differs from {data_file.sha256} recorded for dataset {name!r}; "
                "the file is corrupt or another version"
            )
        checksums[data_file.path] = actual
    return checksums


def load(name: str, data_dir: Path) -> LoadedDataset:
    """Verify and read every part of ``name``; apply its positive threshold and deduplication."""
    spec = get_dataset(name)
    checksums = verify(name, data_dir)
    parts: dict[str, Interactions] = {}
    dropped: dict[str, dict[str, int]] = {}
    for role, data_file in spec.parts.items():
        part = data_file.read(Path(data_dir))
        if spec.min_rating is not None:
            part = part.at_least(spec.min_rating)
        if role in spec.dedupe:
            unique = part.unique_pairs()
            dropped[role] = {"duplicates_dropped": len(part) - len(unique)}
            part = unique
        parts[role] = part
    n_users = max((int(p.users.max()) + 1 for p in parts.values() if len(p)), default=0)
    n_items = max((int(p.items.max()) + 1 for p in parts.values() if len(p)), default=0)
    return LoadedDataset(name, spec.source, parts, checksums, n_users, n_items, dropped, spec.partial, spec.note)


def carve(part: Interactions, rng: np.random.Generator) -> tuple[Interactions, Interactions, Interactions]:
    """IID train / valid / test_iid parts (70 / 10 / 20 %) of ``part``."""
    train, valid, iid = (part.select(idx) for idx in iid_partition(len(part), [0.7, 0.1, 0.2], rng))
    return train, valid, iid


def assemble_split(
    scenario: str,
    data: LoadedDataset,
    train: Interactions,
    valid: Interactions,
    tests: dict[str, Interactions],
    protocol: str,
    dropped: dict[str, dict[str, int]] | None = None,
) -> Split:
    """The ``Split`` of real data: held-out sets made warm, free of train pairs and of earlier held-out pairs.

    Sets are cleaned in the order valid, then ``tests`` in their order, so a pair held out twice
    stays only in the first set (counted as ``heldout_overlap_dropped``): no set leaks into another.
    """
    train_m = interaction_matrix(train.users, train.items, data.n_users, data.n_items)
    counts = {key: dict(value) for key, value in {**data.dropped, **(dropped or {})}.items()}
    held = sp.csr_matrix(train_m.shape, dtype=np.float32)
    sets: dict[str, sp.csr_matrix] = {}
    for name, part in [("valid", valid), *tests.items()]:
        matrix, drop = warm_matrix(part.users, part.items, train_m)
        overlap = matrix.multiply(held).tocsr()
        if overlap.nnz:
            matrix = (matrix - overlap).tocsr()
            matrix.eliminate_zeros()
        drop["heldout_overlap_dropped"] = int(overlap.nnz)
        counts.setdefault(name, {}).update(drop)
        held = (held + matrix).tocsr()
        sets[name] = matrix
    valid_m = sets.pop("valid")
    meta = {
        "source": data.source,
        "checksums": dict(data.checksums),
        "dropped": counts,
        "protocol": protocol,
        "partial": data.partial,
    }
    if data.note:
        meta["note"] = data.note
    return Split(scenario=scenario, dataset=data.name, train=train_m, valid=valid_m, tests=sets, meta=meta)
