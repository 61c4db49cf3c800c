"""The stages that need no model (synth, plan, report) must not import torch: they run in
the lean image (docker/Dockerfile.lean), which has no torch, and a pod that imports it pays
seconds and hundreds of MB for nothing. Each check runs the stage's own code in a fresh
interpreter and then looks at `sys.modules`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from test_report import populate

from salmubench.eval.metrics import METRICS
from salmubench.unlearn import method_names

LIBRARY = Path(__file__).resolve().parents[1] / "src" / "salmubench"

# scipy too: report's t-interval is our own (report/tdist.py); the lean image has no scipy.
HEAVY = ("torch", "torchvision", "open_clip", "webdataset", "scipy")


def run_fresh(code: str, site: Path | None = None) -> dict:
    """Run `code` in a new interpreter (with `site` first on its path, if given); it must
    leave its result in `out` (a dict). Which of HEAVY it imported comes back as
    `out["imported"]`."""
    driver = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        out["imported"] = [m for m in {HEAVY!r} if m in sys.modules]
        print("RESULT" + json.dumps(out))
    """)
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", driver], capture_output=True, text=True, timeout=300, check=False,
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT") :])


def test_synth_stage_imports_no_torch(tmp_path):
    """The real command, start to finish (the shards are written without webdataset)."""
    out = run_fresh(f"""
        from salmubench.cli import main
        rc = main(["synth", "--profile", "micro", "--seed", "0", "-q",
                   "--out", {str(tmp_path / "dataset")!r},
                   "--set", "general_world=20", "--set", "genknow_per_class=1"])
        out = {{"rc": rc}}
    """)
    assert out["rc"] == 0
    assert (tmp_path / "dataset" / "manifest.json").is_file()
    assert out["imported"] == []


def test_webdataset_readers_still_get_the_s3_opener():
    """Importing our shard module no longer imports webdataset, yet `wds.WebDataset("s3://")`
    works once webdataset is imported, in either order."""
    out = run_fresh("""
        import sys
        import salmubench.data.shards
        before = "webdataset" in sys.modules
        import webdataset
        out = {"before": before,
               "s3": "s3" in sys.modules["webdataset.gopen"].gopen_schemes}
    """)
    assert out["before"] is False
    assert out["s3"] is True


def test_plan_stage_imports_no_torch():
    """What the plan component runs (components/stages.py `plan`, without a method file):
    its imports, then the names validated. The same names, in the same order, as loading
    every method gives (this process has loaded them, with torch)."""
    out = run_fresh("""
        from salmubench.unlearn import parse_methods
        from salmubench.unlearn.external import load_method_file  # noqa: F401
        from salmubench.config import ConfigError
        try:
            parse_methods("delete,nope")
            error = None
        except ConfigError as e:
            error = str(e)
        out = {"all": parse_methods("all"), "chosen": parse_methods(" precise, delete,precise"),
               "error": error}
    """)
    assert out["imported"] == []
    assert out["all"] == method_names() and len(out["all"]) >= 9
    assert out["chosen"] == ["precise", "delete"]
    assert out["error"] == f"unknown method(s) ['nope']; valid: all, {', '.join(method_names())}"


def test_with_a_method_package_installed_plan_loads_every_method_and_refuses_a_broken_one(
    tmp_path,
):
    """An installed package's method is known only by loading it (and the built-ins first,
    so that a clash names the package), as before: a package that cannot be imported stays
    out of 'all' and is refused by name. Loading it imports torch."""
    site = tmp_path / "site"
    info = site / "broken_method-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-method\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[salmubench.methods]\nbroken = broken_method:Broken\n")
    (site / "broken_method.py").write_text("raise ImportError('a dependency is missing')\n")
    out = run_fresh(
        """
        from salmubench.unlearn import parse_methods
        from salmubench.unlearn.registry import REFUSED
        from salmubench.config import ConfigError
        try:
            parse_methods("broken")
            error = None
        except ConfigError as e:
            error = str(e)
        out = {"all": parse_methods("all"), "error": error, "refused": str(REFUSED["broken"])}
        """,
        site=site,
    )
    assert out["all"] == method_names() and "broken" not in out["all"]
    assert out["error"].startswith("unknown method(s) ['broken']; valid: all, delete,")
    assert "ImportError: a dependency is missing" in out["refused"]
    assert "torch" in out["imported"]


def _library_copy(tmp_path: Path, files: dict[str, str]) -> Path:
    """A copy of the library with `files` (paths under salmubench/unlearn/methods/) added."""
    src = tmp_path / "src"
    shutil.copytree(LIBRARY, src / "salmubench", ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in files.items():
        (src / "salmubench/unlearn/methods" / name).write_text(textwrap.dedent(text))
    return src


def _in_copy(src: Path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=src,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def test_the_built_in_names_read_without_importing_follow_the_import_order(tmp_path):
    """A method file that imports another built-in before registering puts that one first,
    as the real import does; `method_names()` (every method loaded) checks the two agree."""
    src = _library_copy(tmp_path, {"aaa_first.py": PLANTED.format(name="aaa_first")})
    proc = _in_copy(
        src,
        """
        import sys
        from salmubench.unlearn import method_names, parse_methods
        read = parse_methods("all")
        torch_free = "torch" not in sys.modules
        print(read == method_names(), torch_free, read[:3])
    """,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[:2] == ["True", "True"]
    assert "['precise', 'aaa_first', 'delete']" in proc.stdout


def test_a_built_in_method_without_a_literal_name_is_refused_by_name(tmp_path):
    src = _library_copy(tmp_path, {"zzz_computed.py": PLANTED.format(name='zzz" + "_x')})
    proc = _in_copy(
        src,
        """
        from salmubench.unlearn import parse_methods
        parse_methods("all")
    """,
    )
    assert proc.returncode == 1
    assert "ConfigError: built-in method class Planted" in proc.stderr
    assert "has no literal `name" in proc.stderr


# A built-in method file that imports another one (precise) before registering itself.
PLANTED = """
    from salmubench.unlearn.base import Method, Step, register
    from salmubench.unlearn.methods.precise import Precise  # noqa: F401


    @register
    class Planted(Method):
        name = "{name}"
        summary = "a planted method"
        uses = frozenset({{"forget"}})

        def loss(self, step: Step):
            loss = -(step.forget.image * step.forget.text).sum(1).mean()
            return loss, {{}}
"""


def test_report_stage_imports_no_torch(tmp_path):
    """The real `salmubench report`, start to finish, on eval folders (tests/test_report.py);
    what it records of each metric is what the evaluator's registry says."""
    runs = populate(tmp_path / "runs")
    out = run_fresh(f"""
        from salmubench.cli import main
        rc = main(["report", "--runs", {str(runs)!r}, "--out", {str(tmp_path / "report")!r},
                   "-q"])
        out = {{"rc": rc}}
    """)
    assert out["rc"] == 0
    assert out["imported"] == []
    board = json.loads((tmp_path / "report" / "leaderboard.json").read_text())
    assert board["metrics"] == {
        n: {"family": m.family, "target": m.target, "better": m.better,
            "description": m.description}
        for n, m in METRICS.items()
    }  # fmt: skip
