"""dvc.yaml's code deps are each stage's import closure (tools/dvc_deps.py), never by hand.

The derivation itself is checked against real imports: here, the modules a command loads
at start-up; in tests/test_dvc.py, every module each stage imported while `dvc repro` ran.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import dvc_deps  # noqa: E402


def test_dvc_yaml_code_deps_are_the_import_closure():
    found = dvc_deps.drift(REPO)
    assert not found, f"dvc.yaml drifted; run `python tools/dvc_deps.py`: {found}"


@pytest.fixture()
def copy(tmp_path) -> Path:
    """The files the derivation reads, in a temp project with derived deps (to plant in)."""
    for name in ("dvc.yaml", "params.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    dvc_deps.rewrite(tmp_path)  # in step with the copied code, whatever the tree's state
    assert dvc_deps.drift(tmp_path) == {}
    return tmp_path


def test_a_dep_removed_from_dvc_yaml_is_missing(copy):
    spec = yaml.safe_load((copy / "dvc.yaml").read_text())
    deps = spec["stages"]["unlearn"]["do"]["deps"]
    deps.remove("src/salmubench/unlearn/methods/delete.py")  # cliperase.py imports it
    (copy / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert dvc_deps.drift(copy) == {
        "unlearn": {"missing": ["src/salmubench/unlearn/methods/delete.py"], "extra": []}
    }
    assert dvc_deps.main(["--check", "--repo", str(copy)]) == 1
    assert dvc_deps.main(["--repo", str(copy)]) == 0  # rewriting repairs it
    assert dvc_deps.drift(copy) == {}


def test_a_new_deferred_import_is_missing_and_a_dep_it_does_not_import_is_extra(copy):
    """A function-level import in code the stage reaches (not in code it never calls)."""
    root = dvc_deps.handler(copy, "train")  # the function `salmubench train` runs
    path = dvc_deps.module_file(copy, root.module)
    lines = path.read_text().splitlines(keepends=True)
    [func] = [
        n for n in ast.parse("".join(lines)).body if getattr(n, "name", "") == root.functions[0]
    ]
    first = func.body[1] if ast.get_docstring(func) else func.body[0]
    indent = " " * first.col_offset
    lines.insert(first.lineno - 1, f"{indent}from salmubench.report import leaderboard  # noqa\n")
    lines.append("\n\ndef never_called():\n    from salmubench.unlearn import loop  # noqa\n")
    path.write_text("".join(lines))
    spec = yaml.safe_load((copy / "dvc.yaml").read_text())
    spec["stages"]["train"]["do"]["deps"].append("src/salmubench/unlearn/loop.py")
    (copy / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    found = dvc_deps.drift(copy)["train"]
    assert "src/salmubench/report/leaderboard.py" in found["missing"]
    assert "src/salmubench/report/__init__.py" in found["missing"]  # its package runs too
    assert not any("unlearn" in path for path in found["missing"])  # never called
    assert found["extra"] == ["src/salmubench/unlearn/loop.py"]


def test_every_module_a_command_loads_at_start_up_is_in_its_closure():
    """The static closure covers the real one: what `salmubench <cmd>` imports before
    running (the CLI, its parser, the handler's module) in a fresh interpreter."""
    derived = dvc_deps.derive(REPO)
    commands = {name: words for name, (words, _) in dvc_deps.stage_commands(REPO).items()}
    script = (
        "import json, sys\n"
        "from salmubench.cli import build_parser\n"
        "build_parser()\n"
        "print(json.dumps(sorted(m.__file__ for n, m in list(sys.modules.items())\n"
        "    if n.startswith('salmubench.') and getattr(m, '__file__', None))))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, cwd=REPO)  # fmt: skip
    loaded = {
        Path(f).resolve().relative_to(REPO).as_posix()
        for f in json.loads(done.stdout)
        if Path(f).resolve().is_relative_to(REPO / "src")
    }
    assert "src/salmubench/cli.py" in loaded
    for name in commands:
        assert loaded <= set(derived[name]), (name, sorted(loaded - set(derived[name])))


def test_the_attack_stages_are_every_method_times_every_attack_each_with_its_reference():
    """dvc.yaml's `attacks` is the library's list; DVC resolves one Clean reference stage
    per attack and one stage per (method of params.yaml, attack), which reads that
    attack's reference and the method's unlearned model."""
    from salmubench.vocab import ATTACKS

    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    [attacks] = [v["attacks"] for v in spec["vars"] if "attacks" in v]
    assert tuple(attacks) == ATTACKS
    methods = yaml.safe_load((REPO / "params.yaml").read_text())["methods"]
    script = (
        "import json\n"
        "from dvc.repo import Repo\n"
        "stages = Repo('.').index.stages\n"
        "print(json.dumps({s.addressing: [s.cmd, [str(d.def_path) for d in s.deps],\n"
        "    [str(o.def_path) for o in s.outs]] for s in stages}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, cwd=REPO)  # fmt: skip
    stages = json.loads(done.stdout.strip().splitlines()[-1])
    assert {n for n in stages if n.startswith("attack")} == {
        *(f"attack-clean@{a}" for a in ATTACKS),
        *(f"attack@{m}-{a}" for m in methods for a in ATTACKS),
    }
    for a in ATTACKS:
        cmd, deps, outs = stages[f"attack-clean@{a}"]
        assert f"--model models/clean --attack {a} " in cmd and "--clean" not in cmd
        assert outs == [f"attacks/clean/{a}"]
        for m in methods:
            cmd, deps, outs = stages[f"attack@{m}-{a}"]
            assert f"--model unlearned/{m} --attack {a} --clean attacks/clean/{a} " in cmd
            assert {f"unlearned/{m}", f"attacks/clean/{a}", "models/compromised"} <= set(deps)
            assert outs == [f"attacks/{m}/{a}"]
