"""The method contract as checks: what every method, built-in or not, must satisfy before
it is registered — so a broken method is refused with its reasons before any training step.

`check_method(cls)` is public: a method package's own test calls it (the `salmubench
new-method` scaffold does), and so do our contract tests for the built-in methods.

The checks, in order:
- it is a `Method` subclass with a `name` (a lowercase identifier: it becomes a folder name
  and a `methods.<name>` key in params.yaml) and a `summary`;
- `uses` names only the inputs the library provides (`INPUTS`). Splits are not inputs: the
  library chooses which splits feed `forget` and `retain`, and a holdout or evaluation split
  is refused outright (the benchmark measures them);
- `original_reads` is a non-empty subset of the batches it uses, if it uses `original`;
- `Params` is a dataclass subclassing `MethodParams`, every field documented and defaulted
  (its defaults must validate), and `search_space`, if set, is positive learning rates;
- `loss` is defined, and on one synthetic step of the declared inputs (random unit
  features of the right shapes; no model, no data) it returns a finite scalar tensor that
  depends on the model's features, with a dict of scalar parts. A loss that touches an input
  it did not declare fails here too (that input is None).
The unlearn loop repeats the shape check on the real loss of every step, before the
optimiser steps (`check_loss`), so a method whose loss shape depends on the batch is still
stopped before it changes a weight.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import torch
import torch.nn.functional as F

from salmubench.config import ConfigError, build
from salmubench.unlearn.method import GROUPS, INPUTS, Features, Method, MethodParams, Step
from salmubench.vocab import FORBIDDEN, SPLITS

NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
# A synthetic step: a few unit features of a small width.
SYNTHETIC_BATCH, SYNTHETIC_WIDTH = 4, 8


class ContractError(ConfigError, TypeError):
    """A method that breaks the contract (a TypeError too: it is a programming error)."""


def contract_problems(cls: Any) -> list[str]:
    """Every way `cls` breaks the method contract (empty: it keeps it)."""
    if not isinstance(cls, type) or not issubclass(cls, Method):
        return [f"{cls!r} is not a subclass of salmubench.unlearn.Method"]
    problems = _declaration_problems(cls)
    if not problems:  # the synthetic step needs a well-formed declaration
        problems += _loss_problems(cls)
    return problems


def check_method(cls: Any, origin: Any = None) -> Any:
    """`cls` if it keeps the contract, else a ContractError listing what is wrong."""
    problems = contract_problems(cls)
    if problems:
        name = getattr(cls, "name", getattr(cls, "__name__", repr(cls)))
        where = f" ({origin})" if origin is not None else ""
        raise ContractError(
            f"method {name!r}{where} breaks the method contract: " + "; ".join(problems)
        )
    return cls


def _declaration_problems(cls: type[Method]) -> list[str]:
    problems = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME.match(name):
        problems.append(
            f"name={name!r}: must be a lowercase identifier (a-z, 0-9, _), e.g. 'my_method'"
        )
    if not isinstance(getattr(cls, "summary", None), str) or not cls.summary.strip():
        problems.append("summary: must be a non-empty one-line description")
    uses = getattr(cls, "uses", None)
    if not isinstance(uses, (set, frozenset)) or not uses:
        problems.append(f"uses={uses!r}: must be a non-empty frozenset of {INPUTS}")
        uses = frozenset()
    for item in sorted(map(str, uses)):
        if item in INPUTS:
            continue
        if item in FORBIDDEN or item.startswith("holdout"):
            problems.append(
                f"uses {item!r}: reads a holdout or evaluation split, which unlearning may "
                f"never see ({', '.join(FORBIDDEN)}); valid inputs: {', '.join(INPUTS)}"
            )
        elif item in SPLITS:
            problems.append(
                f"uses {item!r}: a split, not an input; the library chooses the splits behind "
                f"'forget' and 'retain' (unlearn config `retain`); valid inputs: "
                f"{', '.join(INPUTS)}"
            )
        else:
            problems.append(f"uses {item!r}: unknown input; valid inputs: {', '.join(INPUTS)}")
    if "generic" in uses and "forget" not in uses:
        problems.append(
            "uses 'generic' without 'forget': the generic captions come with the forget batch "
            "(step.forget.generic); declare both"
        )
    reads = set(getattr(cls, "original_reads", ()))
    batches = set(GROUPS) & set(uses)
    if "original" in uses and (not reads or not reads <= batches):
        problems.append(
            f"original_reads={reads}: must be a non-empty subset of the batches it uses "
            f"({sorted(batches)})"
        )
    params = getattr(cls, "Params", None)
    if not (
        isinstance(params, type)
        and dataclasses.is_dataclass(params)
        and issubclass(params, MethodParams)
    ):
        problems.append(
            f"Params={params!r}: must be a dataclass subclassing "
            "salmubench.unlearn.base.MethodParams (its hyper-parameters, each documented)"
        )
    else:
        for f in dataclasses.fields(params):
            if not f.metadata.get("help"):
                problems.append(
                    f"Params.{f.name} has no documentation: declare it as "
                    f"`{f.name}: float = param('what it does', default=...)`"
                )
        try:
            build(params, {})
        except (ConfigError, TypeError) as e:
            problems.append(f"Params cannot be built from its defaults: {e}")
    space = getattr(cls, "search_space", None)
    if space is not None and (
        isinstance(space, (str, bytes))
        or not hasattr(space, "__iter__")
        or not list(space)
        or not all(_positive(lr) for lr in space)
    ):
        problems.append(
            f"search_space={space!r}: must be None or a non-empty list of positive learning rates"
        )
    if getattr(cls, "loss", None) is Method.loss:
        problems.append("defines no loss(step)")
    return problems


def _positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def synthetic_step(uses: frozenset[str], original_reads: frozenset[str]) -> Step:
    """A step of random unit features of the right shapes for a method declaring `uses`;
    the model's features require grad, the original's do not."""
    g = torch.Generator().manual_seed(0)
    n, d = SYNTHETIC_BATCH, SYNTHETIC_WIDTH

    def unit(grad: bool) -> torch.Tensor:
        x = torch.randn(n, d, generator=g).requires_grad_(grad)
        return F.normalize(x, dim=1)

    def features(group: str, grad: bool) -> Features:
        ids = torch.arange(n)
        f = Features(unit(grad), unit(grad), ids)
        if group == "forget" and "generic" in uses:
            f.generic, f.generic_ids = unit(grad), ids + n
        return f

    original = "original" in uses
    return Step(
        index=0,
        forget=features("forget", True) if "forget" in uses else None,
        retain=features("retain", True) if "retain" in uses else None,
        original_forget=features("forget", False)
        if original and "forget" in original_reads
        else None,
        original_retain=features("retain", False)
        if original and "retain" in original_reads
        else None,
        logit_scale=torch.tensor(10.0, requires_grad=True),
        original_logit_scale=torch.tensor(10.0),
        generator=torch.Generator().manual_seed(0),
    )


def _loss_problems(cls: type[Method]) -> list[str]:
    method = cls(build(cls.Params, {}))
    step = synthetic_step(frozenset(cls.uses), frozenset(cls.original_reads))
    try:
        result = method.loss(step)
    except Exception as e:  # (any failure of foreign code is the finding)
        return [
            f"loss(step) fails on a synthetic step of its declared inputs "
            f"{sorted(cls.uses)} ({type(e).__name__}: {e}); an input it reads but does not "
            "declare in `uses` is None"
        ]
    problems = loss_problems(result)
    if not problems and not result[0].requires_grad:
        problems.append(
            "loss does not depend on the model's features (no gradient): nothing would change"
        )
    elif not problems and not math.isfinite(result[0].item()):
        problems.append(f"loss is {result[0].item()} on a synthetic step: must be finite")
    return problems


def loss_problems(result: Any) -> list[str]:
    """What is wrong with what `Method.loss` returned: (a 0-dim float tensor, {name: 0-dim
    tensor})."""
    if not isinstance(result, tuple) or len(result) != 2:
        return [
            f"loss(step) returned {type(result).__name__}: must return (loss, parts), a "
            "scalar tensor and a dict of named scalar tensors for the log"
        ]
    loss, parts = result
    problems = []
    if not isinstance(loss, torch.Tensor) or not loss.is_floating_point():
        problems.append(f"loss is {type(loss).__name__}: must be a floating-point torch.Tensor")
    elif loss.ndim != 0:
        problems.append(
            f"loss has shape {list(loss.shape)}: must be a scalar (0-dim) tensor; reduce it, "
            "e.g. with .mean()"
        )
    if not isinstance(parts, dict):
        problems.append(f"parts is {type(parts).__name__}: must be a dict name -> scalar tensor")
    else:
        bad = [
            str(k)
            for k, v in parts.items()
            if not isinstance(k, str) or not isinstance(v, torch.Tensor) or v.numel() != 1
        ]
        if bad:
            problems.append(f"parts {bad}: each must be a str name -> scalar tensor")
    return problems


def check_loss(method: Method, result: Any) -> None:
    """Refuse a real step's loss of the wrong shape, before the optimiser steps."""
    problems = loss_problems(result)
    if problems:
        raise ContractError(f"method {method.name!r} breaks the contract: " + "; ".join(problems))
