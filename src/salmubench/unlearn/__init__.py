"""Unlearning: nine baseline methods behind a registry (`methods/`), and the stage that
applies one (`loop.unlearn`)."""

from salmubench.unlearn.base import (
    METHODS,
    Method,
    build_method,
    get_method,
    method_names,
    parse_methods,
)

__all__ = ["METHODS", "Method", "build_method", "get_method", "method_names", "parse_methods"]
