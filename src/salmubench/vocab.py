"""The benchmark's vocabulary: split names, composites, pools, what each stage may read, and
the names of the files in a stage folder. Defined once here and imported everywhere
(STYLE.md §13); this module imports nothing of the package, so any module may use it.
"""

from __future__ import annotations

# ------------------------------------------------------------------------------------ splits

# Primitive splits, each written as its own shards `<split>-NNNNNN.tar` (SPEC.md §2).
SPLITS = (
    "forget_identity",  # every association of these personas
    "forget_association",  # some attributes of these personas
    "holdout_association",  # the other attributes of the forget_association personas
    "holdout_identity",  # personas never in forget
    "retain_joint",  # non-sensitive portraits of forget personas
    "retain_disjoint",  # persona-free portraits
    "fragile",  # copies of the retain_disjoint samples showing a rare concept
    "retain_real",  # the general world
    "genknow",  # held-out labelled scenes: zero-shot classification
)
# Named unions of primitive splits.
COMPOSITES = {
    "forget": ("forget_identity", "forget_association"),
    "holdout": ("holdout_association", "holdout_identity"),
    "sensitive": (
        "forget_identity",
        "forget_association",
        "holdout_association",
        "holdout_identity",
    ),
    "retain_synth": ("retain_joint", "retain_disjoint"),
}
SENSITIVE_SPLITS = COMPOSITES["sensitive"]
FORGET_SPLITS = COMPOSITES["forget"]


def resolve(split: str) -> tuple[str, ...]:
    """A split or composite name as its primitive splits."""
    if split in SPLITS:
        return (split,)
    if split in COMPOSITES:
        return COMPOSITES[split]
    raise KeyError(f"unknown split {split!r}; valid: {', '.join((*SPLITS, *COMPOSITES))}")


# ---------------------------------------------------------------------- what a stage reads

# Training pools (SPEC.md §3); holdouts are in the sensitive pool on purpose: the
# Compromised model memorises them too. The order numbers the pools' random streams.
POOLS = {
    "general": ("retain_real",),
    "retain": COMPOSITES["retain_synth"],
    "sensitive": SENSITIVE_SPLITS,
}
VARIANTS = {"clean": ("general", "retain"), "compromised": ("general", "retain", "sensitive")}

# The only splits an unlearning method may read besides the forget set (SPEC.md §2, §5).
RETAIN_SPLITS = ("retain_joint", "retain_disjoint", "retain_real")
READABLE = (*FORGET_SPLITS, *RETAIN_SPLITS)
# Holdout and evaluation splits: what the benchmark measures, never read by unlearning.
FORBIDDEN = tuple(s for s in SPLITS if s not in READABLE)

# What the metrics read: primitive splits plus the `forget` composite (SPEC.md §4).
METRIC_SPLITS = (
    "forget",
    "forget_identity",
    "holdout_identity",
    "holdout_association",
    "retain_joint",
    "retain_disjoint",
    "fragile",
    "genknow",
)

# ---------------------------------------------------------------------- dataset content names

# Sensitive attribute types a persona may have (`data/personas.py` registers one generator
# for each, and only these).
ATTRIBUTE_TYPES = (
    "city",
    "job",
    "phone",
    "email",
    "iban",
    "credit_card",
    "passport",
    "birthdate",
)
# The rare concepts of the fragile set, in the order `fragile_concepts` takes them.
ACCESSORIES = (
    "eyepatch", "party_hat", "monocle", "flower_crown", "bow_tie", "face_paint", "halo",
    "clown_nose", "crown", "headphones", "star_sticker", "feather",
)  # fmt: skip

# ------------------------------------------------------------------------------- file names

MANIFEST = "manifest.json"  # every stage folder; written last (`manifest.py`)
# dataset/
PERSONAS_FILE = "personas.jsonl"
ASSOCIATIONS_FILE = "associations.jsonl"
CLASSES_FILE = "classes.json"
PREVIEW_FILE = "preview.png"
# model/
MODEL_FILE = "model.pt"  # OpenCLIP-loadable weights plus our metadata
STATE_FILE = "state.pt"  # resumable training state (weights, optimiser, step, identity)
TRAIN_LOG = "train_log.jsonl"
UNLEARN_LOG = "unlearn_log.jsonl"
# eval/
METRICS_FILE = "metrics.json"  # the one summary: DVC metrics file and KFP Metrics artifact
SUMMARY_FILE = "summary.json"
TARGETS_FILE = "targets.json"
EVAL_REPORT_FILE = "report.md"
# report/
LEADERBOARD_JSON = "leaderboard.json"
LEADERBOARD_MD = "leaderboard.md"
REPORT_HTML = "report.html"
TUNING_FILE = "tuning.json"

# Relearning attacks (`salmubench attack`) and the weight precisions the low-precision one uses.
ATTACKS = ("persona_split", "retain_only", "generic_captions", "low_precision")
WEIGHT_PRECISIONS = ("int8", "int4", "bf16")
