"""The `eval` stage: the ten metrics of one model on one dataset, against their targets.

Writes an eval folder: `metrics.json` (one flat summary: the DVC metrics file and the KFP
Metrics artifact), `items/<metric>.jsonl` (per-item values), `summary.json` (settings,
gallery sizes, timings, model and dataset identity), and with reference models
`targets.json`, `targets.png` and `report.md` (each metric against its target: Clean for
efficacy, Compromised for utility).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from salmubench.config import ConfigError, EvalConfig, to_dict
from salmubench.data.decoded import DecodedCache
from salmubench.data.shards import open_dataset
from salmubench.eval.embed import DatasetEmbeddings
from salmubench.eval.metrics import METRICS, EvalSettings, compute_all, describe_metrics
from salmubench.eval.plot import plot_targets
from salmubench.manifest import (
    MANIFEST,
    check_output,
    dumps,
    read_manifest,
    staged_output,
    write_manifest,
)
from salmubench.measures import gap_share, rounded
from salmubench.models import LoadedModel, load_model, preprocessing, resolve_device
from salmubench.s3 import location
from salmubench.vocab import METRICS_FILE

log = logging.getLogger(__name__)

REQUIRED_SPLITS = ("forget", "holdout", "retain_joint", "retain_disjoint", "fragile", "genknow")

# What an eval of an imported release (`salmubench import --official`) does differently from
# the official evaluator; recorded in its summary (docs/OFFICIAL.md says more).
OFFICIAL_DIFFERENCES = {
    "retfail": "gallery: k = round(3.28% of forget captions) forget + as many retain_disjoint "
    "captions (1,000 + 1,000 at the release's size), drawn by index with "
    "numpy.default_rng(seed); the official evaluator draws 1,000 caption strings from each "
    "with numpy's global random state (its seeding is not published). Retain distractors come "
    "from the evaluation half of retain_disjoint only, and captions of the row's own "
    "association (other wordings) do not compete (ours).",
    "acs": "our probe: logistic regression on image*text products, stratified split "
    "(acs_test_fraction), deranged negatives; the official features and split are not "
    "published.",
    "vis_id_int": "the evaluation half of retain_joint (the other half is unlearning's retain "
    "data); the official evaluator reads all of retain_joint.",
    "genknow": "ImageNet-1k zero-shot with OpenCLIP's class names and templates when "
    "--genknow-imagenet is given, else our synthetic task.",
    "precision": "fp32 on CPU; fp16 autocast on CUDA, as the official evaluator.",
}


def flatten(results: dict[str, Any]) -> dict[str, float]:
    """The flat summary: each metric's value, then its extras as `<metric>_<name>`."""
    flat: dict[str, float] = {}
    for name, result in results.items():
        flat[name] = round(float(result.value), 6)
        for key, value in result.extra.items():
            flat[f"{name}_{key}"] = round(float(value), 6)
    return flat


ROLES = ("clean", "compromised")  # what an external checkpoint may stand for in a report


def _model_identity(loaded: LoadedModel, role: str | None = None) -> dict[str, Any]:
    if loaded.manifest is not None:
        m = loaded.manifest
        return {
            "path": str(loaded.path),
            "digest": m["digest"],
            "architecture": m["architecture"],
            "variant": m.get("variant"),
            "method": m.get("method"),
            "budget": m.get("budget"),
            "seed": m.get("seed"),
            "profile": m.get("profile"),
            "dataset": m["inputs"].get("dataset"),
            # An unlearned model's method origin and code digest, when its manifest has them.
            **({"method_code": m["method_code"]} if m.get("method_code") else {}),
        }
    from salmubench.manifest import sha256_file

    return {
        "path": str(loaded.path),
        "digest": sha256_file(loaded.path),
        "architecture": loaded.arch,
        "variant": role or "external",
        "external": True,
        "dataset": None,
    }


def eval_settings(cfg: EvalConfig, seed: int) -> EvalSettings:
    """The metrics' settings of an eval config (what the eval stage and the attacks score with)."""
    return EvalSettings(
        seed=seed,
        retfail_forget_fraction=cfg.retfail_forget_fraction,
        retfail_retain_per_forget=cfg.retfail_retain_per_forget,
        retfail_distractors=cfg.retfail_distractors,
        acs_test_fraction=cfg.acs_test_fraction,
    )


def measure(
    loaded: LoadedModel,
    data: Path,
    dataset: dict[str, Any],
    cfg: EvalConfig,
    seed: int,
    **embedding: Any,
) -> tuple[dict[str, Any], DatasetEmbeddings, float]:
    """All registered metrics of one loaded model; (results, embeddings, total seconds).
    `embedding`: DatasetEmbeddings options (device, preprocess, genknow_imagenet, ...)."""
    emb = DatasetEmbeddings(
        loaded, data, dataset, eval_settings(cfg, seed), batch_size=cfg.batch_size, **embedding
    )
    start = time.perf_counter()
    results = compute_all(emb)
    return results, emb, time.perf_counter() - start


