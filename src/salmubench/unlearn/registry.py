"""The registry of unlearning methods: `register` (contract checked, origin and code digest
recorded in `ORIGINS`), the names of every method (built-in, installed packages' entry
points, method files loaded in this process) and building one from its settings."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from salmubench.config import ConfigError, build
from salmubench.hashing import sha256_file
from salmubench.unlearn.contract import ContractError, check_method
from salmubench.unlearn.method import Method

log = logging.getLogger(__name__)

BUILT_IN = "salmubench.unlearn.methods"


@dataclass(frozen=True)
class Origin:
    """Where a registered method comes from, and the sha256 of the file that defines it."""

    kind: str  # "built-in" | "package" | "file" | "module" (registered by a caller's code)
    source: str  # the package's name, the file's path, or the defining module
    module: str  # the module that defines the class
    code_digest: str

    def __str__(self) -> str:
        return self.kind if self.kind == "built-in" else f"{self.kind} {self.source}"

    def record(self) -> dict[str, str]:
        """What manifests, evals and leaderboard rows carry (`method_code`)."""
        return {"origin": str(self), "module": self.module, "code_digest": self.code_digest}


METHODS: dict[str, type[Method]] = {}
ORIGINS: dict[str, Origin] = {}
# The (kind, source) of the external code being imported now (see `loading`), so that a
# `@register` inside it is attributed to it.
_loading: list[tuple[str, str]] = []


@contextlib.contextmanager
def loading(kind: str, source: str) -> Iterator[None]:
    """Attribute methods registered while importing foreign code to (kind, source)."""
    _loading.append((kind, source))
    try:
        yield
    finally:
        _loading.pop()


def origin_of(cls: type) -> Origin:
    module = cls.__module__
    if module.startswith(BUILT_IN + "."):
        kind, source = "built-in", module
    elif _loading:
        kind, source = _loading[-1]
    else:
        kind, source = "module", module
    try:
        path = inspect.getsourcefile(cls)
    except (TypeError, OSError):  # defined interactively (python -c, a REPL): no file behind it
        path = None
    if path is None:
        raise ConfigError(
            f"method class {cls.__name__} ({module}) has no source file to digest: define it "
            "in a .py file (--method-file PATH.py) or an installed package"
        )
    return Origin(kind, source, module, sha256_file(path))


def register(cls: type[Method]) -> type[Method]:
    """Add `cls` to the registry once it passes the contract checks; a name already taken
    by another method is refused, naming both origins. Re-registering the same class (or a
    re-read of the same file) is a no-op (resp. replaces the earlier version)."""
    origin = origin_of(cls)
    check_method(cls, origin)
    other = METHODS.get(cls.name)
    if other is cls:
        return cls
    if other is not None:
        before = ORIGINS[cls.name]
        same_file = before.kind == origin.kind == "file" and before.source == origin.source
        if not same_file:
            raise ContractError(
                f"method {cls.name!r} ({origin}, {cls.__module__}.{cls.__qualname__}) clashes "
                f"with the method of that name from {before} ({before.module}); rename one "
                "(its `name`)"
            )
    METHODS[cls.name] = cls
    ORIGINS[cls.name] = origin
    return cls


def method_names() -> list[str]:
    """Every registered method: the built-ins, then installed packages' entry points (and
    any method file loaded in this process)."""
    import salmubench.unlearn.methods  # noqa: F401  (registers every method file)

    load_entry_points()
    return list(METHODS)


def parse_methods(text: str) -> list[str]:
    """'all' or a comma-separated list of registered method names, validated."""
    names = method_names()
    if text.strip() == "all":
        return names
    chosen = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in names]
    if unknown or not chosen:
        raise ConfigError(f"unknown method(s) {unknown or text!r}; valid: all, {', '.join(names)}")
    return list(dict.fromkeys(chosen))


def get_method(name: str) -> type[Method]:
    names = method_names()
    if name not in METHODS:
        if name in REFUSED:
            raise REFUSED[name]
        raise ConfigError(f"unknown method {name!r}; valid: {', '.join(names)}")
    return METHODS[name]


def method_code(name: str) -> dict[str, str]:
    """The origin and code digest of registered method `name` (for manifests)."""
    get_method(name)
    return ORIGINS[name].record()


def build_method(name: str, settings: dict[str, Any] | None = None) -> Method:
    """The method `name` with its hyper-parameters from `settings`, validated."""
    cls = get_method(name)
    try:
        params = build(cls.Params, dict(settings or {}))
    except ConfigError as e:
        raise ConfigError(f"methods.{name}: {e}") from None
    return cls(params)


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
