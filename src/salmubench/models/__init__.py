"""OpenCLIP models: architectures as JSON data, creation, saving and loading.

Our architectures are OpenCLIP JSON configs shipped in `models/configs/` (one per profile);
the paper profile uses OpenCLIP's built-in ViT-B-16. A trained model folder holds
`model.pt` (an OpenCLIP checkpoint: `{"state_dict": ...}`), the architecture as
`<name>.json`, and its manifest. External OpenCLIP checkpoints (e.g. the official
SALMUBench ViT-B/16 weights) load from a local file with the architecture named.
Nothing is ever downloaded.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from salmubench.errors import ModelError
from salmubench.errors import facts as _facts
from salmubench.manifest import read_manifest, write_atomic
from salmubench.vocab import MODEL_FILE

__all__ = ["LoadedModel", "ModelError", "create", "load_model", "save_model"]

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _open_clip():
    import open_clip

    if not getattr(_open_clip, "registered", False):
        open_clip.add_model_config(CONFIG_DIR)
        _open_clip.registered = True  # type: ignore[attr-defined]
    return open_clip


def our_architectures() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def architecture(name: str) -> dict[str, Any]:
    """The OpenCLIP config of an architecture (ours or built-in)."""
    oc = _open_clip()
    cfg = oc.get_model_config(name)
    if cfg is None:
        raise ModelError(
            f"unknown architecture {name!r}; ours: {', '.join(our_architectures())}; "
            f"or one of OpenCLIP's {len(oc.list_models())} built-in names (e.g. ViT-B-16)"
        )
    return cfg


def register_architecture(path: str | os.PathLike) -> str:
    """Make an architecture JSON file known to OpenCLIP under its file stem."""
    _open_clip().add_model_config(Path(path))
    return Path(path).stem


def create(name: str) -> torch.nn.Module:
    """A randomly initialised OpenCLIP model of architecture `name` (no weights fetched)."""
    architecture(name)
    oc = _open_clip()
    # OpenCLIP logs a warning when no pretrained weights are requested; that is the point.
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model = oc.create_model(name, pretrained=None, output_dict=True)
    finally:
        logger.setLevel(level)
    return model


def tokenizer(name: str):
    return _open_clip().get_tokenizer(name)


def _mean_std(model: torch.nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    mean = cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))
    std = cfg.get("std", (0.26862954, 0.26130258, 0.27577711))
    return tuple(float(x) for x in mean), tuple(float(x) for x in std)


def image_normalisation(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) as [1, 3, 1, 1] tensors, from the model's preprocessing config."""
    mean, std = _mean_std(model)
    return torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)


def image_size(model: torch.nn.Module) -> int:
    size = model.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def save_model(folder: Path, model: torch.nn.Module, arch: str, meta: dict[str, Any]) -> None:
    """Write `model.pt` (OpenCLIP-loadable) and the architecture JSON into `folder`."""
    state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    buf = io.BytesIO()
    torch.save({"state_dict": state, "salmubench": meta}, buf)
    write_atomic(folder / MODEL_FILE, buf.getvalue())
    write_atomic(folder / f"{arch}.json", json.dumps(architecture(arch), indent=2) + "\n")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


@dataclass
class LoadedModel:
    model: torch.nn.Module
    arch: str
    path: Path
    manifest: dict[str, Any] | None = None


def load_model(path: str | os.PathLike, arch: str | None = None) -> LoadedModel:
    """Load a model folder of ours, or an external OpenCLIP checkpoint file with `arch`."""
    path = Path(path)
    if path.is_dir():
        manifest = read_manifest(path, kind="model", verify=True)
        arch_name = manifest["architecture"]
        if arch is not None and arch != arch_name:
            raise ModelError(f"{path} is a {arch_name!r} model, not {arch!r}")
        arch_file = path / f"{arch_name}.json"
        if arch_file.is_file():
            register_architecture(arch_file)
        loaded = _load_file(path / MODEL_FILE, arch_name)
        loaded.path, loaded.manifest = path, manifest
        return loaded
    if not path.is_file():
        raise ModelError(f"model {path} does not exist (expected a model folder or a checkpoint)")
    if arch is None:
        raise ModelError(
            f"{path} is a bare checkpoint file: name its architecture (--arch), e.g. ViT-B-16 "
            f"for the official SALMUBench models, or one of {', '.join(our_architectures())}"
        )
    return _load_file(path, arch)