def reference_metrics(
    ref: str | os.PathLike,
    data: Path,
    dataset: dict[str, Any],
    cfg: EvalConfig,
    seed: int,
    arch: str | None,
    evaluated: tuple[str, dict[str, float]] | None = None,
    preprocess: str = "auto",
    **embedding: Any,
) -> dict[str, float]:
    """A reference model's flat metrics: from a metrics.json, an eval folder, or a model.

    `evaluated` = (digest, metrics) of the model being evaluated: a reference that is the
    same model is not embedded a second time.
    """
    ref = Path(ref)
    if ref.is_file() and ref.suffix == ".json":
        return json.loads(ref.read_text(encoding="utf-8"))
    if ref.is_dir() and (ref / MANIFEST).is_file():
        kind = read_manifest(ref)["kind"]
        if kind == "eval":
            read_manifest(ref, kind="eval", verify=True)
            return json.loads((ref / METRICS_FILE).read_text(encoding="utf-8"))
    same = (
        evaluated is not None
        and ref.is_dir()
        and (ref / MANIFEST).is_file()
        and read_manifest(ref, kind="model")["digest"] == evaluated[0]
    )
    if evaluated is not None and ref.is_file():  # an external checkpoint, known by its sha256
        from salmubench.manifest import sha256_file

        same = sha256_file(ref) == evaluated[0]
    if same:
        return evaluated[1]
    loaded = load_model(ref, arch)
    results, _, _ = measure(
        loaded, data, dataset, cfg, seed, preprocess=preprocessing(loaded, preprocess), **embedding
    )
    return flatten(results)


def compare(
    values: dict[str, float], clean: dict[str, float] | None, compromised: dict[str, float] | None
) -> dict[str, dict[str, Any]]:
    """Each metric against its target; efficacy also as the share of the gap closed."""
    rows = {}
    for name, metric in METRICS.items():
        ref = clean if metric.target == "clean" else compromised
        row: dict[str, Any] = {
            "value": values[name],
            "family": metric.family,
            "target_model": metric.target,
            "clean": clean.get(name) if clean else None,
            "compromised": compromised.get(name) if compromised else None,
        }
        if ref is not None and name in ref:
            row["target"] = ref[name]
            row["delta"] = round(values[name] - ref[name], 6)
        if clean and compromised and metric.family == "efficacy":
            closed = gap_share(values[name], compromised[name], clean[name])
            if closed is not None:
                row["gap_closed"] = rounded(closed)
        rows[name] = row
    return rows


def markdown(rows: dict[str, dict[str, Any]], title: str) -> str:
    def fmt(x: Any) -> str:
        return "" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)

    lines = [
        f"# {title}",
        "",
        "| metric | family | value | clean | compromised | target | Δ to target |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['family']} | {fmt(r['value'])} | {fmt(r['clean'])} | "
            f"{fmt(r['compromised'])} | {r['target_model']} | {fmt(r.get('delta'))} |"
        )
    return "\n".join(lines) + "\n"


