"""Backbones: the models a sampler trains (MF, LightGCN)."""
from backbones import lightgcn, mf  # noqa: F401  (registration)
from backbones.registry import BACKBONES, Backbone, BackboneModel

__all__ = ["BACKBONES", "Backbone", "BackboneModel"]
