"""Errors a user can fix, importable without heavy dependencies (the CLI catches these)."""

import re


class ModelError(ValueError):
    """A model or checkpoint that cannot be used, with what would be valid."""


class ManifestError(ValueError):
    """A folder that is incomplete, of the wrong kind, or whose files do not match."""


class PublishError(RuntimeError):
    """Publishing failed; the message says at which step and what to do."""


# Sentences of torch's load errors that advise rather than state: above all re-loading with
# `weights_only=False` (arbitrary code execution) or allow-listing the file's classes.
_ADVICE = re.compile(
    r"weights_only|safe_globals|trust|documentation|can still be loaded|If you are seeing|"
    r"This can happen|Re-running|Please use",
    re.IGNORECASE,
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def facts(error: Exception) -> str:
    """What a library's exception states, without its advice (at most 300 characters)."""
    text = _ANSI.sub("", str(error))
    # torch's weights-only refusal: the fact (which object it refused) follows this tag.
    text = text.split("WeightsUnpickler error:", 1)[-1]
    sentences = re.split(r"(?<=[.!?])\s+|\n+", text.strip())
    kept = [s.strip() for s in sentences if s.strip() and not _ADVICE.search(s)]
    return (" ".join(kept) or type(error).__name__)[:300]
