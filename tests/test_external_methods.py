"""Methods from outside the package (issue 22): an installed distribution's entry point, a
single `--method-file`, the contract checks that refuse a broken method before any step, and
the `salmubench new-method` scaffold, whose own test passes unchanged.

The package is built from the scaffold and installed offline (`pip install --no-index
--no-deps --no-build-isolation --target`) into a temporary folder: real dist-info metadata and
entry_points.txt, found through importlib.metadata from sys.path / PYTHONPATH."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
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
def installed(tmp_path_factory) -> Iterator[dict[str, Path]]:
    """The scaffold for NAME, installed offline into its own site folder, uninstalled (the
    folder removed) afterwards. Its own folder rather than this environment's site-packages:
    the environment is shared, and every test that lists the registered methods would see
    it while installed."""
    root = tmp_path_factory.mktemp("ext")
    package = scaffold(NAME, root / "src")
    site = root / "site"
    subprocess.run([PYTHON, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(package)],
                   check=True, capture_output=True, cwd=root)  # fmt: skip
    module = site / f"salmubench_{NAME}" / "method.py"
    entry_points = (next(site.glob("*.dist-info")) / "entry_points.txt").read_text()
    assert entry_points.count(f"{NAME} = salmubench_{NAME}.method:") == 1
    yield {"site": site, "module": module, "package": package}
    shutil.rmtree(site)


def _with_site(site: Path) -> dict[str, str]:
    """This environment, with `site` (an installed method package) first on the path."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(site), path) if p)}


def _unlearn_args(data: Path, model: Path, out: Path, method: str) -> list[str]:
    return ["unlearn", "--data", str(data), "--model", str(model), "--method", method,
            "--profile", "micro", "--out", str(out), "-q"]  # fmt: skip


def test_an_installed_package_runs_through_salmubench_unlearn_with_its_code_digest(
    installed, micro_dataset, micro_models, tmp_path
):
    env = _with_site(installed["site"])
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


DIST = f"salmubench-{NAME.replace('_', '-')} 0.1.0"
BUILT_IN_FILE = REPO / "src/salmubench/unlearn/methods/delete.py"


def _assert_rows_show_their_code(report: Path, expected: dict[str, dict[str, str]]) -> None:
    """Every ranked row of leaderboard.json, .md and report.html shows its method's origin
    and code digest (`expected`: method -> method_code), built-in or not."""
    board = json.loads((report / "leaderboard.json").read_text())
    ranked = {r["method"]: r for r in board["rows"] if r["rank"] is not None}
    assert set(ranked) == set(expected)
    md = (report / "leaderboard.md").read_text()
    page = (report / "report.html").read_text()
    table = md[md.index("| rank | method |") : md.index("\n\n", md.index("| rank | method |"))]
    assert table.splitlines()[0].endswith("| verdict | code |")
    assert "<th>code</th>" in page
    entries = {e["label"]: e for e in read_manifest(report, kind="report")["leaderboard"]}
    for method, code in expected.items():
        assert ranked[method]["method_code"] == code, method
        assert entries[ranked[method]["label"]]["method_code"] == code, method
        digest = code["code_digest"]
        [line] = [x for x in table.splitlines() if x.split(" | ")[1:2] == [method]]
        origin = code["origin"]
        short = "file " + Path(origin[5:]).name if origin.startswith("file ") else origin
        assert line.endswith(f"| {short}, sha256 {digest[:12]} |"), line
        assert f": {origin} ({code['module']}), sha256 `{digest}`" in md
        assert f": {origin} ({code['module']}), sha256 {digest}</li>" in page
        assert f"<td>{short}, sha256 {digest[:12]}</td>" in page


def test_bench_runs_an_installed_method_and_every_row_shows_origin_and_code_digest(
    installed, micro_dataset, micro_models, tmp_path
):
    from salmubench.bench import bench

    sys.path.insert(0, str(installed["site"]))
    assert external.load_entry_points() == [NAME]
    out = tmp_path / "bench"
    _world(out, micro_dataset, micro_models)
    lines: list[str] = []
    # Side by side (--jobs 2): the worker processes find the package through its entry point.
    bench("micro", out, methods=[NAME, "delete"], budget=0.1, say=lines.append, jobs=2)
    assert any("train compromised: up to date, reused" in x for x in lines)
    starts = [i for i, x in enumerate(lines) if x.endswith(" ...") and "unlearn" in x]
    first_done = next(i for i, x in enumerate(lines) if "unlearn" in x and x.endswith(" s"))
    assert len(starts) == 2 and starts[1] < first_done, lines  # both started before one ended
    board = json.loads((out / "report" / "leaderboard.json").read_text())
    row = next(r for r in board["rows"] if r["method"] == NAME)
    assert row["scores"]["forgetting"] is not None
    _assert_rows_show_their_code(out / "report", {
        NAME: {"origin": f"package {DIST}", "module": f"salmubench_{NAME}.method",
               "code_digest": sha256_file(installed["module"])},
        "delete": {"origin": "built-in", "module": "salmubench.unlearn.methods.delete",
                   "code_digest": sha256_file(BUILT_IN_FILE)},
    })  # fmt: skip
    evals = [e for e in board["evals"] if NAME in e["path"]]
    assert evals, board["evals"]


