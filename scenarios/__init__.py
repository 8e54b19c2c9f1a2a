"""Datasets, the synthetic simulator and the shift protocols that turn them into splits."""
from scenarios import exposure, mixed, popularity, temporal  # noqa: F401  (registration)
from scenarios.registry import SCENARIOS, Scenario
from scenarios.split import Split

__all__ = ["SCENARIOS", "Scenario", "Split"]
