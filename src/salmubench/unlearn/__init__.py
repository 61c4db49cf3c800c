"""Unlearning: nine baseline methods behind a registry, and the stage that applies one."""

from salmubench.unlearn.base import METHODS, Method, build_method, get_method, method_names

__all__ = ["METHODS", "Method", "build_method", "get_method", "method_names", "unlearn"]


def unlearn(*args, **kwargs):
    from salmubench.unlearn.loop import unlearn as _unlearn

    return _unlearn(*args, **kwargs)
