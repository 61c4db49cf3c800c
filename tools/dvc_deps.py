"""dvc.yaml's code dependencies, derived from what each stage's command imports.

    python tools/dvc_deps.py           # rewrite the src/ deps of every stage in dvc.yaml
    python tools/dvc_deps.py --check   # exit 1 and list the drift instead

A stage runs `salmubench <command> ...`; its code deps are the library files that command
can execute, found statically (AST), deferred imports included:
- roots: the console script's function (`[project.scripts]` in pyproject.toml) and the
  command's handler, found on the real parser in a subprocess (`set_defaults(func=...)`);
- a module reached is imported, so its top-level code runs: its module-level imports,
  decorators, registries, class bodies. Every method of its classes counts as reached
  (objects travel where names cannot be followed);
- a function's body, and the imports deferred into it, count only once something reached
  refers to the function: by name, through an import binding (re-exports followed), or as
  `module.attribute`. So `salmubench synth` does not get what `tune()` imports just because
  the CLI imports the tune module for its option defaults. `set_defaults(func=handler)` is
  argparse's dispatch table, not a call: other commands' handlers are not followed;
- importing `a.b.c` runs `a` and `a.b`: their `__init__.py` files are deps too; imports
  under `if TYPE_CHECKING:` never run and are skipped;
- one dynamic import the AST cannot see: `--method NAME` loads
  `salmubench/unlearn/methods/NAME.py` through the registry (the methods package imports
  its files with pkgutil). A `foreach` over methods gets `methods/${key}.py` plus the union
  over methods of what each method file reaches beyond itself (cliperase.py imports
  delete.py, so every unlearn stage lists delete.py: a `foreach` has one deps list, and
  over-listing re-runs a stage where under-listing would leave it stale);
- the non-Python files of every package reached (data folders such as models/configs/,
  the architecture JSON the code reads at run time).
Only files under src/ are listed; non-code deps (data, models, params) are kept as written.
tests/test_dvc.py checks the result against the modules each stage really imported under
`dvc repro` (PYTHONPROFILEIMPORTTIME).
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
SRC = "src"
PACKAGE = "salmubench"
METHODS_PACKAGE = "salmubench.unlearn.methods"
KEY = "${key}"
ITEM = "${item}"


@dataclass(frozen=True)
class Root:
    """A module the command imports, and the functions of it that run (None: none)."""

    module: str
    functions: tuple[str, ...] | None = None


def module_file(repo: Path, module: str) -> Path | None:
    """The source file of a `salmubench...` module under repo/src, or None."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    base = repo / SRC / Path(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _is_type_checking(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class Module:
    """One parsed library module: its top-level functions, classes and import bindings."""

    def __init__(self, repo: Path, name: str) -> None:
        self.name, self.repo = name, repo
        path = module_file(repo, name)
        self.tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        self.package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        self.functions = {
            n.name: n
            for n in self.tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        self.classes = [n for n in self.tree.body if isinstance(n, ast.ClassDef)]
        self.bindings: dict[str, tuple[str, str | None]] = {}  # name -> (module, attribute)
        self._nodes: dict[int, list[ast.AST]] = {}
        for node in self.nodes(self.tree):
            for bound, target in self._binds(node):
                self.bindings.setdefault(bound, target)

    def nodes(self, owner: ast.Module | ast.ClassDef | ast.FunctionDef) -> list[ast.AST]:
        """`_statements` of the module's top level, a class's body (its methods' bodies
        included) or a function's body, computed once per module parse."""
        if id(owner) not in self._nodes:
            self._nodes[id(owner)] = _statements(
                owner.body, into_defs=not isinstance(owner, ast.Module)
            )
        return self._nodes[id(owner)]

    def _binds(self, node: ast.AST) -> list[tuple[str, tuple[str, str | None]]]:
        if isinstance(node, ast.Import):
            return [
                (
                    a.asname or a.name.split(".")[0],
                    (a.name if a.asname else a.name.split(".")[0], None),
                )
                for a in node.names
            ]
        if isinstance(node, ast.ImportFrom):
            base = self.absolute(node)
            return [(a.asname or a.name, (base, a.name)) for a in node.names]
        return []

    def absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        parts = self.package.split(".")
        parts = parts[: len(parts) - node.level + 1]
        return ".".join(parts + ([node.module] if node.module else []))


def _statements(body: list[ast.stmt], into_defs: bool) -> list[ast.AST]:
    """Every node of these statements, skipping `if TYPE_CHECKING:` blocks (and, unless
    `into_defs`, the bodies of functions: code that runs only when they are called)."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = list(body)
    while todo:
        node = todo.pop()
        if _is_type_checking(node):
            todo += node.orelse
            continue
        out.append(node)
        if not into_defs and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            todo += node.decorator_list + [
                d for d in node.args.defaults + node.args.kw_defaults if d
            ]
            continue
        todo += list(ast.iter_child_nodes(node))
    return out


@functools.cache
def _parse(repo: Path, name: str, mtime_ns: int, size: int) -> Module:
    """A module parsed once per version of its file (each stage's closure reads the same
    modules: `derive` builds 16 of them)."""
    return Module(repo, name)


class Closure:
    """The library code a command runs: modules imported and functions reachable.

    A module's top-level code runs when it is imported; a function's body (and its
    deferred imports) only when something reached refers to it: by name, through an
    import binding, or as `module.name`. Every method of every class of a reached module
    counts as reached (objects travel where names cannot be followed). One exception:
    `set_defaults(func=handler)` is argparse's dispatch table, not a call; the command's
    own handler is a root.
    """

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.parsed: dict[str, Module] = {}
        self.files: dict[str, Path | None] = {}
        self.modules: set[str] = set()
        self.functions: set[tuple[str, str]] = set()
        self.todo: list[tuple[str, str | None]] = []

    def file(self, name: str) -> Path | None:
        """`module_file`, looked up once per closure (the tree does not change meanwhile)."""
        if name not in self.files:
            self.files[name] = module_file(self.repo, name)
        return self.files[name]

    def module(self, name: str) -> Module:
        if name not in self.parsed:
            stat = self.file(name).stat()
            self.parsed[name] = _parse(self.repo, name, stat.st_mtime_ns, stat.st_size)
        return self.parsed[name]

    def add(self, module: str, function: str | None = None) -> None:
        self.todo.append((module, function))

    def run(self) -> set[str]:
        while self.todo:
            module, function = self.todo.pop()
            if self.file(module) is None:
                continue
            if module not in self.modules:
                self.modules.add(module)
                parts = module.split(".")
                self.todo += [(".".join(parts[:i]), None) for i in range(1, len(parts))]
                m = self.module(module)
                self._visit(m, m.nodes(m.tree))
                for cls in m.classes:
                    self._visit(m, m.nodes(cls))
            if function is None or (module, function) in self.functions:
                continue
            m = self.module(module)
            if function in m.functions:
                self.functions.add((module, function))
                self._visit(m, m.nodes(m.functions[function]))
            elif function in m.bindings:  # a re-export: follow it
                target, attr = m.bindings[function]
                self._reach(target, attr)
        return self.modules

    def _reach(self, module: str, attr: str | None) -> None:
        if attr is None:
            self.add(module)
        elif self.file(f"{module}.{attr}"):
            self.add(f"{module}.{attr}")
        else:
            self.add(module, attr)

    def _visit(self, m: Module, nodes: list[ast.AST]) -> None:
        skip: set[int] = set()
        for node in nodes:
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "set_defaults"
            ):
                skip |= {id(k.value) for k in node.keywords if k.arg == "func"}
        for node in nodes:
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = m.absolute(node)
                self.add(base)
                for alias in node.names:
                    self._reach(base, alias.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                if node.id in m.functions:
                    self.add(m.name, node.id)
                elif node.id in m.bindings:
                    self._reach(*m.bindings[node.id])
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                dotted = _dotted(node)
                if dotted and dotted.split(".")[0] in m.bindings:
                    head, _, rest = dotted.partition(".")
                    target, attr = m.bindings[head]
                    base = f"{target}.{attr}" if attr else target
                    parts = rest.split(".")
                    for i in range(len(parts), 0, -1):  # the longest module prefix
                        prefix = ".".join([base, *parts[: i - 1]])
                        if self.file(prefix):
                            self._reach(prefix, parts[i - 1])
                            break


def _dotted(node: ast.AST) -> str | None:
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(names)])
    return None


def closure(repo: Path, roots: list[Root]) -> set[str]:
    """Every library module the roots reach (see Closure)."""
    found = Closure(repo)
    for root in roots:
        if module_file(repo, root.module) is None:
            raise ValueError(f"{root.module}: no such module under {repo / SRC}")
        found.add(root.module)
        for function in root.functions or ():
            if function not in found.module(root.module).functions:
                raise ValueError(f"{root.module}: no function {function!r} (its handler moved?)")
            found.add(root.module, function)
    return found.run()


def files(repo: Path, modules: set[str]) -> set[str]:
    """The source files of these modules and the data of their packages, repo-relative."""
    out: set[str] = set()
    for module in modules:
        path = module_file(repo, module)
        out.add(path.relative_to(repo).as_posix())
        if path.name != "__init__.py":
            continue
        for entry in path.parent.iterdir():  # package data: what is neither code nor a package
            if entry.name in ("__pycache__", "py.typed") or entry.suffix in (".py", ".pyc"):
                continue
            if entry.is_dir() and (entry / "__init__.py").exists():
                continue
            if entry.is_dir() and not any(f.is_file() for f in entry.rglob("*")):
                continue
            out.add(entry.relative_to(repo).as_posix())
    return out


def handler(repo: Path, command: str) -> Root:
    """The function `salmubench <command>` runs, found on the real parser in a subprocess."""
    script = (
        "import json, sys\n"
        "from salmubench.cli import build_parser\n"
        "parser = build_parser()\n"
        "sub = next(a for a in parser._actions if a.choices and sys.argv[1] in a.choices)\n"
        "func = sub.choices[sys.argv[1]].get_default('func')\n"
        "print(json.dumps([func.__module__, func.__name__]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, command],
        cwd=repo,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(repo / SRC), "PATH": "/usr/bin:/bin"},
    )
    if done.returncode:
        raise ValueError(f"salmubench {command}: no handler found:\n{done.stderr[-2000:]}")
    module, name = json.loads(done.stdout.strip().splitlines()[-1])
    return Root(module, (name,))


def entry_point(repo: Path) -> Root:
    scripts = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts["salmubench"].partition(":")
    return Root(module, (func,))


def stage_commands(repo: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Stage name -> (command words after `salmubench`, the foreach keys or [])."""
    spec = YAML(typ="safe").load((repo / "dvc.yaml").read_text(encoding="utf-8"))
    params = YAML(typ="safe").load((repo / "params.yaml").read_text(encoding="utf-8"))
    # What a `${name}` can name: params.yaml (DVC's default vars) and dvc.yaml's own `vars`
    variables = dict(params)
    for entry in spec.get("vars", []):
        if isinstance(entry, dict):  # (a string entry names a file: none here)
            variables.update(entry)
    out = {}
    for name, stage in spec["stages"].items():
        body = stage.get("do", stage)
        words = shlex.split(" ".join(str(body["cmd"]).split()))
        if words[0] != "salmubench":
            raise ValueError(f"stage {name}: {body['cmd']!r} is not a salmubench command")
        keys: list[str] = []
        if "foreach" in stage:
            each = stage["foreach"]
            if isinstance(each, str):  # ${methods}: a dict of params.yaml; ${attacks}: vars
                each = variables[re.fullmatch(r"\$\{(\w+)\}", each)[1]]
            keys = list(each)
        out[name] = (words[1:], keys)
    return out


def derive(repo: Path = REPO) -> dict[str, list[str]]:
    """Stage name -> its code deps (sorted; `${key}` where they vary with a foreach key)."""
    entry = entry_point(repo)
    handlers: dict[str, Root] = {}
    derived = {}
    for name, (words, keys) in stage_commands(repo).items():
        command = words[0]
        if command not in handlers:  # one subprocess per command, not per stage
            handlers[command] = handler(repo, command)
        roots = [entry, handlers[command]]
        method = words[words.index("--method") + 1] if "--method" in words else None
        if method is None:
            derived[name] = sorted(files(repo, closure(repo, roots)))
            continue
        if method not in (KEY, ITEM) and not keys:
            keys = [method]
        per_key = {}
        for key in keys:
            module = f"{METHODS_PACKAGE}.{key}"
            if module_file(repo, module) is None:
                raise ValueError(f"stage {name}: method {key!r} has no file {module}")
            own = module_file(repo, module).relative_to(repo).as_posix()
            found = files(repo, closure(repo, [*roots, Root(module)]))
            per_key[key] = found - {own}
        template = set().union(*per_key.values())
        own = module_file(repo, f"{METHODS_PACKAGE}.{keys[0]}").relative_to(repo).as_posix()
        template.add(own.replace(f"/{keys[0]}.py", f"/{method}.py"))
        derived[name] = sorted(template)
    return derived


def is_code(dep: str) -> bool:
    return dep == SRC or dep.startswith(SRC + "/")


def drift(repo: Path = REPO) -> dict[str, dict[str, list[str]]]:
    """Stage -> {"missing": [...], "extra": [...]}: dvc.yaml's code deps against derived."""
    spec = YAML(typ="safe").load((repo / "dvc.yaml").read_text(encoding="utf-8"))
    out = {}
    for name, want in derive(repo).items():
        stage = spec["stages"][name]
        have = {str(d) for d in stage.get("do", stage).get("deps", []) if is_code(str(d))}
        missing, extra = sorted(set(want) - have), sorted(have - set(want))
        if missing or extra:
            out[name] = {"missing": missing, "extra": extra}
    return out


def rewrite(repo: Path = REPO) -> None:
    """Replace every stage's code deps in dvc.yaml by the derived ones (comments kept)."""
    yaml = YAML()  # round trip: comments and order stay
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    path = repo / "dvc.yaml"
    spec = yaml.load(path.read_text(encoding="utf-8"))
    for name, code in derive(repo).items():
        body = spec["stages"][name].get("do", spec["stages"][name])
        deps = body["deps"]
        kept = [d for d in deps if not is_code(str(d))]
        deps.clear()
        deps.extend(kept + code)
    with open(path, "w", encoding="utf-8") as f:
        yaml.dump(spec, f)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report drift, change nothing")
    parser.add_argument("--repo", type=Path, default=REPO, help="the project root")
    args = parser.parse_args(argv)
    if not args.check:
        rewrite(args.repo)
    found = drift(args.repo)
    for name, d in found.items():
        print(f"{name}: missing {d['missing']}, not imported {d['extra']}")
    if not found:
        print(f"{args.repo / 'dvc.yaml'}: every stage's code deps are its import closure")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
