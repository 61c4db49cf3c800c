"""Typed configs from plain data: documented dataclass fields, building a dataclass from a
mapping with every value coerced to its field's type and validated, and back to a mapping.
The stages' configs themselves and params.yaml: `config.py`."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A profile, override or params file that cannot be used, with what would be valid."""


def _doc(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


def check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name}={value!r}: must be a positive integer")


def check_non_negative(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{name}={value!r}: must be a non-negative integer")


LOADERS = ("auto", "memory", "stream")  # how a stage reads its pools (docs/STREAMING.md)


def check_loader(loader: str, workers: int) -> None:
    """The loader settings training and unlearning share."""
    if loader not in LOADERS:
        raise ConfigError(f"loader={loader!r}; valid: {', '.join(LOADERS)}")
    check_non_negative("loader_workers", workers)


def set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    """`a.b.c=v` sets values["a"]["b"]["c"] (for nested settings such as methods.<name>)."""
    *parents, last = key.split(".")
    node = values
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a mapping")
        else:
            child = node[part] = dict(child)
        node = child
    node[last] = value


def build(cls: type, values: dict[str, Any]) -> Any:
    """Instantiate a config dataclass from plain values, checking names and types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} key(s) {unknown}; valid: {sorted(fields)}")
    missing = sorted(
        name
        for name, f in fields.items()
        if name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise ConfigError(f"{cls.__name__} is missing key(s) {missing}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(name, value, hints[name]) for name, value in values.items()}
    config = cls(**kwargs)
    config.validate()
    return config


def _coerce(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}={value!r}: expected a mapping")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}={value!r}: expected a list")
        item_type = typing.get_args(hint)[0]
        return tuple(_coerce(name, v, item_type) for v in value)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        kinds = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(name, value, kinds[0]) if len(kinds) == 1 else value
    if hint is int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigError(f"{name}={value!r}: expected an integer")
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{name}={value!r}: expected a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}={value!r}: expected a number")
        return float(value)
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{name}={value!r}: expected a string")
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """A config as plain JSON-able data (tuples become lists)."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }


def with_batch_size(cfg: Any, batch_size: int | None, *fields: str) -> Any:
    """`cfg` with `batch_size` in each of `fields` (None: unchanged). A retain_batch of 0
    stays 0: that run uses no retain data."""

    if batch_size is None:
        return cfg
    keep_zero = {"retain_batch"}
    values = {f: batch_size for f in fields if not (f in keep_zero and getattr(cfg, f) == 0)}
    return dataclasses.replace(cfg, **values)
