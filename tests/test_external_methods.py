"""Methods from outside the package (issue 22): an installed distribution's entry point, a
single `--method-file`, the contract checks that refuse a broken method before any step, and
the `salmubench new-method` scaffold, whose own test passes unchanged.

The package is built from the scaffold and installed offline (`pip install --no-index
--no-deps --no-build-isolation --target`) into a temporary folder: real dist-info metadata and
entry_points.txt, found through importlib.metadata from sys.path / PYTHONPATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from salmubench.cli import main
from salmubench.config import stage_config
from salmubench.manifest import read_manifest, sha256_file
from salmubench.unlearn import base, external
from salmubench.unlearn.contract import ContractError
from salmubench.unlearn.data import READABLE
from salmubench.unlearn.scaffold import scaffold

REPO = Path(__file__).resolve().parents[1]
PYTHON = Path(sys.executable)
NAME = "ext_ascent"


@pytest.fixture(autouse=True)
def registry():
    """Whatever a test registers or imports from outside the package is gone afterwards:
    the registry is per process."""
    base.method_names()  # the built-ins and installed packages, before the snapshot
    saved = (dict(base.METHODS), dict(base.ORIGINS), dict(external.REFUSED),
             set(external._scanned))  # fmt: skip
    path, modules = list(sys.path), set(sys.modules)
    yield
    for target, value in zip(
        (base.METHODS, base.ORIGINS, external.REFUSED, external._scanned), saved, strict=True
    ):
        target.clear()
        target.update(value)
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name.startswith((f"salmubench_{NAME}", "salmubench_method_file_")):
            del sys.modules[name]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """The scaffold for NAME, installed offline into its own site folder."""
    root = tmp_path_factory.mktemp("ext")
    package = scaffold(NAME, root / "src")
    site = root / "site"
    subprocess.run([PYTHON, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(package)],
                   check=True, capture_output=True, cwd=root)  # fmt: skip
    module = site / f"salmubench_{NAME}" / "method.py"
    entry_points = (next(site.glob("*.dist-info")) / "entry_points.txt").read_text()
    assert entry_points.count(f"{NAME} = salmubench_{NAME}.method:") == 1
    return {"site": site, "module": module, "package": package}


def _unlearn_args(data: Path, model: Path, out: Path, method: str) -> list[str]:
    return ["unlearn", "--data", str(data), "--model", str(model), "--method", method,
            "--profile", "micro", "--out", str(out), "-q"]  # fmt: skip


def test_an_installed_package_runs_through_salmubench_unlearn_with_its_code_digest(
    installed, micro_dataset, micro_models, tmp_path
):
    env = {**os.environ, "PYTHONPATH": str(installed["site"])}
    listing = subprocess.run([PYTHON, "-m", "salmubench", "methods"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    line = next(x for x in listing.splitlines() if x.startswith(NAME))
    digest = sha256_file(installed["module"])
    assert f"package salmubench-{NAME.replace('_', '-')} 0.1.0 (sha256 {digest[:12]})" in line
    assert "neg_grad" in listing and "built-in" in listing

    out = tmp_path / "unlearned"
    args = _unlearn_args(micro_dataset, micro_models["compromised"], out, NAME)
    subprocess.run([PYTHON, "-m", "salmubench", *args, "--budget", "0.1"], env=env, cwd=tmp_path,
                   check=True, capture_output=True)  # fmt: skip
    manifest = read_manifest(out, kind="model", verify=True)
    assert manifest["method"] == NAME
    assert manifest["method_code"] == {
        "origin": f"package salmubench-{NAME.replace('_', '-')} 0.1.0",
        "module": f"salmubench_{NAME}.method",
        "code_digest": digest,
    }
    assert set(manifest["reads"]) <= set(READABLE)


def _world(out: Path, micro_dataset: Path, micro_models: dict[str, Path]) -> None:
    """The session's micro dataset and models, placed where `bench` reuses them."""
    shutil.copytree(micro_dataset, out / "dataset")
    for variant, folder in micro_models.items():
        shutil.copytree(folder, out / variant)


