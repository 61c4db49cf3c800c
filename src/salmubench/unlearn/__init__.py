"""Unlearning: nine baseline methods behind a registry (`methods/`), and the stage that
applies one (`loop.unlearn`).

Importing this package imports no torch (the plan stage validates method names with
`parse_methods` in the lean image); `Method`, the contract's base class, is loaded on first
use."""

from typing import Any

from salmubench.unlearn.registry import (
    METHODS,
    build_method,
    get_method,
    method_names,
    parse_methods,
)

__all__ = ["METHODS", "Method", "build_method", "get_method", "method_names", "parse_methods"]


def __getattr__(name: str) -> Any:
    if name == "Method":
        from salmubench.unlearn.method import Method

        return Method
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
