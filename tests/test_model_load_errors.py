"""A bad checkpoint's error keeps torch's facts and drops its advice.

torch's weights-only refusal advises re-running `torch.load` with `weights_only=False`,
which executes the file's code: our users must never be told that.
"""

from __future__ import annotations

import argparse

import pytest
import torch

from salmubench.errors import ModelError
from salmubench.models import load_model


def test_a_refused_object_is_named_without_torchs_advice(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": argparse.Namespace(x=1)}, path)
    with pytest.raises(ModelError) as caught:
        load_model(path, arch="salmu-micro")
    message = str(caught.value)
    assert str(path) in message and "argparse.Namespace" in message  # the facts
    for advice in ("weights_only", "safe_globals", "trust", "\x1b["):
        assert advice not in message, message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_truncated_checkpoint_is_unreadable_not_another_architecture(tmp_path):
    whole = tmp_path / "whole.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, whole)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole.read_bytes()[:60])
    with pytest.raises(ModelError, match="is not a readable OpenCLIP checkpoint") as caught:
        load_model(cut, arch="salmu-micro")
    assert "central directory" in str(caught.value)  # torch's fact survives
    assert "another architecture" not in str(caught.value)


def test_a_corrupt_resume_state_is_refused_with_facts_not_advice(tmp_path):
    """`--resume` over a partial run whose state.pt holds an object the weights-only loader
    refuses: a ConfigError naming the file and the object, never torch's advice."""
    from salmubench.config import ConfigError
    from salmubench.engine.state import STATE, load_state

    torch.save({"identity": argparse.Namespace(x=1)}, tmp_path / STATE)
    with pytest.raises(ConfigError, match="is not a readable resume state") as caught:
        load_state(tmp_path, {"config": {}})
    message = str(caught.value)
    assert str(tmp_path / STATE) in message and "argparse.Namespace" in message
    assert "--force" in message
    for advice in ("weights_only", "safe_globals", "trust"):
        assert advice not in message, message
