"""`salmubench new-method NAME`: a method package to start from, outside our package.

The scaffold is a pure-Python distribution: the method file (a documented `Params`, a
`search_space` for `salmubench tune`, a loss to replace), a pyproject.toml declaring the
`salmubench.methods` entry point, a README with the route to a leaderboard row, and a test
that runs our contract checks on it. A fresh scaffold passes its own test (tested).
"""

from __future__ import annotations

import os
from pathlib import Path

from salmubench.config import ConfigError
from salmubench.unlearn.contract import NAME

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "{title}: an unlearning method for SALMUBench"
requires-python = ">=3.10"
# salmubench itself is not listed: the method runs inside an environment (or the image)
# that already has it, and installing this package must never replace it.
dependencies = []

[project.entry-points."salmubench.methods"]
{name} = "{package}.method:{cls}"

[tool.setuptools]
packages = ["{package}"]

[tool.pytest.ini_options]
pythonpath = ["."]  # the tests import the method without installing it
"""

METHOD = '''\
"""{title}: an unlearning method for SALMUBench.

Replace the loss below with yours. The contract (salmubench.unlearn.contract):
- `uses` declares the inputs the loss reads, of "forget", "generic" (the forget images'
  non-sensitive captions), "retain" and "original" (the frozen Compromised model's features
  of the same batches). Splits are chosen by the library; holdouts are never readable.
- `Params` holds the hyper-parameters, each documented and defaulted; set them in
  params.yaml under `methods.{name}` or with `--set methods.{name}.KEY=VALUE`.
- `loss(step)` returns (a scalar tensor to minimise, a dict of named scalar parts to log).
  Features are L2-normalised and gathered over all processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from salmubench.unlearn.base import Method, MethodParams, Step, clip_loss, param


@dataclass(frozen=True)
class Params(MethodParams):
    """Hyper-parameters of {name} (`lr` is inherited: None = the profile's learning rate)."""

    retain_weight: float = param("Weight of the retain descent term.", default=1.0)


class {cls}(Method):
    name = "{name}"
    summary = "ascent on forget pairs + weighted descent on retain pairs (replace me)"
    uses = frozenset({{"forget", "retain"}})
    Params = Params
    # The learning rates `salmubench tune` tries on the validation world (smallest first).
    search_space = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4)

    def loss(self, step: Step):
        f, r = step.forget, step.retain
        forget = clip_loss(f.image, f.text, step.logit_scale, f.ids)
        retain = clip_loss(r.image, r.text, step.logit_scale, r.ids)
        return -forget + self.params.retain_weight * retain, {{"forget": forget, "retain": retain}}
'''

TEST = '''\
"""The SALMUBench method contract, checked on this package's method (no data, no model)."""

from pathlib import Path

from salmubench.unlearn.contract import check_method

from {package}.method import {cls}


def test_the_method_keeps_the_salmubench_contract():
    check_method({cls})  # raises, naming every problem, if it does not


def test_the_entry_point_points_at_the_method():
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert '{name} = "{package}.method:{cls}"' in pyproject
'''

README = """\
# {title}

An unlearning method for SALMUBench, packaged outside it.

```bash
pip install -e .                      # registers `{name}` (entry point salmubench.methods)
pytest                                # the contract checks
salmubench methods                    # {name} ... [package {dist} ...]
salmubench unlearn --method {name} --profile tiny --data D --model M --out OUT
salmubench tune --profile tiny --methods {name} --out runs/validation-1000
salmubench bench --profile tiny --methods {name} --worlds 3 \\
    --tuning runs/validation-1000/tuning.json --set methods.{name}.lr=CHOSEN --out runs/lb
salmubench run --profile tiny --methods {name},neg_grad --out runs/{name}-kfp   # Kubeflow, locally
```

Without installing: `salmubench unlearn --method-file {package}/method.py --method {name} ...`.
The whole route, and the Kubeflow image: docs/METHODS.md in SALMUBench.
"""


def scaffold(name: str, out: str | os.PathLike | None = None) -> Path:
    """Write the method package for `name` into `out` (default ./salmubench-<name>)."""
    if not NAME.match(name):
        raise ConfigError(
            f"method name {name!r}: must be a lowercase identifier (a-z, 0-9, _), e.g. 'my_method'"
        )
    dist = "salmubench-" + name.replace("_", "-")
    root = Path(out) if out is not None else Path(dist)
    if root.exists() and any(root.iterdir()):
        raise ConfigError(f"{root} exists and is not empty; choose another --out")
    package = f"salmubench_{name}"
    cls = "".join(part.capitalize() for part in name.split("_"))
    title = name.replace("_", " ").capitalize()
    values = {"name": name, "dist": dist, "package": package, "cls": cls, "title": title}
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{package}/__init__.py": '"""{title}: an unlearning method for SALMUBench."""\n',
        f"{package}/method.py": METHOD,
        "tests/test_contract.py": TEST,
    }
    for rel, template in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values), encoding="utf-8")
    return root
