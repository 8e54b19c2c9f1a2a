"""Plug-in registries shared by samplers, backbones, scenarios and metrics.

A registry maps a name to a class whose parameters are a dataclass. Plug-ins register with a
decorator; plug-ins living in other installed packages register through an ``importlib.metadata``
entry-point group, loaded lazily the first time the registry is read.
"""
from __future__ import annotations

import dataclasses
import re
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that no registry entry answers to; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError quotes its message; a user should read plain text
        return str(self.args[0])


class ParameterError(ValueError):
    """A parameter that a plug-in does not declare, or a value of the wrong type."""


class Registry(Generic[T]):
    """Name -> plug-in class, filled by ``@registry.register("name")`` and by entry points."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._classes: dict[str, type[T]] = {}
        self._entry_points_loaded = entry_point_group is None

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def decorate(cls: type[T]) -> type[T]:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if not dataclasses.is_dataclass(cls):
                raise TypeError(f"{self.kind} {name!r} must be a dataclass (its fields are its parameters)")
            cls.name = name  # type: ignore[attr-defined]
            self._classes[name] = cls
            return cls

        return decorate

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.entry_point_group):
            cls = ep.load()
            if ep.name not in self._classes:
                self.register(ep.name)(cls)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._classes)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._classes

    def get(self, name: str) -> type[T]:
        self._load_entry_points()
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}"
            ) from None

    def create(self, name: str, **params: Any) -> T:
        """Instantiate ``name`` with ``params`` checked against its declared fields."""
        cls = self.get(name)
        return cls(**coerce_params(cls, params, f"{self.kind} {name!r}"))

    def defaults(self, name: str) -> dict[str, Any]:
        return {f.name: _field_default(f) for f in parameter_fields(self.get(name))}


def parameter_fields(cls: type) -> list[dataclasses.Field]:
    """The public constructor fields of a plug-in: its parameters."""
    return [f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")]


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def coerce_params(cls: type, params: dict[str, Any], where: str) -> dict[str, Any]:
    """Check names and convert values to the type of each field's default."""
    fields = {f.name: f for f in parameter_fields(cls)}
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in fields:
            raise ParameterError(
                f"{where} has no parameter {key!r}; parameters: {', '.join(sorted(fields)) or 'none'}"
            )
        default = _field_default(fields[key])
        out[key] = _coerce(value, default, f"{where} parameter {key!r}")
    return out


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Convert ``value`` (often a string from a grid name) to the type of ``default``.

    A tuple parameter is written with ``:`` (or ``;`` or spaces) between its values in a grid
    name, since ``,`` separates the values a grid expands over: ``cnsdiff[hardness_steps=10:14:18]``.
    """
    if default is None or type(value) is type(default):
        return value
    target = type(default)
    try:
        if target is bool:
            text = str(value).lower()
            if text not in {"true", "false", "1", "0"}:
                raise ValueError
            return text in {"true", "1"}
        if target is int and (isinstance(value, bool) or float(value) != int(float(value))):
            raise ValueError
        if target is int:
            return int(float(value))
        if target is tuple:
            parts = re.split(r"[\s;:]+", value.strip()) if isinstance(value, str) else list(value)
            element = type(default[0]) if default else str
            return tuple(_coerce(part, element(), where) for part in parts)
        return target(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{where} expects {target.__name__}, got {value!r}") from None


def get_params(obj: Any) -> dict[str, Any]:
    """The resolved parameters of a plug-in instance (for keys, records and reports)."""
    return {f.name: getattr(obj, f.name) for f in parameter_fields(type(obj))}
