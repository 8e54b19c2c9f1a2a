"""Grid files and names with parameters, expanded to cells with stable keys and paired seeds.

A name such as ``dns[n_candidates=8,32]`` expands to one entry per value (several parameters give
their product). A grid file (TOML) lists samplers, backbones, scenarios, seeds and training
settings, plus ``include`` / ``exclude`` rules; incompatible sampler/backbone pairs are skipped
with their reason. Every cell's key hashes everything that determines its numbers.
"""
from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from backbones import BACKBONES
from bench.registry import ParameterError, Registry, UnknownNameError, get_params
from bench.train import TrainConfig
from samplers import SAMPLERS
from scenarios import SCENARIOS
from scenarios.catalogue import dataset_files
from scenarios.registry import SYNTHETIC

COMMAND_LINE_GRID = "cli"  # the name of every grid made of command-line names: ad hoc, no fixed cell list
PROTOCOL_VERSION = 3  # 2: synthesised negatives matched among the user's possible negatives;
# 3: diagnostic pairs shared by every sampler, L2 on the source items of synthesised negatives,
# final evaluation outside the per-epoch cost, synthetic mixed re-sampled among warm pairs
SIMULATOR_VERSION = 1
_NAME = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[(.*)\])?\s*$")


class GridError(ValueError):
    """A grid file or name a user wrote that cannot be expanded; the message names where."""


@dataclass(frozen=True)
class Component:
    """One registered plug-in with the parameters the user set (others keep their defaults)."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}[{','.join(f'{k}={v}' for k, v in self.params)}]"

    def label_without(self, param: str) -> str:
        """The label with one parameter left out (the dataset has a column of its own)."""
        return Component(self.name, tuple(p for p in self.params if p[0] != param)).label

    def resolved(self, registry: Registry) -> dict[str, Any]:
        return get_params(registry.create(self.name, **dict(self.params)))


def parse_name(text: str, registry: Registry, where: str) -> list[Component]:
    """``dns[n_candidates=8,32]`` -> one Component per combination, each checked against the registry."""
    if not isinstance(text, str):
        raise GridError(f"{where}: expected a name such as uniform or name[param=value,...], got {text!r}")
    match = _NAME.match(text)
    if not match:
        raise GridError(f"{where}: cannot read {text!r}; expected name or name[param=value,...]")
    name, inner = match.group(1), match.group(2)
    values: dict[str, list[str]] = {}
    current = None
    for token in filter(None, (t.strip() for t in (inner or "").split(","))):
        if "=" in token:
            current, value = (part.strip() for part in token.split("=", 1))
            if not current:
                raise GridError(f"{where}: empty parameter name in {text!r}")
            values.setdefault(current, []).append(value)
        elif current is None:
            raise GridError(f"{where}: value {token!r} in {text!r} has no parameter name")
        else:
            values[current].append(token)
    components = []
    for combo in itertools.product(*values.values()):
        component = Component(name, tuple(zip(values.keys(), combo)))
        try:
            component.resolved(registry)
        except (UnknownNameError, ParameterError) as error:
            raise GridError(f"{where}: {error}") from None
        components.append(component)
    return components


@dataclass(frozen=True)
class Cell:
    grid: str
    sampler: Component
    backbone: Component
    scenario: Component
    seed: int
    train: tuple[tuple[str, Any], ...]
    grid_cells: int = field(default=0, compare=False)  # the grid's size, so a report can tell it is partial

    @property
    def dataset(self) -> str:
        return self.scenario_params()["dataset"]

    def scenario_params(self) -> dict[str, Any]:
        return self.scenario.resolved(SCENARIOS)

    def train_config(self) -> TrainConfig:
        return TrainConfig(**dict(self.train))

    def description(self) -> dict[str, Any]:
        """Everything that determines the cell's numbers, resolved (defaults included)."""
        return {
            "sampler": self.sampler.name,
            "sampler_params": self.sampler.resolved(SAMPLERS),
            "backbone": self.backbone.name,
            "backbone_params": self.backbone.resolved(BACKBONES),
            "scenario": self.scenario.name,
            "scenario_params": self.scenario_params(),
            "seed": self.seed,
            "train": asdict(self.train_config()),  # resolved: a default spelt out is the same cell
            "protocol_version": PROTOCOL_VERSION,
            "data_checksums": expected_checksums(self.dataset),
        }

    @property
    def key(self) -> str:
        return _digest(self.description())[:20]

    def pairing_seed(self, purpose: str) -> int:
        """A seed shared by every sampler of the same (scenario, backbone, seed): paired comparisons.

        (The split's own randomness is ``Scenario.split_rng(seed)``, shared across backbones too.)
        """
        d = self.description()
        shared = {k: d[k] for k in ("scenario", "scenario_params", "backbone", "backbone_params", "seed",
                                    "protocol_version", "data_checksums")}
        return int(_digest({"purpose": purpose, **shared})[:15], 16)

    def sampler_seed(self) -> int:
        return int(_digest({"purpose": "sampler", **self.description()})[:15], 16)

    def labels(self) -> dict[str, str]:
        """The cell's names as its grid spells them (reports show these)."""
        return {
            "sampler_label": self.sampler.label,
            "backbone_label": self.backbone.label,
            "scenario_label": self.scenario.label_without("dataset"),
        }

    def summary(self) -> dict[str, Any]:
        return {
            "grid": self.grid,
            "grid_cells": self.grid_cells,
            **self.labels(),
            "scenario": self.scenario.name,
            "dataset": self.dataset,
            "seed": self.seed,
            **self.description(),
        }


