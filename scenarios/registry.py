"""The scenario plug-in kind: a protocol that turns a dataset into a ``Split``."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from bench.registry import ParameterError, Registry
from scenarios.diagnostics import shift_diagnostics
from scenarios.split import Split

SYNTHETIC = "synthetic"


@dataclass
class Scenario:
    """Base class. Subclasses declare ``preset`` (their literature dataset) and ``supported``.

    ``dataset`` picks the data: the preset by default, any supported catalogue name, or
    ``synthetic`` (the embedded simulator, whose exposure shift is set by ``confounding``).
    """

    dataset: str = ""
    confounding: float = 0.8

    name: ClassVar[str]
    preset: ClassVar[str]
    supported: ClassVar[tuple[str, ...]]
    description: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if not self.dataset:
            self.dataset = self.preset
        if self.dataset != SYNTHETIC and self.dataset not in self.supported:
            raise ParameterError(
                f"scenario {self.name!r} cannot be built on dataset {self.dataset!r}; "
                f"supported: {', '.join((*self.supported, SYNTHETIC))}"
            )

    @property
    def uses_data_dir(self) -> bool:
        return self.dataset != SYNTHETIC

    def split_rng(self, seed: int) -> np.random.Generator:
        """The protocol's randomness for ``seed``: shared by every sampler and backbone of that seed."""
        text = json.dumps({"scenario": self.name, **asdict(self), "seed": seed}, sort_keys=True)
        return np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:16], 16))

    def build(self, data_dir: Path | None, rng: np.random.Generator) -> Split:
        """Build the split; ``rng`` drives every random choice of the protocol."""
        if self.dataset == SYNTHETIC:
            from scenarios.synthetic import simulate

            split = simulate(self.name, rng, confounding=self.confounding)
        else:
            split = self.build_real(data_dir, rng)
        split.meta.setdefault("diagnostics", {})
        for test_name, test in split.tests.items():
            split.meta["diagnostics"][test_name] = shift_diagnostics(split.train, test)
        split.meta["diagnostics"]["valid"] = shift_diagnostics(split.train, split.valid)
        split.meta["split_checksum"] = split.checksum()
        return split

    def build_real(self, data_dir: Path | None, rng: np.random.Generator) -> Split:
        raise NotImplementedError


SCENARIOS: Registry[Scenario] = Registry("scenario", "negbench.scenarios")
