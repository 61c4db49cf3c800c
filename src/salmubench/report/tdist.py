"""The Student-t quantile the report's confidence intervals need, in the standard library
alone: the lean image (docker/Dockerfile.lean) that runs `report` carries no scipy.

The upper tail of Student's t with `df` degrees of freedom is half a regularised
incomplete beta function, P(T > t) = I_x(df/2, 1/2) / 2 with x = df / (df + t^2), which a
continued fraction evaluates to about 1e-15 (the modified Lentz method, Numerical Recipes
6.4). The quantile solves that equation by Newton's method in log t against log P(T > t):
the tail falls like a power of t, so that curve is almost straight and a few steps from a
normal-quantile start suffice. Agrees with `scipy.stats.t.ppf` to 1e-9 relative over the
report's range (tests/test_tdist.py).
"""

from __future__ import annotations

import math
from statistics import NormalDist

_EPS = 1e-16
_TINY = 1e-300


def _beta_cf(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (converges fast for x < (a + 1) / (a + b + 2))."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 10_000):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + num / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta: no convergence for a={a}, b={b}, x={x}")


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        + a * math.log(x) + b * math.log1p(-x)
    )  # fmt: skip
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_cf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_ppf(p: float, df: float) -> float:
    """The `p` quantile of Student's t with `df` > 0 degrees of freedom, 0 < p < 1."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t quantile: p={p!r} must lie strictly between 0 and 1")
    if not df > 0:
        raise ValueError(f"t quantile: df={df!r} must be > 0")
    if p < 0.5:
        return -t_ppf(1.0 - p, df)
    if p == 0.5:
        return 0.0
    target = math.log1p(-p)  # log P(T > t) at the answer
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    u = math.log(max(NormalDist().inv_cdf(p), 1e-3))  # log t; the normal is lighter-tailed
    last = math.inf
    for _ in range(100):
        t = math.exp(u)
        tail = t_sf(t, df)
        log_pdf = log_norm - (df + 1) / 2 * math.log1p(t * t / df)
        # d log P(T > t) / d log t = -t f(t) / P(T > t)
        step = (math.log(tail) - target) / (t * math.exp(log_pdf) / tail)
        u += max(-1.0, min(1.0, step))
        # Newton: the error after a step is about its square. A step that stops shrinking
        # is rounding noise (large df, where the tail is flat in log t).
        if abs(step) < 1e-12 or (abs(step) < 1e-9 and abs(step) >= last):
            return math.exp(u)
        last = abs(step)
    raise ArithmeticError(f"t quantile: no convergence for p={p}, df={df}")