def expected_checksums(dataset: str) -> dict[str, str]:
    """The sha256 of every input file (the catalogue's; loading verifies the files match)."""
    if dataset == SYNTHETIC:
        return {SYNTHETIC: f"simulator-v{SIMULATOR_VERSION}"}
    return {f"{f.path}:{f.member or ''}": f.sha256 for f in dataset_files(dataset).values()}


def _train_value(key: str, value: Any) -> Any:
    """A grid's training setting in the type of TrainConfig's field (lists -> tuples, ints -> floats)."""
    default = getattr(TrainConfig(), key)
    if isinstance(default, tuple):
        return tuple(value)
    return float(value) if isinstance(default, float) else value


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Grid:
    name: str
    cells: list[Cell]
    skipped: list[tuple[Cell, str]] = field(default_factory=list)  # incompatible, with the reason

    def labels(self) -> dict[str, dict[str, str]]:
        """Cell key -> the cell's names in this grid: what a results directory's cell list keeps."""
        return {cell.key: cell.labels() for cell in self.cells}


def _as_list(value: Any, where: str) -> list:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise GridError(f"{where}: expected a list, got {value!r}")
    return value


def _matches(rule: dict[str, str], cell: Cell) -> bool:
    fields_of_cell = {
        "sampler": cell.sampler.label,
        "backbone": cell.backbone.label,
        "scenario": cell.scenario.label,
        "dataset": cell.dataset,
    }
    return all(_label_matches(fields_of_cell[k], str(v)) for k, v in rule.items())


def _label_matches(label: str, pattern: str) -> bool:
    """A glob pattern, or the label itself: ``dns[n_candidates=8]`` has brackets that glob reads as a set."""
    return label == pattern or fnmatch.fnmatchcase(label, pattern)