@pytest.mark.slow
def test_an_installed_package_and_a_method_file_run_through_the_local_pipeline(installed, tmp_path):
    """`salmubench run` (the benchmark pipeline under kfp's local runner, every task a
    subprocess of this environment): the package's method found through its entry point in
    every task, the file's method through the pipeline's method_py parameter."""
    path = _method_file(tmp_path, ASCENT)
    out = tmp_path / "run"
    done = subprocess.run(
        [PYTHON, "-m", "salmubench", "run", "--profile", "micro", "--methods",
         f"{NAME},file_method", "--method-file", str(path), "--budget", "0.1", "--out", str(out)],
        env=_with_site(installed["site"]), cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(rf"unlearn {NAME} +SUCCESS", done.stdout), done.stdout
    assert re.search(r"unlearn file_method +SUCCESS", done.stdout), done.stdout
    # In the tasks the file is the method_py text written under its sha256: its own digest.
    task_file = Path(tempfile.gettempdir()) / f"salmubench-method-{sha256_file(path)[:16]}.py"
    _assert_rows_show_their_code(out / "report", {
        NAME: {"origin": f"package {DIST}", "module": f"salmubench_{NAME}.method",
               "code_digest": sha256_file(installed["module"])},
        "file_method": {"origin": f"file {task_file}",
                        "module": f"salmubench_method_file_{sha256_file(path)[:16]}",
                        "code_digest": sha256_file(path)},
    })  # fmt: skip
    assert f"| package {DIST}, sha256 {sha256_file(installed['module'])[:12]} |" in done.stdout
    manifests = [read_manifest(p.parent, kind="model")
                 for p in (out / "kfp").glob("**/unlearned/manifest.json")]  # fmt: skip
    assert sorted(m["method"] for m in manifests) == ["ext_ascent", "file_method"]


def test_run_refuses_a_broken_method_file_or_two_files_before_any_task(tmp_path, capsys):
    broken = _method_file(tmp_path, ASCENT, name="broken",
                          extra="uses = frozenset({'forget', 'holdout_identity'})")  # fmt: skip
    out = tmp_path / "run"
    args = ["run", "--profile", "micro", "--methods", "broken", "--out", str(out)]
    assert main([*args, "--method-file", str(broken)]) == 2
    assert "uses 'holdout_identity': reads a holdout" in capsys.readouterr().err
    good = _method_file(tmp_path, ASCENT)
    assert main([*args, "--method-file", str(good), "--method-file", str(good)]) == 2
    assert "the pipeline carries one method file" in capsys.readouterr().err
    assert not out.exists()


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
    # In a worker process (--jobs 2), which loads the method files this process loaded.
    bench("micro", out, methods=["file_method"], budget=0.1, say=lines.append, jobs=2)
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


def test_a_cluster_run_names_its_method_image_or_file_per_run(tmp_path, monkeypatch):
    """`salmubench pipeline submit` of the committed benchmark with a method image and a
    method file's text (docs/METHODS.md, the cluster route), against tests/kfp_server.py."""
    from kfp_server import KFPServer

    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads ~/.config/kfp
    path = _method_file(tmp_path, ASCENT)
    image = "registry.example/salmubench-file-method:0.1.0"
    server = KFPServer()
    try:
        conn = ["--host", server.url, "--version", "v0.0.0-gtest"]
        assert main(["pipeline", "upload", *conn, "--only", "benchmark"]) == 0
        params = ["--param", "methods=file_method,neg_grad", "--param", f"method_image={image}",
                  "--param", f"method_py={path.read_text()}"]  # fmt: skip
        assert main(["pipeline", "submit", *conn, *params]) == 0
        assert main(["pipeline", "submit", *conn, "--param", "method_img=x"]) == 2
    finally:
        server.close()
    [run] = server.runs.values()
    assert run["runtime_config"]["parameters"] == {
        "methods": "file_method,neg_grad",
        "method_image": image,
        "method_py": path.read_text(),
    }