def test_bench_runs_an_installed_method_and_its_row_shows_origin_and_code_digest(
    installed, micro_dataset, micro_models, tmp_path
):
    from salmubench.bench import bench

    sys.path.insert(0, str(installed["site"]))
    assert external.load_entry_points() == [NAME]
    out = tmp_path / "bench"
    _world(out, micro_dataset, micro_models)
    lines: list[str] = []
    bench("micro", out, methods=[NAME], budget=0.1, say=lines.append)
    assert any("train compromised: up to date, reused" in x for x in lines)
    board = json.loads((out / "report" / "leaderboard.json").read_text())
    row = next(r for r in board["rows"] if r["method"] == NAME)
    digest = sha256_file(installed["module"])
    assert row["method_code"]["origin"] == f"package salmubench-{NAME.replace('_', '-')} 0.1.0"
    assert row["method_code"]["code_digest"] == digest
    assert row["rank"] == 1 and row["scores"]["forgetting"] is not None
    assert f"sha256 `{digest}`" in (out / "report" / "leaderboard.md").read_text()
    evals = [e for e in board["evals"] if NAME in e["path"]]
    assert evals, board["evals"]


def _method_file(folder: Path, body: str, name: str = "file_method", extra: str = "") -> Path:
    """A method file: ascent on forget pairs, its class body amended by `extra` and its loss
    body replaced by `body` (both unindented source)."""
    head = textwrap.dedent(f"""\
        from dataclasses import dataclass

        from salmubench.unlearn.base import Method, MethodParams, Step, clip_loss, param


        @dataclass(frozen=True)
        class Params(MethodParams):
            weight: float = param("Scale of the ascent.", default=1.0)


        class FileMethod(Method):
            name = "{name}"
            summary = "ascent on the CLIP loss of forget pairs"
            uses = frozenset({{"forget"}})
            Params = Params
        """)
    loss = "\n    def loss(self, step: Step):\n        f = step.forget\n"
    path = folder / f"{name}.py"
    path.write_text(head + textwrap.indent(textwrap.dedent(extra), "    ") + loss
                    + textwrap.indent(textwrap.dedent(body), "        "))  # fmt: skip
    return path


ASCENT = """\
    forget = clip_loss(f.image, f.text, step.logit_scale, f.ids)
    return -self.params.weight * forget, {"forget": forget}
"""


def test_a_method_file_runs_in_bench_and_an_edit_re_runs_it(micro_dataset, micro_models,
                                                            tmp_path):  # fmt: skip
    from salmubench.bench import bench

    path = _method_file(tmp_path, ASCENT)
    out = tmp_path / "bench"
    _world(out, micro_dataset, micro_models)
    assert main(["methods", "--method-file", str(path), "-q"]) == 0
    lines: list[str] = []
    bench("micro", out, methods=["file_method"], budget=0.1, say=lines.append)
    first = read_manifest(out / "unlearned" / "file_method-b0.1-s0", kind="model")
    assert first["method_code"]["origin"] == f"file {path.resolve()}"
    assert first["method_code"]["code_digest"] == sha256_file(path)

    path.write_text(path.read_text() + "# edited\n")
    external.load_method_file(path)  # the same file again: its new version replaces the old
    lines.clear()
    bench("micro", out, methods=["file_method"], budget=0.1, say=lines.append)
    again = read_manifest(out / "unlearned" / "file_method-b0.1-s0", kind="model")
    assert again["method_code"]["code_digest"] == sha256_file(path) != first["method_code"][
        "code_digest"]  # fmt: skip
    assert not any("unlearn file_method" in x and "reused" in x for x in lines), lines
    assert any("eval compromised: up to date, reused" in x for x in lines)