def build_grid(spec: dict[str, Any], name: str, where: str) -> Grid:
    """Expand a grid mapping (a parsed TOML file or CLI names) into cells."""
    known = {"name", "description", "samplers", "backbones", "scenarios", "seeds", "train", "include", "exclude", "budget"}
    for key in spec:
        if key not in known:
            raise GridError(f"{where}: unknown key {key!r}; keys: {', '.join(sorted(known))}")
    for key in ("samplers", "backbones", "scenarios"):
        if key not in spec:
            raise GridError(f"{where}: missing key {key!r}")
    samplers = [c for i, t in enumerate(_as_list(spec["samplers"], f"{where}: samplers")) for c in parse_name(t, SAMPLERS, f"{where}: samplers[{i}]")]
    backbones = [c for i, t in enumerate(_as_list(spec["backbones"], f"{where}: backbones")) for c in parse_name(t, BACKBONES, f"{where}: backbones[{i}]")]
    scenarios = [c for i, t in enumerate(_as_list(spec["scenarios"], f"{where}: scenarios")) for c in parse_name(t, SCENARIOS, f"{where}: scenarios[{i}]")]
    seeds_spec = spec.get("seeds", 5)
    if isinstance(seeds_spec, int) and not isinstance(seeds_spec, bool) and seeds_spec > 0:
        seeds = list(range(seeds_spec))
    elif isinstance(seeds_spec, list) and seeds_spec and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds_spec):
        seeds = seeds_spec
    else:
        raise GridError(f"{where}: seeds must be a positive count or a list of integers, got {seeds_spec!r}")
    if len(set(seeds)) != len(seeds):
        raise GridError(f"{where}: seeds lists a seed twice: {seeds_spec!r}")
    train = spec.get("train", {})
    if not isinstance(train, dict):
        raise GridError(f"{where}: [train] must be a table")
    train_fields = {f.name: f for f in fields(TrainConfig)}
    for key, value in train.items():
        if key not in train_fields:
            raise GridError(f"{where}: train.{key}: unknown setting; settings: {', '.join(train_fields)}")
        default = getattr(TrainConfig(), key)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise GridError(f"{where}: train.{key}: expects a list of names, got {value!r}")
        elif type(value) is not type(default) and not (isinstance(default, float) and isinstance(value, int)):
            raise GridError(f"{where}: train.{key}: expects {type(default).__name__}, got {value!r}")
    train_items = tuple(sorted({k: _train_value(k, v) for k, v in train.items()}.items()))
    rules = {}
    for kind in ("include", "exclude"):
        rules[kind] = _as_list(spec.get(kind, []), f"{where}: {kind}")
        for i, rule in enumerate(rules[kind]):
            if not isinstance(rule, dict) or not set(rule) <= {"sampler", "backbone", "scenario", "dataset"}:
                raise GridError(f"{where}: {kind}[{i}]: a rule is a table of sampler/backbone/scenario/dataset patterns")

    grid = Grid(name, [])
    seen: set[str] = set()
    for scenario, backbone, sampler, seed in itertools.product(scenarios, backbones, samplers, seeds):
        cell = Cell(name, sampler, backbone, scenario, seed, train_items)
        if cell.key in seen:  # e.g. ``uniform`` and ``uniform[n_negatives=1]``: one cell, run once
            continue
        seen.add(cell.key)
        if rules["include"] and not any(_matches(r, cell) for r in rules["include"]):
            continue
        if any(_matches(r, cell) for r in rules["exclude"]):
            continue
        ok, reason = SAMPLERS.get(sampler.name).compatible(backbone.name, scenario.name)
        if ok:
            grid.cells.append(cell)
        else:
            grid.skipped.append((cell, reason))
    grid.cells = [replace(c, grid_cells=len(grid.cells)) for c in grid.cells]
    return grid


def load_grid(path: str | Path) -> Grid:
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            spec = tomllib.load(handle)
    except FileNotFoundError:
        raise GridError(f"{path}: no such grid file") from None
    except tomllib.TOMLDecodeError as error:
        raise GridError(f"{path}: TOML syntax error: {error}") from None
    return build_grid(spec, spec.get("name", path.stem), str(path))


def names_grid(samplers: list[str], backbones: list[str], scenarios: list[str], seeds: int, train: dict[str, Any]) -> Grid:
    """A grid from command-line names (``bench run --samplers dns[n_candidates=8,32] ...``)."""
    spec = {"samplers": samplers, "backbones": backbones, "scenarios": scenarios, "seeds": seeds, "train": train}
    return build_grid(spec, COMMAND_LINE_GRID, "command line")
