"""Errors a user can fix, importable without heavy dependencies (the CLI catches these)."""


class ModelError(ValueError):
    """A model or checkpoint that cannot be used, with what would be valid."""


class ManifestError(ValueError):
    """A folder that is incomplete, of the wrong kind, or whose files do not match."""


class PublishError(RuntimeError):
    """Publishing failed; the message says at which step and what to do."""
