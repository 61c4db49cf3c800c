"""The method contract: a loss from named batches (`forget`, `retain`) and the frozen original.

A method is a class registered by name in `METHODS`: one file per built-in method in
`methods/`, or from outside the package (an installed distribution's `salmubench.methods`
entry point, or a `--method-file`: `unlearn/external.py`). All go through `register`, which
runs the contract checks (`unlearn/contract.py`) and records each method's origin and the
sha256 of the file that defines it (`ORIGINS`), written into every manifest it produces.
It declares which inputs it uses and its hyper-parameters (a dataclass, documented per
field, set in params.yaml under `methods.<name>`), and computes one scalar loss per step
from embedded batches. Everything else — the loop, optimiser, schedule, precision, DDP,
checkpoints and which splits may be read — belongs to the library (`engine/`,
`unlearn/loop.py`, `unlearn/data.py`).

Features are L2-normalised and gathered over all processes, so a method sees the whole
global batch whatever the number of processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from salmubench.config import ConfigError, _doc, build
from salmubench.engine.loss import contrastive_loss
from salmubench.manifest import sha256_file
from salmubench.measures import derangement, pair_similarity, similarity_matrix

# What method files (built-in and external) import from here; derangement, pair_similarity
# and similarity_matrix have their one home in `salmubench.measures`.
__all__ = [
    "METHODS",
    "Features",
    "Method",
    "MethodParams",
    "Step",
    "build_method",
    "check_retention",
    "clip_loss",
    "derangement",
    "distillation",
    "embedding_drift",
    "fused_embedding",
    "get_method",
    "method_names",
    "mse_to_original",
    "pair_similarity",
    "param",
    "register",
    "similarity_matrix",
    "two_way_mse",
    "unimodal_mse",
]

# What a method may ask for: the forget batch, its generic (non-sensitive) captions, the
# retain batch, and the frozen Compromised model's features of the same batches.
INPUTS = ("forget", "generic", "retain", "original")
# The batches the frozen original model may embed (`Method.original_reads`).
GROUPS = ("forget", "retain")


@dataclass
class Features:
    """One batch embedded by one model. Row i of every tensor is sample i."""

    image: torch.Tensor  # [n, D]
    text: torch.Tensor  # [n, D], the sample's own caption
    ids: torch.Tensor  # [n] caption ids: equal ids = identical text
    generic: torch.Tensor | None = None  # [n, D], the visual caption (forget only)
    generic_ids: torch.Tensor | None = None


@dataclass
class Step:
    """What a method's loss sees at one optimiser step."""

    index: int
    forget: Features | None
    retain: Features | None
    original_forget: Features | None  # no gradient; None unless "forget" in original_reads
    original_retain: Features | None  # None unless "retain" in original_reads
    logit_scale: torch.Tensor  # the model's, exp'd
    original_logit_scale: torch.Tensor
    generator: torch.Generator  # seeded by (seed, step): identical on every process


@dataclass(frozen=True)
class MethodParams:
    """Hyper-parameters every method has."""

    lr: float | None = _doc(
        "Learning rate of this method; None = the unlearn config's lr.", default=None
    )

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and value < 0:
                raise ConfigError(f"{f.name}={value}: must be >= 0")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr={self.lr}: must be positive")


class Method:
    """Base class: subclasses set `name`, `summary`, `uses`, `Params` and `loss`, and
    `original_reads` if they use the original model's features of only some batches."""

    name: ClassVar[str]
    summary: ClassVar[str]
    uses: ClassVar[frozenset[str]]
    # Which batches the frozen original embeds, of those the method uses (if it uses
    # "original"): a method that reads only `original_retain` (DELETE, CLIPErase)
    # declares {"retain"}, and the forget batch is never pushed through the original.
    original_reads: ClassVar[frozenset[str]] = frozenset(GROUPS)
    Params: ClassVar[type[MethodParams]] = MethodParams
    # The learning rates `salmubench tune` tries for this method (None: its default grid).
    search_space: ClassVar[tuple[float, ...] | None] = None

    def __init__(self, params: MethodParams) -> None:
        self.params = params

    def loss(self, step: Step) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total loss to minimise, named parts for the log)."""
        raise NotImplementedError


def param(help: str, *, default: Any) -> Any:
    """A documented, defaulted hyper-parameter field of a method's `Params` dataclass."""
    return _doc(help, default=default)


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
    from salmubench.unlearn.external import load_entry_points

    load_entry_points()
    return list(METHODS)


def get_method(name: str) -> type[Method]:
    from salmubench.unlearn.external import REFUSED

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


# ----------------------------------------------------------------- loss building blocks


def clip_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, ids: torch.Tensor):
    """The training objective (symmetric InfoNCE, duplicate-caption aware)."""
    return contrastive_loss(image, text, scale, ids)


def distillation(student: torch.Tensor, teacher: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric KL between the teacher's and the student's retrieval distributions
    (image→text rows and text→image columns) of one similarity matrix."""
    s, t = scale * student, scale * teacher
    rows = F.kl_div(
        F.log_softmax(s, 1), F.log_softmax(t, 1), log_target=True, reduction="batchmean"
    )
    cols = F.kl_div(
        F.log_softmax(s.T, 1), F.log_softmax(t.T, 1), log_target=True, reduction="batchmean"
    )
    return (rows + cols) / 2


def embedding_drift(model: Features, original: Features) -> torch.Tensor:
    """Mean (1 - cos) between the model's and the original's unimodal embeddings."""
    image = 1 - pair_similarity(model.image, original.image)
    text = 1 - pair_similarity(model.text, original.text)
    return (image.mean() + text.mean()) / 2


# The forms of the retention terms of DELETE, CLIPErase and VLUnlearn (each method's
# `retention` setting): the authors' MSEs, or our earlier KL and (1 - cos) adaptation.
RETENTIONS = ("authors", "kl")


def check_retention(value: str) -> None:
    if value not in RETENTIONS:
        raise ConfigError(f"retention={value!r}; valid: {', '.join(map(repr, RETENTIONS))}")


def mse_to_original(model: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Mean squared difference over every entry (nn.MSELoss, as in the authors' code) of a
    similarity matrix or an [n, D] embedding and the original model's. Of L2-normalised
    D-dim rows it is mean(2 (1 - cos)) / D: `embedding_drift` weighs about D/2 times more."""
    return F.mse_loss(model, original)


def two_way_mse(sims: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The authors' image→text + text→image MSE of a similarity matrix against a target.

    Their text→image matrix is the image→text one transposed, and so is its target (VLUnlearn's
    too: the original's text→image matrix of the same shuffled pairs), so both directions give
    the same value and the sum is twice one MSE; it stays a sum so that the balance between a
    similarity term and an embedding term is the authors'."""
    return mse_to_original(sims, target) + mse_to_original(sims.T, target.T)


def fused_embedding(features: Features) -> torch.Tensor:
    """[n, D] normalize((image + text) / 2): the authors' multimodal embedding of a pair, the
    dual-encoder stand-in for MultiDelete's fusion encoder."""
    return F.normalize((features.image + features.text) / 2, dim=1)


def unimodal_mse(model: Features, original: Features) -> torch.Tensor:
    """The authors' unimodal retention: the image embeddings' MSE plus the text embeddings'."""
    return mse_to_original(model.image, original.image) + mse_to_original(model.text, original.text)
