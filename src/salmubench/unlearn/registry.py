"""The registry of unlearning methods: `register` (contract checked, origin and code digest
recorded in `ORIGINS`), the names of every method (built-in, installed packages' entry
points, method files loaded in this process) and building one from its settings.

This module imports no torch: the plan stage validates method names with `parse_methods`
and runs in the lean image (tests/test_torch_free.py). The contract (`contract.py`) and the
`Method` class (`method.py`) are imported when a method is registered or loaded."""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.util
import inspect
import logging
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salmubench.config import ConfigError, build
from salmubench.hashing import sha256_file

if TYPE_CHECKING:
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
    from salmubench.unlearn.contract import ContractError, check_method

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

    _check_built_in_names()
    load_entry_points()
    return list(METHODS)


def known_names() -> list[str]:
    """`method_names()`, without importing any method (nor torch) where nothing but the
    built-ins can be registered: no method registered yet in this process and no installed
    package's entry point. Then the names are the built-ins' (`built_in_names`); otherwise
    every method is loaded, as `method_names()` does, so that a package's method that is
    refused (it cannot be imported, breaks the contract, clashes) stays out of 'all' and
    is refused by name, in the order and with the errors of `method_names()`."""
    if METHODS or any(True for _ in entry_points(group=GROUP)):
        return method_names()
    return built_in_names()


def parse_methods(text: str) -> list[str]:
    """'all' or a comma-separated list of registered method names, validated."""
    names = known_names()
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
    from salmubench.unlearn.contract import ContractError
    from salmubench.unlearn.method import Method

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


# ------------------------------------------- the built-ins' names, read from their source


def built_in_names() -> list[str]:
    """The built-in methods' names in the order importing `unlearn/methods` registers them,
    read from the files without importing them (so without torch): module by module in
    pkgutil's order, as `methods/__init__.py` imports them; within a module, statement by
    statement, a top-level import of another built-in method module visits that module
    first (cliperase.py imports delete.py: delete comes first), and a `@register`ed class
    contributes its literal `name`. `method_names()` checks the result against the real
    registration (`_check_built_in_names`), so the two cannot drift apart."""
    return list(_read_built_in_names())


@functools.cache
def _read_built_in_names() -> tuple[str, ...]:
    spec = importlib.util.find_spec(BUILT_IN)
    if spec is None or spec.submodule_search_locations is None:
        raise ConfigError(f"the built-in methods package {BUILT_IN} is not installed")
    files: dict[str, Path] = {}
    for info in pkgutil.iter_modules(list(spec.submodule_search_locations)):
        folder = Path(getattr(info.module_finder, "path", ""))
        files[info.name] = (
            folder / info.name / "__init__.py" if info.ispkg else folder / (info.name + ".py")
        )
    names: list[str] = []
    seen: set[str] = set()

    def visit(module: str) -> None:
        if module in seen:
            return
        seen.add(module)
        path = files[module]
        for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                for sibling in _sibling_imports(node, set(files)):
                    visit(sibling)
            elif isinstance(node, ast.ClassDef) and any(
                (d.id if isinstance(d, ast.Name) else getattr(d, "attr", None)) == "register"
                for d in node.decorator_list
            ):
                names.append(_literal_name(node, path))

    for module in files:
        visit(module)
    return tuple(names)


def _sibling_imports(node: ast.Import | ast.ImportFrom, modules: set[str]) -> list[str]:
    """The built-in method modules an import statement of a method module loads."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    elif node.level:  # relative: `from .delete import x`, `from . import delete`
        base = f"{BUILT_IN}.{node.module}" if node.module else BUILT_IN
        targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
    else:
        base = node.module or ""
        targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
    prefix = BUILT_IN + "."
    found = [t[len(prefix) :].split(".")[0] for t in targets if t.startswith(prefix)]
    return [m for m in dict.fromkeys(found) if m in modules]


def _literal_name(node: ast.ClassDef, path: Path) -> str:
    for item in node.body:
        target = item.targets[0] if isinstance(item, ast.Assign) else getattr(item, "target", None)
        value = getattr(item, "value", None)
        if (
            isinstance(target, ast.Name)
            and target.id == "name"
            and isinstance(value, ast.Constant)
            and isinstance(value.value, str)
        ):
            return value.value
    raise ConfigError(
        f'built-in method class {node.name} ({path}) has no literal `name = "..."` in its '
        "body: the plan stage reads the built-ins' names without importing them"
    )


_built_ins_checked: list[bool] = []


def _check_built_in_names() -> None:
    """Once per process: the built-ins registered, in order, are what `built_in_names` read."""
    if _built_ins_checked:
        return
    registered = [n for n, o in ORIGINS.items() if o.kind == "built-in"]
    if registered != built_in_names():
        raise ConfigError(
            f"the built-in methods registered {registered} differ from those read from "
            f"{BUILT_IN}'s files without importing them {built_in_names()}: register each "
            "with `@register` on a class whose body sets a literal `name`"
        )
    _built_ins_checked.append(True)
