"""Methods from outside the package, through the same `register` as the built-ins.

Two routes:
- an installed distribution declares an entry point in the group `salmubench.methods`,
  named after the method and pointing at its class::

      [project.entry-points."salmubench.methods"]
      my_method = "my_package.method:MyMethod"

  Every command finds it (`method_names` scans the group once per process). An entry point
  that cannot be imported or breaks the contract is refused, with its reasons, under its
  name (`REFUSED`): `salmubench methods` lists it and asking for it raises the reason; the
  other methods stay usable.
- `--method-file PATH.py` (`load_method_file`): every `Method` subclass defined in the file
  with its own `name` is registered; a broken one fails the command at once.

The origin of each (`package <distribution>`, `file <path>`) and the sha256 of the file that
defines its class are recorded in `ORIGINS` and so in every manifest the method produces.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from salmubench.config import ConfigError
from salmubench.manifest import sha256_file
from salmubench.unlearn.base import METHODS, ORIGINS, Method, loading, method_names, register
from salmubench.unlearn.contract import ContractError

log = logging.getLogger(__name__)

GROUP = "salmubench.methods"
# Entry points refused by name, with the error to raise when that name is asked for.
REFUSED: dict[str, ConfigError] = {}
_scanned: set[tuple[str, str]] = set()  # (name, value) of entry points already handled


def load_entry_points() -> list[str]:
    """Register the methods of every installed `salmubench.methods` entry point not yet
    handled in this process; returns the names registered now."""
    added = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.name, e.value)):
        if (ep.name, ep.value) in _scanned:
            continue
        _scanned.add((ep.name, ep.value))
        try:
            added.append(_register_entry_point(ep))
        except ConfigError as e:
            REFUSED[ep.name] = e
            log.warning("refused method %r: %s", ep.name, e)
    return added


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else ep.value.split(":")[0]


def _register_entry_point(ep: EntryPoint) -> str:
    where = f"package {_distribution(ep)}"
    with loading("package", _distribution(ep)):
        try:
            cls = ep.load()
        except Exception as e:  # (a broken package must not break the others)
            raise ContractError(
                f"method {ep.name!r} ({where}): entry point {ep.value!r} cannot be loaded: "
                f"{type(e).__name__}: {e}"
            ) from e
        if isinstance(cls, type) and issubclass(cls, Method) and cls.name != ep.name:
            raise ContractError(
                f"method {cls.name!r} ({where}): its entry point is named {ep.name!r}; name "
                f'the entry point after the method ({cls.name} = "{ep.value}")'
            )
        register(cls)
    return ep.name


def load_method_file(path: str | os.PathLike) -> list[str]:
    """Import the Python file `path` and register every method class it defines; returns
    their names. Contract failures and name clashes raise ContractError."""
    method_names()  # the built-ins and packages first: a clash names the file, not them
    path = Path(path).resolve()
    if not path.is_file() or path.suffix != ".py":
        raise ConfigError(f"--method-file {path}: no such Python file (expected PATH.py)")
    # One module name per file content: an edited file is a new module, never a stale one.
    module_name = f"salmubench_method_file_{sha256_file(path)[:16]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"--method-file {path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses resolve annotations through it
    names = []
    with loading("file", str(path)):
        try:
            spec.loader.exec_module(module)
        except ConfigError:
            raise
        except Exception as e:  # (the user's file: report, don't crash)
            raise ConfigError(
                f"--method-file {path}: importing it failed: {type(e).__name__}: {e}"
            ) from e
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Method)
                and value.__module__ == module_name
                and "name" in vars(value)
            ):
                register(value)
                names.append(value.name)
    if not names:
        raise ConfigError(
            f"--method-file {path}: defines no Method subclass with a `name` "
            "(class MyMethod(salmubench.unlearn.Method): name = 'my_method' ...)"
        )
    return names


def load_method_files(paths: list[str] | tuple[str, ...] | None) -> list[str]:
    """`load_method_file` for each of `paths` (the CLI's repeatable --method-file)."""
    return [name for path in paths or () for name in load_method_file(path)]


def origin_text(name: str) -> str:
    """How `salmubench methods` shows where `name` comes from."""
    o = ORIGINS[name]
    return f"{o} (sha256 {o.code_digest[:12]})" if name in METHODS else str(o)