def _load_file(path: Path, arch: str) -> LoadedModel:
    oc = _open_clip()
    model = create(arch)
    try:
        oc.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except RuntimeError as e:
        if "state_dict" not in str(e):  # torch's own reader: truncated or not a zip archive
            raise ModelError(f"{path} is not a readable OpenCLIP checkpoint: {_facts(e)}") from None
        first = str(e).strip().splitlines()[0][:300]
        raise ModelError(
            f"{path} does not fit architecture {arch!r} (another architecture's checkpoint?): "
            f"{first}"
        ) from e
    except Exception as e:  # unreadable, truncated or not a torch file
        # `from None`: torch's message also advises re-loading with weights_only=False,
        # which runs the file's code; our message keeps only its facts.
        raise ModelError(
            f"{path} is not a readable OpenCLIP checkpoint ({type(e).__name__}): {_facts(e)}"
        ) from None
    model.eval()
    return LoadedModel(model, arch, path)


# ------------------------------------------------------------------------- preprocessing

PREPROCESS_KINDS = ("auto", "squash", "openclip")


@dataclass(frozen=True)
class Preprocess:
    """How image bytes become a model's input: what an eval records in its manifest.

    `squash`: ours, the preprocessing our models were trained with: resized to size x size
    (bicubic) whatever the aspect ratio. `openclip`: the architecture's OpenCLIP eval
    transform (resize the shortest side, centre crop, with its interpolation), which is what
    the official evaluator applies to the released 512-px images. Both then scale to [0, 1]
    and normalise with the model's mean and std.
    """

    kind: str
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_mode: str
    interpolation: str

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "size": self.size,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize_mode": self.resize_mode,
            "interpolation": self.interpolation,
        }

    def geometry(self):
        """The OpenCLIP transform's PIL steps (resize, crop, RGB) of an `openclip` kind:
        the tensor conversion and normalisation are the evaluator's, the same arithmetic."""
        if self.kind != "openclip":
            raise ValueError(f"preprocessing {self.kind!r} has no OpenCLIP geometry")
        from open_clip.transform import MaybeToTensor, Normalize, PreprocessCfg, image_transform_v2

        cfg = PreprocessCfg(
            size=(self.size, self.size),
            mean=self.mean,
            std=self.std,
            interpolation=self.interpolation,
            resize_mode=self.resize_mode,
        )
        steps = image_transform_v2(cfg, is_train=False).transforms
        return [t for t in steps if not isinstance(t, (MaybeToTensor, Normalize))]


def preprocessing(loaded: LoadedModel, kind: str = "auto") -> Preprocess:
    """The model's preprocessing: `auto` = OpenCLIP's transform for an external checkpoint
    (no manifest of ours, or unlearned from one), ours (`squash`) for a model this package
    trained (and what it was unlearned from)."""
    if kind not in PREPROCESS_KINDS:
        raise ModelError(f"preprocessing {kind!r}; valid: {', '.join(PREPROCESS_KINDS)}")
    if kind == "auto":
        m = loaded.manifest
        # Unlearned from an external checkpoint: still that checkpoint's preprocessing.
        external = m is None or (m.get("source") or {}).get("variant") == "external"
        kind = "openclip" if external else "squash"
    model = loaded.model
    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    mean, std = _mean_std(model)
    if kind == "squash":
        return Preprocess("squash", image_size(model), mean, std, "squash", "bicubic")
    return Preprocess(
        "openclip",
        image_size(model),
        mean,
        std,
        str(cfg.get("resize_mode", "shortest")),
        str(cfg.get("interpolation", "bicubic")),
    )


# -------------------------------------------------------------------------------- devices

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str, default: torch.device | None = None) -> torch.device:
    """`cpu`, `cuda` (refused clearly when no GPU is visible) or `auto`: `default` if given,
    else CUDA when available, else CPU."""
    if name not in DEVICES:
        raise ModelError(f"device {name!r}; valid: {', '.join(DEVICES)}")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(
                "device 'cuda' was asked but no CUDA GPU is visible to torch "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use --device cpu "
                "or auto"
            )
        return default if default is not None and default.type == "cuda" else torch.device("cuda")
    if default is not None:
        return default
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
