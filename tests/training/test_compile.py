"""model.compile resolved per device (the compiled path itself: tests/training/test_module.py, marked slow)."""

from __future__ import annotations

import pytest
import torch

from stylefuse.errors import ConfigError
from stylefuse.training import compile as compile_mod
from stylefuse.training.compile import resolve_compile


def test_auto_compiles_on_cuda_only():
    assert resolve_compile("auto", torch.device("cpu")) is False
    assert resolve_compile(True, torch.device("cpu")) is True  # this machine has a C++ compiler
    assert resolve_compile(False, torch.device("cpu")) is False


def test_auto_trains_eagerly_without_triton_and_true_names_the_missing_piece(monkeypatch):
    missing = "Triton is not installed (pip install triton)"
    monkeypatch.setattr(compile_mod, "compile_unavailable", lambda device: missing)
    assert resolve_compile("auto", torch.device("cuda")) is False
    with pytest.raises(ConfigError, match=r"^model.compile=true, but Triton is not installed \(pip install triton\); "
                                          r"install it or set model.compile=false$"):
        resolve_compile(True, torch.device("cuda"))


def test_unknown_setting_is_one_line():
    with pytest.raises(ConfigError, match="model.compile must be auto, true or false, got 'on'"):
        resolve_compile("on", torch.device("cpu"))
