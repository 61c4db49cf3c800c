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
from pathlib import Path

from salmubench.config import ConfigError
from salmubench.hashing import sha256_file

# REFUSED, _scanned, load_entry_points: the entry-point route, re-exported from the registry
# for the tests that reset or drive it through this module.
from salmubench.unlearn.registry import (  # noqa: F401
    METHODS,
    ORIGINS,
    REFUSED,
    _scanned,
    load_entry_points,
    loading,
    method_names,
    register,
)

log = logging.getLogger(__name__)


def load_method_file(path: str | os.PathLike) -> list[str]:
    """Import the Python file `path` and register every method class it defines; returns
    their names. Contract failures and name clashes raise ContractError. (The plan stage
    imports this module without torch; a method file imports it, so loading one does.)"""
    from salmubench.unlearn.method import Method

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
