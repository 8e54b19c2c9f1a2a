"""Negative samplers: one file per family, registered in ``SAMPLERS``."""
from samplers import cnsdiff, dns, mixgcf, popularity, uniform  # noqa: F401  (registration)
from samplers.registry import SAMPLERS, Negatives, Sampler

__all__ = ["SAMPLERS", "Negatives", "Sampler"]
