"""What a scenario's split holds: sizes, shift diagnostics, drop counts and data checksums."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tabulate import tabulate

from scenarios.catalogue import resolve_data_dir
from scenarios.registry import SCENARIOS
from scenarios.split import Split

_DIAGNOSTICS = ("top20_share_train", "top20_share_test", "gini_train", "gini_test", "spearman",
                "mean_train_popularity_of_test_items")


def build(scenario_name: str, dataset: str | None = None, data_dir: str | Path | None = None, seed: int = 0) -> Split:
    """The split of ``scenario_name`` on ``dataset`` (its preset by default) for ``seed``.

    The rng is ``scenario.split_rng(seed)``, the derivation a run with that seed uses, so the
    description is of the very split a run would see.
    """
    scenario = SCENARIOS.create(scenario_name, **({"dataset": dataset} if dataset else {}))
    path = resolve_data_dir(data_dir) if scenario.uses_data_dir else None
    return scenario.build(path, scenario.split_rng(seed))


def summarize(split: Split, seed: int) -> dict[str, Any]:
    """Sizes, shift diagnostics, drop counts and checksums of a built split."""
    return {
        "scenario": split.scenario,
        "dataset": split.dataset,
        "seed": seed,
        "n_users": split.n_users,
        "n_items": split.n_items,
        "sizes": split.sizes(),
        "diagnostics": split.meta["diagnostics"],
        "dropped": split.meta.get("dropped", {}),
        "checksums": split.meta.get("checksums", {}),
        "source": split.meta.get("source", ""),
        "protocol": split.meta.get("protocol", ""),
        "split_checksum": split.meta["split_checksum"],
    }


def describe(scenario_name: str, dataset: str | None = None, data_dir: str | Path | None = None, seed: int = 0) -> dict[str, Any]:
    """``summarize(build(...))``: what ``bench describe`` prints."""
    return summarize(build(scenario_name, dataset, data_dir, seed), seed)


def format_description(d: dict[str, Any]) -> str:
    """A readable report of ``describe``'s dict: one table each for sizes, shift and drops."""
    order = {name: rank for rank, name in enumerate(d["sizes"])}  # train, valid, then the tests

    def ordered(table: dict[str, Any]) -> list[str]:
        return sorted(table, key=lambda name: (order.get(name, -1), name))

    sizes = [[name, s["interactions"], s["users"], s["items"]] for name, s in d["sizes"].items()]
    shift = [[name, *(d["diagnostics"][name][key] for key in _DIAGNOSTICS)] for name in ordered(d["diagnostics"])]
    reasons = sorted({reason for counts in d["dropped"].values() for reason in counts})
    dropped = [[name, *(d["dropped"][name].get(reason, "") for reason in reasons)] for name in ordered(d["dropped"])]
    lines = [
        f"scenario {d['scenario']} on {d['dataset']} (seed {d['seed']}): "
        f"{d['n_users']:,} users x {d['n_items']:,} items",
    ]
    if d["source"]:
        lines.append(f"source: {d['source']}")
    if d["protocol"]:
        lines.append(f"protocol: {d['protocol']}")
    lines += ["", tabulate(sizes, headers=["set", "interactions", "users", "items"], intfmt=",")]
    lines += ["", tabulate(shift, headers=["set", "top20% train", "top20% test", "gini train", "gini test",
                                           "spearman", "mean train pop"], floatfmt=".3f")]
    if dropped:
        lines += ["", "dropped:", tabulate(dropped, headers=["set", *reasons], intfmt=",")]
    if d.get("references"):
        metrics = sorted({m for by_ranking in d["references"].values() for values in by_ranking.values() for m in values})
        refs = [[test, ranking, *(values.get(m, "") for m in metrics)]
                for test, by_ranking in d["references"].items() for ranking, values in by_ranking.items()]
        lines += ["", "reference rankings:", tabulate(refs, headers=["set", "ranking", *metrics], floatfmt=".4f")]
    if d["checksums"]:
        lines += ["", tabulate(sorted(d["checksums"].items()), headers=["file", "sha256"])]
    lines += ["", f"split checksum: {d['split_checksum']}"]
    return "\n".join(lines)