def test_unlearn_with_a_single_method_file(micro_dataset, micro_models, tmp_path):
    path = _method_file(tmp_path, ASCENT)
    out = tmp_path / "out"
    args = _unlearn_args(micro_dataset, micro_models["compromised"], out, "file_method")
    assert main([*args, "--method-file", str(path), "--budget", "0.1",
                 "--set", "methods.file_method.weight=0.5"]) == 0  # fmt: skip
    manifest = read_manifest(out, kind="model", verify=True)
    assert manifest["method_params"] == {"lr": None, "weight": 0.5}
    assert manifest["method_code"]["origin"] == f"file {path.resolve()}"
    assert manifest["method_code"]["code_digest"] == sha256_file(path)


BROKEN = {
    "holdout": ("uses = frozenset({'forget', 'holdout_identity'})", ASCENT,
                "uses 'holdout_identity': reads a holdout or evaluation split"),
    "unknown_input": ("uses = frozenset({'forget', 'gallery'})", ASCENT,
                      "uses 'gallery': unknown input; valid inputs: forget, generic, retain"),
    "generic_alone": ("uses = frozenset({'generic'})", "return f.generic.sum(), {}\n",
                      "uses 'generic' without 'forget'"),
    "no_params": ("Params = None", ASCENT, "Params=None: must be a dataclass subclassing"),
    "plain_params": ("Params = dict", ASCENT, "must be a dataclass subclassing"),
    "non_scalar": ("", "return -(f.image * f.text).sum(1), {}\n",
                   "loss has shape [4]: must be a scalar (0-dim) tensor"),
    "undeclared": ("", "return step.retain.image.sum(), {}\n",
                   "loss(step) fails on a synthetic step of its declared inputs ['forget']"),
    "clash": ("name = 'neg_grad'", ASCENT,
              "method 'neg_grad' (file {path}, salmubench_method_file_"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_method_file_is_refused_before_any_step(
    case, micro_dataset, micro_models, tmp_path, capsys
):
    extra, body, message = BROKEN[case]
    path = _method_file(tmp_path, body, extra=extra)
    out = tmp_path / "out"
    args = _unlearn_args(micro_dataset, micro_models["compromised"], out, "file_method")
    assert main([*args, "--method-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert message.format(path=path.resolve()) in err, err
    if case == "clash":
        assert "clashes with the method of that name from built-in" in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # not a step, not a folder
    assert "file_method" not in base.METHODS and base.ORIGINS["neg_grad"].kind == "built-in"


def test_a_loss_whose_shape_changes_with_the_batch_is_stopped_before_the_optimiser(
    micro_dataset, micro_models, tmp_path
):
    from salmubench.unlearn.loop import unlearn

    body = """\
        per_pair = (f.image * f.text).sum(1)
        return (per_pair.mean() if len(per_pair) == 4 else per_pair), {}
    """
    external.load_method_file(_method_file(tmp_path, body))  # passes the synthetic step
    cfg = stage_config("unlearn", "micro", params_path=REPO / "params.yaml")
    with pytest.raises(ContractError, match=r"'file_method'.*loss has shape \[16\]"):
        unlearn(micro_dataset, micro_models["compromised"], "file_method", cfg,
                tmp_path / "out", budget=0.1, profile="micro")  # fmt: skip
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_broken_installed_package_is_listed_as_refused_and_the_others_still_run(
    installed, tmp_path, capsys
):
    site = tmp_path / "site"
    shutil.copytree(installed["site"], site)
    method = site / f"salmubench_{NAME}" / "method.py"
    method.write_text(
        method.read_text().replace('"forget", "retain"', '"forget", "holdout_association"')
    )
    sys.path.insert(0, str(site))
    assert external.load_entry_points() == []
    assert NAME not in base.METHODS
    with pytest.raises(
        ContractError, match=r"package salmubench-ext-ascent 0\.1\.0.*holdout_association"
    ):
        base.build_method(NAME)
    assert base.build_method("neg_grad").name == "neg_grad"
    assert main(["methods", "--profile", "micro"]) == 1  # listed, refused, and a failing status
    printed = capsys.readouterr().out
    assert f"{NAME:<18} REFUSED: method 'ext_ascent' (package" in printed and "neg_grad" in printed


def test_the_new_method_scaffold_passes_its_own_test_unchanged(tmp_path, capsys):
    assert main(["new-method", "my_method", "--out", str(tmp_path / "pkg")]) == 0
    assert "pytest" in capsys.readouterr().out
    root = tmp_path / "pkg"
    assert (root / "pyproject.toml").read_text().count('my_method = "salmubench_my_method.') == 1
    result = subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout + result.stderr
    assert main(["new-method", "my_method", "--out", str(root)]) == 2  # never overwrites
    assert main(["new-method", "My-Method", "--out", str(tmp_path / "x")]) == 2


def test_built_in_methods_record_their_origin_and_the_digest_of_their_file():
    base.method_names()
    assert str(base.ORIGINS["delete"]) == "built-in"
    assert base.ORIGINS["delete"].record()["code_digest"] == sha256_file(
        REPO / "src/salmubench/unlearn/methods/delete.py"
    )


def test_tune_tries_a_method_s_own_search_space_unless_given_a_grid(tmp_path, capsys):
    from salmubench.tune import DEFAULT_GRID, grid_for

    path = _method_file(tmp_path, ASCENT, extra="search_space = (1e-4, 1e-5)\n")
    external.load_method_file(path)
    assert grid_for("file_method") == [1e-5, 1e-4]
    assert grid_for("file_method", [3e-3]) == [3e-3]
    assert grid_for("neg_grad") == sorted(DEFAULT_GRID)
    # `tune --method-file` registers the file before validating anything else
    args = ["tune", "--profile", "micro", "--out", str(tmp_path / "v"), "--world", "0"]
    assert main([*args, "--methods", "file_method", "--method-file", str(path), "-q"]) == 2
    assert "world 0 is a leaderboard world" in capsys.readouterr().err
    bad = _method_file(tmp_path, ASCENT, name="bad_space", extra="search_space = (0.0,)\n")
    with pytest.raises(ContractError, match=r"search_space=\(0\.0,\): must be None or"):
        external.load_method_file(bad)


def test_the_kfp_plan_and_unlearn_components_take_a_method_file_as_text(
    micro_dataset, micro_models, tmp_path
):
    import yaml
    from kfp import dsl
    from salmubench_components import stages

    path = _method_file(tmp_path, ASCENT)
    text = path.read_text()
    assert stages.plan.python_func(methods="file_method", seeds=[0], method_py=text) == [
        {"method": "file_method", "seed": 0, "world": 0}
    ]
    stages.unlearn.python_func(
        data=dsl.Dataset(uri=str(micro_dataset)),
        model=dsl.Model(uri=str(micro_models["compromised"])),
        unlearned=dsl.Model(uri=str(tmp_path / "unlearned")),
        method="file_method",
        profile="micro",
        budget=0.1,
        params_yaml=(REPO / "params.yaml").read_text(),
        method_py=text,
    )
    code = read_manifest(tmp_path / "unlearned", kind="model")["method_code"]
    assert code["code_digest"] == sha256_file(path)  # the same bytes, whoever wrote them
    assert code["origin"].startswith("file ") and "salmubench-method-" in code["origin"]
    # The committed unlearn-eval pipeline has the parameter and hands it to both tasks.
    with open(REPO / "pipelines/compiled/unlearn-eval.yaml", encoding="utf-8") as f:
        spec = next(yaml.safe_load_all(f))
    assert spec["root"]["inputDefinitions"]["parameters"]["method_py"]["defaultValue"] == ""
    [unlearn] = [c["dag"]["tasks"]["unlearn"] for c in spec["components"].values()
                 if "unlearn" in c.get("dag", {}).get("tasks", {})]  # in the seed loop  # fmt: skip
    assert unlearn["inputs"]["parameters"]["method_py"] == {
        "componentInputParameter": "pipelinechannel--method_py"
    }
    plan = spec["root"]["dag"]["tasks"]["plan"]["inputs"]["parameters"]
    assert plan["method_py"] == {"componentInputParameter": "method_py"}
