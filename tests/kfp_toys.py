"""Two toy lightweight components for the quiet local runner's failure test.

In their own module: kfp reads the annotations at definition time, which
`from __future__ import annotations` (the test modules' style) would turn into strings.
"""

from kfp import dsl


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def chatty_toy(n: int) -> int:
    for i in range(200):
        print(f"chatter {i}")
    return n + 1


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def failing_toy(n: int) -> int:
    for i in range(200):
        print(f"before the failure {i}")
    raise SystemExit(f"the fact that failed it (input {n})")


@dsl.pipeline
def failing_toy_pipeline(n: int = 1) -> int:
    return failing_toy(n=chatty_toy(n=n).output).output
