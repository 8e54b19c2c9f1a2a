"""A sampler in a separate package is found through the ``negbench.samplers`` entry point and trains.

Rather than pip-installing ``tests/plugin_example`` into the environment, the test lays out what an
installation leaves behind (the module and a ``*.dist-info`` with ``entry_points.txt``) in a
temporary directory and puts it on ``PYTHONPATH`` of a fresh interpreter, so the environment is
never changed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = Path(__file__).resolve().parent / "plugin_example"

SCRIPT = """
import math
import numpy as np
import torch
from backbones import BACKBONES
from bench.train import TrainConfig, train
from samplers import SAMPLERS
from scenarios.synthetic import simulate

assert "example" in SAMPLERS.names(), SAMPLERS.names()
cls = SAMPLERS.get("example")
assert cls.__module__ == "negbench_example_sampler" and cls.name == "example"
assert SAMPLERS.defaults("example") == {"n_candidates": 2}
split = simulate("popularity", np.random.default_rng(0))
generator = torch.Generator().manual_seed(0)
model = BACKBONES.create("mf").build(split.train, generator)
sampler = SAMPLERS.create("example", n_candidates="3")
result = train(split, model, sampler, TrainConfig(epochs=2, eval_every=1, batch_size=512), np.random.default_rng(0), generator,
               np.random.default_rng(1))
assert sampler.n_candidates == 3 and len(result.history) == 2
assert all(math.isfinite(v) for v in result.evaluations["ood"].aggregate.values())
print("plugin ok")
"""


def install_as_dist_info(target: Path) -> None:
    """What ``pip install`` of ``tests/plugin_example`` leaves on ``sys.path``, built from its pyproject."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    for module in tomllib.loads((PLUGIN / "pyproject.toml").read_text())["tool"]["setuptools"]["py-modules"]:
        shutil.copy(PLUGIN / f"{module}.py", target)
    info = target / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in entries.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def test_plugin_package_is_registered_and_trains(tmp_path):
    install_as_dist_info(tmp_path)
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # tiny tensors: threads only add synchronisation on a busy machine
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "plugin ok" in result.stdout

