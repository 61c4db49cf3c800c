"""The method contract: a loss from named batches (`forget`, `retain`) and the frozen original.

A method is a class registered by name in `METHODS`: one file per built-in method in
`methods/`, or from outside the package (an installed distribution's `salmubench.methods`
entry point, or a `--method-file`: `unlearn/external.py`). All go through `register`, which
runs the contract checks (`unlearn/contract.py`; the registry: `unlearn/registry.py`, the
types: `unlearn/method.py`) and records each method's origin and the
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

import torch
import torch.nn.functional as F

from salmubench.config import ConfigError
from salmubench.engine.loss import contrastive_loss
from salmubench.measures import derangement, pair_similarity, similarity_matrix
from salmubench.unlearn.method import (
    GROUPS,
    INPUTS,
    Features,
    Method,
    MethodParams,
    Step,
    param,
)
from salmubench.unlearn.registry import (
    METHODS,
    ORIGINS,
    build_method,
    get_method,
    method_code,
    method_names,
    parse_methods,
    register,
)

# What method files (built-in and external) import from here: the contract's types
# (`unlearn/method.py`), the registry (`unlearn/registry.py`), the formulas of
# `salmubench.measures` and the loss building blocks below.
__all__ = [
    "GROUPS",
    "INPUTS",
    "METHODS",
    "ORIGINS",
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
    "method_code",
    "method_names",
    "mse_to_original",
    "pair_similarity",
    "param",
    "parse_methods",
    "register",
    "similarity_matrix",
    "two_way_mse",
    "unimodal_mse",
]

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
