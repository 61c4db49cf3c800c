"""Errors a user can fix, importable without heavy dependencies (the CLI catches these)."""


class ModelError(ValueError):
    """A model or checkpoint that cannot be used, with what would be valid."""