def evaluate(
    data: str | os.PathLike,
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    cfg: EvalConfig | None = None,
    arch: str | None = None,
    seed: int = 0,
    clean: str | os.PathLike | None = None,
    compromised: str | os.PathLike | None = None,
    force: bool = False,
    device: str = "auto",
    preprocess: str = "auto",
    genknow_imagenet: str | os.PathLike | None = None,
    genknow_templates: str = "openai",
    role: str | None = None,
) -> dict[str, Any]:
    """Evaluate `model` on dataset `data` into eval folder `out`; return its manifest.

    `device`: auto, cpu or cuda (refused when none is visible); `preprocess`: auto (OpenCLIP's
    transform for an external checkpoint, ours for our models), squash or openclip;
    `genknow_imagenet`: an ImageNet-style folder for GenKnow (OpenCLIP's class names and
    `genknow_templates`), instead of the dataset's own task. `role`: what a checkpoint file
    stands for in a report (clean or compromised, e.g. the official ViT-B/16 weights)."""
    cfg = cfg or EvalConfig()
    if role is not None and role not in ROLES:
        raise ConfigError(f"role {role!r}; valid: {', '.join(ROLES)}")
    check_output(out, force)  # before checksums and model loading, not after
    cache = DecodedCache.from_env()  # an unusable $SALMUBENCH_CACHE fails here, not later
    torch_device = resolve_device(device)
    data = location(data)
    required = REQUIRED_SPLITS
    if genknow_imagenet is not None:
        from salmubench.eval.embed import imagenet_folder

        imagenet_folder(genknow_imagenet)  # a bad folder fails before any loading
        required = tuple(s for s in REQUIRED_SPLITS if s != "genknow")
    elif "genknow" not in read_manifest(data, kind="dataset").get("shards", {}):
        raise ConfigError(
            f"{data} has no GenKnow task of its own (an imported release, for one): give an "
            "ImageNet-style folder (--genknow-imagenet DIR), or import with "
            "--genknow-per-class N for our synthetic task"
        )
    start = time.perf_counter()
    dataset = open_dataset(data, required)
    opened = time.perf_counter()
    loaded = load_model(model, arch)
    loaded_at = time.perf_counter()
    if role is not None and loaded.manifest is not None:
        raise ConfigError(
            f"{model} is a model folder of ours (variant {loaded.manifest.get('variant')!r}): "
            "a role is only given to a checkpoint file"
        )
    identity = _model_identity(loaded, role)
    embedding: dict[str, Any] = {
        "device": torch_device,
        "genknow_imagenet": genknow_imagenet,
        "genknow_templates": genknow_templates,
        "cache": cache,
    }
    if identity["dataset"] not in (None, dataset["digest"]):
        log.warning(
            "MODEL %s WAS TRAINED ON ANOTHER DATASET (digest %s, this one %s): its forget and "
            "holdout metrics do not measure memorisation of this dataset",
            model,
            identity["dataset"][:12],
            dataset["digest"][:12],
        )
    with staged_output(out, force=force) as tmp:
        results, emb, seconds = measure(
            loaded,
            data,
            dataset,
            cfg,
            seed,
            preprocess=preprocessing(loaded, preprocess),
            **embedding,
        )
        values = flatten(results)
        (tmp / METRICS_FILE).write_text(dumps(values), encoding="utf-8")
        (tmp / "items").mkdir()
        for name, result in results.items():
            with open(tmp / "items" / f"{name}.jsonl", "w", encoding="utf-8") as f:
                for key, v in zip(result.keys, result.per_item, strict=True):
                    f.write(json.dumps({"key": key, "value": round(float(v), 6)}) + "\n")
        refs = {}
        for role, ref in (("clean", clean), ("compromised", compromised)):
            if ref is not None:
                refs[role] = reference_metrics(
                    ref,
                    data,
                    dataset,
                    cfg,
                    seed,
                    arch,
                    (identity["digest"], values),
                    preprocess,
                    **embedding,
                )
        rows = compare(values, refs.get("clean"), refs.get("compromised"))
        if refs:
            (tmp / "targets.json").write_text(dumps(rows), encoding="utf-8")
            plot_targets(rows, tmp / "targets.png", f"{Path(model).name} on {data.name}")
        (tmp / "report.md").write_text(markdown(rows, f"Evaluation of {model}"), encoding="utf-8")
        embed_seconds = emb.embedding_seconds
        timing = {
            "seconds_open_dataset": round(opened - start, 3),  # checksums of every shard
            "seconds_load_model": round(loaded_at - opened, 3),
            "seconds_total": round(seconds, 3),
            "seconds_decode": round(emb.seconds["decode"], 3),
            "seconds_embedding": round(embed_seconds, 3),
            "seconds_metrics": round(seconds - embed_seconds - emb.seconds["decode"], 3),
            "images_embedded": emb.counts["images"],
            "texts_embedded": emb.counts["texts"],
            # Decoded and embedded images per second (the GPU's figure of merit).
            "images_per_second": round(
                emb.counts["images"]
                / max(emb.seconds["decode"] + emb.seconds["embed_images"], 1e-9),
                1,
            ),
            **emb.cache_stats(),
        }
        summary = {
            "model": identity,
            "dataset": dataset["digest"],
            "seed": seed,
            "references": {
                k: str(v) for k, v in (("clean", clean), ("compromised", compromised)) if v
            },
            "timing": timing,
            "metrics": describe_metrics(),
            "evaluation": emb.describe(),
        }
        if dataset.get("profile") == "official":
            summary["differences_from_official_evaluator"] = OFFICIAL_DIFFERENCES
        (tmp / "summary.json").write_text(dumps(summary), encoding="utf-8")
        manifest = write_manifest(
            tmp,
            "eval",
            config=to_dict(cfg),
            inputs={"dataset": dataset["digest"], "model": identity["digest"]},
            model=identity,
            seed=seed,
            metrics=values,
            timing=timing,
            evaluation=emb.describe(),
        )
    return manifest
