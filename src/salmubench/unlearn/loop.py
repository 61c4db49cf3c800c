"""The `unlearn` stage: one method, one budget, applied to the Compromised model.

The library owns everything but the loss: which splits are read (forget + a seeded retain
subset, never a holdout: `unlearn/data.py`), the number of steps (budget x one pass over
forget), batches (a function of seed and step, so a resumed run continues exactly), the
optimiser and schedule, precision, DDP (features gathered over processes: 1 and N
processes compute the same loss) and resumable checkpoints. The output is a model folder
like the trained ones, with `variant: unlearned`, the method's settings and its code
(origin and the sha256 of the file defining it: `method_code`) in its manifest.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from salmubench import __version__
from salmubench.config import ConfigError, UnlearnConfig, to_dict
from salmubench.engine.dist import DistEnv, gather
from salmubench.engine.loop import Progress, Result, Settings, run_steps
from salmubench.engine.loop import Run as LoopRun
from salmubench.engine.pools import BatchPlan
from salmubench.engine.state import (
    partial_dir,
    prepare_output,
    run_process_group,
    swap_into_place,
)
from salmubench.manifest import read_manifest, sha256_file, write_manifest
from salmubench.models import (
    LoadedModel,
    image_normalisation,
    image_size,
    load_model,
    resolve_device,
    save_model,
)
from salmubench.models import tokenizer as get_tokenizer
from salmubench.s3 import Url, location
from salmubench.train.data import MEMORY_LIMIT_BYTES
from salmubench.train.stream import PoolBatches, choose_loader
from salmubench.unlearn.base import Features, Method, Step, build_method, method_code
from salmubench.unlearn.contract import check_loss
from salmubench.unlearn.data import (
    Rows,
    decoded_bytes,
    index_unlearn_pools,
    load_unlearn_pools,
    memory_rows,
    open_for_unlearning,
    retain_subset,
    streamed_rows,
)
from salmubench.vocab import FORGET_SPLITS, UNLEARN_LOG

log = logging.getLogger(__name__)


def plan_steps(budget: float, forget_samples: int, forget_batch: int) -> int:
    """Budget 1 = one pass over the forget split (SPEC.md §5)."""
    return max(1, math.ceil(budget * forget_samples / forget_batch))


def forget_samples(dataset: dict[str, Any]) -> int:
    return sum(dataset["counts"][s] for s in FORGET_SPLITS)


def run_config(cfg: UnlearnConfig, method: str, budget: float | None = None) -> UnlearnConfig:
    """The config one run uses: its own method's settings only (changing another method's
    hyper-parameters must not invalidate this run) and the budget it ran with."""
    cfg = dataclasses.replace(cfg, methods={method: dict(cfg.methods.get(method) or {})})
    return cfg if budget is None else with_budget(cfg, budget)


def recorded_config(cfg: UnlearnConfig) -> dict:
    """What a run records as its config (manifest, resume identity, `bench`'s reuse): the
    loader settings left out, since both loaders give the same batches (a run may resume,
    or be reused, with the other one; `data_loader` in the manifest says which one ran),
    and runs made before they existed stay reusable."""
    return {k: v for k, v in to_dict(cfg).items() if k not in ("loader", "loader_workers")}


def with_budget(cfg: UnlearnConfig, budget: float) -> UnlearnConfig:
    """`cfg` at another budget, refused unless it is a positive number of forget passes."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise ConfigError(f"budget={budget!r}: must be a positive number of forget passes")
    return dataclasses.replace(cfg, budget=float(budget))


class ForeignModelError(ConfigError):
    """The model is not the Compromised model of this dataset: nothing of it to unlearn."""


def source_problems(loaded: LoadedModel, dataset: dict[str, Any]) -> list[str]:
    """Why `loaded` is not the Compromised model of this dataset (empty if it is). An
    external checkpoint has no manifest: its provenance cannot be checked, so none is said."""
    m = loaded.manifest
    if m is None:
        return []
    problems = []
    if m.get("variant") != "compromised":
        problems.append(f"{loaded.path} is a {m.get('variant')!r} model, not the Compromised one")
    trained_on = m["inputs"].get("dataset")
    if trained_on != dataset["digest"]:
        problems.append(
            f"{loaded.path} was trained on dataset {trained_on}, not on this one "
            f"({dataset['digest']}): there is nothing of it to unlearn"
        )
    return problems


def check_source(loaded: LoadedModel, dataset: dict[str, Any], allow_foreign: bool) -> None:
    """Refuse a model that is not the Compromised model of this dataset, unless allowed."""
    if loaded.manifest is None:
        log.warning("%s is an external checkpoint: its provenance cannot be checked", loaded.path)
    problems = source_problems(loaded, dataset)
    if problems and not allow_foreign:
        raise ForeignModelError(
            "; ".join(problems) + ". Unlearn the Compromised model trained on this dataset, or "
            "pass --allow-foreign-model to run anyway"
        )
    for problem in problems:
        log.warning("!!! NOT THE COMPROMISED MODEL OF THIS DATASET (allowed): %s !!!", problem)


def unlearn(
    data: str | os.PathLike,
    model: str | os.PathLike,
    method: str,
    cfg: UnlearnConfig,
    out: str | os.PathLike,
    *,
    arch: str | None = None,
    budget: float | None = None,
    seed: int = 0,
    profile: str = "custom",
    resume: bool = False,
    force: bool = False,
    allow_foreign_model: bool = False,
    progress: Progress | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Apply `method` to the Compromised `model` and publish the result at `out`. `force`
    replaces a finished output; `allow_foreign_model` unlearns a model that is not the
    Compromised model of `data` (refused otherwise). `device`: auto (this process's GPU
    when CUDA is visible, else CPU), cpu, or cuda (refused when none is visible)."""
    impl = build_method(method, cfg.methods.get(method))
    loader_cfg = cfg
    cfg = run_config(cfg, method, budget)
    uses = impl.uses
    if "retain" in uses and cfg.retain_batch == 0:
        raise ConfigError(f"method {method!r} uses retain data but retain_batch=0")
    env = DistEnv.from_env()
    torch_device = resolve_device(device, env.device())  # a GPU asked for and absent: now
    for name in ("forget_batch", "retain_batch"):
        if getattr(cfg, name) % env.world_size:
            raise ConfigError(
                f"{name}={getattr(cfg, name)} is not divisible by the {env.world_size} processes"
            )
    out = Path(out)
    mode = prepare_output(out, resume, force)
    if mode == "done":
        log.info("%s is already complete; nothing to resume", out)
        return read_manifest(out, kind="model")
    retain = cfg.retain if "retain" in uses else ()
    dataset = open_for_unlearning(data, retain)
    retain_subset(dataset, retain, cfg.retain_size, seed)  # a bad size fails before loading
    loaded = load_model(model, arch)
    size = decoded_bytes(dataset, retain, cfg.retain_size, seed, image_size(loaded.model))
    loader = choose_loader(loader_cfg, size, MEMORY_LIMIT_BYTES)
    check_source(loaded, dataset, allow_foreign_model)
    steps = plan_steps(cfg.budget, forget_samples(dataset), cfg.forget_batch)
    t_index = time.perf_counter()
    indexes = {}
    if loader == "stream":  # the readable shards' headers, before any process group
        indexes = index_unlearn_pools(data, dataset, retain, uses, cfg.retain_size, seed)
    partial = partial_dir(out)
    source = loaded.manifest["digest"] if loaded.manifest else sha256_file(loaded.path)
    run = _Run(
        data=location(data),
        dataset=dataset,
        loaded=loaded,
        source=source,
        method=impl,
        cfg=cfg,
        out=out,
        partial=partial,
        env=env,
        device=torch_device,
        seed=seed,
        profile=profile,
        steps=steps,
        retain=tuple(retain),
        loader=loader,
        loader_workers=loader_cfg.loader_workers,
        indexes=indexes,
        seconds_index=time.perf_counter() - t_index,
        identity={
            "config": recorded_config(cfg),
            "method": method,
            "method_code": method_code(method),
            "params": dataclasses.asdict(impl.params),
            "seed": seed,
            "dataset": dataset["digest"],
            "model": source,
        },
    )
    return run_process_group(
        env, cfg.threads, partial, mode, run.identity, lambda state: _loop(run, state, progress)
    )


@dataclass(frozen=True)
class _Run:
    data: Path | Url
    dataset: dict[str, Any]
    loaded: LoadedModel
    source: str
    method: Method
    cfg: UnlearnConfig
    out: Path
    partial: Path
    env: DistEnv
    device: torch.device
    seed: int
    profile: str
    steps: int
    retain: tuple[str, ...]
    loader: str  # memory or stream
    loader_workers: int
    indexes: dict[str, Any]  # stream: each pool's sample index (`data.tarindex.Index`)
    seconds_index: float  # spent indexing the shards (stream)
    identity: dict[str, Any]

    @property
    def lr(self) -> float:
        return self.method.params.lr or self.cfg.lr


class _Batcher:
    """Turns this process's rows of each group into model inputs and the outputs back into
    gathered features: one forward pass per model and step over all groups."""

    def __init__(self, run: _Run, model) -> None:
        self.mean, self.std = (t.to(run.device) for t in image_normalisation(model))
        self.device = run.device

    def inputs(self, rows: dict[str, Rows]) -> tuple[torch.Tensor, torch.Tensor, dict]:
        images, texts, layout = [], [], {}
        for group, r in rows.items():
            images.append(r["images"])
            texts.append(r["tokens"])
            layout[group] = {"n": len(r["images"]), "ids": r["ids"]}
            if "generic_tokens" in r:
                texts.append(r["generic_tokens"])
                layout[group]["generic_ids"] = r["generic_ids"]
        x = (torch.cat(images).to(self.device).float() / 255.0 - self.mean) / self.std
        return x, torch.cat(texts).to(self.device), layout

    @staticmethod
    def select(
        x: torch.Tensor, texts: torch.Tensor, layout: dict, groups: frozenset[str]
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """The rows of `groups` only (inputs() order kept); all groups: the same tensors."""
        if set(layout) <= groups:
            return x, texts, layout
        image_rows, text_rows, kept, i, t = [], [], {}, 0, 0
        for group, info in layout.items():
            n = info["n"]
            n_text = 2 * n if "generic_ids" in info else n
            if group in groups:
                image_rows.append(torch.arange(i, i + n))
                text_rows.append(torch.arange(t, t + n_text))
                kept[group] = info
            i, t = i + n, t + n_text
        rows, text_index = torch.cat(image_rows), torch.cat(text_rows)
        return x[rows.to(x.device)], texts[text_index.to(texts.device)], kept

    def features(self, output: dict[str, torch.Tensor], layout: dict) -> dict[str, Features]:
        image, text = output["image_features"].float(), output["text_features"].float()
        result, i, t = {}, 0, 0
        for group, info in layout.items():
            n = info["n"]
            feats = Features(
                gather(image[i : i + n]), gather(text[t : t + n]), info["ids"].to(self.device)
            )
            i, t = i + n, t + n
            if "generic_ids" in info:
                feats.generic = gather(text[t : t + n])
                feats.generic_ids = info["generic_ids"].to(self.device)
                t += n
            result[group] = feats
        return result


def _loop(run: _Run, state: dict[str, Any] | None, progress: Progress | None) -> dict[str, Any]:
    cfg, device, method = run.cfg, run.device, run.method
    uses = method.uses
    model = run.loaded.model.to(device)
    original = None
    if "original" in uses:
        original = copy.deepcopy(model).eval().requires_grad_(False)
    if state is not None:
        model.load_state_dict(state["model"])
    t_load = time.perf_counter()
    start = int(state["step"]) if state is not None else 0
    rows, plan, sizes = _source(run, image_size(model), start)
    seconds_load = time.perf_counter() - t_load + run.seconds_index
    batcher = _Batcher(run, model)
    waited = [0.0]

    def batch_loss(net: torch.nn.Module, step: int) -> tuple[torch.Tensor, dict]:
        t0 = time.perf_counter()
        step_rows = rows(step)
        waited[0] += time.perf_counter() - t0
        x, texts, layout = batcher.inputs(step_rows)
        output = net(x, texts)
        feats = batcher.features(output, layout)
        orig: dict[str, Features] = {}
        orig_scale = output["logit_scale"].detach()
        if original is not None:
            with torch.no_grad():
                ox, otexts, olayout = batcher.select(x, texts, layout, method.original_reads)
                o = original(ox, otexts)
                orig, orig_scale = batcher.features(o, olayout), o["logit_scale"].float()
        result = method.loss(
            Step(
                index=step,
                forget=feats.get("forget"),
                retain=feats.get("retain"),
                original_forget=orig.get("forget"),
                original_retain=orig.get("retain"),
                logit_scale=output["logit_scale"].float(),
                original_logit_scale=orig_scale,
                generator=torch.Generator().manual_seed(run.seed * 1_000_003 + step),
            )
        )
        check_loss(method, result)  # before the optimiser: no weight changes on a bad loss
        loss, parts = result
        # Every parameter in the graph, whatever the method uses (DDP requires it).
        return loss + 0.0 * output["logit_scale"], parts

    settings = Settings(run.steps, run.lr, cfg.warmup_steps, cfg.weight_decay, cfg.precision,
                        cfg.log_every, cfg.checkpoint_every, UNLEARN_LOG)  # fmt: skip
    where = LoopRun(run.env, device, run.partial, run.identity)
    result = run_steps(model, batch_loss, settings, where, state, progress)
    result.stats["seconds_loading_data"] = round(seconds_load, 2)
    result.stats["seconds_waiting_for_data"] = round(waited[0], 2)
    result.stats["samples"] = sizes
    manifest = _publish(run, result, plan) if run.env.is_main else {}
    run.env.barrier()
    return manifest


def _source(run: _Run, size: int, start: int) -> tuple[Any, BatchPlan, dict[str, int]]:
    """`rows(step)` -> {group: Rows} from either loader, the batch plan and the pools'
    sizes. Both loaders give the same rows: the plan is the same function of (pool sizes,
    seed, step); caption ids are a counter in memory and a hash streamed, equal exactly
    when the captions are, whichever pools they come from."""
    cfg, uses, env = run.cfg, run.method.uses, run.env
    tokenize = get_tokenizer(run.loaded.arch)
    generic = "generic" in uses
    if run.loader == "memory":
        pools = load_unlearn_pools(run.data, run.dataset, run.retain, tokenize, size,
                                   retain_size=cfg.retain_size, seed=run.seed,
                                   with_retain="retain" in uses)  # fmt: skip
        if "forget" not in uses:
            pools.pop("forget")
        sizes = {g: len(p) for g, p in pools.items()}
    else:
        sizes = {g: len(index) for g, index in run.indexes.items()}
    per_step = {g: n for g, n in (("forget", cfg.forget_batch), ("retain", cfg.retain_batch))
                if g in sizes}  # fmt: skip
    plan = BatchPlan(sizes, per_step, run.seed)
    if run.loader == "memory":
        return memory_rows(pools, plan, run.env, generic), plan, sizes
    rows = streamed_rows(
        PoolBatches(run.indexes, plan, start, run.steps, env.rank, env.world_size, tokenize,
                    size, frozenset({"forget"} if generic else ())),
        run.loader_workers, run.device,
    )  # fmt: skip
    return rows, plan, sizes


def _shards(run: _Run) -> int:
    """How many shards the batches come from (the forget splits, if read, and retain)."""
    splits = [*(FORGET_SPLITS if "forget" in run.method.uses else ()), *run.retain]
    return sum(len(run.dataset["shards"][s]) for s in splits)


def _publish(run: _Run, result: Result, plan: BatchPlan) -> dict[str, Any]:
    cfg, method = run.cfg, run.method
    arch = run.loaded.arch
    meta = {
        "variant": "unlearned",
        "method": method.name,
        "architecture": arch,
        "budget": cfg.budget,
        "steps": run.steps,
        "package_version": __version__,
        "dataset": run.dataset["digest"],
        "source": run.source,
    }
    save_model(run.partial, result.model, arch, meta)
    source = run.loaded.manifest or {}
    return_value = write_manifest(
        run.partial,
        "model",
        config=recorded_config(cfg),
        inputs={"dataset": run.dataset["digest"], "model": run.source},
        architecture=arch,
        variant="unlearned",
        method=method.name,
        method_params=dataclasses.asdict(method.params),
        method_code=run.identity["method_code"],
        lr=run.lr,
        budget=cfg.budget,
        steps=run.steps,
        data_loader={
            "loader": run.loader,
            "shards": _shards(run),
            "workers": run.loader_workers if run.loader == "stream" else 0,
        },
        forget_batch=cfg.forget_batch,
        retain_batch=cfg.retain_batch if "retain" in method.uses else 0,
        reads=sorted({*(FORGET_SPLITS if "forget" in method.uses else ()), *run.retain}),
        source={
            "path": str(run.loaded.path),
            "digest": run.source,
            "variant": source.get("variant", "external"),
        },
        profile=run.profile,
        seed=run.seed,
        dataset_profile=run.dataset.get("profile"),
        world_size=run.env.world_size,
        epochs=plan.epochs(run.steps),
        unlearning={**result.stats, "final": result.final(10)},
    )
    swap_into_place(run.partial, run.out)
    return return_value
